//! Unload planning and status on synthetic kernels and records; the real
//! thing runs against the desktop-sim in `tests/load.rs`.

use super::record::{Loader, LoaderRecord, RecordedModule};
use super::status::status_of;
use super::unload::UnloadError;
use super::unload_plan::unload_plan;
use crate::detect::loaded::fixture::probe_output;
use crate::detect::LoadedModules;

fn loaded() -> LoadedModules {
    LoadedModules::parse(&probe_output(
        "6.1.0-56-amd64",
        "dmb_consumer 16384 0 - Live 0x0 (OE)
dmb_provider 16384 1 dmb_consumer, Live 0x0 (OE)
hello 16384 1 - Live 0x0 (OE)
other_user 16384 0 - Live 0x0
shared 16384 1 other_user, Live 0x0
",
        "dmb_consumer - 040000001400000003000000474e5500aa
dmb_provider - 040000001400000003000000474e5500bb
",
    ))
}

fn recorded(name: &str, depends: &[&str], dependency: bool, note: &str) -> RecordedModule {
    RecordedModule {
        name: name.into(),
        file: format!("{name}.ko"),
        source: "file x".into(),
        version: None,
        srcversion: None,
        build_id_note: Some(note.into()),
        depends: depends.iter().map(|d| d.to_string()).collect(),
        params: vec![],
        dependency,
    }
}

fn loader(persistent: bool, modules: Vec<RecordedModule>) -> Loader {
    Loader {
        container: "dmb-loader-x".into(),
        status: if persistent { "running" } else { "created" }.into(),
        restart_policy: if persistent { "always" } else { "no" }.into(),
        record: LoaderRecord {
            release: "6.1.0-56-amd64".into(),
            persistent,
            modules,
        },
    }
}

fn pair(provider_is_dependency: bool) -> Vec<Loader> {
    vec![loader(
        false,
        vec![
            recorded(
                "dmb_provider",
                &[],
                provider_is_dependency,
                "040000001400000003000000474e5500bb",
            ),
            recorded(
                "dmb_consumer",
                &["dmb_provider", "shared"],
                false,
                "040000001400000003000000474e5500aa",
            ),
        ],
    )]
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_user_goes_first_and_takes_the_dependency_dmb_loaded_for_it() {
    let state = loaded();
    let p = unload_plan(&names(&["dmb_consumer"]), &state, &pair(true), false).unwrap();
    assert_eq!(p.order, ["dmb_consumer", "dmb_provider"]);
    // A module that was asked for stays unless named.
    let p = unload_plan(&names(&["dmb_consumer"]), &state, &pair(false), false).unwrap();
    assert_eq!(p.order, ["dmb_consumer"]);
    // Named in any order, they go users first.
    let p = unload_plan(
        &names(&["dmb_provider", "dmb_consumer"]),
        &state,
        &pair(false),
        false,
    )
    .unwrap();
    assert_eq!(p.order, ["dmb_consumer", "dmb_provider"]);
}

#[test]
fn modules_in_use_are_refused_with_what_uses_them() {
    let state = loaded();
    match unload_plan(&names(&["dmb_provider"]), &state, &pair(false), false) {
        Err(UnloadError::InUse { module, by }) => {
            assert_eq!(
                (module.as_str(), by),
                ("dmb_provider", names(&["dmb_consumer"]))
            )
        }
        other => panic!("{other:?}"),
    }
    match unload_plan(&names(&["hello"]), &state, &[], false) {
        Err(UnloadError::InUse { by, .. }) => assert!(by[0].contains("1 reference(s)"), "{by:?}"),
        other => panic!("{other:?}"),
    }
    // A kernel that cannot unload at all.
    let state = LoadedModules::parse(&probe_output("r", "m 1 - - Live 0x0\n", ""));
    assert!(matches!(
        unload_plan(&names(&["m"]), &state, &[], false),
        Err(UnloadError::InUse { .. })
    ));
}

#[test]
fn a_module_not_loaded_is_an_error_unless_persist_takes_it_off_a_loader() {
    let state = LoadedModules::parse(&probe_output("r", "", ""));
    match unload_plan(&names(&["dmb_consumer"]), &state, &pair(true), false) {
        Err(UnloadError::NotLoaded { recorded, .. }) => assert!(recorded),
        other => panic!("{other:?}"),
    }
    let p = unload_plan(&names(&["dmb_consumer"]), &state, &pair(true), true).unwrap();
    assert!(p.order.is_empty());
    assert_eq!(p.gone, ["dmb_consumer"]);
}

#[test]
fn status_joins_records_with_what_is_loaded() {
    let state = loaded();
    let mut loaders = pair(true);
    loaders[0].record.modules.push(recorded(
        "gone_after_restart",
        &[],
        false,
        "040000001400000003000000474e5500cc",
    ));
    loaders[0].record.modules[1].build_id_note = Some("040000001400000003000000474e5500ff".into());
    let s = status_of(&state, &loaders, vec![]);
    assert_eq!(s.release, "6.1.0-56-amd64");
    let by_name = |n: &str| s.modules.iter().find(|m| m.name == n).unwrap();
    assert_eq!(
        (
            by_name("dmb_provider").loaded,
            by_name("dmb_provider").same_build
        ),
        (true, Some(true))
    );
    assert_eq!(by_name("dmb_consumer").same_build, Some(false));
    assert!(!by_name("gone_after_restart").loaded);
    assert_eq!(by_name("dmb_provider").build_id.as_deref(), Some("bb"));
    assert_eq!(s.loaders[0].modules.len(), 3);
    assert!(
        s.notes[0].starts_with("gone_after_restart not loaded any more"),
        "{:?}",
        s.notes
    );
    loaders[0].record.persistent = true;
    let s = status_of(&state, &loaders, vec![]);
    assert!(
        s.notes[0].contains("`docker logs dmb-loader-x` says why"),
        "{:?}",
        s.notes
    );
}

#[test]
fn build_id_descriptors_come_from_gnu_notes_only() {
    let note_descriptor =
        |hex: &str| crate::ko::unhex(hex).and_then(|note| crate::ko::build_id_of_note(&note, true));
    assert_eq!(
        note_descriptor("040000000400000003000000474e5500aabbccdd").as_deref(),
        Some("aabbccdd")
    );
    assert_eq!(note_descriptor("0400000004000000030000005858585800"), None);
    assert_eq!(note_descriptor("04"), None);
}
