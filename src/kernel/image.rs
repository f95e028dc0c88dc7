//! Reading a kernel's facts straight out of a kernel image: the header
//! files that [`KernelFacts`] needs, taken from `kernel-dev.tar` as it
//! streams out of the engine (nothing is unpacked).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;

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
#[derive(Debug, Default, PartialEq, Eq)]
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

    /// The fact files as a small tar (`<release>/<file>`, and
    /// `<release>/@present` listing the tree's files), for the cache.
    fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: String, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data)
        };
        for (release, present) in &self.present {
            let list: Vec<&str> = present.iter().map(String::as_str).collect();
            add(format!("{release}/@present"), list.join("\n").as_bytes())?;
            for (file, data) in self.trees.get(release).into_iter().flatten() {
                add(format!("{release}/{file}"), data)?;
            }
        }
        b.into_inner()
    }

    fn from_tar(bytes: &[u8]) -> std::io::Result<Self> {
        let mut out = TreeFiles::default();
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

/// Where the fact files of kernel images are kept, by image ID: `DMB_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/dmb`, else `~/.cache/dmb`. An image ID is the hash
/// of the image's content, so an entry never goes stale.
fn facts_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("DMB_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|d| PathBuf::from(d).join("dmb"))
        })
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache/dmb"))
        })?;
    Some(base.join("kernel-facts"))
}

fn cache_file(image_id: &str) -> Option<PathBuf> {
    cache_file_in(&facts_cache_dir()?, image_id)
}

fn cache_file_in(dir: &std::path::Path, image_id: &str) -> Option<PathBuf> {
    let id = image_id.rsplit(':').next().unwrap_or(image_id);
    // Only a hex digest names a file; anything else is not cached.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(dir.join(format!("{id}.tar")))
}

/// The cache is an optimisation: failing to write it is not an error.
fn store(path: &std::path::Path, files: &TreeFiles) {
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &files.to_tar()?)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    let _ = write();
}

/// The facts of the kernel in `reference` (its only release, or `kver`).
/// The fact files come from the cache when this image was read before,
/// else from its `kernel-dev.tar`, streamed out of the engine.
pub fn facts_from_image(
    engine: &dyn Engine,
    session: &Session,
    reference: &str,
    kver: Option<&str>,
) -> Result<KernelFacts, ImageFactsError> {
    let Some(image_id) = engine.image_id(reference)? else {
        return Err(KernelImageError::NotFound {
            reference: reference.to_string(),
        }
        .into());
    };
    let cached = cache_file(&image_id);
    let from_cache = cached
        .as_deref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| TreeFiles::from_tar(&bytes).ok())
        .filter(|f| !f.present.is_empty());
    let files = match from_cache {
        Some(files) => files,
        None => {
            let files = stream_tree_files(engine, session, reference)?;
            if let Some(path) = &cached {
                store(path, &files);
            }
            files
        }
    };
    let trees = files.header_trees();
    let release = select_tree(reference, &trees, kver)?.release.clone();
    KernelFacts::from_files(&files.trees[&release]).map_err(|source| ImageFactsError::Facts {
        reference: reference.to_string(),
        release,
        source,
    })
}

fn stream_tree_files(
    engine: &dyn Engine,
    session: &Session,
    reference: &str,
) -> Result<TreeFiles, ImageFactsError> {
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
    Ok(files.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_digests_name_cache_files() {
        let dir = std::path::Path::new("/cache");
        assert_eq!(
            cache_file_in(dir, "sha256:00ff").unwrap(),
            PathBuf::from("/cache/00ff.tar")
        );
        assert_eq!(cache_file_in(dir, "sha256:../x"), None);
        assert_eq!(cache_file_in(dir, ""), None);
    }

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
        // What the cache keeps is what was read.
        let again = TreeFiles::from_tar(&files.to_tar().unwrap()).unwrap();
        assert_eq!(again, files);
        assert_eq!(again.header_trees(), files.header_trees());
    }
}
