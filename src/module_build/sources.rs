//! What of a module directory goes into a build: its files, minus what
//! never belongs there (`.git`, the outputs of an earlier build on the
//! host, what `.dmbignore` or `.dockerignore` names), copied into the
//! build context, with a manifest of their content hashes.
//!
//! The manifest is what makes an incremental build correct: in the
//! container, the build script compares it with the manifest of the
//! previous build (kept in the build cache beside the objects) and copies
//! only the files whose content changed, so make sees exactly those as new.
//! Timestamps of the context are never trusted: a `git checkout` or an
//! editor's save can leave them anywhere.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::BuildError;

/// What kbuild (or a host-side build) leaves in a module directory. A
/// build context never needs them, and stale ones would confuse make. A
/// `!pattern` line in `.dmbignore` brings one back (a package that ships
/// a prebuilt object).
pub const BUILD_OUTPUTS: &[&str] = &[
    ".git/",
    "*.o",
    "*.ko",
    "*.mod",
    "*.mod.c",
    ".*.cmd",
    ".*.d",
    "modules.order",
    "Module.symvers",
    ".tmp_versions/",
    ".cache.mk",
];

/// Ignore files read in every directory, in gitignore's syntax.
pub const IGNORE_FILES: &[&str] = &[".dmbignore", ".dockerignore"];

/// The name of the manifest in the build context's `dmb/` directory.
pub const MANIFEST: &str = "sources";

/// One file of the module directory that goes into the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative to the module directory, `/`-separated.
    pub path: String,
    /// Hex SHA-256 of its content (of `link:TARGET` for a symlink), with
    /// its executable bit: a mode change must reach the container too.
    pub hash: String,
}

/// The files of a module directory that go into a build, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
    /// Bytes copied.
    pub bytes: u64,
    /// Symlinks left out because they point outside the module directory
    /// (their path and target): the build context never follows one out.
    pub outside_links: Vec<(String, String)>,
}

/// A build context above this size is worth a warning: it is copied, and
/// sent to the engine, on every build.
pub const LARGE_CONTEXT: u64 = 512 << 20;

impl Sources {
    /// The manifest: `HASH PATH` lines, sorted by path, read by `sync.sh`.
    pub fn manifest(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{} {}\n", f.hash, f.path))
            .collect()
    }
}

/// Copies what of `module_dir` belongs in a build to `dest` and returns
/// the manifest. Symlinks are copied as links only when they stay inside
/// the module directory; a file name the build script cannot carry (a
/// newline in it) is refused by name.
pub fn copy(module_dir: &Path, dest: &Path) -> Result<Sources, BuildError> {
    std::fs::create_dir_all(dest).map_err(BuildError::io("creating the build context"))?;
    let builtin = builtin_ignore_file()?;
    let mut walk = ignore::WalkBuilder::new(module_dir);
    walk.standard_filters(false)
        .follow_links(false)
        .sort_by_file_path(|a, b| a.cmp(b));
    for name in IGNORE_FILES {
        walk.add_custom_ignore_filename(name);
    }
    if let Some(err) = walk.add_ignore(builtin.path()) {
        return Err(BuildError::io("reading dmb's ignore patterns")(
            std::io::Error::other(err.to_string()),
        ));
    }
    let mut sources = Sources::default();
    for entry in walk.build() {
        let entry = entry.map_err(|e| {
            BuildError::io(format!("reading {}", module_dir.display()))(std::io::Error::other(
                e.to_string(),
            ))
        })?;
        let Some(kind) = entry.file_type() else {
            continue;
        };
        let rel = entry
            .path()
            .strip_prefix(module_dir)
            .expect("the walk stays under its root");
        if rel.as_os_str().is_empty() {
            continue;
        }
        let Some(rel_text) = rel.to_str().map(|s| s.replace('\\', "/")) else {
            return Err(BuildError::UnusableFileName {
                path: entry.path().to_path_buf(),
                why: "it is not UTF-8",
            });
        };
        if rel_text.contains('\n') {
            return Err(BuildError::UnusableFileName {
                path: entry.path().to_path_buf(),
                why: "it holds a newline",
            });
        }
        let target = dest.join(rel);
        let io = |what: &str| BuildError::io(format!("{what} {}", entry.path().display()));
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io("copying"))?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(io("reading"))?;
            if !stays_inside(rel, &link) {
                sources
                    .outside_links
                    .push((rel_text, link.to_string_lossy().into_owned()));
                continue;
            }
            crate::platform::symlink(&link, &target).map_err(io("copying"))?;
            let hash = hex(Sha256::digest(
                format!("link:{}", link.to_string_lossy()).as_bytes(),
            ));
            sources.files.push(SourceFile {
                path: rel_text,
                hash,
            });
        } else if kind.is_file() {
            let (hash, size) = copy_hashing(entry.path(), &target).map_err(io("copying"))?;
            sources.bytes += size;
            sources.files.push(SourceFile {
                path: rel_text,
                hash,
            });
        }
    }
    sources.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(sources)
}

