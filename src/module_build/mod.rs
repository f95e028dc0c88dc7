//! `dmb build`: module sources in, `.ko` files and a MODULE_REF image out.
//!
//! The flow: resolve the images ([`refs`]) → the cached build environment
//! ([`buildenv`]) → make in a container ([`make`]) → check what it built
//! against the kernel → the MODULE_REF image ([`package`]).
//!
//! Three images are involved besides the two the user names:
//! - `dmb-buildenv:<key>`, a cache: the builder image (completed with a
//!   toolchain when it lacks one) plus the kernel's header trees. The key
//!   hashes both images' IDs, so it never goes stale.
//! - a per-build image (legacy builder only; BuildKit exports files
//!   directly), removed as soon as the `.ko` files are out.
//! - MODULE_REF, FROM scratch.
//!
//! Everything a run creates carries its session label, so that after a
//! failure or Ctrl-C exactly that is removed.

pub mod buildenv;
pub mod context;
pub mod dockerfile;
pub mod in_tree;
pub mod incremental;
pub mod layout;
pub mod log;
pub(crate) mod make;
pub(crate) mod package;
pub mod plan;
pub mod refs;
pub mod sources;

use std::path::{Path, PathBuf};

use crate::engine::{BuildEngine, EngineError, Session};
use crate::interrupt;
use crate::kernel::KernelRelease;
use crate::ko::{KoError, Module};
use crate::progress::Progress;
use crate::toolchain::ToolchainError;
pub use buildenv::{buildenv_key, BUILDENV_REPOSITORY};
pub use refs::{RefOptions, Refs};

/// A directory of module sources with a Makefile: checked once, when made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDir(PathBuf);

impl ModuleDir {
    pub fn new(dir: &Path) -> Result<Self, BuildError> {
        if !dir.is_dir() {
            return Err(BuildError::ModuleDirMissing {
                path: dir.to_path_buf(),
            });
        }
        let has_makefile = ["GNUmakefile", "makefile", "Makefile"]
            .iter()
            .any(|m| dir.join(m).is_file());
        if !has_makefile {
            return Err(BuildError::NoMakefile {
                path: dir.to_path_buf(),
            });
        }
        Ok(ModuleDir(dir.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub module_dir: ModuleDir,
    pub refs: RefOptions,
    pub module_ref: String,
    pub output: Option<PathBuf>,
    /// Whether make may reach the network (off by default: module builds are
    /// hermetic; a toolchain install always may).
    pub network: bool,
    /// Check that the built modules will load into the kernel.
    pub check: bool,
    /// How make runs: its arguments, `-j`, from scratch or not.
    pub make: context::MakeInputs,
    /// Where make runs.
    pub make_in: MakeIn,
}

/// Where a module's make runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MakeIn {
    /// In a container of the engine, its build directory a volume. A
    /// container costs about 0.5 s around make where a BuildKit build
    /// costs 1.2 s (measured on this project's machine, `docs/bench.md`),
    /// and the engine is where the build environment already is.
    #[default]
    Engine,
    /// In the BuildKit builder, its build directory a cache mount: for a
    /// builder that is not the engine (`--builder NAME`), or when BuildKit
    /// is asked for (`--builder buildkit`). The legacy builder has no
    /// cache mounts: there make runs in the engine.
    Builder,
}

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The kernel and builder images it was built with.
    pub refs: Refs,
    pub release: KernelRelease,
    pub module_ref: String,
    pub image_id: String,
    pub modules: Vec<Module>,
    pub output_files: Vec<PathBuf>,
    /// Whether the modules were checked against the kernel.
    pub checked: bool,
    /// What a person should know about how it was built.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("module directory {} does not exist", path.display())]
    ModuleDirMissing { path: PathBuf },
    #[error("module directory {} has no Makefile", path.display())]
    NoMakefile { path: PathBuf },
    #[error("{}: the build cannot carry this file name: {why}", path.display())]
    UnusableFileName { path: PathBuf, why: &'static str },
    #[error("a make argument holds a newline")]
    BadMakeArgument,
    #[error("no builder image given")]
    BuildRefNotGiven,
    #[error("builder image `{reference}` is not in the engine")]
    BuildRefNotFound { reference: String },
    #[error("`{reference}` is not an image reference")]
    InvalidReference { reference: String },
    #[error("builder image `{reference}`: {source}")]
    Toolchain {
        reference: String,
        #[source]
        source: ToolchainError,
    },
    #[error("preparing the build environment from `{reference}` failed")]
    BuildEnvFailed { reference: String, log: Vec<String> },
    #[error("make failed (exit {code})")]
    MakeFailed { code: i32, errors: Vec<String> },
    #[error("make succeeded but left no .ko file under the module directory")]
    NoModules,
    #[error("two built modules are named {name}; module names must be unique")]
    DuplicateModule { name: String },
    #[error("built file {file} is not a usable kernel module: {source}")]
    BadModule {
        file: String,
        #[source]
        source: KoError,
    },
    #[error("the build failed")]
    BuildFailed { log: Vec<String> },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} of the built modules will not load into {}", report.misfit_names().len(), report.kernel_release)]
    WillNotLoad { report: crate::check::Report },
}

impl BuildError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let what = what.into();
        move |source| BuildError::Io { what, source }
    }
}

/// How many lines of a failed build's log an error keeps.
pub(crate) const LOG_LINES: usize = 20;

/// Runs a whole build; on any outcome, removes what it created.
pub fn run<E: ?Sized + BuildEngine>(
    engine: &E,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
) -> Result<BuildOutcome, crate::Error> {
    let session = Session::new(engine);
    let refs = Refs::resolve(&session, &opts.refs, progress)?;
    let buildenv = buildenv::ensure(&session, &refs, progress)?;
    stop_if_interrupted()?;

    let release = buildenv::release(&session, &buildenv, &refs)?;
    stop_if_interrupted()?;

    let work = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let built = make::build_modules(&session, opts, &buildenv, &release, work.path(), progress)?;
    stop_if_interrupted()?;

    let modules = built.read_modules()?;
    if opts.check {
        progress.step(&format!("checking that they will load into {release}"));
        let facts = buildenv::facts(&session, &buildenv, &refs.kernel_ref, &release)?;
        let report = crate::check::check(&facts, &modules, &[]);
        if !report.all_fit() {
            return Err(BuildError::WillNotLoad { report }.into());
        }
    }

    let delivered = package::deliver(
        &session,
        &refs,
        &release,
        &opts.module_ref,
        opts.output.as_deref(),
        &[],
        &modules,
        &built,
        work.path(),
        progress,
    )?;
    Ok(BuildOutcome {
        refs,
        release,
        module_ref: delivered.module_ref,
        image_id: delivered.image_id,
        modules,
        output_files: delivered.output_files,
        checked: opts.check,
        notes: Vec::new(),
    })
}

fn stop_if_interrupted() -> Result<(), EngineError> {
    if interrupt::requested() {
        Err(EngineError::Interrupted)
    } else {
        Ok(())
    }
}

/// Image references go into `FROM` and `COPY --from` lines; anything that
/// could start another instruction is refused before it gets there.
fn check_reference(reference: &str) -> Result<(), BuildError> {
    let ok = !reference.is_empty()
        && reference.len() <= 512
        && !reference.starts_with('-')
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(BuildError::InvalidReference {
            reference: reference.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
