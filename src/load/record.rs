//! Loader containers: what dmb loaded, kept in the engine.
//!
//! Every `dmb load` that inserts something leaves one container holding
//! the module files and the order to load them in, labelled with a JSON
//! [`LoaderRecord`]. With `--persist` it runs with `--restart=always`, so
//! the engine inserts the modules again each time it starts (a Docker
//! Desktop restart reboots the VM, and loaded modules are gone); without,
//! it is only created, never started: the record `dmb status` and `dmb
//! unload` read. The records live in the engine because the VM's root
//! filesystem does not survive a restart and the engine's storage does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::LoadOutcome;
use crate::detect::LoadedModules;
use crate::engine::{ContainerInfo, ContainerSpec, Engine, EngineError, Session};
use crate::scripts;

/// The label that marks a loader container; its value is the record.
pub const LOADER_LABEL: &str = "dmb.loader";
/// Where a loader container keeps its modules and their list.
pub const LOADER_DIR: &str = "/dmb";

/// One module a loader loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedModule {
    pub name: String,
    /// Its file in the loader's `/dmb`.
    pub file: String,
    /// Where it came from (`image kernel-module`, `file ./x.ko`, …).
    pub source: String,
    pub version: Option<String>,
    pub srcversion: Option<String>,
    /// The whole build-ID note in hex, as `/sys/module/*/notes` shows it.
    pub build_id_note: Option<String>,
    pub depends: Vec<String>,
    pub params: Vec<String>,
    /// Loaded because another module needs it, not asked for.
    pub dependency: bool,
}

/// The label's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderRecord {
    /// The kernel release the modules were built for and loaded into.
    pub release: String,
    pub persistent: bool,
    /// In load order.
    pub modules: Vec<RecordedModule>,
}

/// A loader container found in the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loader {
    pub container: String,
    /// `created` (a record only), `running` (a kept loader), `exited`, …
    pub status: String,
    pub restart_policy: String,
    pub record: LoaderRecord,
}

impl Loader {
    pub fn holds(&self, module: &str) -> bool {
        self.record.modules.iter().any(|m| m.name == module)
    }
}

impl LoaderRecord {
    /// `/dmb/load.list` for [`scripts::LOAD`].
    pub fn load_list(&self) -> String {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        self.modules
            .iter()
            .map(|m| {
                format!(
                    "{}\t{}\t{}\t{}\n",
                    m.name,
                    m.file,
                    dash(&m.build_id_note),
                    dash(&m.srcversion)
                )
            })
            .collect()
    }

    /// Writes `load.list`, `release` and the `.params` files into `dir`
    /// (the module files are already there).
    pub fn write_control_files(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("load.list"), self.load_list())?;
        std::fs::write(dir.join("release"), format!("{}\n", self.release))?;
        for m in &self.modules {
            let path = dir.join(format!("{}.params", m.name));
            if m.params.is_empty() {
                let _ = std::fs::remove_file(&path);
            } else {
                std::fs::write(path, m.params.join("\n") + "\n")?;
            }
        }
        Ok(())
    }
}

/// Every loader container in the engine. A container whose label does not
/// parse is reported in `skipped`, not an error: it is not dmb's to judge.
pub fn loaders<E: ?Sized + Engine>(engine: &E) -> Result<(Vec<Loader>, Vec<String>), EngineError> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for ContainerInfo {
        name,
        status,
        restart_policy,
        labels,
        ..
    } in engine.containers_with_label(LOADER_LABEL)?
    {
        match serde_json::from_str::<LoaderRecord>(labels.get(LOADER_LABEL).map_or("", |v| v)) {
            Ok(record) => found.push(Loader {
                container: name,
                status,
                restart_policy,
                record,
            }),
            Err(e) => skipped.push(format!(
                "{name}: its {LOADER_LABEL} label does not parse: {e}"
            )),
        }
    }
    found.sort_by(|a, b| a.container.cmp(&b.container));
    Ok((found, skipped))
}

/// A container name for a new loader of `top` not taken by `existing`.
pub fn loader_name(top: &str, existing: &[Loader], session_id: &str) -> String {
    let base = format!("dmb-loader-{top}");
    if existing.iter().any(|l| l.container == base) {
        format!("{base}-{session_id}")
    } else {
        base
    }
}

