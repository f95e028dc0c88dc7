//! Loading modules into the engine's kernel ([`load`]), unloading them
//! ([`unload`]), and keeping them loaded across restarts ([`record`]).
//!
//! `load`: read the modules ([`crate::module_files`]) → detect the running
//! kernel → resolve dependencies (files beside the given ones, the VM's own
//! `/lib/modules`, [`vm`]) → plan ([`plan`], pure) → check them against the
//! running kernel ([`running`], the same check as `dmb check`) → insert
//! them, in order, from a container that has CAP_SYS_MODULE and nothing
//! else ([`insert`]) → record what was loaded in a loader container
//! ([`record`]), kept with `--restart=always` under `--persist`. Nothing is
//! inserted unless every module passes the check; when one insmod fails,
//! what this run inserted is removed again.

mod events;
pub mod insert;
pub mod lock;
pub mod plan;
pub mod record;
pub mod running;
pub mod status;
pub mod unload;
pub mod unload_plan;
pub mod vm;

use std::collections::HashSet;

use serde::Serialize;

use crate::check;
use crate::detect::{self, DetectOptions};
use crate::engine::{Engine, Session};
use crate::module_files::{self, ModuleFile};
use crate::progress::Progress;
use plan::{LoadPlan, ParamArg, ToLoad};
pub use running::{CrcSource, RunningKernel};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `.ko` files, directories of them, MODULE_REF images.
    pub sources: Vec<String>,
    pub params: Vec<ParamArg>,
    pub persist: bool,
    pub dry_run: bool,
    /// Check the modules against the running kernel first.
    pub check: bool,
    pub crcs: CrcSource,
    pub kernel_ref: Option<String>,
    /// The small image (busybox) that probes, loads and keeps loading.
    pub detect: DetectOptions,
    /// How long to wait for another run that holds the VM's module lock.
    pub wait: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{} will not load into {}", report.misfit_names().join(", "), report.kernel_release)]
    WillNotLoad { report: check::Report },
    #[error("cannot tell whether the modules fit the running kernel: {detail}")]
    NoKernelFacts { detail: String },
    #[error("kernel image {reference} holds {image_release}, but the engine runs {running}")]
    KernelImageRelease {
        reference: String,
        image_release: String,
        running: String,
    },
    #[error("the kernel refused {module}: {message}")]
    InsertFailed {
        module: String,
        message: String,
        /// The kernel's own log lines about it.
        kernel_log: Vec<String>,
        /// Inserted by this run and removed again.
        rolled_back: Vec<String>,
        /// Inserted by this run, and the kernel would not remove them.
        stuck: Vec<String>,
    },
    #[error("{module} was loaded (another build) while dmb was loading")]
    LoadRace { module: String },
    #[error("{}{}", crate::interrupt::describe(), if rolled_back.is_empty() { ": nothing was inserted".to_string() } else { format!(": removed what this run had inserted ({})", rolled_back.join(", ")) })]
    Interrupted { rolled_back: Vec<String> },
    #[error("the loading container gave no account of itself: {detail}")]
    LoaderSilent { detail: String },
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LoadError {
    let what = what.into();
    move |e| LoadError::Io {
        what,
        detail: e.to_string(),
    }
}

/// What a load did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct LoadOutcome {
    pub plan: LoadPlan,
    /// The check against the running kernel, when it ran.
    pub check: Option<check::Report>,
    pub crc_source: Option<String>,
    /// Inserted now, in order.
    pub inserted: Vec<String>,
    /// The loader container that records (and, kept, reloads) the modules.
    pub loader: Option<String>,
    pub persistent: bool,
    /// Earlier loader containers this one replaces.
    pub replaced: Vec<String>,
    pub notes: Vec<String>,
    pub dry_run: bool,
}

