//! Where modules and kernels come from: `.ko` files, directories of them,
//! MODULE_REF images; kernel header directories and kernel images.

use std::path::{Path, PathBuf};

use crate::engine::{Engine, EngineError, LazyEngine, Session};
use crate::kernel::image::{facts_from_image, ImageFactsError};
use crate::kernel::{FactsError, KernelFacts};
use crate::ko::{KoError, Module};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: KoError,
    },
    #[error("{what} holds no kernel module")]
    NoModules { what: String },
    #[error("`{what}` is neither a file, a directory, nor an image in the engine")]
    NotFound { what: String },
    #[error("kernel directory {dir}: {source}")]
    KernelDir {
        dir: String,
        #[source]
        source: FactsError,
    },
    #[error(transparent)]
    KernelImage(#[from] ImageFactsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
}

/// Whether a file name is a module's, compressed or not.
pub fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.gz", ".ko.xz", ".ko.zst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Every module file under `dir`, sorted.
pub fn module_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| SourceError::Io {
            what: d.display().to_string(),
            detail: e.to_string(),
        })?;
        for entry in entries.flatten() {
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
pub fn module_files_in(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SourceError::Io {
        what: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| is_module_file(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Reads module files on all cores; the first unreadable one is an error.
/// Each module is named by its path relative to `base`.
pub fn read_modules(paths: &[PathBuf], base: Option<&Path>) -> Result<Vec<Module>, SourceError> {
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

/// Modules named on the command line: files, directories or images.
pub fn modules_from_args(
    args: &[String],
    engine: &LazyEngine,
    session: &Session,
    scratch: &Path,
) -> Result<Vec<Module>, SourceError> {
    let mut modules = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let path = Path::new(arg);
        if path.is_file() {
            modules.extend(read_modules(&[path.to_path_buf()], None)?);
        } else if path.is_dir() {
            let files = module_files(path)?;
            if files.is_empty() {
                return Err(SourceError::NoModules { what: arg.clone() });
            }
            modules.extend(read_modules(&files, Some(path))?);
        } else {
            let engine = engine.get()?;
            let dir = scratch.join(format!("image-{i}"));
            std::fs::create_dir_all(&dir).map_err(|e| SourceError::Io {
                what: dir.display().to_string(),
                detail: e.to_string(),
            })?;
            let files = modules_of_image(engine, session, arg, &dir)?;
            let mut read = read_modules(&files, Some(&dir))?;
            for m in &mut read {
                m.file_name = format!("{arg}:/{}", m.file_name);
            }
            modules.extend(read);
        }
    }
    Ok(modules)
}

/// The `.ko` files at the top of an image (where MODULE_REF keeps them).
pub fn modules_of_image(
    engine: &dyn Engine,
    session: &Session,
    reference: &str,
    dest: &Path,
) -> Result<Vec<PathBuf>, SourceError> {
    if engine.image_id(reference)?.is_none() {
        return Err(SourceError::NotFound {
            what: reference.to_string(),
        });
    }
    let container = session.name("modules");
    engine.create(reference, &container, session.id())?;
    let copied = engine.copy_files_out(&container, "/", dest);
    engine.remove_session_containers(session.id())?;
    let files: Vec<PathBuf> = copied?
        .into_iter()
        .filter(|n| is_module_file(n))
        .map(|n| dest.join(n))
        .collect();
    if files.is_empty() {
        return Err(SourceError::NoModules {
            what: format!("image {reference}"),
        });
    }
    Ok(files)
}

/// The kernel to check against.
pub enum KernelSource<'a> {
    Dir(&'a Path),
    Image {
        reference: &'a str,
        kver: Option<&'a str>,
    },
}

pub fn kernel_facts(
    source: &KernelSource,
    engine: &LazyEngine,
    session: &Session,
) -> Result<KernelFacts, SourceError> {
    match source {
        KernelSource::Dir(dir) => {
            KernelFacts::from_dir(dir).map_err(|source| SourceError::KernelDir {
                dir: dir.display().to_string(),
                source,
            })
        }
        KernelSource::Image { reference, kver } => {
            Ok(facts_from_image(engine.get()?, session, reference, *kver)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let files = module_files(dir.path()).unwrap();
        let modules = read_modules(&files, Some(dir.path())).unwrap();
        assert_eq!(modules.len(), 1);
        assert_eq!(modules[0].file_name, "kernel/net/hello.ko");
        std::fs::write(dir.path().join("bad.ko"), b"nope").unwrap();
        let files = module_files(dir.path()).unwrap();
        assert!(matches!(
            read_modules(&files, Some(dir.path())),
            Err(SourceError::Unreadable { .. })
        ));
    }
}
