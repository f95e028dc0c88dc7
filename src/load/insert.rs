//! Putting the planned modules into the kernel: stage the plain module
//! files and the control files, run the load script once in a container
//! with CAP_SYS_MODULE and nothing else, and on a refusal read what the
//! kernel's log says about it.

use std::path::Path;

use super::events::Event;
use super::plan::LoadPlan;
use super::record::{LoaderRecord, RecordedModule, LOADER_DIR};
use super::LoadError;
use crate::engine::{Engine, Session};
use crate::module_files::SourceError;
use crate::scripts;

/// How many of the kernel's log lines about a failed module are kept.
const KERNEL_LOG_LINES: usize = 8;

/// Writes the plain (decompressed) module files and the control files of
/// the plan's modules into `dir`; returns the record of them.
pub fn stage(plan: &LoadPlan, persistent: bool, dir: &Path) -> Result<LoaderRecord, crate::Error> {
    let io = |what: String| {
        move |e: std::io::Error| LoadError::Io {
            what,
            detail: e.to_string(),
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    let mut modules = Vec::new();
    for (step, file) in plan.with_files() {
        let raw = std::fs::read(&file.path).map_err(io(file.path.display().to_string()))?;
        let plain = crate::ko::inflate(raw).map_err(|source| SourceError::Unreadable {
            path: file.path.display().to_string(),
            source,
        })?;
        let m = &file.module;
        let name = format!("{}.ko", m.name);
        std::fs::write(dir.join(&name), plain).map_err(io(name.clone()))?;
        modules.push(RecordedModule {
            name: m.name.clone(),
            file: name,
            source: file.source.clone(),
            version: m.info.get("version").map(str::to_string),
            srcversion: m.info.get("srcversion").map(str::to_string),
            build_id_note: m.build_id_note.as_deref().map(crate::ko::hex),
            depends: m.info.depends(),
            params: step.params.clone(),
            dependency: step.dependency,
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

/// Runs the load script once over `stage` in a container with
/// CAP_SYS_MODULE only. Returns the modules it inserted; on a refusal,
/// what the kernel said.
pub fn insert<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    stage: &Path,
) -> Result<Vec<String>, crate::Error> {
    let engine = session.engine();
    // CAP_SYS_MODULE is all that init_module and delete_module need; the
    // default seccomp profile allows them with it. No --privileged.
    let mut spec = session.container(image, "load", scripts::LOAD);
    spec.cap_add = vec!["SYS_MODULE"];
    spec.script = Some((scripts::LOAD, vec!["once".to_string()]));
    spec.labels
        .push((super::lock::UNDER_LOCK_LABEL.to_string(), "1".to_string()));
    engine.create(&spec)?;
    engine.copy_into(&spec.name, stage, LOADER_DIR)?;
    let done = engine.start_attached(&spec.name)?;
    let mut inserted = Vec::new();
    let mut rolled_back = Vec::new();
    let mut stuck = Vec::new();
    let mut failure = None;
    for e in Event::parse_all(&done.stdout) {
        match e {
            Event::Loaded(m) => inserted.push(m),
            Event::Unloaded(m) => rolled_back.push(m),
            Event::Stuck(m) => stuck.push(m),
            Event::Failed { module, message } => failure = Some((module, message)),
            Event::Conflict(module) => return Err(LoadError::LoadRace { module }.into()),
            _ => {}
        }
    }
    if let Some((module, message)) = failure {
        let kernel_log = kernel_log_about(session, image, &module);
        return Err(LoadError::InsertFailed {
            module,
            message,
            kernel_log,
            rolled_back,
            stuck,
        }
        .into());
    }
    if !done.success() {
        return Err(LoadError::LoaderSilent {
            detail: done.tail_text(),
        }
        .into());
    }
    Ok(inserted)
}

/// The kernel's log lines that name `module` (the last few). Reading the
/// log takes CAP_SYSLOG; without it there is nothing to add.
fn kernel_log_about<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    module: &str,
) -> Vec<String> {
    let mut request = session.request(image, "dmesg", scripts::DMESG);
    request.cap_add = vec!["SYSLOG"];
    let Ok(done) = session.engine().run(&request) else {
        return Vec::new();
    };
    let lines: Vec<String> = done
        .stdout
        .lines()
        .filter(|l| l.contains(module))
        .map(str::to_string)
        .collect();
    crate::engine::process::last_lines(&lines, KERNEL_LOG_LINES)
}
