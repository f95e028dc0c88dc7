//! `dmb cache` and `dmb cache prune`: reads what dmb keeps from the engine
//! and the cache directory into an [`Inventory`], and removes what a prune
//! takes — only dmb's: images and volumes by dmb's labels, BuildKit cache
//! mounts of dmb's build script, files of dmb's cache directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::inventory::{Entry, HostFile, Inventory, Labelled, Place};
use crate::engine::{EngineError, Images, Storage};
use crate::module_build::dockerfile::BUILDENV_LABEL;
use crate::progress::Progress;
use crate::synth::SYNTHESIZED_LABEL;

/// Reads what dmb keeps.
pub fn read<E: ?Sized + Storage>(engine: &E) -> Result<Inventory, EngineError> {
    let usage = engine.disk_usage()?;
    let labelled = Labelled {
        made: engine
            .image_ids_with_label(BUILDENV_LABEL)?
            .into_iter()
            .collect(),
        synthesized: engine
            .image_ids_with_label(SYNTHESIZED_LABEL)?
            .into_iter()
            .collect(),
    };
    let dir = super::dir();
    let files = dir.as_deref().map(host_files).unwrap_or_default();
    Ok(Inventory::new(&usage, &labelled, dir, &files))
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PruneOutcome {
    pub dry_run: bool,
    pub all: bool,
    pub removed: Vec<Entry>,
    /// Left because a container uses them.
    pub in_use: Vec<Entry>,
    pub failed: Vec<Failure>,
    /// What dmb's caches took before and after (dry: the sizes of what
    /// would go).
    pub bytes_before: u64,
    pub bytes_after: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub name: String,
    pub error: String,
}

/// Removes what `dmb cache prune` (`all`: `--all`) takes.
pub fn prune<E: ?Sized + Storage + Images>(
    engine: &E,
    all: bool,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<PruneOutcome, EngineError> {
    let before = read(engine)?;
    let chosen: Vec<Entry> = before.to_prune(all).into_iter().cloned().collect();
    let in_use: Vec<Entry> = before
        .entries
        .iter()
        .filter(|e| e.in_use && (all || e.pruned_by == super::inventory::Pruning::Prune))
        .cloned()
        .collect();
    if dry_run {
        let going: u64 = chosen.iter().map(|e| e.bytes).sum();
        return Ok(PruneOutcome {
            dry_run,
            all,
            removed: chosen,
            in_use,
            failed: Vec::new(),
            bytes_before: before.total_bytes,
            bytes_after: before.total_bytes - going,
        });
    }
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for e in chosen {
        if crate::interrupt::requested() {
            return Err(EngineError::Interrupted);
        }
        progress.step(&format!("removing {} {}", e.kind.label(), e.name));
        match remove(engine, &e) {
            Ok(()) => removed.push(e),
            Err(error) => failed.push(Failure {
                name: e.name.clone(),
                error,
            }),
        }
    }
    let after = read(engine)?;
    Ok(PruneOutcome {
        dry_run,
        all,
        removed,
        in_use,
        failed,
        bytes_before: before.total_bytes,
        bytes_after: after.total_bytes,
    })
}

fn remove<E: ?Sized + Storage + Images>(engine: &E, e: &Entry) -> Result<(), String> {
    let engine_error = |err: EngineError| err.to_string();
    match &e.place {
        // By tag, so that a tag someone else gave the same image stays.
        Place::Image { id } => match e.kind {
            super::inventory::Kind::LeftoverLayers => engine.remove_image(id),
            _ => engine.remove_image(&e.name),
        }
        .map_err(engine_error),
        Place::Volume => engine.remove_volume(&e.name).map_err(engine_error),
        Place::BuildCache { ids } => engine.remove_build_cache(ids).map_err(engine_error),
        Place::Host { paths } => {
            for path in paths {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(format!("{}: {err}", path.display())),
                }
                remove_empty_parents(path);
            }
            Ok(())
        }
    }
}

/// Removes the directories a removed file leaves empty, up to the cache
/// directory itself (kept).
fn remove_empty_parents(file: &Path) {
    let Some(top) = super::dir() else { return };
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == top || !d.starts_with(&top) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Every regular file under the cache directory, with the directory it is
/// filed under (its first component). Links are not followed.
fn host_files(dir: &Path) -> Vec<HostFile> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<HostFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(root, &path, out);
        } else if kind.is_file() {
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let mut parts = rel.components();
            let top = parts
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(HostFile {
                top,
                name,
                bytes: entry.metadata().map(|m| m.len()).unwrap_or(0),
                path,
            });
        }
    }
}
