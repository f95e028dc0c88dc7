//! Reading a kernel's facts straight out of a kernel image: the header
//! files that [`KernelFacts`] needs, taken from `kernel-dev.tar` as it
//! streams out of the engine (nothing is unpacked).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::tarball::append_file;

use super::facts::{KernelFacts, FACT_FILES};
use super::source::SourceFiles;
use super::{select_tree, HeaderTree, KernelImageError, KernelRelease, KERNEL_DEV_TAR};
use crate::engine::{Base, Session};

/// A fact file larger than this is not a fact file.
pub const MAX_FACT_FILE: u64 = 64 * 1024 * 1024;

/// The fact files of each header tree of a `kernel-dev.tar`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FactFiles {
    pub trees: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Which of [`super::TREE_FILES`] each tree has.
    present: BTreeMap<String, BTreeSet<String>>,
}

impl FactFiles {
    /// Reads a `kernel-dev.tar` stream, keeping the fact files of every
    /// `usr/src/linux-headers-<release>/` tree.
    pub fn read(stream: impl Read) -> Result<Self, String> {
        Ok(read_kernel_dev(stream)?.0)
    }

    /// One entry of a `kernel-dev.tar`: `release` is the header tree it is
    /// in, `file` its path there. Returns whether it read the contents.
    fn take(
        &mut self,
        release: &str,
        file: &str,
        is_file: bool,
        contents: &mut dyn Read,
    ) -> Result<bool, String> {
        let present = self.present.entry(release.to_string()).or_default();
        if super::TREE_FILES.contains(&file) {
            present.insert(file.to_string());
        }
        let files = self.trees.entry(release.to_string()).or_default();
        if !(FACT_FILES.contains(&file) && is_file) {
            return Ok(false);
        }
        let mut data = Vec::new();
        contents
            .take(MAX_FACT_FILE)
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())?;
        files.insert(file.to_string(), data);
        Ok(true)
    }

    /// The fact files as a small tar (`<release>/<file>`, and
    /// `<release>/@present` listing the tree's files), for the cache.
    fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (release, present) in &self.present {
            let list: Vec<&str> = present.iter().map(String::as_str).collect();
            let listing = list.join("\n");
            append_file(&mut b, &format!("{release}/@present"), listing.as_bytes())?;
            for (file, data) in self.trees.get(release).into_iter().flatten() {
                append_file(&mut b, &format!("{release}/{file}"), data)?;
            }
        }
        b.into_inner()
    }

    fn from_tar(bytes: &[u8]) -> std::io::Result<Self> {
        let mut out = FactFiles::default();
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.to_string_lossy().into_owned();
            let Some((release, file)) = path.split_once('/') else {
                continue;
            };
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            out.trees.entry(release.to_string()).or_default();
            if file == "@present" {
                let text = String::from_utf8_lossy(&data);
                out.present.insert(
                    release.to_string(),
                    text.lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            } else {
                out.trees
                    .get_mut(release)
                    .expect("inserted")
                    .insert(file.to_string(), data);
            }
        }
        Ok(out)
    }

    /// The trees, in the shape [`select_tree`] chooses from.
    pub fn header_trees(&self) -> Vec<HeaderTree> {
        self.present
            .iter()
            .map(|(release, present)| HeaderTree {
                release: release.clone(),
                present: present.clone(),
            })
            .collect()
    }
}

/// Reads a `kernel-dev.tar` stream once for both things dmb wants of it:
/// the fact files of each header tree, and the Kconfig and kbuild files
/// LinuxKit puts there (none in Debian's headers).
pub fn read_kernel_dev(stream: impl Read) -> Result<(FactFiles, SourceFiles), String> {
    let mut facts = FactFiles::default();
    let mut sources = super::source::HeaderSources::default();
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        // A name that leaves the root would become a tree or a file name
        // that leaves the caches' directories: passed over.
        let Some(path) = crate::tarball::normal_path(&entry.path().map_err(|e| e.to_string())?)
        else {
            continue;
        };
        let Some(rest) = path.strip_prefix("usr/src/linux-headers-") else {
            continue;
        };
        let (release, file) = rest.split_once('/').unwrap_or((rest, ""));
        // A release starts with its version; `linux-headers-..` is no tree.
        if !release.starts_with(|c: char| c.is_ascii_digit())
            || KernelRelease::parse(release).is_err()
        {
            continue;
        }
        let is_file = entry.header().entry_type().is_file();
        if !facts.take(release, file, is_file, &mut entry)? && is_file {
            sources.take(release, file, &mut entry)?;
        }
    }
    Ok((facts, sources.finish()))
}

/// Streams `kernel-dev.tar` out of kernel image `reference`, and keeps
/// what it read in both caches.
pub(crate) fn stream_kernel_dev<E: ?Sized + Base>(
    session: &Session<E>,
    reference: &str,
    image_id: &str,
) -> Result<(FactFiles, SourceFiles), crate::Error> {
    let mut read = None;
    let found = session
        .scratch(reference)?
        .read_file(KERNEL_DEV_TAR, &mut |r| {
            read = Some(read_kernel_dev(r)?);
            Ok(())
        })?;
    if !found {
        return Err(KernelImageError::MissingFile {
            reference: reference.to_string(),
            file: KERNEL_DEV_TAR.to_string(),
        }
        .into());
    }
    let (facts, sources) = read.unwrap_or_default();
    if let (Some(path), Ok(bytes)) = (
        crate::cache::file_for_image("kernel-facts", image_id),
        facts.to_tar(),
    ) {
        crate::cache::store(&path, &bytes);
    }
    sources.store(image_id);
    Ok((facts, sources))
}