/// Creates a loader from `dir` (module files and control files), and for
/// a persistent one starts it. The container is not part of any session:
/// it outlives the run.
pub fn create_loader<E: ?Sized + Engine>(
    engine: &E,
    name: &str,
    image: &str,
    record: &LoaderRecord,
    dir: &Path,
) -> Result<(), EngineError> {
    let label = serde_json::to_string(record).expect("a record serialises");
    engine.create(&ContainerSpec {
        image: image.to_string(),
        name: name.to_string(),
        labels: vec![(LOADER_LABEL.to_string(), label)],
        cap_add: vec!["SYS_MODULE"],
        restart_always: record.persistent,
        script: Some((scripts::LOAD, vec!["boot".to_string()])),
    })?;
    let filled = engine.copy_into(name, dir, LOADER_DIR).and_then(|()| {
        if record.persistent {
            engine.start(name)
        } else {
            Ok(())
        }
    });
    if filled.is_err() {
        let _ = engine.remove_container(name);
    }
    filled
}

/// Which modules each loader keeps after `removed` are taken out; loaders
/// left with nothing map to an empty list.
pub fn without(loaders: &[Loader], removed: &[String]) -> BTreeMap<String, Vec<RecordedModule>> {
    loaders
        .iter()
        .filter(|l| removed.iter().any(|r| l.holds(r)))
        .map(|l| {
            let keep = l
                .record
                .modules
                .iter()
                .filter(|m| !removed.contains(&m.name))
                .cloned()
                .collect();
            (l.container.clone(), keep)
        })
        .collect()
}

/// Leaves the loader container for this load (`outcome.loader`), and
/// removes the records it makes redundant and those of modules a restart
/// took away (`outcome.replaced`).
pub fn record_load<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    record: &LoaderRecord,
    stage: &Path,
    loaded: &LoadedModules,
    outcome: &mut LoadOutcome,
) -> Result<(), EngineError> {
    let engine = session.engine();
    let (existing, skipped) = loaders(engine)?;
    outcome.notes.extend(skipped);
    let names: BTreeSet<&str> = record.modules.iter().map(|m| m.name.as_str()).collect();
    let now_loaded = |m: &str| loaded.is_loaded(m) || outcome.inserted.iter().any(|i| i == m);
    // Nothing new, and already recorded as well as asked: leave it be.
    let covered = existing.iter().any(|l| {
        (l.record.persistent || !record.persistent)
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
        .filter(|(s, _)| !s.dependency)
        .last()
        .or_else(|| outcome.plan.with_files().last())
        .map(|(s, _)| s.module.clone())
        .unwrap_or_default();
    let name = loader_name(&top, &existing, session.id());
    if record.persistent {
        outcome.notes.push(format!(
            "{name} runs with --restart=always: it loads the modules again each time the engine starts"
        ));
    }
    create_loader(engine, &name, image, record, stage)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, params: &[&str]) -> RecordedModule {
        RecordedModule {
            name: name.into(),
            file: format!("{name}.ko"),
            source: "file x".into(),
            version: None,
            srcversion: Some("ABC".into()),
            build_id_note: None,
            depends: vec![],
            params: params.iter().map(|p| p.to_string()).collect(),
            dependency: false,
        }
    }

    #[test]
    fn the_control_files_say_what_the_script_reads() {
        let record = LoaderRecord {
            release: "6.1.0-56-amd64".into(),
            persistent: true,
            modules: vec![module("dmb_provider", &["answer=7"]), module("hello", &[])],
        };
        assert_eq!(
            record.load_list(),
            "dmb_provider\tdmb_provider.ko\t-\tABC\nhello\thello.ko\t-\tABC\n"
        );
        let dir = tempfile::tempdir().unwrap();
        record.write_control_files(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dmb_provider.params")).unwrap(),
            "answer=7\n"
        );
        assert!(!dir.path().join("hello.params").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("release")).unwrap(),
            "6.1.0-56-amd64\n"
        );
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<LoaderRecord>(&json).unwrap(), record);
    }

    #[test]
    fn names_and_removal() {
        let l = Loader {
            container: "dmb-loader-hello".into(),
            status: "created".into(),
            restart_policy: "no".into(),
            record: LoaderRecord {
                release: "r".into(),
                persistent: false,
                modules: vec![module("a", &[]), module("hello", &[])],
            },
        };
        assert_eq!(
            loader_name("hello", std::slice::from_ref(&l), "s1"),
            "dmb-loader-hello-s1"
        );
        assert_eq!(loader_name("other", &[], "s1"), "dmb-loader-other");
        let left = without(std::slice::from_ref(&l), &["hello".to_string()]);
        assert_eq!(left["dmb-loader-hello"].len(), 1);
        assert!(without(&[l], &["zzz".to_string()]).is_empty());
    }
}