/// Loads the modules of `opts.sources` into the engine's kernel; on any
/// outcome, removes the containers the run used.
pub fn load<E: ?Sized + Engine>(
    engine: &E,
    opts: &LoadOptions,
    progress: &mut dyn Progress,
) -> Result<LoadOutcome, crate::Error> {
    let session = Session::new(engine);
    let scratch = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let given = module_files::read(&opts.sources, Some(&session), scratch.path())?;

    // The lock comes before detection: what is loaded must not change
    // between reading it and inserting. It needs an image with `sleep`:
    // the one that will probe and load.
    let probe = opts.detect.probe_image.settle(&session)?;
    let lock = if opts.dry_run {
        None
    } else {
        Some(lock::acquire(
            &session,
            &probe.image,
            "load",
            opts.wait,
            progress,
        )?)
    };
    let detect_opts = DetectOptions {
        probe_image: detect::probe_image::ProbeImage::Named(probe.image.clone()),
        ..opts.detect.clone()
    };
    progress.step("detecting the running kernel");
    let detection = detect::detect(&session, &detect_opts)?;
    // The loader runs in the image that probed.
    let probe_image = detection.probe_image.clone();
    let mut notes: Vec<String> = probe.why.iter().cloned().collect();
    notes.extend(lock.iter().flat_map(|l| l.notes.iter().cloned()));
    notes.extend(detection.notes.iter().cloned());
    if !detection.vm_files {
        notes.push("the VM's own files were not read: dependencies from its /lib/modules and its installed modules' CRCs are out of reach".into());
    }
    let builtin: HashSet<String> = detection.modules.builtin.iter().cloned().collect();
    let kernel = plan::Kernel {
        release: detection.release.as_str(),
        builtin: &builtin,
        on_disk: &detection.modules.on_disk_paths,
        loaded: &detection.loaded,
        aliases: &detection.aliases,
    };
    let modules = with_dependencies(
        &session,
        &probe_image,
        &kernel,
        given,
        scratch.path(),
        progress,
    )?;
    let load_plan = plan::plan(&modules, &opts.params, &kernel)?;

    let (check_report, crc_source) = if opts.check {
        let running = RunningKernel::read(
            &session,
            &detection,
            opts.crcs,
            opts.kernel_ref.as_deref(),
            &probe_image,
            &modules,
            progress,
        )?;
        let set: Vec<_> = modules.iter().map(|c| c.file.module.clone()).collect();
        let report = check::check(&running.facts, &set, &[]);
        if !report.all_fit() {
            return Err(LoadError::WillNotLoad { report }.into());
        }
        (Some(report), Some(running.crc_source))
    } else {
        notes.push("not checked against the running kernel (--no-check)".into());
        (None, None)
    };

    let mut outcome = LoadOutcome {
        plan: load_plan,
        check: check_report,
        crc_source,
        inserted: Vec::new(),
        loader: None,
        persistent: opts.persist,
        replaced: Vec::new(),
        notes,
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        return Ok(outcome);
    }

    let stage = scratch.path().join("stage");
    let record = insert::stage(&outcome.plan, opts.persist, &stage)?;
    let inserts: Vec<String> = outcome.plan.inserts().map(|s| s.module.clone()).collect();
    // Inserting and recording are not cut short by a stop signal: a cut
    // would leave a half-loaded set, or modules loaded with no record.
    // A signal that came while inserting undoes the insertions; one that
    // came while recording lets the record finish (the caller then exits
    // with the signal's status).
    crate::interrupt::deferred(|| -> Result<(), crate::Error> {
        if !inserts.is_empty() {
            progress.step(&format!(
                "inserting {} (a container with CAP_SYS_MODULE only, no network)",
                inserts.join(", ")
            ));
            outcome.inserted = insert::insert(&session, &probe_image, &stage)?;
        }
        if crate::interrupt::pending() {
            let order: Vec<String> = outcome.inserted.iter().rev().cloned().collect();
            if !order.is_empty() {
                progress.step(&format!(
                    "stopping: removing what this run inserted ({})",
                    order.join(", ")
                ));
                unload::remove(&session, &probe_image, &order)?;
            }
            return Err(LoadError::Interrupted { rolled_back: order }.into());
        }
        record::record_load(
            &session,
            &probe_image,
            &record,
            &stage,
            &detection.loaded,
            &mut outcome,
        )?;
        if crate::interrupt::pending() {
            outcome.notes.push("a stop signal came while the load was being recorded: it was finished first, so that nothing is half-done".into());
        }
        Ok(())
    })?;
    Ok(outcome)
}

/// The given modules and their dependencies: beside the given files, then
/// from the VM's own tree (whose modules may need more of it).
fn with_dependencies<E: ?Sized + Engine>(
    session: &Session<E>,
    probe_image: &str,
    kernel: &plan::Kernel,
    given: module_files::GivenModules,
    scratch: &std::path::Path,
    progress: &mut dyn Progress,
) -> Result<Vec<ToLoad>, crate::Error> {
    let mut modules: Vec<ToLoad> = given
        .modules
        .into_iter()
        .map(|file| ToLoad {
            file,
            dependency: false,
        })
        .collect();
    let mut beside = given.beside;
    beside.extend(given.dependencies);
    let vm_dir = scratch.join("vm");
    loop {
        let from_vm = plan::resolve_dependencies(&mut modules, &mut beside, kernel)?;
        if from_vm.is_empty() {
            return Ok(modules);
        }
        std::fs::create_dir_all(&vm_dir).map_err(io(vm_dir.display().to_string()))?;
        progress.step(&format!(
            "copying {} from the VM's /lib/modules",
            from_vm.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        let paths: Vec<String> = from_vm.values().cloned().collect();
        let files = vm::fetch_files(session, probe_image, &paths, &vm_dir)?;
        if files.len() != paths.len() {
            return Err(LoadError::Io {
                what: "copying modules out of the VM".into(),
                detail: format!("asked for {}, got {}", paths.join(" "), files.len()),
            }
            .into());
        }
        for (vm_path, path) in paths.iter().zip(files) {
            let module = module_files::read_files(std::slice::from_ref(&path), None)?.remove(0);
            modules.push(ToLoad {
                file: ModuleFile {
                    module,
                    path,
                    source: format!("the VM's {vm_path}"),
                },
                dependency: true,
            });
        }
    }
}

#[cfg(test)]
mod tests;
