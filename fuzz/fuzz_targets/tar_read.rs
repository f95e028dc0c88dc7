//! Any bytes as a tar stream to each tar reader that takes a `Read`: an
//! error or files, never a panic, and only plain names (relative, no `..`):
//! a name that left the root once made caching a kernel's source files
//! panic.
#![no_main]

use std::io::Read;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fn plain(name: &str) {
    assert!(dmb::tarball::is_plain(Path::new(name)), "{name:?}");
    assert!(!name.starts_with('/') && !name.contains("//"), "{name:?}");
}

fuzz_target!(|data: &[u8]| {
    let _ = dmb::tarball::each_regular_file(data, |path, contents| {
        assert!(dmb::tarball::is_plain(path), "{path:?}");
        let mut buf = Vec::new();
        contents
            .take(1 << 20)
            .read_to_end(&mut buf)
            .map_err(|e| e.to_string())?;
        Ok(false)
    });
    if let Ok((facts, sources)) = dmb::kernel::image::read_kernel_dev(data) {
        for (release, files) in &facts.trees {
            assert!(!release.contains('/') && release != "..", "{release:?}");
            files.keys().for_each(|f| plain(f));
        }
        sources.files.keys().for_each(|f| plain(f));
        let _ = facts.header_trees();
        let _ = sources.kernel_version();
    }
    if let Ok(sources) = dmb::kernel::source::SourceFiles::from_source_tar(data) {
        sources.files.keys().for_each(|f| plain(f));
        let _ = sources.kernel_version();
    }
});
