//! The source a kernel image is synthesized from, as given: a tarball
//! (compressed or not), a directory, or an http(s) URL (downloaded into the
//! cache, verified against the SHA-256 given or published); a file is
//! verified against a SHA-256 when one is given; placed in a build context
//! without going through memory.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SynthError;
use crate::download;
use crate::progress::Progress;

/// A source tarball on the host, ready for a build context.
#[derive(Debug)]
pub struct SourceArchive {
    pub path: PathBuf,
    /// What it was given as, for people and labels.
    pub name: String,
    pub sha256: String,
    /// A tarball made from a directory lives here.
    _made: Option<tempfile::TempDir>,
}

impl SourceArchive {
    /// `given`: a URL, a tarball or a directory; `expected`: its SHA-256 (a
    /// directory's is that of the tarball dmb makes of it, so only files
    /// and URLs).
    pub fn open(
        given: &str,
        expected: Option<&str>,
        progress: &mut dyn Progress,
    ) -> Result<SourceArchive, SynthError> {
        if download::is_url(given) {
            let fetched = download::fetch(given, expected, progress)?;
            progress.step(&format!(
                "kernel source {} (sha256 {}){}",
                download::file_name(given),
                &fetched.sha256[..16],
                if fetched.cached {
                    ", downloaded before"
                } else {
                    ""
                }
            ));
            return Ok(SourceArchive {
                path: fetched.path,
                name: download::file_name(given).to_string(),
                sha256: fetched.sha256,
                _made: None,
            });
        }
        Self::open_path(Path::new(given), expected)
    }

    fn open_path(given: &Path, expected: Option<&str>) -> Result<SourceArchive, SynthError> {
        let bad = |reason: String| SynthError::Source {
            given: given.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(given).map_err(|e| bad(e.to_string()))?;
        let (path, made) = if meta.is_dir() {
            let dir = tempfile::tempdir().map_err(|e| bad(e.to_string()))?;
            let path = dir.path().join("source.tar");
            let file = std::fs::File::create(&path).map_err(|e| bad(e.to_string()))?;
            let mut b = tar::Builder::new(file);
            b.follow_symlinks(false);
            b.append_dir_all("linux", given)
                .and_then(|_| b.finish())
                .map_err(|e| bad(format!("packing the directory: {e}")))?;
            (path, Some(dir))
        } else {
            (given.to_path_buf(), None)
        };
        let sha256 = sha256_of(&path).map_err(|e| bad(e.to_string()))?;
        if let Some(expected) = expected {
            let expected = expected.trim().to_ascii_lowercase();
            if expected != sha256 {
                return Err(bad(format!(
                    "its SHA-256 is {sha256}, not the {expected} it was given with"
                )));
            }
        }
        Ok(SourceArchive {
            path,
            name: given
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| given.display().to_string()),
            sha256,
            _made: made,
        })
    }

    /// Puts the tarball at `dest` (a hard link when it can, else a copy).
    pub fn place(&self, dest: &Path) -> std::io::Result<()> {
        std::fs::hard_link(&self.path, dest)
            .or_else(|_| std::fs::copy(&self.path, dest).map(|_| ()))
    }
}

pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A hash of some text, for cache keys and tags.
pub fn sha256_text(text: &[u8]) -> String {
    Sha256::digest(text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_verified_and_a_directory_becomes_a_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("linux-6.1");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("Makefile"), "VERSION = 6\n").unwrap();
        let open = |p: &Path, e: Option<&str>| {
            SourceArchive::open(p.to_str().unwrap(), e, &mut crate::progress::Silent)
        };
        let a = open(&tree, None).unwrap();
        let mut names = Vec::new();
        let mut t = tar::Archive::new(std::fs::File::open(&a.path).unwrap());
        for e in t.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert!(names.contains(&"linux/Makefile".to_string()), "{names:?}");
        let file = dir.path().join("src.tar");
        std::fs::write(&file, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(open(&file, Some(abc)).unwrap().sha256, abc);
        let wrong = open(&file, Some(&"0".repeat(64))).unwrap_err();
        assert!(wrong.to_string().contains(abc), "{wrong}");
        assert!(open(&dir.path().join("none"), None).is_err());
    }
}
