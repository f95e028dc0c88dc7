//! A `*-dkms` Debian package: an `ar` archive whose `data.tar.*` installs
//! the DKMS tree to `/usr/src/<name>-<version>/`. Only that tree is
//! unpacked, and only regular files, directories and links that stay inside
//! it; nothing the package would run is run.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::DkmsError;

/// The most one `.deb` may unpack to: DKMS packages are source, a few MB.
const MAX_UNPACKED: u64 = 512 << 20;

/// Whether `path` names a Debian package (by its name; the content decides
/// later).
pub fn is_deb(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "deb")
}

/// Unpacks the DKMS tree of the `.deb` at `deb` into `into`; returns the
/// tree's directory (`into/<name>-<version>`).
pub fn unpack(deb: &Path, into: &Path) -> Result<PathBuf, DkmsError> {
    let bad = |detail: String| DkmsError::BadPackage {
        path: deb.to_path_buf(),
        detail,
    };
    let file = std::fs::File::open(deb).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let mut archive = ar::Archive::new(file);
    while let Some(entry) = archive.next_entry() {
        let entry = entry.map_err(|e| bad(format!("is not a Debian package: {e}")))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let reader: Box<dyn Read> = match name.trim_end_matches('/') {
            "data.tar.xz" => Box::new(xz2::read::XzDecoder::new(entry)),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(entry)),
            "data.tar.zst" => Box::new(
                zstd::stream::read::Decoder::new(entry).map_err(|e| bad(format!("{name}: {e}")))?,
            ),
            "data.tar" => Box::new(entry),
            _ => continue,
        };
        return unpack_tree(reader, into).map_err(bad);
    }
    Err(bad(
        "has no data.tar member: it is not a Debian package".into()
    ))
}

/// The `usr/src/<dir>/` of a data tarball that holds a `dkms.conf`.
fn unpack_tree(reader: impl Read, into: &Path) -> Result<PathBuf, String> {
    let mut tar = tar::Archive::new(reader.take(MAX_UNPACKED));
    let mut trees = std::collections::BTreeSet::new();
    let mut with_conf = None;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some((tree, rest)) = under_usr_src(&path) else {
            continue;
        };
        let dest_tree = into.join(&tree);
        let dest = dest_tree.join(&rest);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        } else if kind.is_file() {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
            let mut out = std::fs::File::create(&dest).map_err(|e| e.to_string())?;
            std::io::copy(&mut entry, &mut out).map_err(|e| e.to_string())?;
            crate::platform::set_mode(&dest, mode).map_err(|e| e.to_string())?;
            if rest == Path::new("dkms.conf") {
                with_conf = Some(dest_tree.clone());
            }
        } else if kind.is_symlink() {
            let Some(target) = entry.link_name().map_err(|e| e.to_string())? else {
                continue;
            };
            // Kept only when it points inside the tree.
            if stays_inside(&rest, &target) {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                crate::platform::symlink(&target, &dest).map_err(|e| e.to_string())?;
            }
        }
        trees.insert(tree);
    }
    with_conf.ok_or_else(|| {
        if trees.is_empty() {
            "installs nothing to /usr/src: it is not a *-dkms package".to_string()
        } else {
            "has no dkms.conf under /usr/src: it is not a *-dkms package".to_string()
        }
    })
}

/// `usr/src/<tree>/<rest>` with every part a plain name.
fn under_usr_src(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_os_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.len() < 4 || parts[0] != "usr" || parts[1] != "src" {
        return None;
    }
    let rest: PathBuf = parts[3..].iter().collect();
    Some((PathBuf::from(&parts[2]), rest))
}

/// Whether a link at `at` (relative to the tree) to `target` resolves
/// inside the tree.
fn stays_inside(at: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = at.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usr_src_trees_are_taken() {
        assert_eq!(
            under_usr_src(Path::new("./usr/src/vpoll-0.1/dkms.conf")),
            Some((PathBuf::from("vpoll-0.1"), PathBuf::from("dkms.conf")))
        );
        assert_eq!(under_usr_src(Path::new("./usr/share/doc/x")), None);
        assert_eq!(under_usr_src(Path::new("usr/src/../etc/shadow")), None);
        assert_eq!(under_usr_src(Path::new("/usr/src/a/b")), None);
    }

    #[test]
    fn links_must_stay_inside_the_tree() {
        assert!(stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(stays_inside(Path::new("b"), Path::new("c/d")));
        assert!(!stays_inside(Path::new("b"), Path::new("../etc")));
        assert!(!stays_inside(Path::new("a/b"), Path::new("/etc/shadow")));
        assert!(!stays_inside(Path::new("a/b"), Path::new("../../x")));
    }

    #[test]
    fn a_file_that_is_not_a_package_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("x.deb");
        std::fs::write(&deb, b"not an ar archive").unwrap();
        let err = unpack(&deb, dir.path()).unwrap_err();
        assert_eq!(err.code(), super::super::error::DKMS_INPUT);
    }
}