/// dmb's own patterns, as an ignore file of the lowest precedence (so a
/// `.dmbignore` can bring a file back).
fn builtin_ignore_file() -> Result<tempfile::NamedTempFile, BuildError> {
    use std::io::Write;
    let mut file =
        tempfile::NamedTempFile::new().map_err(BuildError::io("writing dmb's ignore patterns"))?;
    for pattern in BUILD_OUTPUTS {
        writeln!(file, "{pattern}").map_err(BuildError::io("writing dmb's ignore patterns"))?;
    }
    Ok(file)
}

/// Whether a symlink at `rel` (relative to the module directory) that
/// points to `link` resolves inside the module directory, by its text.
fn stays_inside(rel: &Path, link: &Path) -> bool {
    if link.is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for c in link.components() {
        match c {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Copies a file, hashing it on the way; the hash covers the executable
/// bit. Returns the hex hash and the size.
fn copy_hashing(from: &Path, to: &Path) -> std::io::Result<(String, u64)> {
    let mut input = std::fs::File::open(from)?;
    let mut output = std::fs::File::create(to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut output, &buf[..n])?;
        size += n as u64;
    }
    let executable = crate::platform::is_executable(&input.metadata()?);
    if executable {
        crate::platform::set_executable(to)?;
    }
    hasher.update(if executable { b"x" } else { b"-" });
    Ok((hex(hasher.finalize()), size))
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn paths(s: &Sources) -> Vec<&str> {
        s.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn build_outputs_and_git_stay_out() {
        let dir = tree(&[
            ("Makefile", "obj-m += a.o\n"),
            ("a.c", "int x;\n"),
            ("a.o", "obj"),
            ("a.ko", "ko"),
            ("a.mod.c", "gen"),
            (".a.o.cmd", "cmd"),
            ("modules.order", "a.ko"),
            ("sub/b.c", "int y;\n"),
            ("sub/b.o", "obj"),
            (".git/HEAD", "ref"),
        ]);
        let out = tempfile::tempdir().unwrap();
        let s = copy(dir.path(), out.path()).unwrap();
        assert_eq!(paths(&s), ["Makefile", "a.c", "sub/b.c"]);
        assert!(out.path().join("sub/b.c").is_file());
        assert!(!out.path().join("a.o").exists());
        assert!(!out.path().join(".git").exists());
        assert_eq!(s.bytes, 13 + 7 + 7);
    }

    #[test]
    fn dmbignore_and_dockerignore_are_honoured_and_can_bring_back() {
        let dir = tree(&[
            ("Makefile", "x"),
            (".dmbignore", "docs/\n!blob.o\n"),
            (".dockerignore", "*.log\n"),
            ("docs/big.pdf", "pdf"),
            ("build.log", "log"),
            ("blob.o", "shipped"),
        ]);
        let out = tempfile::tempdir().unwrap();
        let s = copy(dir.path(), out.path()).unwrap();
        assert_eq!(
            paths(&s),
            [".dmbignore", ".dockerignore", "Makefile", "blob.o"]
        );
    }

    #[test]
    fn the_manifest_follows_content_and_mode_not_time() {
        let dir = tree(&[("Makefile", "x"), ("a.c", "one")]);
        let out = tempfile::tempdir().unwrap();
        let first = copy(dir.path(), out.path()).unwrap();
        let again = copy(dir.path(), tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(first, again);
        std::fs::write(dir.path().join("a.c"), "two").unwrap();
        let changed = copy(dir.path(), tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(first.files[1].hash, changed.files[1].hash);
        assert_eq!(first.files[0], changed.files[0]);
        assert!(first
            .manifest()
            .starts_with(&format!("{} Makefile\n", first.files[0].hash)));
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_directory_are_not_followed() {
        let dir = tree(&[("Makefile", "x"), ("inc/a.h", "h")]);
        std::os::unix::fs::symlink("/etc/shadow", dir.path().join("shadow")).unwrap();
        std::os::unix::fs::symlink("../../x", dir.path().join("inc/up")).unwrap();
        std::os::unix::fs::symlink("inc/a.h", dir.path().join("a.h")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let s = copy(dir.path(), out.path()).unwrap();
        assert_eq!(paths(&s), ["Makefile", "a.h", "inc/a.h"]);
        assert_eq!(
            s.outside_links,
            [
                ("inc/up".to_string(), "../../x".to_string()),
                ("shadow".to_string(), "/etc/shadow".to_string())
            ]
        );
        assert!(!out.path().join("shadow").exists());
        assert_eq!(
            std::fs::read_link(out.path().join("a.h")).unwrap(),
            Path::new("inc/a.h")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_newline_in_a_name_is_refused_by_name() {
        let dir = tree(&[("Makefile", "x"), ("a\nb.c", "x")]);
        let err = copy(dir.path(), tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(matches!(err, BuildError::UnusableFileName { .. }), "{err}");
    }
}
