//! Reading a kernel's facts straight out of a kernel image: the header
//! files that [`KernelFacts`] needs, taken from `kernel-dev.tar` as it
//! streams out of the engine (nothing is unpacked).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::facts::{FactsError, KernelFacts, FACT_FILES};
use super::{select_tree, HeaderTree, KernelImageError, KERNEL_DEV_TAR};
use crate::engine::{Engine, EngineError, Session};

/// A fact file larger than this is not a fact file.
const MAX_FACT_FILE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImageFactsError {
    #[error(transparent)]
    Kernel(#[from] KernelImageError),
    #[error("kernel image `{reference}`, release {release}: {source}")]
    Facts {
        reference: String,
        release: String,
        #[source]
        source: FactsError,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Header trees found in a `kernel-dev.tar`, with their fact files.
#[derive(Debug, Default)]
pub struct TreeFiles {
    pub trees: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Which of [`super::TREE_FILES`] each tree has.
    present: BTreeMap<String, BTreeSet<String>>,
}

impl TreeFiles {
    /// Reads a `kernel-dev.tar` stream, keeping the fact files of every
    /// `usr/src/linux-headers-<release>/` tree.
    pub fn read(stream: impl Read) -> Result<Self, String> {
        let mut out = TreeFiles::default();
        let mut archive = tar::Archive::new(stream);
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let path = entry
                .path()
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            let path = path.trim_start_matches("./");
            let Some(rest) = path.strip_prefix("usr/src/linux-headers-") else {
                continue;
            };
            let (release, file) = rest.split_once('/').unwrap_or((rest, ""));
            let present = out.present.entry(release.to_string()).or_default();
            if super::TREE_FILES.contains(&file) {
                present.insert(file.to_string());
            }
            let files = out.trees.entry(release.to_string()).or_default();
            if FACT_FILES.contains(&file) && entry.header().entry_type().is_file() {
                let mut data = Vec::new();
                (&mut entry)
                    .take(MAX_FACT_FILE)
                    .read_to_end(&mut data)
                    .map_err(|e| e.to_string())?;
                files.insert(file.to_string(), data);
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

/// The facts of the kernel in `reference` (its only release, or `kver`).
pub fn facts_from_image(
    engine: &dyn Engine,
    session: &Session,
    reference: &str,
    kver: Option<&str>,
) -> Result<KernelFacts, ImageFactsError> {
    if engine.image_id(reference)?.is_none() {
        return Err(KernelImageError::NotFound {
            reference: reference.to_string(),
        }
        .into());
    }
    let container = session.name("facts");
    engine.create(reference, &container, session.id())?;
    let mut files = None;
    let found = engine.with_file(&container, KERNEL_DEV_TAR, &mut |r| {
        files = Some(TreeFiles::read(r)?);
        Ok(())
    });
    engine.remove_session_containers(session.id())?;
    if !found? {
        return Err(KernelImageError::MissingFile {
            reference: reference.to_string(),
            file: KERNEL_DEV_TAR.to_string(),
        }
        .into());
    }
    let files = files.unwrap_or_default();
    let trees = files.header_trees();
    let release = select_tree(reference, &trees, kver)?.release.clone();
    KernelFacts::from_files(&files.trees[&release]).map_err(|source| ImageFactsError::Facts {
        reference: reference.to_string(),
        release,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fact_files_are_taken_per_tree() {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [
            (
                "./usr/src/linux-headers-6.1.0-56-amd64/.config",
                "CONFIG_X86_64=y\n",
            ),
            ("usr/src/linux-headers-6.1.0-56-amd64/Module.symvers", ""),
            (
                "usr/src/linux-headers-6.1.0-56-amd64/Makefile",
                "include x\n",
            ),
            (
                "usr/src/linux-headers-6.1.0-56-amd64/include/generated/utsrelease.h",
                "#define UTS_RELEASE \"6.1.0-56-amd64\"\n",
            ),
            ("usr/src/linux-headers-6.1.0-56-common/Makefile", "all:\n"),
            ("usr/lib/linux-kbuild-6.1/scripts/x", "x"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let files = TreeFiles::read(&bytes[..]).unwrap();
        let trees = files.header_trees();
        assert_eq!(trees.len(), 2);
        let chosen = select_tree("k", &trees, None).unwrap();
        assert_eq!(chosen.release, "6.1.0-56-amd64");
        let facts = KernelFacts::from_files(&files.trees["6.1.0-56-amd64"]).unwrap();
        assert_eq!(facts.release, "6.1.0-56-amd64");
    }
}
