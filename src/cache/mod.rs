//! dmb's caches on the host: `DMB_CACHE_DIR`, else `$XDG_CACHE_HOME/dmb`,
//! else `~/.cache/dmb` (`%LOCALAPPDATA%\dmb` on Windows). Each holds what dmb read from an image, filed under
//! the image's ID: an ID is the hash of the image's content, so an entry
//! can never go stale. A cache is an optimisation: failing to read or write
//! one is never an error.
//!
//! [`inventory`] lists everything dmb keeps, here and in the engine, and
//! [`keep`] reads and prunes it (`dmb cache`).

pub mod inventory;
pub mod keep;

use std::path::{Path, PathBuf};

/// The base directory of dmb's caches, when there is a home for it.
pub fn dir() -> Option<PathBuf> {
    std::env::var_os("DMB_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|d| PathBuf::from(d).join("dmb"))
        })
        .or_else(|| crate::platform::user_cache_home().map(|h| h.join("dmb")))
}

/// The file of cache `kind` (`kernel-facts`) for an image ID.
pub fn file_for_image(kind: &str, image_id: &str) -> Option<PathBuf> {
    in_dir(&dir()?.join(kind), image_id)
}

fn in_dir(dir: &Path, image_id: &str) -> Option<PathBuf> {
    let id = image_id.rsplit(':').next().unwrap_or(image_id);
    // Only a hex digest names a file; anything else is not cached.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(dir.join(format!("{id}.tar")))
}

/// A cache entry's bytes, when there is one.
pub fn read(path: Option<&Path>) -> Option<Vec<u8>> {
    std::fs::read(path?).ok()
}

/// Writes a cache entry whole or not at all (another run may read it).
pub fn store(path: &Path, bytes: &[u8]) {
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    let _ = write();
}

/// Files by name, as a cache entry (a tar).
pub fn store_files(path: &Path, files: &std::collections::BTreeMap<String, Vec<u8>>) {
    let tar = || -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice())?;
        }
        b.into_inner()
    };
    if let Ok(bytes) = tar() {
        store(path, &bytes);
    }
}

/// The files of an entry [`store_files`] wrote, when there is one.
pub fn read_files(path: Option<&Path>) -> Option<std::collections::BTreeMap<String, Vec<u8>>> {
    let bytes = read(path)?;
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let name = entry.path().ok()?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).ok()?;
        files.insert(name, data);
    }
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_digests_name_cache_files() {
        let dir = Path::new("/cache");
        assert_eq!(
            in_dir(dir, "sha256:00ff").unwrap(),
            PathBuf::from("/cache/00ff.tar")
        );
        assert_eq!(in_dir(dir, "sha256:../x"), None);
        assert_eq!(in_dir(dir, ""), None);
    }

    #[test]
    fn entries_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kind/abc.tar");
        store(&path, b"data");
        assert_eq!(read(Some(&path)).unwrap(), b"data");
        assert_eq!(read(None), None);
    }

    #[test]
    fn files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kind/abc.tar");
        let mut files = std::collections::BTreeMap::new();
        files.insert("include/generated/utsrelease.h".to_string(), b"x".to_vec());
        files.insert(".config".to_string(), Vec::new());
        store_files(&path, &files);
        assert_eq!(read_files(Some(&path)).unwrap(), files);
    }
}
