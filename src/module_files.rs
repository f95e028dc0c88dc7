//! Where the modules a command is given come from: `.ko` files (also
//! compressed), directories of them, MODULE_REF images. One reader for
//! `inspect`, `check` and `load`.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::engine::{Base, Session};
use crate::ko::{KoError, Module};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: not a kernel module dmb can read")]
    Unreadable {
        path: String,
        #[source]
        source: KoError,
    },
    #[error("{what} holds no kernel module")]
    NoModules { what: String },
    #[error("`{what}` is neither a file, a directory, nor an image in the engine")]
    NotFound { what: String },
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |e| SourceError::Io {
        what: what.display().to_string(),
        detail: e.to_string(),
    }
}

/// One argument naming modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleArg {
    File(PathBuf),
    Dir(PathBuf),
    /// Anything else: an image in the engine, or nothing at all.
    Image(String),
}

impl ModuleArg {
    pub fn of(arg: &str) -> Self {
        let path = Path::new(arg);
        if path.is_file() {
            ModuleArg::File(path.to_path_buf())
        } else if path.is_dir() {
            ModuleArg::Dir(path.to_path_buf())
        } else {
            ModuleArg::Image(arg.to_string())
        }
    }

    /// Whether reading it needs the engine.
    pub fn is_image(&self) -> bool {
        matches!(self, ModuleArg::Image(_))
    }
}

/// A module read from a file on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// `module.file_name` names it for people: the file's name, its path
    /// below a given directory, or `IMAGE:/name.ko`.
    pub module: Module,
    pub path: PathBuf,
    /// Where it came from: `file ./x.ko`, `image kernel-module`, …
    pub source: String,
}

/// The modules named by some arguments.
#[derive(Debug, Default)]
pub struct GivenModules {
    pub modules: Vec<ModuleFile>,
    /// Module files beside given files that were not given themselves
    /// (unreadable ones left out): a load may take its dependencies there.
    pub beside: Vec<ModuleFile>,
    /// Modules an image holds only because the others need them (label
    /// `dmb.dependencies`): a load takes them when the kernel lacks them.
    pub dependencies: Vec<ModuleFile>,
}

impl GivenModules {
    /// Every module the arguments hold (for inspecting and checking).
    pub fn all(self) -> impl Iterator<Item = ModuleFile> {
        self.modules.into_iter().chain(self.dependencies)
    }
}

/// Reads the modules `args` name. Images are copied out of the engine into
/// `scratch`; `session` is needed only when an argument is an image.
pub fn read<E: ?Sized + Base>(
    args: &[String],
    session: Option<&Session<E>>,
    scratch: &Path,
) -> Result<GivenModules, crate::Error> {
    let mut given = GivenModules::default();
    let mut beside: Vec<PathBuf> = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        match ModuleArg::of(arg) {
            ModuleArg::File(path) => {
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                beside.extend(files_in(dir)?.into_iter().filter(|f| *f != path));
                let module = read_files(std::slice::from_ref(&path), None)?.remove(0);
                given.modules.push(ModuleFile {
                    module,
                    path,
                    source: format!("file {arg}"),
                });
            }
            ModuleArg::Dir(dir) => {
                let files = files_under(&dir)?;
                if files.is_empty() {
                    return Err(SourceError::NoModules { what: arg.clone() }.into());
                }
                let modules = read_files(&files, Some(&dir))?;
                given
                    .modules
                    .extend(
                        files
                            .into_iter()
                            .zip(modules)
                            .map(|(path, module)| ModuleFile {
                                source: format!("file {}", path.display()),
                                module,
                                path,
                            }),
                    );
            }
            ModuleArg::Image(reference) => {
                let Some(session) = session else {
                    return Err(SourceError::NotFound { what: reference }.into());
                };
                let dir = scratch.join(format!("image-{i}"));
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                let files = files_of_image(session, &reference, &dir)?;
                // A file that does not read is named as the image holds it,
                // not by where dmb copied it.
                let modules = read_files(&files, Some(&dir)).map_err(|e| match e {
                    SourceError::Unreadable { path, source } => SourceError::Unreadable {
                        path: Path::new(&path)
                            .strip_prefix(&dir)
                            .map_or(path.clone(), |rel| {
                                format!("{reference}:/{}", rel.display())
                            }),
                        source,
                    },
                    other => other,
                })?;
                // Modules the image holds only because the others need
                // them serve as dependencies, like files beside a file.
                let (_, dependencies) = session.engine().image_tags_and_label(
                    &reference,
                    crate::module_build::layout::label::DEPENDENCIES,
                )?;
                let dependencies: Vec<String> = dependencies
                    .unwrap_or_default()
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(crate::ko::module_name)
                    .collect();
                for (path, mut module) in files.into_iter().zip(modules) {
                    module.file_name = format!("{reference}:/{}", module.file_name);
                    let file = ModuleFile {
                        module,
                        path,
                        source: format!("image {reference}"),
                    };
                    if dependencies.contains(&file.module.name) {
                        given.dependencies.push(file);
                    } else {
                        given.modules.push(file);
                    }
                }
            }
        }
    }
    let given_paths: BTreeSet<&PathBuf> = given.modules.iter().map(|m| &m.path).collect();
    beside.retain(|p| !given_paths.contains(p));
    beside.sort();
    beside.dedup();
    // A file beside that is not a module is no one's business here.
    given.beside = beside
        .into_iter()
        .filter_map(|path| {
            let module = Module::open(&path).ok()?;
            Some(ModuleFile {
                module,
                source: format!("file {}", path.display()),
                path,
            })
        })
        .collect();
    Ok(given)
}

