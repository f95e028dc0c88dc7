//! Loading modules into the engine's kernel, unloading them, and keeping
//! them loaded across restarts.
//!
//! `load`: read the modules → detect the running kernel → see what is
//! loaded → resolve dependencies (files beside the given ones, the VM's own
//! `/lib/modules`) → plan ([`plan`], pure) → check them against the running
//! kernel (the same check as `dmb check`) → insert them, in order, from a
//! container that has CAP_SYS_MODULE and nothing else → record what was
//! loaded in a loader container ([`record`]), kept with `--restart=always`
//! under `--persist`. Nothing is inserted unless every module passes the
//! check; when one insmod fails, what this run inserted is removed again.

pub mod plan;
pub mod record;
pub mod scripts;
pub mod state;
pub mod vm;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::build::Progress;
use crate::check::sources::{self, SourceError};
use crate::check::{self, Misfit};
use crate::engine::{ContainerSpec, Engine, EngineError, RunRequest, Session};
use crate::kernel::image::{facts_from_image, ImageFactsError};
use crate::ko::Module;
use crate::target::{self, DetectError, DetectOptions, Target};
use plan::{Candidate, KernelSide, LoadPlan, ParamArg, PlanError};
use record::{Loader, LoaderRecord, RecordedModule};
use scripts::{Event, DMESG_SCRIPT, LOADER_DIR, LOAD_SCRIPT, UNLOAD_SCRIPT};
use state::KernelState;

/// Where the CRCs of the running kernel's exports come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrcSource {
    /// The kernel image's Module.symvers when the image is in the engine,
    /// else the installed modules.
    #[default]
    Auto,
    /// The `Module.symvers` of the kernel image (KERNEL_REF, or the one
    /// `/etc/linuxkit.yml` names).
    KernelImage,
    /// What the VM's installed modules record in their `__versions`.
    InstalledModules,
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{} will not load into {}", not_fitting(report), report.kernel_release)]
    WillNotLoad { report: check::Report },
    #[error("cannot tell whether the modules fit the running kernel: {detail}")]
    NoKernelFacts { detail: String },
    #[error(transparent)]
    KernelImage(#[from] ImageFactsError),
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
    #[error("the loading container gave no account of itself: {detail}")]
    LoaderSilent { detail: String },
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
}

