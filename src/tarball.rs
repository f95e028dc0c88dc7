//! The tar streams dmb reads and writes: `docker cp … -` output, the VM's
//! files, `kernel-dev.tar`, the kernel-facts cache.

use std::io::Read;
use std::path::Path;

/// Calls `each` with the path and contents of every regular file of a tar
/// stream, in stream order; directories, links, devices, sparse members
/// and names that leave the stream's root (a `..`, an absolute path) are
/// passed over: no reader of dmb's has a use for them, and one that kept
/// such a name could be turned against its directory or its cache. `each`
/// returns `Ok(true)` when it has seen enough, and so does this function
/// then.
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
        if !is_plain(&path) {
            continue;
        }
        if each(&path, &mut entry)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a member's name stays under the stream's root: relative, with
/// no `..` (a `./` is fine).
pub fn is_plain(path: &Path) -> bool {
    path.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    })
}

/// A plain member name as `a/b/c` (no `./`, no doubled `/`), or `None`
/// for a name that leaves the root.
pub fn normal_path(path: &Path) -> Option<String> {
    if !is_plain(path) {
        return None;
    }
    let parts: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    Some(parts.join("/"))
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

/// Tars that try to make a reader write outside its directory or hold
/// more than it should, for the readers' tests.
#[cfg(test)]
pub mod hostile {
    /// A header whose name is written as given (the `tar` crate's own
    /// setters refuse `..` and absolute names, as a hostile tar would not).
    fn raw(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
        field[text.len()..].fill(0);
    }

    /// Apparent size of [`sparse_member`]: 10 GiB.
    pub const SPARSE_SIZE: u64 = 10 << 30;

    /// `../escape`, `/etc/evil` (files), `dev/console` (a device),
    /// `hard` (a hard link to /etc/passwd), `soft` (a symlink to
    /// /etc/shadow), then a GNU sparse member named `sparse` of 10 GiB
    /// holding 512 bytes, then `extra` (each of `extra` a regular file).
    pub fn tar(sparse: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for name in ["../escape", "/etc/evil", "a/../../escape2"] {
            let mut h = raw(name, tar::EntryType::Regular, 4);
            h.set_cksum();
            b.append(&h, &b"evil"[..]).unwrap();
        }
        let mut dev = raw("dev/console", tar::EntryType::Char, 0);
        dev.set_device_major(5).unwrap();
        dev.set_device_minor(1).unwrap();
        dev.set_cksum();
        b.append(&dev, std::io::empty()).unwrap();
        for (name, kind, target) in [
            ("hard", tar::EntryType::Link, "/etc/passwd"),
            ("soft", tar::EntryType::Symlink, "/etc/shadow"),
        ] {
            let mut h = raw(name, kind, 0);
            h.set_link_name(target).unwrap();
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        }
        let mut h = raw(sparse, tar::EntryType::GNUSparse, 512);
        {
            let gnu = h.as_gnu_mut().unwrap();
            octal(&mut gnu.realsize, SPARSE_SIZE);
            octal(&mut gnu.sparse[0].offset, SPARSE_SIZE - 512);
            octal(&mut gnu.sparse[0].numbytes, 512);
        }
        h.set_cksum();
        b.append(&h, &[b'x'; 512][..]).unwrap();
        for (name, data) in extra {
            let mut h = raw(name, tar::EntryType::Regular, data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A tar stream of one regular member `name` of `size` bytes (zeros),
    /// made as it is read: a member far larger than memory.
    pub fn huge_member(name: &str, size: u64) -> impl std::io::Read {
        use std::io::Read;
        let mut h = raw(name, tar::EntryType::Regular, size);
        h.set_cksum();
        let padding = (512 - size % 512) % 512;
        std::io::Cursor::new(h.as_bytes().to_vec())
            .chain(std::io::repeat(0).take(size + padding))
            .chain(std::io::Cursor::new(vec![0u8; 1024]))
    }
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

    #[test]
    fn a_hostile_tar_hands_over_regular_files_only_and_a_sparse_one_reads_bounded() {
        let bytes = hostile::tar("sparse", &[("last", b"L")]);
        let mut seen = Vec::new();
        each_regular_file(&bytes[..], |path, r| {
            // What a reader of dmb's does with a member: at most a limit.
            let n = std::io::copy(&mut r.take(1 << 20), &mut std::io::sink()).unwrap();
            seen.push(format!("{}:{n}", path.display()));
            Ok(false)
        })
        .unwrap();
        // Only the plain regular file: no name that leaves the root, no
        // link, device or sparse member.
        assert_eq!(seen, ["last:1"]);
        assert!(is_plain(Path::new("./a/b")));
        assert!(!is_plain(Path::new("a/../../b")));
        assert!(!is_plain(Path::new("/etc/passwd")));
        assert_eq!(
            normal_path(Path::new("./linux//etc/Kbuild")).unwrap(),
            "linux/etc/Kbuild"
        );
        assert_eq!(normal_path(Path::new("linux/../x")), None);
    }
}