/// A whole installed module tree (`/lib/modules/<kver>`): its modules, and
/// the modules its `modules.builtin` says are built in.
pub struct InstalledTree {
    pub modules: Vec<Module>,
    pub builtin: HashSet<String>,
}

impl InstalledTree {
    pub fn read(dir: &Path) -> Result<Self, SourceError> {
        let modules = read_files(&files_under(dir)?, Some(dir))?;
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .map(|text| text.lines().map(crate::ko::name_from_file).collect())
            .unwrap_or_default();
        Ok(InstalledTree { modules, builtin })
    }
}

/// Whether a file name is a module's, compressed or not.
pub fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.gz", ".ko.xz", ".ko.zst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Every module file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))?.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && is_module_file(&entry.file_name().to_string_lossy()) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The module files directly in `dir` (not below), sorted.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| is_module_file(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Reads module files on all cores, in the order given; the first
/// unreadable one is an error. Each is named by its path relative to
/// `base`, else by its file name.
pub fn read_files(paths: &[PathBuf], base: Option<&Path>) -> Result<Vec<Module>, SourceError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = paths.len().div_ceil(workers).max(1);
    let results: Vec<Result<Vec<Module>, SourceError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| {
                            let mut m =
                                Module::open(p).map_err(|source| SourceError::Unreadable {
                                    path: p.display().to_string(),
                                    source,
                                })?;
                            if let Some(rel) = base.and_then(|b| p.strip_prefix(b).ok()) {
                                m.file_name = rel.display().to_string();
                            }
                            Ok(m)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a module reader panicked"))
            .collect()
    });
    let mut modules = Vec::with_capacity(paths.len());
    for r in results {
        modules.extend(r?);
    }
    Ok(modules)
}

/// The `.ko` files at the top of an image (where MODULE_REF keeps them).
fn files_of_image<E: ?Sized + Base>(
    session: &Session<E>,
    reference: &str,
    dest: &Path,
) -> Result<Vec<PathBuf>, crate::Error> {
    if session.engine().image_id(reference)?.is_none() {
        return Err(SourceError::NotFound {
            what: reference.to_string(),
        }
        .into());
    }
    let copied = session.scratch(reference)?.copy_files_out("/", dest)?;
    let files: Vec<PathBuf> = copied
        .into_iter()
        .filter(|n| is_module_file(n))
        .map(|n| dest.join(n))
        .collect();
    if files.is_empty() {
        return Err(SourceError::NoModules {
            what: format!("image {reference}"),
        }
        .into());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::DockerCli;

    #[test]
    fn module_file_names() {
        assert!(is_module_file("sctp.ko"));
        assert!(is_module_file("sctp.ko.zst"));
        assert!(!is_module_file("sctp.o"));
        assert!(!is_module_file("modules.dep"));
    }

    #[test]
    fn a_directory_is_walked_and_names_are_relative() {
        let dir = tempfile::tempdir().unwrap();
        let elf = crate::ko::tests::Fixture::hello().elf();
        std::fs::create_dir_all(dir.path().join("kernel/net")).unwrap();
        std::fs::write(dir.path().join("kernel/net/hello.ko"), &elf).unwrap();
        std::fs::write(dir.path().join("modules.dep"), "").unwrap();
        let files = files_under(dir.path()).unwrap();
        let modules = read_files(&files, Some(dir.path())).unwrap();
        assert_eq!(modules.len(), 1);
        assert_eq!(modules[0].file_name, "kernel/net/hello.ko");
        std::fs::write(dir.path().join("bad.ko"), b"nope").unwrap();
        let files = files_under(dir.path()).unwrap();
        assert!(matches!(
            read_files(&files, Some(dir.path())),
            Err(SourceError::Unreadable { .. })
        ));
    }

    #[test]
    fn files_beside_a_given_file_may_serve_as_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, f: crate::ko::tests::Fixture| {
            std::fs::write(dir.path().join(name), f.elf()).unwrap();
        };
        write(
            "consumer.ko",
            crate::ko::tests::Fixture::named("consumer", "provider", &[], 1),
        );
        write(
            "provider.ko",
            crate::ko::tests::Fixture::named("provider", "", &[], 2),
        );
        std::fs::write(dir.path().join("junk.ko"), b"not a module").unwrap();
        let given_file = dir.path().join("consumer.ko");
        let args = [given_file.display().to_string()];
        let scratch = tempfile::tempdir().unwrap();
        let given = read::<DockerCli>(&args, None, scratch.path()).unwrap();
        assert_eq!(given.modules.len(), 1);
        assert_eq!(given.modules[0].module.name, "consumer");
        assert_eq!(given.modules[0].source, format!("file {}", args[0]));
        let beside: Vec<&str> = given
            .beside
            .iter()
            .map(|m| m.module.name.as_str())
            .collect();
        assert_eq!(beside, ["provider"]);
        // Without an engine, a name that is no file is not found.
        assert!(matches!(
            read::<DockerCli>(&["no-such-image-or-file".into()], None, scratch.path()),
            Err(crate::Error::Source(SourceError::NotFound { .. }))
        ));
    }
}
