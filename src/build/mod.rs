//! `dmb build`: module sources in, `.ko` files and a MODULE_REF image out.
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

pub mod dockerfile;
pub mod layout;
pub mod scripts;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::engine::{BuildOutput, BuildRequest, Engine, EngineError, RunRequest, Session};
use crate::interrupt;
use crate::kernel::image::ImageFactsError;
use crate::kernel::KernelFacts;
use crate::kernel::{self, KernelImageError};
use crate::ko::{KoError, Module};
use crate::toolchain::{self, Toolchain, ToolchainError};

/// Bump when the build environment's recipe changes, so old caches are not
/// reused.
const BUILDENV_RECIPE: &str = "1";

/// Image name of the cached build environments.
pub const BUILDENV_REPOSITORY: &str = "dmb-buildenv";

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub module_dir: PathBuf,
    pub build_ref: Option<String>,
    pub kernel_ref: Option<String>,
    pub module_ref: String,
    pub kver: Option<String>,
    pub output: Option<PathBuf>,
    /// Whether make may reach the network (off by default: module builds are
    /// hermetic; a toolchain install always may).
    pub network: bool,
    /// Check that the built modules will load into the kernel.
    pub check: bool,
}

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub release: String,
    pub module_ref: String,
    pub image_id: String,
    pub modules: Vec<Module>,
    pub output_files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("module directory {} does not exist", path.display())]
    ModuleDirMissing { path: PathBuf },
    #[error("module directory {} has no Makefile", path.display())]
    NoMakefile { path: PathBuf },
    #[error("no builder image given")]
    BuildRefNotGiven,
    #[error("builder image `{reference}` is not in the engine")]
    BuildRefNotFound { reference: String },
    #[error("`{reference}` is not an image reference")]
    InvalidReference { reference: String },
    #[error(transparent)]
    Kernel(#[from] KernelImageError),
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
    #[error(transparent)]
    KernelFacts(#[from] ImageFactsError),
    #[error("detecting the engine's kernel failed: {0}")]
    Detect(#[from] crate::target::DetectError),
    #[error("{} of the built modules will not load into {}", report.modules.iter().filter(|v| !v.fits).count(), report.kernel_release)]
    WillNotLoad { report: crate::check::Report },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl BuildError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let what = what.into();
        move |source| BuildError::Io { what, source }
    }
}

/// Where the build tells what it does.
pub trait Progress {
    /// A step of dmb's own ("preparing the build environment").
    fn step(&mut self, message: &str);
    /// A line of the build log.
    fn log(&mut self, line: &str);
}

/// Checks what can be checked without the engine.
pub fn check_module_dir(dir: &Path) -> Result<(), BuildError> {
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
    Ok(())
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

/// The cache key of a build environment.
pub fn buildenv_key(build_id: &str, kernel_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [BUILDENV_RECIPE, build_id, kernel_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs a whole build; on any outcome, removes what it created.
pub fn run(
    engine: &dyn Engine,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
) -> Result<BuildOutcome, BuildError> {
    check_module_dir(&opts.module_dir)?;
    let session = Session::new();
    let result = run_in_session(engine, opts, &session, progress);
    session.cleanup(engine, &mut |message| progress.step(message));
    result
}

fn stop_if_interrupted() -> Result<(), BuildError> {
    if interrupt::requested() {
        Err(EngineError::Interrupted.into())
    } else {
        Ok(())
    }
}

fn run_in_session(
    engine: &dyn Engine,
    opts: &BuildOptions,
    session: &Session,
    progress: &mut dyn Progress,
) -> Result<BuildOutcome, BuildError> {
    let kernel_ref = opts
        .kernel_ref
        .as_deref()
        .ok_or(KernelImageError::NotGiven)?;
    let build_ref = opts
        .build_ref
        .as_deref()
        .ok_or(BuildError::BuildRefNotGiven)?;
    check_reference(kernel_ref)?;
    check_reference(build_ref)?;
    let kernel_id = engine
        .image_id(kernel_ref)?
        .ok_or_else(|| KernelImageError::NotFound {
            reference: kernel_ref.to_string(),
        })?;
    let build_id = engine
        .image_id(build_ref)?
        .ok_or_else(|| BuildError::BuildRefNotFound {
            reference: build_ref.to_string(),
        })?;

    let key = buildenv_key(&build_id, &kernel_id);
    let buildenv = format!("{BUILDENV_REPOSITORY}:{key}");
    if engine.image_id(&buildenv)?.is_none() {
        prepare_buildenv(
            engine, session, progress, kernel_ref, build_ref, &key, &buildenv,
        )?;
    }
    stop_if_interrupted()?;

    let listing = engine.run(&RunRequest::new(
        &buildenv,
        session.name("trees"),
        session.id(),
        kernel::TREE_LISTING_SCRIPT,
    ))?;
    let trees = kernel::parse_tree_listing(&listing.stdout);
    let release = kernel::select_tree(kernel_ref, &trees, opts.kver.as_deref())?
        .release
        .clone();
    stop_if_interrupted()?;

    let work = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let files = build_modules(
        engine,
        opts,
        session,
        progress,
        &buildenv,
        &release,
        work.path(),
    )?;
    stop_if_interrupted()?;

    let mut modules = Vec::new();
    for name in &files.ko {
        let bytes = std::fs::read(files.ko_dir.join(name))
            .map_err(BuildError::io(format!("reading {name}")))?;
        let module = Module::read(name, bytes).map_err(|source| BuildError::BadModule {
            file: name.clone(),
            source,
        })?;
        modules.push(module);
    }

    if opts.check {
        progress.step(&format!("checking that they will load into {release}"));
        let facts = facts_from_buildenv(engine, session, &buildenv, kernel_ref, &release)?;
        let report = crate::check::check(&facts, &modules, &[]);
        if !report.all_fit() {
            return Err(BuildError::WillNotLoad { report });
        }
    }

    progress.step(&format!(
        "packaging {} as {}",
        files.ko.join(" "),
        opts.module_ref
    ));
    let provenance = layout::Provenance {
        release: &release,
        kernel_ref,
        kernel_id: &kernel_id,
        build_ref,
        build_id: &build_id,
    };
    let image_id = package(
        engine,
        opts,
        progress,
        &provenance,
        &modules,
        &files,
        work.path(),
    )?;

    let mut output_files = Vec::new();
    if let Some(out) = &opts.output {
        std::fs::create_dir_all(out)
            .map_err(BuildError::io(format!("creating {}", out.display())))?;
        for name in &files.ko {
            let dest = out.join(name);
            std::fs::copy(files.ko_dir.join(name), &dest)
                .map_err(BuildError::io(format!("writing {}", dest.display())))?;
            output_files.push(dest);
        }
    }
    Ok(BuildOutcome {
        release,
        module_ref: opts.module_ref.clone(),
        image_id,
        modules,
        output_files,
    })
}

/// The kernel's facts from the header tree already unpacked in the build
/// environment: a few small files, instead of streaming the whole
/// `kernel-dev.tar` out of the engine again.
fn facts_from_buildenv(
    engine: &dyn Engine,
    session: &Session,
    buildenv: &str,
    kernel_ref: &str,
    release: &str,
) -> Result<KernelFacts, BuildError> {
    let container = session.name("facts");
    engine.create(buildenv, &container, session.id())?;
    let tree = kernel::headers_dir(release);
    let mut files = std::collections::BTreeMap::new();
    let mut result = Ok(());
    for name in kernel::facts::FACT_FILES {
        let mut data = Vec::new();
        let read = engine.with_file(&container, &format!("{tree}/{name}"), &mut |r| {
            r.read_to_end(&mut data)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        match read {
            Ok(true) => {
                files.insert(name.to_string(), data);
            }
            Ok(false) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    engine.remove_session_containers(session.id())?;
    result?;
    KernelFacts::from_files(&files).map_err(|source| {
        ImageFactsError::Facts {
            reference: kernel_ref.to_string(),
            release: release.to_string(),
            source,
        }
        .into()
    })
}

/// Builds and tags the build environment for this builder and kernel.
fn prepare_buildenv(
    engine: &dyn Engine,
    session: &Session,
    progress: &mut dyn Progress,
    kernel_ref: &str,
    build_ref: &str,
    key: &str,
    tag: &str,
) -> Result<(), BuildError> {
    progress.step(&format!("checking kernel image {kernel_ref}"));
    let probe = session.name("kernel");
    engine.create(kernel_ref, &probe, session.id())?;
    for file in kernel::REQUIRED_FILES {
        if engine.file_size(&probe, file)?.is_none() {
            return Err(KernelImageError::MissingFile {
                reference: kernel_ref.to_string(),
                file: file.to_string(),
            }
            .into());
        }
    }
    engine.remove_session_containers(session.id())?;

    progress.step(&format!("checking the toolchain of {build_ref}"));
    let found = engine
        .run(&RunRequest::new(
            build_ref,
            session.name("probe"),
            session.id(),
            toolchain::PROBE_SCRIPT,
        ))
        .map_err(|e| match e {
            EngineError::Command { detail, .. } => BuildError::Toolchain {
                reference: build_ref.to_string(),
                source: ToolchainError::ProbeFailed { detail },
            },
            other => other.into(),
        })?;
    let toolchain = Toolchain::from_probe(&found.stdout);
    let install = toolchain
        .install_step()
        .map_err(|source| BuildError::Toolchain {
            reference: build_ref.to_string(),
            source,
        })?;
    if install.is_some() {
        progress.step(&format!(
            "{build_ref} lacks {}: installing a toolchain (cached)",
            toolchain.missing().join(", ")
        ));
    }

    progress.step(&format!("preparing the build environment {tag}"));
    let context = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let dockerfile = context.path().join("Dockerfile");
    std::fs::write(
        &dockerfile,
        dockerfile::buildenv(build_ref, kernel_ref, key, install),
    )
    .map_err(BuildError::io("writing the Dockerfile"))?;
    session.track_dangling(dockerfile::BUILDENV_LABEL, key);
    let done = engine.build(
        &BuildRequest {
            context: context.path().to_path_buf(),
            dockerfile,
            output: BuildOutput::Image(tag.to_string()),
            network: install.is_some(),
        },
        &mut |line| progress.log(line),
    )?;
    if !done.success() {
        return Err(BuildError::BuildEnvFailed {
            reference: build_ref.to_string(),
            log: done.tail.iter().rev().take(20).rev().cloned().collect(),
        });
    }
    Ok(())
}

/// Where the built files landed on the host.
struct BuiltFiles {
    ko_dir: PathBuf,
    ko: Vec<String>,
    depmod_dir: Option<PathBuf>,
}

/// Runs make in a container and brings the `.ko` files to the host.
fn build_modules(
    engine: &dyn Engine,
    opts: &BuildOptions,
    session: &Session,
    progress: &mut dyn Progress,
    buildenv: &str,
    release: &str,
    work: &Path,
) -> Result<BuiltFiles, BuildError> {
    let context = work.join("build");
    write_build_context(&context, &opts.module_dir)?;
    let export = engine.builder().is_buildkit();
    let dockerfile = context.join("Dockerfile");
    std::fs::write(
        &dockerfile,
        dockerfile::build(buildenv, session.id(), release, export),
    )
    .map_err(BuildError::io("writing the Dockerfile"))?;

    let out = work.join("out");
    let output = if export {
        BuildOutput::Directory(out.clone())
    } else {
        let tag = format!("dmb-build:{}", session.id());
        session.track_image(&tag);
        BuildOutput::Image(tag)
    };
    progress.step(&format!(
        "building {} for {release} with {}",
        opts.module_dir.display(),
        engine.builder().describe()
    ));
    let mut markers = Vec::new();
    let done = engine.build(
        &BuildRequest {
            context: context.clone(),
            dockerfile,
            output: output.clone(),
            network: opts.network,
        },
        &mut |line| {
            if line.contains(scripts::MARKER) {
                markers.push(line.to_string());
            } else {
                progress.log(line);
            }
        },
    )?;
    let report = scripts::Report::from_log(markers.iter().map(String::as_str));
    if !done.success() {
        return Err(if let Some(code) = report.make_failed {
            BuildError::MakeFailed {
                code,
                errors: scripts::error_lines(&done.tail),
            }
        } else if report.no_ko {
            BuildError::NoModules
        } else if let Some(name) = report.duplicate {
            BuildError::DuplicateModule { name }
        } else {
            BuildError::BuildFailed {
                log: done.tail.iter().rev().take(20).rev().cloned().collect(),
            }
        });
    }

    let (ko_dir, depmod_dir) = (out.join("ko"), out.join("depmod"));
    if let BuildOutput::Image(tag) = &output {
        std::fs::create_dir_all(&ko_dir)
            .map_err(BuildError::io("creating a temporary directory"))?;
        std::fs::create_dir_all(&depmod_dir)
            .map_err(BuildError::io("creating a temporary directory"))?;
        let container = session.name("out");
        engine.create(tag, &container, session.id())?;
        engine.copy_files_out(&container, "/dmb-out/ko", &ko_dir)?;
        engine.copy_files_out(&container, "/dmb-out/depmod", &depmod_dir)?;
        engine.remove_session_containers(session.id())?;
        engine.remove_image(tag)?;
        session.forget_image(tag);
    }
    let mut ko: Vec<String> = std::fs::read_dir(&ko_dir)
        .map_err(BuildError::io("reading the built modules"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ko"))
        .collect();
    ko.sort();
    if ko.is_empty() {
        return Err(BuildError::NoModules);
    }
    Ok(BuiltFiles {
        ko_dir,
        ko,
        depmod_dir: report.depmod.then_some(depmod_dir),
    })
}

/// `module/` (a copy of the user's directory) and dmb's own scripts.
fn write_build_context(context: &Path, module_dir: &Path) -> Result<(), BuildError> {
    let bin = context.join("dmb/bin");
    std::fs::create_dir_all(&bin).map_err(BuildError::io("creating the build context"))?;
    write_executable(&bin.join("uname"), scripts::UNAME_WRAPPER)?;
    write_executable(&context.join("dmb/build.sh"), scripts::BUILD_SCRIPT)?;
    copy_tree(module_dir, &context.join("module"))
        .map_err(BuildError::io(format!("copying {}", module_dir.display())))
}

fn write_executable(path: &Path, text: &str) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(BuildError::io(format!("writing {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(BuildError::io(format!("writing {}", path.display())))
}

/// Copies a directory tree: files with their modes, symlinks as links.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Builds MODULE_REF; drops the image it replaces when nothing else uses it.
fn package(
    engine: &dyn Engine,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    provenance: &layout::Provenance,
    modules: &[Module],
    files: &BuiltFiles,
    work: &Path,
) -> Result<String, BuildError> {
    let context = work.join("image");
    let labels = layout::labels(provenance, modules);
    layout::write_context(
        &context,
        provenance.release,
        &files.ko_dir,
        modules,
        files.depmod_dir.as_deref(),
        &dockerfile::module_image(&labels),
    )
    .map_err(BuildError::io("writing the image context"))?;
    let previous = engine.image_id(&opts.module_ref)?;
    let done = engine.build(
        &BuildRequest {
            context: context.clone(),
            dockerfile: context.join("Dockerfile"),
            output: BuildOutput::Image(opts.module_ref.clone()),
            network: false,
        },
        &mut |line| progress.log(line),
    )?;
    if !done.success() {
        return Err(BuildError::BuildFailed {
            log: done.tail.iter().rev().take(20).rev().cloned().collect(),
        });
    }
    let image_id = engine.image_id(&opts.module_ref)?.unwrap_or_default();
    if let Some(old) = previous.filter(|old| *old != image_id) {
        // The image this tag named before is now dangling; if it is one of
        // dmb's and nothing else names it, it goes.
        if let Ok((0, Some(_))) = engine.image_tags_and_label(&old, layout::label::KERNEL_RELEASE) {
            let _ = engine.remove_image(&old);
        }
    }
    Ok(image_id)
}

#[cfg(test)]
mod tests;
