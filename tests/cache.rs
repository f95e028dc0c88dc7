//! `dmb cache` and `dmb cache prune`, run as a user runs them (no DMB_*
//! variable): what dmb keeps is listed with its size and purpose, a prune
//! removes only dmb's things, and only those it says it removes.
//!
//! The prunes run against an engine of the test's own
//! (`common::spare_engine`), whose images and volumes the test made: the
//! machine's engine holds the other tests' build environments.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::spare_engine::SpareEngine;
use common::*;

fn user_dmb_at(host: Option<&str>, cache_home: &Path) -> Command {
    let mut cmd = user_dmb();
    cmd.env("XDG_CACHE_HOME", cache_home);
    match host {
        Some(h) => cmd.env("DOCKER_HOST", h),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    cmd
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn names(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn write(path: &Path, bytes: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, vec![b'x'; bytes]).unwrap();
}

#[test]
fn a_prune_removes_only_dmbs_cheap_caches_and_all_removes_the_rest() {
    let engine = SpareEngine::start();
    let host = Some(engine.host.as_str());
    // dmb's: a build environment, a prepared tree, a synthesized kernel,
    // kept objects (one in use by a container).
    engine.import("dmb-buildenv:0123abcd", &["LABEL dmb.buildenv=0123abcd"]);
    engine.import("dmb-kernel-prepared:4567", &["LABEL dmb.buildenv=4567"]);
    engine.import(
        "dmb-synth/kernel:6.1.0-test",
        &[
            "LABEL dmb.synthesized=6.1.0-test",
            "LABEL dmb.buildenv=89ab",
        ],
    );
    for v in ["dmb-module-aaaa", "dmb-module-used"] {
        engine.docker_ok(&["volume", "create", "--label", "dmb.build-cache=module", v]);
    }
    // The user's: an image built FROM a build environment (it inherits the
    // label), an image and a volume of their own.
    engine.import("mine/app:1", &["LABEL dmb.buildenv=0123abcd"]);
    engine.import("mine/db:1", &[]);
    engine.docker_ok(&["volume", "create", "pgdata"]);
    engine.docker_ok(&[
        "create",
        "--name",
        "user-of-objects",
        "-v",
        "dmb-module-used:/x",
        "mine/db:1",
        "/none",
    ]);
    // Host files: facts of the build environment (still there), of an
    // image that is gone, and a download.
    let cache_home = tempfile::tempdir().unwrap();
    let dir = cache_home.path().join("dmb");
    let env_id = engine.docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "dmb-buildenv:0123abcd",
    ]);
    let env_hex = env_id.trim().trim_start_matches("sha256:").to_string();
    write(&dir.join(format!("kernel-facts/{env_hex}.tar")), 100);
    write(
        &dir.join(format!("kernel-facts/{}.tar", "e".repeat(64))),
        200,
    );
    write(&dir.join("downloads/sha256/").join("f".repeat(64)), 3000);

    let listed = json(
        &user_dmb_at(host, cache_home.path())
            .args(["cache", "--json"])
            .output()
            .unwrap(),
    );
    let all = names(&listed, "entries");
    for want in [
        "dmb-buildenv:0123abcd",
        "dmb-kernel-prepared:4567",
        "dmb-synth/kernel:6.1.0-test",
        "dmb-module-aaaa",
        "dmb-module-used",
    ] {
        assert!(all.iter().any(|n| n == want), "{want} not in {all:?}");
    }
    assert!(
        !all.iter().any(|n| n.contains("mine/") || n == "pgdata"),
        "{all:?}"
    );
    let entry = |name: &str| {
        listed["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no {name}: {listed}"))
            .clone()
    };
    assert_eq!(entry("dmb-buildenv:")["kind"], "build-environment");
    assert_eq!(entry("dmb-buildenv:")["pruned_by"], "prune");
    assert_eq!(entry("dmb-synth/kernel")["pruned_by"], "prune --all");
    assert_eq!(entry("dmb-module-used")["in_use"], true);
    assert!(entry("dmb-buildenv:")["for"]
        .as_str()
        .unwrap()
        .contains("headers"));
    let downloads = entry(&dir.join("downloads").display().to_string());
    assert_eq!(downloads["bytes"], 3000);
    let human = user_dmb_at(host, cache_home.path())
        .arg("cache")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(
        text.contains("build environment") && text.contains("total: "),
        "{text}"
    );
    assert!(text.contains("what each is for:"), "{text}");

    // --dry-run removes nothing.
    let images = || {
        let mut v: Vec<String> = engine
            .docker_ok(&["image", "ls", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let images_before = images();
    let dry = json(
        &user_dmb_at(host, cache_home.path())
            .args(["cache", "prune", "--dry-run", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(dry["dry_run"], true);
    assert!(names(&dry, "removed").contains(&"dmb-buildenv:0123abcd".to_string()));
    assert_eq!(images(), images_before);

    let pruned = json(
        &user_dmb_at(host, cache_home.path())
            .args(["cache", "prune", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(pruned["failed"], serde_json::json!([]), "{pruned}");
    assert!(names(&pruned, "in_use").contains(&"dmb-module-used".to_string()));
    let image_there = |r: &str| engine.docker(&["image", "inspect", r]).status.success();
    let volume_there = |v: &str| engine.docker(&["volume", "inspect", v]).status.success();
    assert!(!image_there("dmb-buildenv:0123abcd"));
    assert!(!image_there("dmb-kernel-prepared:4567"));
    assert!(image_there("dmb-synth/kernel:6.1.0-test"));
    assert!(image_there("mine/app:1") && image_there("mine/db:1"));
    assert!(!volume_there("dmb-module-aaaa"));
    assert!(volume_there("dmb-module-used") && volume_there("pgdata"));
    // The facts of the image that is gone went; the rest stayed.
    assert!(!dir
        .join(format!("kernel-facts/{}.tar", "e".repeat(64)))
        .exists());
    assert!(dir.join(format!("kernel-facts/{env_hex}.tar")).exists());
    assert!(dir.join("downloads/sha256/").join("f".repeat(64)).exists());
    assert!(
        pruned["bytes_after"].as_u64() < pruned["bytes_before"].as_u64(),
        "{pruned}"
    );

    let everything = user_dmb_at(host, cache_home.path())
        .args(["cache", "prune", "--all"])
        .output()
        .unwrap();
    assert!(everything.status.success(), "{}", stderr(&everything));
    assert!(!image_there("dmb-synth/kernel:6.1.0-test"));
    assert!(image_there("mine/app:1") && image_there("mine/db:1"));
    assert!(volume_there("dmb-module-used") && volume_there("pgdata"));
    assert!(!dir.join("downloads/sha256/").join("f".repeat(64)).exists());
    assert!(!dir.join(format!("kernel-facts/{env_hex}.tar")).exists());
    let text = String::from_utf8_lossy(&everything.stdout).into_owned();
    assert!(
        text.contains("removed synthesized kernel dmb-synth/kernel:6.1.0-test"),
        "{text}"
    );
    assert!(
        text.contains("kept module objects dmb-module-used: a container uses it"),
        "{text}"
    );
}

/// BuildKit's cache mounts of dmb's build script are dmb's; another
/// build's are not.
#[test]
fn buildkit_cache_mounts_of_dmbs_builds_are_listed_and_pruned() {
    let engine = SpareEngine::start();
    let host = engine.host.clone();
    // A shell image for the builds, carried over without a registry.
    let busybox = busybox();
    let save = Command::new("docker")
        .args(["save", &busybox])
        .output()
        .unwrap();
    assert!(save.status.success());
    let mut load = Command::new("docker")
        .args(["--host", &host, "load"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &save.stdout).unwrap();
    assert!(load.wait().unwrap().success());
    let build = |script_dir: &str, id: &str| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("build.sh"),
            "echo kept > /usr/src/module/obj\n",
        )
        .unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!(
                "FROM {busybox}\nCOPY build.sh {script_dir}/build.sh\n\
                 RUN --mount=type=cache,id={id},target=/usr/src/module /bin/sh {script_dir}/build.sh\n"
            ),
        )
        .unwrap();
        let out = Command::new("/usr/bin/docker")
            .env("DOCKER_BUILDKIT", "1")
            .args(["--host", &host, "build", "--network", "none", "-q"])
            .arg(ctx.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    build("/usr/local/dmb", "dmb-module-test");
    build("/opt/other", "someone-else");
    let cache_home = tempfile::tempdir().unwrap();
    let listed = json(
        &user_dmb_at(Some(&host), cache_home.path())
            .args(["cache", "--json"])
            .output()
            .unwrap(),
    );
    let mounts: Vec<&serde_json::Value> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "module-objects-buildkit")
        .collect();
    assert_eq!(mounts.len(), 1, "{listed}");
    assert_eq!(mounts[0]["ids"].as_array().unwrap().len(), 1, "{listed}");
    let mounts_in_engine = || {
        engine
            .docker_ok(&["system", "df", "-v", "--format", "{{json .BuildCache}}"])
            .matches("exec.cachemount")
            .count()
    };
    assert_eq!(mounts_in_engine(), 2);
    let pruned = user_dmb_at(Some(&host), cache_home.path())
        .args(["cache", "prune"])
        .output()
        .unwrap();
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    assert_eq!(
        mounts_in_engine(),
        1,
        "the other build's cache mount must stay"
    );
}

/// On the machine's engine, after a build: its build environment and its
/// kept objects are listed; a dry prune changes nothing.
#[test]
fn what_a_build_keeps_is_listed() {
    let kit = kit();
    let _engine = engine_lock();
    let out = dmb(LEGACY)
        .args([
            "build",
            "examples/hello",
            "-q",
            "--module-ref",
            "dmb-test/cache-hello",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cache_home = tempfile::tempdir().unwrap();
    let listed = json(
        &user_dmb_at(None, cache_home.path())
            .args(["cache", "--json"])
            .output()
            .unwrap(),
    );
    let entries = listed["entries"].as_array().unwrap();
    let buildenvs: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["kind"] == "build-environment")
        .collect();
    assert!(!buildenvs.is_empty(), "{listed}");
    // What a build environment alone frees, and what it shares with the
    // kernel trees built on it: one of the two.
    assert!(buildenvs
        .iter()
        .all(|e| { e["bytes"].as_u64().unwrap() + e["shared_bytes"].as_u64().unwrap() > 0 }));
    assert!(
        entries.iter().any(|e| e["kind"] == "module-objects"
            && e["name"].as_str().unwrap().starts_with("dmb-module-")),
        "{listed}"
    );
    // Nothing of the kit's (the user's images, as far as dmb knows).
    assert!(!entries.iter().any(|e| e["name"] == kit.kernel_ref.as_str()));
    let sorted = |args: &[&str]| {
        let mut v: Vec<String> = docker_ok(args).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let before = sorted(&["image", "ls", "-q", "--no-trunc"]);
    let volumes = sorted(&["volume", "ls", "-q"]);
    let dry = user_dmb_at(None, cache_home.path())
        .args(["cache", "prune", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(String::from_utf8_lossy(&dry.stdout)
        .contains("would remove build environment dmb-buildenv:"));
    assert_eq!(sorted(&["image", "ls", "-q", "--no-trunc"]), before);
    assert_eq!(sorted(&["volume", "ls", "-q"]), volumes);
    remove_image("dmb-test/cache-hello");
}
