//! What dmb reads of a kernel's source on the host: its Kconfig and kbuild
//! files (a few MB of the ~1.3 GB tree), taken from a kernel image as it
//! streams out of the engine, and kept by image ID in
//! `~/.cache/dmb/kernel-source/` (an ID names the content, so the cache
//! cannot go stale). LinuxKit's `kernel-dev.tar` carries every one of them
//! (and is uncompressed and smaller); else they come from `/linux.tar.xz`.
//! Building happens in containers, against the tree unpacked there.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::kbuild::ModuleIndex;
use super::kconfig::Kconfig;
use super::KernelImageError;
use crate::engine::{Base, Session};

/// The source archive of a LinuxKit kernel image; unpacks to `linux/`.
pub const SOURCE_TAR: &str = "/linux.tar.xz";

/// A file this large is no Kconfig or Makefile.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Whether dmb keeps a source file: Kconfig files and kbuild Makefiles.
pub fn is_kept(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.starts_with("Kconfig") || base == "Makefile" || base == "Kbuild"
}

/// The Kconfig and kbuild files of a kernel source, by path relative to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFiles {
    pub files: BTreeMap<String, String>,
}

impl SourceFiles {
    /// From a tar of the source (its first path component is the tree's
    /// own directory, `linux/`).
    pub fn from_source_tar(stream: impl Read) -> Result<Self, String> {
        let mut files = BTreeMap::new();
        crate::tarball::each_regular_file(stream, |path, contents| {
            let Some(path) = crate::tarball::normal_path(path) else {
                return Ok(false);
            };
            let Some((_, rel)) = path.split_once('/') else {
                return Ok(false);
            };
            if is_kept(rel) {
                let mut text = String::new();
                contents
                    .take(MAX_FILE)
                    .read_to_string(&mut text)
                    .map_err(|e| format!("{rel}: {e}"))?;
                files.insert(rel.to_string(), text);
            }
            Ok(false)
        })?;
        Ok(SourceFiles { files })
    }

    /// From an unpacked tree.
    pub fn from_dir(root: &Path) -> std::io::Result<Self> {
        let mut files = BTreeMap::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                let path = entry.path();
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file() {
                    let rel = path
                        .strip_prefix(root)
                        .expect("below the root")
                        .to_string_lossy()
                        .into_owned();
                    if is_kept(&rel) {
                        files.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
                    }
                }
            }
        }
        Ok(SourceFiles { files })
    }

    /// Keeps them in the cache of kernel image `image_id` (when there are
    /// any: an image whose kernel-dev.tar has none is read again from its
    /// source archive).
    pub(crate) fn store(&self, image_id: &str) {
        if self.files.is_empty() {
            return;
        }
        // A name the tar writer refuses is not cached (it is not read
        // either: the readers keep plain names only).
        if let (Some(path), Ok(bytes)) = (
            crate::cache::file_for_image("kernel-source", image_id),
            self.to_tar(),
        ) {
            crate::cache::store(&path, &bytes);
        }
    }

    /// The files as a tar (`path` → contents), for the cache.
    fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, text) in &self.files {
            crate::tarball::append_file(&mut b, path, text.as_bytes())?;
        }
        b.into_inner()
    }

    fn from_cache_tar(bytes: &[u8]) -> Result<Self, String> {
        let mut files = BTreeMap::new();
        crate::tarball::each_regular_file(bytes, |path, contents| {
            let mut text = String::new();
            contents
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            files.insert(path.to_string_lossy().into_owned(), text);
            Ok(false)
        })?;
        Ok(SourceFiles { files })
    }

    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// The Kconfig tree, for the architecture `srcarch` (`x86`).
    pub fn kconfig(&self, srcarch: &str) -> Kconfig {
        Kconfig::read(&|p| self.get(p).map(str::to_string), srcarch)
    }

    /// Which module each Makefile builds, and by which option.
    pub fn modules(&self, srcarch: &str) -> ModuleIndex {
        ModuleIndex::read(
            self.files
                .iter()
                .filter(|(p, _)| !p.rsplit('/').next().unwrap_or("").starts_with("Kconfig"))
                .map(|(p, t)| (p.as_str(), t.as_str())),
            srcarch,
        )
    }

    /// `VERSION.PATCHLEVEL.SUBLEVEL` of the top-level Makefile.
    pub fn kernel_version(&self) -> Option<String> {
        let makefile = self.get("Makefile")?;
        let value = |key: &str| {
            makefile.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        Some(format!(
            "{}.{}.{}",
            value("VERSION")?,
            value("PATCHLEVEL")?,
            value("SUBLEVEL").unwrap_or_else(|| "0".into())
        ))
    }
}

