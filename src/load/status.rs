//! `dmb status`: dmb's loader records joined with what the kernel has
//! loaded.

use serde::Serialize;

use super::record::{self, Loader};
use crate::detect::loaded::{loaded_modules, same_build};
use crate::detect::LoadedModules;
use crate::engine::{Engine, Session};

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
pub fn status<E: ?Sized + Engine>(
    engine: &E,
    image: &crate::detect::probe_image::ProbeImage,
) -> Result<Status, crate::Error> {
    let session = Session::new(engine);
    let image = image.settle(&session)?.image;
    let loaded = loaded_modules(&session, &image)?;
    let (loaders, notes) = record::loaders(engine)?;
    Ok(status_of(&loaded, &loaders, notes))
}

/// Pure: the records joined with what is loaded.
pub fn status_of(loaded: &LoadedModules, loaders: &[Loader], mut notes: Vec<String>) -> Status {
    for l in loaders {
        let missing: Vec<&str> = l
            .record
            .modules
            .iter()
            .filter(|m| !loaded.is_loaded(&m.name))
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
            let now = loaded.modules.get(&m.name);
            modules.push(ModuleStatus {
                name: m.name.clone(),
                loaded: now.is_some(),
                same_build: now.and_then(|lm| {
                    same_build(
                        (lm.build_id_note.as_deref(), m.build_id_note.as_deref()),
                        (lm.srcversion.as_deref(), m.srcversion.as_deref()),
                    )
                }),
                version: m.version.clone(),
                srcversion: m.srcversion.clone(),
                // Notes are recorded as the VM shows them: in its byte order,
                // little-endian on every architecture dmb loads into.
                build_id: m
                    .build_id_note
                    .as_deref()
                    .and_then(crate::ko::unhex)
                    .and_then(|note| crate::ko::build_id_of_note(&note, true)),
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
        release: loaded.release.clone(),
        modules,
        loaders,
        notes,
    }
}
