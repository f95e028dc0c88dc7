//! `dmb unload`: the modules go users first, in one container with
//! CAP_SYS_MODULE only, together with the dependencies dmb loaded for them
//! that nothing uses any more; then the loader records are brought in line.

use serde::Serialize;

use super::events::Event;
use super::record::{self, Loader, LoaderRecord, LOADER_DIR};
use super::unload_plan::unload_plan;
use crate::detect::loaded::loaded_modules;
use crate::engine::{Engine, Session};
use crate::progress::Progress;
use crate::scripts;

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
    /// The small image (busybox) that reads the state and unloads.
    pub image: crate::detect::probe_image::ProbeImage,
    /// How long to wait for another run that holds the VM's module lock.
    pub wait: std::time::Duration,
}

/// Unloads `names`, users first, and with them the dependencies dmb loaded
/// for them that nothing else uses any more.
pub fn unload<E: ?Sized + Engine>(
    engine: &E,
    opts: &UnloadOptions,
    progress: &mut dyn Progress,
) -> Result<UnloadOutcome, crate::Error> {
    let session = Session::new(engine);
    let image = opts.image.settle(&session)?.image;
    let lock = if opts.dry_run {
        None
    } else {
        Some(super::lock::acquire(
            &session, &image, "unload", opts.wait, progress,
        )?)
    };
    let loaded = loaded_modules(&session, &image)?;
    let (loaders, mut notes) = record::loaders(engine)?;
    notes.extend(lock.iter().flat_map(|l| l.notes.iter().cloned()));
    let names: Vec<String> = opts
        .names
        .iter()
        .map(|n| crate::ko::module_name(n))
        .collect();
    let plan = unload_plan(&names, &loaded, &loaders, opts.persist)?;
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
    // Not cut short by a stop signal: removing takes a second, and a cut
    // would leave loaders that reload what is gone (the caller exits with
    // the signal's status afterwards).
    crate::interrupt::deferred(|| -> Result<(), crate::Error> {
        if !plan.order.is_empty() {
            progress.step(&format!(
                "unloading {} (a container with CAP_SYS_MODULE only, no network)",
                plan.order.join(", ")
            ));
            outcome.unloaded = remove(&session, &image, &plan.order)?;
        }
        update_loaders(&session, opts, &image, &loaders, &plan.gone, &mut outcome)?;
        if crate::interrupt::pending() {
            outcome.notes.push("a stop signal came while unloading: the unload was finished first, so that nothing is half-done".into());
        }
        Ok(())
    })?;
    Ok(outcome)
}

/// Runs the unload script over `order`; the modules it removed.
pub(super) fn remove<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    order: &[String],
) -> Result<Vec<String>, crate::Error> {
    let engine = session.engine();
    // The script's account is read whatever its exit status.
    let mut spec = session.container(image, "unload", scripts::UNLOAD);
    spec.cap_add = vec!["SYS_MODULE"];
    spec.script = Some((scripts::UNLOAD, order.to_vec()));
    spec.labels
        .push((super::lock::UNDER_LOCK_LABEL.to_string(), "1".to_string()));
    engine.create(&spec)?;
    let done = engine.start_attached(&spec.name)?;
    let mut unloaded = Vec::new();
    for e in Event::parse_all(&done.stdout) {
        match e {
            Event::Unloaded(m) => unloaded.push(m),
            Event::Failed { module, message } => {
                return Err(UnloadError::RemoveFailed {
                    module,
                    message,
                    unloaded,
                }
                .into())
            }
            _ => {}
        }
    }
    if let Some(m) = order.iter().find(|m| !unloaded.contains(m)) {
        return Err(UnloadError::RemoveFailed {
            module: m.clone(),
            message: format!(
                "the unloading container gave no account of it: {}",
                done.tail_text()
            ),
            unloaded,
        }
        .into());
    }
    Ok(unloaded)
}

/// Takes unloaded modules out of the records. A kept loader keeps them
/// unless `--persist`: then it is removed, or replaced by one without them.
fn update_loaders<E: ?Sized + Engine>(
    session: &Session<E>,
    opts: &UnloadOptions,
    image: &str,
    loaders: &[Loader],
    gone: &[String],
    outcome: &mut UnloadOutcome,
) -> Result<(), crate::Error> {
    let engine = session.engine();
    let io = |what: String| {
        move |e: std::io::Error| UnloadError::Io {
            what,
            detail: e.to_string(),
        }
    };
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
        let dir = tempfile::tempdir().map_err(io("creating a temporary directory".into()))?;
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
            .map_err(io(dir.path().display().to_string()))?;
        engine.remove_container(&container)?;
        let name = record::loader_name(
            &record.modules.last().expect("not empty").name,
            &[],
            session.id(),
        );
        record::create_loader(engine, &name, image, &record, dir.path())?;
        outcome
            .loaders_changed
            .push(format!("{container} → {name}"));
    }
    Ok(())
}
