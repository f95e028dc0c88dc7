use std::collections::BTreeMap;

use super::*;
use crate::engine::storage::{BuildCacheUsage, ImageUsage, VolumeUsage};

fn image(id: &str, reference: Option<&str>, bytes: u64, containers: u64) -> ImageUsage {
    ImageUsage {
        id: id.into(),
        reference: reference.map(str::to_string),
        unique_bytes: bytes,
        shared_bytes: 0,
        containers,
    }
}

fn host(top: &str, name: &str, bytes: u64) -> HostFile {
    HostFile {
        top: top.into(),
        name: name.into(),
        path: PathBuf::from(format!("/c/{top}/{name}")),
        bytes,
    }
}

/// An engine with one of each kind dmb makes, an image of the user's
/// built FROM a build environment, and a user's volume.
fn inventory() -> Inventory {
    let usage = DiskUsage {
        images: vec![
            image("sha256:aa", Some("dmb-buildenv:k1"), 100, 0),
            image("sha256:bb", Some("dmb-kernel-prepared:k2"), 2000, 0),
            image(
                "sha256:cc",
                Some("dmb-synth/kernel:6.12.72-linuxkit"),
                300,
                0,
            ),
            image("sha256:dd", None, 7, 0),
            image("sha256:dd", None, 7, 0),
            image("sha256:ee", Some("mine/app:1"), 50, 0),
            image("sha256:ff", Some("dmb-buildenv:k3"), 10, 1),
            image("sha256:11", Some("dmb-kit/builder:bookworm"), 400, 0),
        ],
        volumes: vec![
            VolumeUsage {
                name: "dmb-module-1".into(),
                labels: BTreeMap::from([("dmb.build-cache".into(), "module".into())]),
                bytes: 5,
                links: 0,
            },
            VolumeUsage {
                name: "pgdata".into(),
                labels: BTreeMap::new(),
                bytes: 999,
                links: 0,
            },
        ],
        build_cache: vec![
            BuildCacheUsage {
                id: "m1".into(),
                kind: "exec.cachemount".into(),
                description:
                    "cached mount /usr/src/module from exec /bin/sh /usr/local/dmb/build.sh".into(),
                bytes: 3,
                in_use: false,
            },
            BuildCacheUsage {
                id: "other".into(),
                kind: "exec.cachemount".into(),
                description: "cached mount /root/.cache from exec go build".into(),
                bytes: 1000,
                in_use: false,
            },
        ],
    };
    let labelled = Labelled {
        made: [
            "sha256:aa",
            "sha256:bb",
            "sha256:dd",
            "sha256:ee",
            "sha256:ff",
        ]
        .map(String::from)
        .into(),
        synthesized: ["sha256:cc".to_string()].into(),
    };
    let files = [
        host("kernel-facts", "aa.tar", 1),
        host("kernel-facts", "gone.tar", 2),
        host("buildenv-trees", "k1.tar", 4),
        host("buildenv-trees", "k9.tar", 8),
        host("buildenv-facts", "x.tar", 16),
        host("downloads", "0123", 32),
        host("probe-image", "probe-image", 64),
    ];
    Inventory::new(&usage, &labelled, Some(PathBuf::from("/c")), &files)
}

fn find(inv: &Inventory, kind: Kind) -> Vec<&Entry> {
    inv.entries.iter().filter(|e| e.kind == kind).collect()
}

#[test]
fn only_what_dmb_made_is_listed() {
    let inv = inventory();
    let names: Vec<&str> = inv.entries.iter().map(|e| e.name.as_str()).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("mine/app") || n.contains("pgdata") || n.contains("dmb-kit")),
        "{names:?}"
    );
    assert_eq!(find(&inv, Kind::BuildEnvironment).len(), 2);
    assert_eq!(
        find(&inv, Kind::KernelTree)[0].name,
        "dmb-kernel-prepared:k2"
    );
    assert_eq!(find(&inv, Kind::SynthesizedKernel)[0].bytes, 300);
    // An untagged image is listed once, by its short ID.
    let leftovers = find(&inv, Kind::LeftoverLayers);
    assert_eq!(leftovers.len(), 1);
    assert_eq!(leftovers[0].name, "dd");
    assert_eq!(find(&inv, Kind::ModuleObjects)[0].name, "dmb-module-1");
    let mounts = find(&inv, Kind::ModuleObjectsBuildkit);
    assert_eq!(mounts[0].bytes, 3);
    assert_eq!(
        mounts[0].place,
        Place::BuildCache {
            ids: vec!["m1".into()]
        }
    );
    // BuildKit's whole cache is told apart: not dmb's alone.
    assert_eq!(inv.buildkit_cache_bytes, 1003);
    assert_eq!(
        inv.total_bytes,
        inv.entries.iter().map(|e| e.bytes).sum::<u64>()
    );
}

#[test]
fn host_files_of_images_that_are_gone_are_stale() {
    let inv = inventory();
    let facts = find(&inv, Kind::KernelFacts);
    let stale: Vec<_> = facts.iter().filter(|e| e.stale).collect();
    let live: Vec<_> = facts.iter().filter(|e| !e.stale).collect();
    assert_eq!(stale[0].bytes, 2);
    assert_eq!(stale[0].pruned_by, Pruning::Prune);
    assert_eq!(live[0].bytes, 1);
    assert_eq!(live[0].pruned_by, Pruning::All);
    // buildenv-trees are named by a build environment's key.
    let trees: Vec<_> = find(&inv, Kind::BuildEnvironmentFacts);
    assert!(trees.iter().any(|e| e.stale && e.bytes == 8));
    assert!(trees
        .iter()
        .any(|e| !e.stale && e.bytes == 4 && e.pruned_by == Pruning::All));
    assert!(trees
        .iter()
        .any(|e| e.bytes == 16 && e.pruned_by == Pruning::Prune));
}

#[test]
fn a_prune_keeps_what_is_slow_to_make_again_and_what_is_in_use() {
    let inv = inventory();
    let names = |v: Vec<&Entry>| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    let plain = names(inv.to_prune(false));
    assert!(plain.contains(&"dmb-buildenv:k1".to_string()));
    assert!(plain.contains(&"dmb-kernel-prepared:k2".to_string()));
    assert!(plain.contains(&"dmb-module-1".to_string()));
    assert!(!plain.iter().any(|n| n.starts_with("dmb-synth/kernel")));
    assert!(!plain
        .iter()
        .any(|n| n.contains("downloads") || n.contains("probe-image")));
    // In use by a container: never.
    assert!(!plain.contains(&"dmb-buildenv:k3".to_string()));
    // A child (the prepared tree) goes before the build environment.
    let tree = plain
        .iter()
        .position(|n| n == "dmb-kernel-prepared:k2")
        .unwrap();
    let env = plain.iter().position(|n| n == "dmb-buildenv:k1").unwrap();
    assert!(tree < env);

    let all = names(inv.to_prune(true));
    assert!(all.iter().any(|n| n.starts_with("dmb-synth/kernel")));
    assert!(all.iter().any(|n| n.contains("downloads")));
    assert!(!all.contains(&"dmb-buildenv:k3".to_string()));
    assert_eq!(all.len(), inv.entries.len() - 1);
}

#[test]
fn sizes_read_as_people_read_them() {
    assert_eq!(human(512), "512 B");
    assert_eq!(human(1536), "1.5 KiB");
    assert_eq!(human(143_600_000), "136.9 MiB");
}
