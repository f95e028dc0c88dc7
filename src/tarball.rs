//! The tar streams dmb reads and writes: `docker cp … -` output, the VM's
//! files, `kernel-dev.tar`, the kernel-facts cache.

use std::io::Read;
use std::path::Path;

/// Calls `each` with the path and contents of every regular file of a tar
/// stream, in stream order; directories, links and devices are passed
/// over. `each` returns `Ok(true)` when it has seen enough, and so does
/// this function then.
pub fn each_regular_file(
    stream: impl Read,
    mut each: impl FnMut(&Path, &mut dyn Read) -> Result<bool, String>,
) -> Result<bool, String> {
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if each(&path, &mut entry)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Appends a regular file (mode 0644) to a tar being written.
pub fn append_file<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, path, data)
}

/// A tar of regular files, for tests and small caches.
pub fn of_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        append_file(&mut builder, path, data).expect("writing to memory");
    }
    builder.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_in_order_and_an_early_stop() {
        let bytes = of_files([("a", &b"A"[..]), ("dir/b", b"B"), ("c", b"C")]);
        let mut seen = Vec::new();
        let stopped = each_regular_file(&bytes[..], |path, r| {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            seen.push(format!("{}={s}", path.display()));
            Ok(seen.len() == 2)
        })
        .unwrap();
        assert!(stopped);
        assert_eq!(seen, ["a=A", "dir/b=B"]);
    }
}