/// The Kconfig and kbuild files of the header trees of a `kernel-dev.tar`,
/// gathered entry by entry ([`super::image::read_kernel_dev`]).
#[derive(Debug, Default)]
pub struct HeaderSources {
    trees: BTreeMap<String, BTreeMap<String, String>>,
}

impl HeaderSources {
    /// A regular file `file` of header tree `release`.
    pub fn take(
        &mut self,
        release: &str,
        file: &str,
        contents: &mut dyn Read,
    ) -> Result<(), String> {
        if !is_kept(file) {
            return Ok(());
        }
        let mut text = String::new();
        contents
            .take(MAX_FILE)
            .read_to_string(&mut text)
            .map_err(|e| format!("{file}: {e}"))?;
        self.trees
            .entry(release.to_string())
            .or_default()
            .insert(file.to_string(), text);
        Ok(())
    }

    /// The files of the tree that has the top-level `Kconfig` (LinuxKit's
    /// layout); none when no tree has one (Debian's headers).
    pub fn finish(self) -> SourceFiles {
        let files = self
            .trees
            .into_values()
            .find(|files| files.contains_key("Kconfig"))
            .unwrap_or_default();
        SourceFiles { files }
    }
}

/// The Kconfig and kbuild files of the source in kernel image `reference`:
/// from the cache, else from its `kernel-dev.tar` (LinuxKit's has them),
/// else from its `/linux.tar.xz`.
pub fn source_files<E: ?Sized + Base>(
    session: &Session<E>,
    reference: &str,
) -> Result<SourceFiles, crate::Error> {
    let Some(image_id) = session.engine().image_id(reference)? else {
        return Err(KernelImageError::NotFound {
            reference: reference.to_string(),
        }
        .into());
    };
    let cached = crate::cache::file_for_image("kernel-source", &image_id);
    if let Some(files) = crate::cache::read(cached.as_deref())
        .and_then(|bytes| SourceFiles::from_cache_tar(&bytes).ok())
        .filter(|f| !f.files.is_empty())
    {
        return Ok(files);
    }
    // LinuxKit's kernel-dev.tar has them all (and the kernel's facts,
    // kept too); else the source archive, which is larger and compressed.
    let from_headers = super::image::stream_kernel_dev(session, reference, &image_id)?.1;
    if !from_headers.files.is_empty() {
        return Ok(from_headers);
    }
    let mut files = None;
    let found = session
        .scratch(reference)?
        .read_file(SOURCE_TAR, &mut |r| {
            files = Some(SourceFiles::from_source_tar(xz2::read::XzDecoder::new(r))?);
            Ok(())
        })?;
    let files = match (found, files) {
        (true, Some(files)) if !files.files.is_empty() => files,
        _ => {
            return Err(KernelImageError::MissingFile {
                reference: reference.to_string(),
                file: SOURCE_TAR.to_string(),
            }
            .into())
        }
    };
    files.store(&image_id);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linuxkit_kernel_dev_tar_carries_the_kconfig_tree() {
        let tar = crate::tarball::of_files([
            (
                "usr/src/linux-headers-6.6.1-linuxkit/.config",
                &b"CONFIG_NET=y\n"[..],
            ),
            (
                "usr/src/linux-headers-6.6.1-linuxkit/Kconfig",
                b"source \"net/Kconfig\"\n",
            ),
            (
                "usr/src/linux-headers-6.6.1-linuxkit/net/Kconfig",
                b"config NET\n\tbool \"Net\"\n",
            ),
            (
                "usr/src/linux-headers-6.6.1-linuxkit/net/sctp/Makefile",
                b"obj-$(CONFIG_IP_SCTP) += sctp.o\n",
            ),
            ("usr/src/linux-headers-6.6.1-common/Makefile", b"all:\n"),
        ]);
        let files = crate::kernel::image::read_kernel_dev(&tar[..]).unwrap().1;
        assert_eq!(
            files.files.keys().collect::<Vec<_>>(),
            ["Kconfig", "net/Kconfig", "net/sctp/Makefile"]
        );
        // Debian's headers have no Kconfig: nothing to read there.
        let debian = crate::tarball::of_files([(
            "usr/src/linux-headers-6.1.0-57-amd64/Makefile",
            &b"include x\n"[..],
        )]);
        assert!(crate::kernel::image::read_kernel_dev(&debian[..])
            .unwrap()
            .1
            .files
            .is_empty());
    }

    #[test]
    fn only_kconfig_and_kbuild_files_are_kept() {
        let tar = crate::tarball::of_files([
            (
                "linux/Makefile",
                &b"VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\n"[..],
            ),
            ("linux/Kconfig", b"source \"net/Kconfig\"\n"),
            ("linux/net/Kconfig", b"config NET\n\tbool \"Net\"\n"),
            (
                "linux/net/sctp/Makefile",
                b"obj-$(CONFIG_IP_SCTP) += sctp.o\n",
            ),
            ("linux/net/sctp/socket.c", b"int x;\n"),
            ("linux/arch/x86/Kconfig.debug", b""),
        ]);
        let files = SourceFiles::from_source_tar(&tar[..]).unwrap();
        assert_eq!(
            files.files.keys().collect::<Vec<_>>(),
            [
                "Kconfig",
                "Makefile",
                "arch/x86/Kconfig.debug",
                "net/Kconfig",
                "net/sctp/Makefile"
            ]
        );
        assert_eq!(files.kernel_version().as_deref(), Some("6.1.192"));
        assert_eq!(files.modules("x86").by_name("sctp")[0].symbol, "IP_SCTP");
        assert!(files.kconfig("x86").get("NET").is_some());
        let again = SourceFiles::from_cache_tar(&files.to_tar().unwrap()).unwrap();
        assert_eq!(again, files);
    }

    /// Found by reading the code after fuzzing: names that leave the root
    /// were kept, and caching them panicked in the tar writer.
    #[test]
    fn names_that_leave_the_root_are_not_kept_and_caching_never_panics() {
        let tar = crate::tarball::hostile::tar(
            "linux/sparse/Kconfig",
            &[
                ("linux/../Makefile", b"evil"),
                ("linux//etc/Kbuild", b"doubled"),
                ("linux/Kconfig", b"config A\n\tbool \"A\"\n"),
            ],
        );
        let files = SourceFiles::from_source_tar(&tar[..]).unwrap();
        assert_eq!(
            files.files.keys().collect::<Vec<_>>(),
            ["Kconfig", "etc/Kbuild"]
        );
        let again = SourceFiles::from_cache_tar(&files.to_tar().unwrap()).unwrap();
        assert_eq!(again, files);

        let tree = "usr/src/linux-headers-6.1.0-56-amd64";
        let tar = crate::tarball::hostile::tar(
            "x",
            &[
                (&format!("{tree}/../../../Makefile"), &b"evil"[..]),
                ("usr/src/linux-headers-../.config", b"evil"),
                (&format!("{tree}/Kconfig"), b"config A\n\tbool \"A\"\n"),
            ],
        );
        let (facts, sources) = crate::kernel::image::read_kernel_dev(&tar[..]).unwrap();
        assert_eq!(facts.trees.keys().collect::<Vec<_>>(), ["6.1.0-56-amd64"]);
        assert_eq!(sources.files.keys().collect::<Vec<_>>(), ["Kconfig"]);
        sources.to_tar().unwrap();
    }
}
