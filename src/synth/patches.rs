//! The patches a kernel source is synthesized with, in the order they
//! apply: each `--patches` a directory, a `.patch`/`.diff` file, a tarball
//! of patches, or an http(s) URL of either file kind (`#sha256=HEX` at its
//! end verifies it; a URL without one is refused, as any unverifiable
//! download is). Within a directory or tarball, its `series` file gives the
//! order (quilt's format: one name a line, `#` comments), else their names.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::SynthError;
use crate::download;
use crate::progress::Progress;

/// Largest patch set dmb reads into memory.
const LIMIT: u64 = 256 << 20;

/// The patches, in order, named `NNNN-<name>` so that their names alone
/// keep that order.
pub fn collect(
    given: &[String],
    progress: &mut dyn Progress,
) -> Result<Vec<(String, Vec<u8>)>, SynthError> {
    let mut out = Vec::new();
    for g in given {
        for (name, data) in one(g, progress)? {
            let base = name.rsplit('/').next().unwrap_or(&name).to_string();
            out.push((format!("{:04}-{base}", out.len() + 1), data));
        }
    }
    Ok(out)
}

fn one(given: &str, progress: &mut dyn Progress) -> Result<Vec<(String, Vec<u8>)>, SynthError> {
    let bad = |reason: String| SynthError::Source {
        given: given.to_string(),
        reason,
    };
    if download::is_url(given) {
        let (url, hash) = match given.rsplit_once("#sha256=") {
            Some((u, h)) => (u, Some(h)),
            None => (given, None),
        };
        let hash = hash
            .ok_or_else(|| bad("a patch URL needs its SHA-256: end it with #sha256=HEX".into()))?;
        let fetched = download::fetch(url, Some(hash), progress)?;
        return from_file(&fetched.path, download::file_name(url)).map_err(bad);
    }
    let path = Path::new(given);
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.is_dir() {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(path).map_err(|e| bad(e.to_string()))? {
            let entry = entry.map_err(|e| bad(e.to_string()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if wanted(&name) && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                files.insert(
                    name,
                    std::fs::read(entry.path()).map_err(|e| bad(e.to_string()))?,
                );
            }
        }
        return ordered(files).map_err(bad);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    from_file(path, &name).map_err(bad)
}

fn wanted(name: &str) -> bool {
    name == "series" || name.ends_with(".patch") || name.ends_with(".diff")
}

/// A `.patch`/`.diff` file, or a tarball of them (by its name).
fn from_file(path: &Path, name: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    if name.ends_with(".patch") || name.ends_with(".diff") {
        return std::fs::read(path)
            .map(|d| vec![(name.to_string(), d)])
            .map_err(|e| e.to_string());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let stream: Box<dyn Read> = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if name.ends_with(".tar.xz") || name.ends_with(".txz") {
        Box::new(xz2::read::XzDecoder::new(file))
    } else if name.ends_with(".tar") {
        Box::new(file)
    } else {
        return Err(format!(
            "{name}: not a .patch, .diff, .tar, .tar.gz or .tar.xz"
        ));
    };
    // Every patch of the tarball's one directory that holds them.
    let mut by_dir: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut total = 0u64;
    crate::tarball::each_regular_file(stream.take(LIMIT * 4), |p, r| {
        let file = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !wanted(&file) {
            return Ok(false);
        }
        let dir = p
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let mut data = Vec::new();
        r.take(LIMIT)
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())?;
        total += data.len() as u64;
        if total > LIMIT {
            return Err(format!("more than {} MiB of patches", LIMIT >> 20));
        }
        by_dir.entry(dir).or_default().insert(file, data);
        Ok(false)
    })?;
    match by_dir.len() {
        0 => Err(format!("{name} holds no *.patch or *.diff file")),
        1 => ordered(by_dir.into_values().next().unwrap_or_default()),
        _ => Err(format!(
            "{name} holds patches in several directories ({}): give one",
            by_dir.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The patches of one directory in their order: `series`, else by name.
fn ordered(mut files: BTreeMap<String, Vec<u8>>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let series = files.remove("series");
    if files.is_empty() {
        return Err("it holds no *.patch or *.diff file".into());
    }
    let Some(series) = series else {
        return Ok(files.into_iter().collect());
    };
    let text = String::from_utf8_lossy(&series);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(name) = line
            .split('#')
            .next()
            .and_then(|l| l.split_whitespace().next())
        else {
            continue;
        };
        let data = files
            .get(name)
            .ok_or_else(|| format!("its series names {name}, which it does not hold"))?;
        out.push((name.to_string(), data.clone()));
    }
    if out.is_empty() {
        return Err("its series names no patch".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn directories_files_and_tarballs_give_their_patches_in_series_order() {
        let dir = tempfile::tempdir().unwrap();
        let set = dir.path().join("patches-6.12.x");
        std::fs::create_dir(&set).unwrap();
        std::fs::write(set.join("a.patch"), "A").unwrap();
        std::fs::write(set.join("b.patch"), "B").unwrap();
        std::fs::write(set.join("README"), "not a patch").unwrap();
        std::fs::write(set.join("series"), "# order\nb.patch\na.patch -p1\n").unwrap();
        let one = dir.path().join("c.diff");
        std::fs::write(&one, "C").unwrap();
        // The same set as a tarball, one directory deep.
        let tarball = dir.path().join("set.tar.gz");
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&tarball).unwrap(),
            flate2::Compression::fast(),
        ));
        b.append_dir_all("linuxkit/kernel/patches-6.12.x", &set)
            .unwrap();
        b.into_inner().unwrap().finish().unwrap();

        let got = collect(
            &[
                set.display().to_string(),
                one.display().to_string(),
                tarball.display().to_string(),
            ],
            &mut Silent,
        )
        .unwrap();
        let names: Vec<(&str, &[u8])> = got
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        assert_eq!(
            names,
            [
                ("0001-b.patch", &b"B"[..]),
                ("0002-a.patch", b"A"),
                ("0003-c.diff", b"C"),
                ("0004-b.patch", b"B"),
                ("0005-a.patch", b"A"),
            ]
        );
    }

    #[test]
    fn what_cannot_be_applied_or_verified_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("series"), "missing.patch\n").unwrap();
        std::fs::write(dir.path().join("x.patch"), "X").unwrap();
        let e = collect(&[dir.path().display().to_string()], &mut Silent).unwrap_err();
        assert!(e.to_string().contains("names missing.patch"), "{e}");
        let e = collect(&["https://example.org/p.patch".into()], &mut Silent).unwrap_err();
        assert!(e.to_string().contains("#sha256=HEX"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = collect(&[empty.path().display().to_string()], &mut Silent).unwrap_err();
        assert!(e.to_string().contains("no *.patch"), "{e}");
    }
}