/// The facts of the kernel in `reference` (its only release, or `kver`).
/// The fact files come from the cache when this image was read before,
/// else from its `kernel-dev.tar`, streamed out of the engine.
pub fn facts_from_image<E: ?Sized + Base>(
    session: &Session<E>,
    reference: &str,
    kver: Option<&str>,
) -> Result<KernelFacts, crate::Error> {
    let Some(image_id) = session.engine().image_id(reference)? else {
        return Err(KernelImageError::NotFound {
            reference: reference.to_string(),
        }
        .into());
    };
    let cached = crate::cache::file_for_image("kernel-facts", &image_id);
    let from_cache = crate::cache::read(cached.as_deref())
        .and_then(|bytes| FactFiles::from_tar(&bytes).ok())
        .filter(|f| !f.present.is_empty());
    let files = match from_cache {
        Some(files) => files,
        None => stream_kernel_dev(session, reference, &image_id)?.0,
    };
    let release = select_tree(reference, &files.header_trees(), kver)?;
    Ok(facts_of_tree(
        reference,
        &release,
        &files.trees[release.as_str()],
    )?)
}

/// The facts of the header tree of `release` in kernel image `reference`,
/// from its fact files (`relative path → contents`).
pub fn facts_of_tree(
    reference: &str,
    release: &KernelRelease,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<KernelFacts, KernelImageError> {
    KernelFacts::from_files(files).map_err(|source| KernelImageError::Facts {
        reference: reference.to_string(),
        release: release.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_kernel_dev_tar_is_read_within_limits_and_a_missing_symvers_is_said() {
        let tree = "usr/src/linux-headers-6.1.0-56-amd64";
        let bytes = crate::tarball::hostile::tar(
            &format!("{tree}/Module.symvers"),
            &[
                (&format!("{tree}/.config"), &b"CONFIG_X86_64=y\n"[..]),
                (&format!("{tree}/../../../etc/Makefile"), b"evil"),
            ],
        );
        let files = FactFiles::read(&bytes[..]).unwrap();
        // Nothing outside the trees was kept; the sparse member was not read.
        assert_eq!(files.trees.keys().collect::<Vec<_>>(), ["6.1.0-56-amd64"]);
        assert!(!files.trees["6.1.0-56-amd64"].contains_key("Module.symvers"));

        // A Module.symvers of 1 GiB is read up to the limit only.
        let huge = crate::tarball::hostile::huge_member(&format!("{tree}/Module.symvers"), 1 << 30);
        let files = FactFiles::read(huge).unwrap();
        let symvers = &files.trees["6.1.0-56-amd64"]["Module.symvers"];
        assert_eq!(symvers.len() as u64, MAX_FACT_FILE);

        // A tree with no Module.symvers (and no other fact file) at all.
        let bytes = crate::tarball::hostile::tar(
            "sparse",
            &[
                (&format!("{tree}/Makefile"), &b"all:\n"[..]),
                (&format!("{tree}/.config"), b"CONFIG_X86_64=y\n"),
            ],
        );
        let files = FactFiles::read(&bytes[..]).unwrap();
        let err = KernelFacts::from_files(&files.trees["6.1.0-56-amd64"]).unwrap_err();
        assert!(err.to_string().contains("Module.symvers"), "{err}");
    }

    #[test]
    fn fact_files_are_taken_per_tree() {
        let bytes = crate::tarball::of_files([
            (
                "./usr/src/linux-headers-6.1.0-56-amd64/.config",
                &b"CONFIG_X86_64=y\n"[..],
            ),
            ("usr/src/linux-headers-6.1.0-56-amd64/Module.symvers", b""),
            (
                "usr/src/linux-headers-6.1.0-56-amd64/Makefile",
                b"include x\n",
            ),
            (
                "usr/src/linux-headers-6.1.0-56-amd64/include/generated/utsrelease.h",
                b"#define UTS_RELEASE \"6.1.0-56-amd64\"\n",
            ),
            ("usr/src/linux-headers-6.1.0-56-common/Makefile", b"all:\n"),
            ("usr/lib/linux-kbuild-6.1/scripts/x", b"x"),
        ]);
        let files = FactFiles::read(&bytes[..]).unwrap();
        let trees = files.header_trees();
        assert_eq!(trees.len(), 2);
        let chosen = select_tree("k", &trees, None).unwrap();
        assert_eq!(chosen, "6.1.0-56-amd64");
        let facts = KernelFacts::from_files(&files.trees["6.1.0-56-amd64"]).unwrap();
        assert_eq!(facts.release, "6.1.0-56-amd64");
        // What the cache keeps is what was read.
        let again = FactFiles::from_tar(&files.to_tar().unwrap()).unwrap();
        assert_eq!(again, files);
        assert_eq!(again.header_trees(), files.header_trees());
    }
}