fn not_fitting(report: &check::Report) -> String {
    report
        .modules
        .iter()
        .filter(|v| !v.fits)
        .map(|v| v.module.as_str())
        .collect::<Vec<_>>()
        .join(", ")
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

/// Loads the modules of `opts.sources` into the engine's kernel.
pub fn load(
    engine: &dyn Engine,
    opts: &LoadOptions,
    progress: &mut dyn Progress,
) -> Result<LoadOutcome, LoadError> {
    in_session(engine, progress, |session, progress| {
        load_in_session(engine, session, opts, progress)
    })
}

/// Runs `f` in a new session and removes what the session left, also
/// after a failure.
fn in_session<T, E>(
    engine: &dyn Engine,
    progress: &mut dyn Progress,
    f: impl FnOnce(&Session, &mut dyn Progress) -> Result<T, E>,
) -> Result<T, E> {
    let session = Session::new();
    let result = f(&session, progress);
    session.cleanup(engine, &mut |m| progress.step(m));
    result
}

fn load_in_session(
    engine: &dyn Engine,
    session: &Session,
    opts: &LoadOptions,
    progress: &mut dyn Progress,
) -> Result<LoadOutcome, LoadError> {
    let scratch = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let (mut candidates, mut pool) = read_sources(engine, session, &opts.sources, scratch.path())?;

    progress.step("detecting the running kernel");
    let target = target::detect(engine, session, &opts.detect)?;
    let mut state = KernelState::parse(&target.module_state);
    state.release = target.release.clone();
    let mut notes = target.notes.clone();
    if !target.vm_files {
        notes.push("the VM's own files were not read: dependencies from its /lib/modules and its installed modules' CRCs are out of reach".into());
    }
    let builtin: HashSet<String> = target.modules.builtin.iter().cloned().collect();
    let kernel = KernelSide {
        release: &target.release,
        builtin: &builtin,
        on_disk: &target.modules.on_disk_paths,
        state: &state,
    };

    // Dependencies: beside the given files, then the VM's own tree (whose
    // modules may need more of it).
    let vm_dir = scratch.path().join("vm");
    loop {
        let from_vm = plan::resolve_dependencies(&mut candidates, &mut pool, &kernel)?;
        if from_vm.is_empty() {
            break;
        }
        std::fs::create_dir_all(&vm_dir).map_err(io(vm_dir.display().to_string()))?;
        progress.step(&format!(
            "copying {} from the VM's /lib/modules",
            from_vm.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        let paths: Vec<String> = from_vm.values().cloned().collect();
        let files = vm::fetch_files(engine, session, &opts.detect.probe_image, &paths, &vm_dir)?;
        if files.len() != paths.len() {
            return Err(LoadError::Io {
                what: "copying modules out of the VM".into(),
                detail: format!("asked for {}, got {}", paths.join(" "), files.len()),
            });
        }
        for (vm_path, file) in paths.iter().zip(files) {
            let module = sources::read_modules(std::slice::from_ref(&file), None)?
                .pop()
                .expect("one file, one module");
            candidates.push(Candidate {
                module,
                path: file,
                source: format!("the VM's {vm_path}"),
                dependency: true,
            });
        }
    }
    let load_plan = plan::plan(&candidates, &opts.params, &kernel)?;

    let (check_report, crc_source) = if opts.check {
        let (facts, source) = running_kernel_facts(
            engine,
            session,
            opts,
            &target,
            &state,
            &candidates,
            progress,
        )?;
        let modules: Vec<Module> = candidates.iter().map(|c| c.module.clone()).collect();
        let mut report = check::check(&facts, &modules, &[]);
        trust_loaded_providers(&mut report, &candidates, &state, &facts);
        if !report.all_fit() {
            return Err(LoadError::WillNotLoad { report });
        }
        (Some(report), Some(source))
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
    let record = stage_modules(&outcome.plan, &candidates, opts.persist, &stage)?;
    if outcome.plan.inserts().next().is_some() {
        progress.step(&format!(
            "inserting {} (a container with CAP_SYS_MODULE only, no network)",
            outcome
                .plan
                .inserts()
                .map(|s| s.module.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        outcome.inserted = insert(engine, session, &opts.detect.probe_image, &stage)?;
    }
    record_load(engine, session, opts, &record, &stage, &state, &mut outcome)?;
    Ok(outcome)
}

/// The given modules, and the module files beside given files (which may
/// serve as dependencies).
fn read_sources(
    engine: &dyn Engine,
    session: &Session,
    args: &[String],
    scratch: &Path,
) -> Result<(Vec<Candidate>, Vec<Candidate>), LoadError> {
    let mut given = Vec::new();
    let mut beside: Vec<PathBuf> = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let path = Path::new(arg);
        let files = if path.is_file() {
            if let Some(dir) = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .or(Some(Path::new(".")))
            {
                beside.extend(
                    sources::module_files_in(dir)?
                        .into_iter()
                        .filter(|f| f != path),
                );
            }
            vec![(path.to_path_buf(), format!("file {arg}"))]
        } else if path.is_dir() {
            let files = sources::module_files(path)?;
            if files.is_empty() {
                return Err(SourceError::NoModules { what: arg.clone() }.into());
            }
            files
                .into_iter()
                .map(|f| {
                    let shown = format!("file {}", f.display());
                    (f, shown)
                })
                .collect()
        } else {
            let dir = scratch.join(format!("image-{i}"));
            std::fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
            sources::modules_of_image(engine, session, arg, &dir)?
                .into_iter()
                .map(|f| (f, format!("image {arg}")))
                .collect()
        };
        for (file, source) in files {
            let module = sources::read_modules(std::slice::from_ref(&file), None)?
                .pop()
                .expect("one file, one module");
            given.push(Candidate {
                module,
                path: file,
                source,
                dependency: false,
            });
        }
    }
    let given_paths: BTreeSet<&PathBuf> = given.iter().map(|c| &c.path).collect();
    beside.retain(|p| !given_paths.contains(p));
    beside.sort();
    beside.dedup();
    // A file beside that is not a module is no one's business here.
    let pool = beside
        .into_iter()
        .filter_map(|file| {
            let module = Module::open(&file).ok()?;
            Some(Candidate {
                module,
                source: format!("file {}", file.display()),
                path: file,
                dependency: true,
            })
        })
        .collect();
    Ok((given, pool))
}

/// `/proc/modules` and the identities of loaded modules (no privilege).
pub fn kernel_state(
    engine: &dyn Engine,
    session: &Session,
    image: &str,
) -> Result<KernelState, EngineError> {
    let done = engine.run(&RunRequest::new(
        image,
        session.name("modules"),
        session.id(),
        state::STATE_SCRIPT,
    ))?;
    Ok(KernelState::parse(&done.stdout))
}

/// The running kernel's facts for the check: vermagic from its release and
/// configuration, CRCs from its kernel image or its installed modules.
fn running_kernel_facts(
    engine: &dyn Engine,
    session: &Session,
    opts: &LoadOptions,
    target: &Target,
    state: &KernelState,
    candidates: &[Candidate],
    progress: &mut dyn Progress,
) -> Result<(crate::kernel::KernelFacts, String), LoadError> {
    let reference = opts
        .kernel_ref
        .clone()
        .or_else(|| target.kernel_ref.reference.clone());
    let use_image = match (opts.crcs, &reference) {
        (CrcSource::InstalledModules, _) => None,
        (CrcSource::KernelImage, None) => {
            return Err(LoadError::NoKernelFacts {
                detail: "no kernel image is known for the running kernel (give --kernel-ref)"
                    .into(),
            })
        }
        (CrcSource::KernelImage, Some(r)) => Some(r.clone()),
        (CrcSource::Auto, Some(r)) if engine.image_id(r)?.is_some() => Some(r.clone()),
        (CrcSource::Auto, _) => None,
    };
    let mut installed: HashSet<String> = state.modules.keys().cloned().collect();
    installed.extend(target.modules.on_disk.iter().cloned());
    let builtin: HashSet<String> = target.modules.builtin.iter().cloned().collect();
    if let Some(reference) = use_image {
        progress.step(&format!("reading Module.symvers of {reference}"));
        let mut facts = facts_from_image(engine, session, &reference, Some(&target.release))
            .map_err(|e| match e {
                ImageFactsError::Kernel(crate::kernel::KernelImageError::ReleaseNotInImage {
                    available,
                    ..
                }) => LoadError::KernelImageRelease {
                    reference: reference.clone(),
                    image_release: available.join(", "),
                    running: target.release.clone(),
                },
                other => other.into(),
            })?;
        if facts.release != target.release {
            return Err(LoadError::KernelImageRelease {
                reference,
                image_release: facts.release,
                running: target.release.clone(),
            });
        }
        // The running kernel's own configuration, when the VM shows it.
        if !target.config.is_empty() {
            facts.config = target.config.clone();
        }
        facts.builtin.extend(builtin);
        facts.installed = installed;
        return Ok((facts, format!("Module.symvers of kernel image {reference}")));
    }
    if !target.vm_files {
        return Err(LoadError::NoKernelFacts {
            detail: format!(
                "no kernel image{} and the VM's installed modules cannot be read without a privileged container",
                reference.map(|r| format!(" ({r} is not in the engine)")).unwrap_or_default()
            ),
        });
    }
    progress.step("reading the CRCs the VM's installed modules record");
    // The symbols the modules import from outside their own set.
    let exported: HashSet<&str> = candidates
        .iter()
        .flat_map(|c| c.module.exports.iter().map(|e| e.symbol.as_str()))
        .collect();
    let wanted: HashSet<String> = candidates
        .iter()
        .flat_map(|c| c.module.versions.iter().map(|v| v.symbol.clone()))
        .filter(|s| !exported.contains(s.as_str()))
        .collect();
    let found = vm::installed_modules(engine, session, &opts.detect.probe_image, &wanted)?;
    if found.count == 0 {
        return Err(LoadError::NoKernelFacts {
            detail: format!("the VM has no modules in /lib/modules/{}", target.release),
        });
    }
    if found.vermagic.is_none() && target.config.is_empty() {
        return Err(LoadError::NoKernelFacts {
            detail: "neither the installed modules nor a kernel configuration give the vermagic"
                .into(),
        });
    }
    let mut facts = found.facts(&target.release, target.config.clone(), builtin);
    facts.installed.extend(installed);
    Ok((
        facts,
        format!(
            "the __versions of {} of the VM's installed modules{}{}",
            found.count,
            if found.complete {
                " (all)"
            } else {
                " (enough to find every imported symbol)"
            },
            match (opts.crcs, reference) {
                (CrcSource::Auto, Some(r)) => format!(" (kernel image {r} is not in the engine)"),
                (CrcSource::Auto, None) => " (no kernel image is known)".to_string(),
                _ => String::new(),
            }
        ),
    ))
}

/// A module that depends on a loaded module the kernel's CRC source does
/// not know (one loaded earlier from elsewhere) imports symbols the check
/// cannot see: the kernel checks those against the loaded module itself.
fn trust_loaded_providers(
    report: &mut check::Report,
    candidates: &[Candidate],
    state: &KernelState,
    facts: &crate::kernel::KernelFacts,
) {
    let known = facts.symvers.module_names();
    for verdict in &mut report.modules {
        let Some(c) = candidates.iter().find(|c| c.module.name == verdict.module) else {
            continue;
        };
        let outside = c.module.info.depends().iter().any(|d| {
            state.is_loaded(d)
                && !known.contains(d)
                && !candidates.iter().any(|o| &o.module.name == d)
        });
        if !outside {
            continue;
        }
        let mut kept = Vec::new();
        for m in verdict.misfits.drain(..) {
            match m {
                Misfit::UnknownSymbol { symbol } => verdict.unverified.push(symbol),
                other => kept.push(other),
            }
        }
        verdict.misfits = kept;
        verdict.fits = verdict.misfits.is_empty();
    }
}

/// Writes the plain (decompressed) module files and the control files of
/// the plan's modules into `dir`; returns the record of them.
fn stage_modules(
    plan: &LoadPlan,
    candidates: &[Candidate],
    persistent: bool,
    dir: &Path,
) -> Result<LoaderRecord, LoadError> {
    std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    let mut modules = Vec::new();
    for step in plan.with_files() {
        let c = &candidates[step.candidate.expect("with_files")];
        let raw = std::fs::read(&c.path).map_err(io(c.path.display().to_string()))?;
        let plain = crate::ko::inflate(raw).map_err(|source| SourceError::Unreadable {
            path: c.path.display().to_string(),
            source,
        })?;
        let file = format!("{}.ko", c.module.name);
        std::fs::write(dir.join(&file), plain).map_err(io(file.clone()))?;
        modules.push(RecordedModule {
            name: c.module.name.clone(),
            file,
            source: c.source.clone(),
            version: c.module.info.get("version").map(str::to_string),
            srcversion: c.module.info.get("srcversion").map(str::to_string),
            build_id_note: c.module.build_id_note.as_deref().map(crate::ko::hex),
            depends: c.module.info.depends(),
            params: step.params.clone(),
            dependency: c.dependency,
        });
    }
    let record = LoaderRecord {
        release: plan.release.clone(),
        persistent,
        modules,
    };
    record
        .write_control_files(dir)
        .map_err(io(dir.display().to_string()))?;
    Ok(record)
}

/// Runs the load script once in a container with CAP_SYS_MODULE only.
/// Returns the modules it inserted; on a refusal, what the kernel said.
fn insert(
    engine: &dyn Engine,
    session: &Session,
    image: &str,
    stage: &Path,
) -> Result<Vec<String>, LoadError> {
    let name = session.name("load");
    // CAP_SYS_MODULE is all that init_module and delete_module need; the
    // default seccomp profile allows them with it. No --privileged.
    engine.create_container(&ContainerSpec {
        image: image.to_string(),
        name: name.clone(),
        labels: Vec::new(),
        session: Some(session.id().to_string()),
        cap_add: vec!["SYS_MODULE"],
        restart_always: false,
        script: LOAD_SCRIPT,
        args: vec!["once".to_string()],
    })?;
    engine.copy_into(&name, stage, LOADER_DIR)?;
    let done = engine.start_attached(&name)?;
    let events = Event::parse_all(&done.stdout);
    let mut inserted = Vec::new();
    let mut rolled_back = Vec::new();
    let mut stuck = Vec::new();
    let mut failure = None;
    for e in events {
        match e {
            Event::Loaded(m) => inserted.push(m),
            Event::Unloaded(m) => rolled_back.push(m),
            Event::Stuck(m) => stuck.push(m),
            Event::Failed { module, message } => failure = Some((module, message)),
            Event::Conflict(module) => return Err(LoadError::LoadRace { module }),
            _ => {}
        }
    }
    if let Some((module, message)) = failure {
        let kernel_log = kernel_log_about(engine, session, image, &module);
        return Err(LoadError::InsertFailed {
            module,
            message,
            kernel_log,
            rolled_back,
            stuck,
        });
    }
    if !done.success() {
        return Err(LoadError::LoaderSilent {
            detail: done.tail_text(),
        });
    }
    Ok(inserted)
}

/// The kernel's log lines that name `module` (the last few). Reading the
/// log takes CAP_SYSLOG; without it there is nothing to add.
fn kernel_log_about(
    engine: &dyn Engine,
    session: &Session,
    image: &str,
    module: &str,
) -> Vec<String> {
    let mut request = RunRequest::new(image, session.name("dmesg"), session.id(), DMESG_SCRIPT);
    request.cap_add = vec!["SYSLOG"];
    let Ok(done) = engine.run(&request) else {
        return Vec::new();
    };
    let lines: Vec<String> = done
        .stdout
        .lines()
        .filter(|l| l.contains(module))
        .map(str::to_string)
        .collect();
    lines[lines.len().saturating_sub(8)..].to_vec()
}

/// Leaves the loader container for this load, and removes the records it
/// makes redundant and those of modules a restart took away.
fn record_load(
    engine: &dyn Engine,
    session: &Session,
    opts: &LoadOptions,
    record: &LoaderRecord,
    stage: &Path,
    state: &KernelState,
    outcome: &mut LoadOutcome,
) -> Result<(), LoadError> {
    let (existing, skipped) = record::loaders(engine)?;
    outcome.notes.extend(skipped);
    let names: BTreeSet<&str> = record.modules.iter().map(|m| m.name.as_str()).collect();
    let now_loaded = |m: &str| state.is_loaded(m) || outcome.inserted.iter().any(|i| i == m);
    // Nothing new, and already recorded as well as asked: leave it be.
    let covered = existing.iter().any(|l| {
        (l.record.persistent || !opts.persist)
            && names.iter().all(|n| l.holds(n))
            && l.record.release == record.release
    });
    if outcome.inserted.is_empty() && covered {
        outcome
            .notes
            .push("already loaded and recorded: nothing changed".into());
        return Ok(());
    }
    let top = outcome
        .plan
        .with_files()
        .filter(|s| !s.dependency)
        .last()
        .or_else(|| outcome.plan.with_files().last())
        .map(|s| s.module.clone())
        .unwrap_or_default();
    let name = record::loader_name(&top, &existing, session.id());
    if opts.persist {
        outcome.notes.push(format!(
            "{name} runs with --restart=always: it loads the modules again each time the engine starts"
        ));
    }
    record::create_loader(engine, &name, &opts.detect.probe_image, record, stage)?;
    outcome.loader = Some(name);
    for l in &existing {
        let superseded = l
            .record
            .modules
            .iter()
            .all(|m| names.contains(m.name.as_str()))
            && (record.persistent || !l.record.persistent);
        let stale = !l.record.persistent && !l.record.modules.iter().any(|m| now_loaded(&m.name));
        if superseded || stale {
            engine.remove_container(&l.container)?;
            outcome.replaced.push(l.container.clone());
        }
    }
    Ok(())
}

/// What `dmb unload` did.
#[derive(Debug, Clone, Serialize)]
pub struct UnloadOutcome {
    /// In the order they go (users before what they use).
    pub order: Vec<String>,
    pub unloaded: Vec<String>,
    /// Loader containers removed, and changed (with what they keep).
    pub loaders_removed: Vec<String>,
    pub loaders_changed: Vec<String>,
    pub notes: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UnloadError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{module} is not loaded{}", if *recorded { " (a loader of dmb's has it: --persist removes that)" } else { "" })]
    NotLoaded { module: String, recorded: bool },
    #[error("{module} is in use by {}", by.join(", "))]
    InUse { module: String, by: Vec<String> },
    #[error("the kernel would not unload {module}: {message}")]
    RemoveFailed {
        module: String,
        message: String,
        unloaded: Vec<String>,
    },
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
}

pub struct UnloadOptions {
    pub names: Vec<String>,
    pub persist: bool,
    pub dry_run: bool,
    pub image: String,
}

/// Unloads `names`, users first, and with them the dependencies dmb loaded
/// for them that nothing else uses any more.
pub fn unload(
    engine: &dyn Engine,
    opts: &UnloadOptions,
    progress: &mut dyn Progress,
) -> Result<UnloadOutcome, UnloadError> {
    in_session(engine, progress, |session, progress| {
        unload_in_session(engine, session, opts, progress)
    })
}

fn unload_in_session(
    engine: &dyn Engine,
    session: &Session,
    opts: &UnloadOptions,
    progress: &mut dyn Progress,
) -> Result<UnloadOutcome, UnloadError> {
    let state = kernel_state(engine, session, &opts.image)?;
    let (loaders, mut notes) = record::loaders(engine)?;
    let names: Vec<String> = opts
        .names
        .iter()
        .map(|n| crate::ko::module_name(n))
        .collect();
    let plan = unload_plan(&names, &state, &loaders, opts.persist)?;
    notes.extend(plan.notes.iter().cloned());
    let mut outcome = UnloadOutcome {
        order: plan.order.clone(),
        unloaded: Vec::new(),
        loaders_removed: Vec::new(),
        loaders_changed: Vec::new(),
        notes,
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        return Ok(outcome);
    }
    if !plan.order.is_empty() {
        progress.step(&format!(
            "unloading {} (a container with CAP_SYS_MODULE only, no network)",
            plan.order.join(", ")
        ));
        // The script's account is read whatever its exit status.
        let name = session.name("unload");
        engine.create_container(&ContainerSpec {
            image: opts.image.clone(),
            name: name.clone(),
            labels: Vec::new(),
            session: Some(session.id().to_string()),
            cap_add: vec!["SYS_MODULE"],
            restart_always: false,
            script: UNLOAD_SCRIPT,
            args: plan.order.clone(),
        })?;
        let done = engine.start_attached(&name)?;
        for e in Event::parse_all(&done.stdout) {
            match e {
                Event::Unloaded(m) => outcome.unloaded.push(m),
                Event::Failed { module, message } => {
                    return Err(UnloadError::RemoveFailed {
                        module,
                        message,
                        unloaded: outcome.unloaded.clone(),
                    })
                }
                _ => {}
            }
        }
        if let Some(m) = plan.order.iter().find(|m| !outcome.unloaded.contains(m)) {
            return Err(UnloadError::RemoveFailed {
                module: m.clone(),
                message: format!(
                    "the unloading container gave no account of it: {}",
                    done.tail_text()
                ),
                unloaded: outcome.unloaded.clone(),
            });
        }
    }
    update_loaders(engine, session, opts, &loaders, &plan.gone, &mut outcome)?;
    Ok(outcome)
}

/// Which modules to unload, in which order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadPlan {
    pub order: Vec<String>,
    /// Modules to take out of dmb's records (unloaded, or, with
    /// `--persist`, asked for though not loaded).
    pub gone: Vec<String>,
    pub notes: Vec<String>,
}

/// Pure: the given modules plus the dependencies dmb loaded for them that
/// would be left unused, users before what they use; in-use modules refused.
pub fn unload_plan(
    names: &[String],
    state: &KernelState,
    loaders: &[Loader],
    persist: bool,
) -> Result<UnloadPlan, UnloadError> {
    let mut notes = Vec::new();
    let mut set: Vec<String> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for n in names {
        let recorded = loaders.iter().any(|l| l.holds(n));
        if !state.is_loaded(n) {
            if persist && recorded {
                notes.push(format!("{n} is not loaded; removing it from the loaders"));
                gone.push(n.clone());
                continue;
            }
            return Err(UnloadError::NotLoaded {
                module: n.clone(),
                recorded,
            });
        }
        if !set.contains(n) {
            set.push(n.clone());
        }
    }
    for n in &set {
        let m = &state.modules[n];
        let users: Vec<String> = m
            .users
            .iter()
            .filter(|u| !set.contains(u))
            .cloned()
            .collect();
        if !users.is_empty() {
            return Err(UnloadError::InUse {
                module: n.clone(),
                by: users,
            });
        }
        let module_users = m.users.len() as u64;
        if let Some(refs) = m.refcount {
            if refs > module_users {
                return Err(UnloadError::InUse {
                    module: n.clone(),
                    by: vec![format!(
                        "{} reference(s) that are not modules (open files, sockets, mounts or devices)",
                        refs - module_users
                    )],
                });
            }
        } else {
            return Err(UnloadError::InUse {
                module: n.clone(),
                by: vec!["the kernel (it cannot unload modules: no CONFIG_MODULE_UNLOAD)".into()],
            });
        }
    }
    // Dependencies dmb loaded as such, unused once the set is gone.
    let dependency = |name: &str| {
        loaders
            .iter()
            .flat_map(|l| &l.record.modules)
            .any(|m| m.name == name && m.dependency)
    };
    loop {
        let extra: Vec<String> = set
            .iter()
            .flat_map(|n| {
                loaders
                    .iter()
                    .flat_map(|l| &l.record.modules)
                    .filter(move |m| &m.name == n)
                    .flat_map(|m| m.depends.clone())
            })
            .filter(|d| !set.contains(d) && dependency(d))
            .filter(|d| {
                state.modules.get(d).is_some_and(|m| {
                    m.users.iter().all(|u| set.contains(u))
                        && m.refcount == Some(m.users.len() as u64)
                })
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if extra.is_empty() {
            break;
        }
        set.extend(extra);
    }
    // Users first: a module goes once nothing in the set uses it.
    let mut order = Vec::new();
    let mut left = set.clone();
    while !left.is_empty() {
        let next = left
            .iter()
            .position(|n| {
                !left
                    .iter()
                    .any(|o| state.modules[n].users.iter().any(|u| u == o))
            })
            .unwrap_or(0);
        order.push(left.remove(next));
    }
    gone.extend(order.iter().cloned());
    Ok(UnloadPlan { order, gone, notes })
}

/// Takes unloaded modules out of the records. A kept loader keeps them
/// unless `--persist`: then it is removed, or replaced by one without them.
fn update_loaders(
    engine: &dyn Engine,
    session: &Session,
    opts: &UnloadOptions,
    loaders: &[Loader],
    gone: &[String],
    outcome: &mut UnloadOutcome,
) -> Result<(), UnloadError> {
    for (container, keep) in record::without(loaders, gone) {
        let loader = loaders
            .iter()
            .find(|l| l.container == container)
            .expect("from loaders");
        if loader.record.persistent && !opts.persist {
            outcome.notes.push(format!(
                "{container} still loads {} each time the engine starts (dmb unload --persist stops that)",
                loader.record.modules.iter().filter(|m| gone.contains(&m.name)).map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        if keep.is_empty() || keep.iter().all(|m| m.dependency) {
            engine.remove_container(&container)?;
            outcome.loaders_removed.push(container);
            continue;
        }
        // Labels cannot change: a new loader with the rest, its files
        // taken from the old one.
        let dir = tempfile::tempdir().map_err(|e| UnloadError::Io {
            what: "creating a temporary directory".into(),
            detail: e.to_string(),
        })?;
        engine.copy_files_out(&container, LOADER_DIR, dir.path())?;
        let record = LoaderRecord {
            release: loader.record.release.clone(),
            persistent: loader.record.persistent,
            modules: keep,
        };
        for m in &loader.record.modules {
            if gone.contains(&m.name) {
                let _ = std::fs::remove_file(dir.path().join(&m.file));
            }
        }
        record
            .write_control_files(dir.path())
            .map_err(|e| UnloadError::Io {
                what: dir.path().display().to_string(),
                detail: e.to_string(),
            })?;
        engine.remove_container(&container)?;
        let name = record::loader_name(
            &record.modules.last().expect("not empty").name,
            &[],
            session.id(),
        );
        record::create_loader(engine, &name, &opts.image, &record, dir.path())?;
        outcome
            .loaders_changed
            .push(format!("{container} → {name}"));
    }
    Ok(())
}

/// One module of `dmb status`.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleStatus {
    pub name: String,
    pub loaded: bool,
    /// Whether the loaded module is the recorded build (`None`: cannot tell).
    pub same_build: Option<bool>,
    pub version: Option<String>,
    pub srcversion: Option<String>,
    /// The build ID (hex), which tells builds apart where there is no srcversion.
    pub build_id: Option<String>,
    pub source: String,
    pub params: Vec<String>,
    pub dependency: bool,
    pub loader: String,
    pub persistent: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoaderStatus {
    pub container: String,
    pub persistent: bool,
    pub status: String,
    pub release: String,
    pub modules: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub release: String,
    pub modules: Vec<ModuleStatus>,
    pub loaders: Vec<LoaderStatus>,
    pub notes: Vec<String>,
}

/// What dmb loaded, and whether it is still there.
pub fn status(engine: &dyn Engine, image: &str) -> Result<Status, EngineError> {
    let session = Session::new();
    let state = kernel_state(engine, &session, image);
    session.cleanup(engine, &mut |_| {});
    let state = state?;
    let (loaders, notes) = record::loaders(engine)?;
    Ok(status_of(&state, &loaders, notes))
}

/// Pure: the records joined with what is loaded.
pub fn status_of(state: &KernelState, loaders: &[Loader], mut notes: Vec<String>) -> Status {
    for l in loaders {
        let missing: Vec<&str> = l
            .record
            .modules
            .iter()
            .filter(|m| !state.is_loaded(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        if missing.is_empty() {
            continue;
        }
        notes.push(if l.record.persistent {
            format!(
                "{} is {} but {} not loaded: `docker logs {}` says why (a kernel other than {}?)",
                l.container,
                l.status,
                missing.join(", "),
                l.container,
                l.record.release
            )
        } else {
            format!(
                "{} not loaded any more (an engine restart?); {} was a record only, and the next dmb load removes it",
                missing.join(", "),
                l.container
            )
        });
    }
    let mut modules = Vec::new();
    for l in loaders {
        for m in &l.record.modules {
            let loaded = state.modules.get(&m.name);
            let same_build = loaded.and_then(|lm| {
                match (
                    &lm.build_id_note,
                    &m.build_id_note,
                    &lm.srcversion,
                    &m.srcversion,
                ) {
                    (Some(a), Some(b), _, _) => Some(a == b),
                    (_, _, Some(a), Some(b)) => Some(a == b),
                    _ => None,
                }
            });
            modules.push(ModuleStatus {
                name: m.name.clone(),
                loaded: loaded.is_some(),
                same_build,
                version: m.version.clone(),
                srcversion: m.srcversion.clone(),
                build_id: m.build_id_note.as_deref().and_then(note_descriptor),
                source: m.source.clone(),
                params: m.params.clone(),
                dependency: m.dependency,
                loader: l.container.clone(),
                persistent: l.record.persistent,
            });
        }
    }
    let loaders = loaders
        .iter()
        .map(|l| LoaderStatus {
            container: l.container.clone(),
            persistent: l.record.persistent,
            status: l.status.clone(),
            release: l.record.release.clone(),
            modules: l.record.modules.iter().map(|m| m.name.clone()).collect(),
        })
        .collect();
    Status {
        release: state.release.clone(),
        modules,
        loaders,
        notes,
    }
}

/// The descriptor of a GNU build-ID note given in hex (the note's 12-byte
/// header and its 4-byte name "GNU\0" come first).
fn note_descriptor(note_hex: &str) -> Option<String> {
    note_hex
        .get(32..)
        .filter(|d| !d.is_empty() && note_hex.get(24..32) == Some("474e5500"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
