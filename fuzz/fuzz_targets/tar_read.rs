//! Any bytes as a tar stream to each tar reader that takes a `Read`: an
//! error or files, never a panic. None promises to drop `..` or absolute
//! paths, so paths are only read here, not checked.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dmb::tarball::each_regular_file(data, |path, contents| {
        let _ = path.components().count();
        let mut buf = Vec::new();
        contents
            .take(1 << 20)
            .read_to_end(&mut buf)
            .map_err(|e| e.to_string())?;
        Ok(false)
    });
    if let Ok((facts, sources)) = dmb::kernel::image::read_kernel_dev(data) {
        let _ = facts.header_trees();
        let _ = sources.kernel_version();
    }
    if let Ok(sources) = dmb::kernel::source::SourceFiles::from_source_tar(data) {
        let _ = sources.kernel_version();
    }
});
