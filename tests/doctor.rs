//! `dmb doctor` as a user runs it (no DMB_* variable), against this
//! machine's engine and against an empty engine of the test's own. In the
//! desktop-sim, where everything works, `tests/sim.rs` runs it too.
//!
//! This machine's engine refuses privileged containers (its host withholds
//! CAP_SYS_RESOURCE, and `--privileged` asks for every capability). Doctor
//! never asks for one: it infers the refusal from the capabilities and says
//! what it means. dmb's tests never let a container enter this machine's
//! own mount namespace: doctor runs with `--no-vm-files` here.

mod common;

use std::process::Output;

use common::spare_engine::SpareEngine;
use common::*;

fn doctor(host: Option<&str>, extra: &[&str]) -> (Output, serde_json::Value) {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = user_dmb();
    cmd.env("XDG_CACHE_HOME", cache.path());
    match host {
        Some(h) => cmd.env("DOCKER_HOST", h),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    let out = cmd.args(["doctor", "--json"]).args(extra).output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    (out, report)
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[test]
fn on_this_machines_engine_doctor_says_privileged_containers_are_refused() {
    kit();
    let _engine = engine_lock();
    let before = EngineState::now();
    let (out, report) = doctor(None, &["--no-vm-files"]);
    before.assert_unchanged();
    let engine = check(&report, "engine");
    assert_eq!(engine["status"], "ok", "{report}");
    let server = docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(
        engine["summary"].as_str().unwrap().contains(server.trim()),
        "{engine}"
    );
    // The 28.x CLI first on PATH has no buildx: a warning with a fix.
    assert_eq!(check(&report, "builder")["status"], "warn");
    assert_eq!(check(&report, "probe-image")["status"], "ok");
    assert_eq!(check(&report, "pid-host")["status"], "ok");
    // Doctor says the engine would refuse a privileged container, and why,
    // without starting one; and what it means: nothing for dmb, which
    // never asks for one.
    let privileged = check(&report, "privileged");
    assert_eq!(privileged["status"], "ok", "{privileged}");
    let said = privileged["summary"].as_str().unwrap();
    assert!(
        said.contains("would refuse one") && said.contains("CAP_SYS_RESOURCE"),
        "{said}"
    );
    assert!(said.contains("dmb needs no privileged container"), "{said}");
    let meaning = privileged["detail"].as_str().unwrap();
    assert!(meaning.contains("--privileged` fails here"), "{meaning}");
    // Reading the VM's files needs less, which the engine has: inferred.
    let vm_files = check(&report, "vm-files");
    assert_eq!(vm_files["status"], "ok", "{vm_files}");
    assert!(
        vm_files["summary"]
            .as_str()
            .unwrap()
            .contains("not tried (--no-vm-files)"),
        "{vm_files}"
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        check(&report, "kernel")["summary"]
            .as_str()
            .unwrap()
            .starts_with(release.trim()),
        "{report}"
    );
    // No kernel image for the machine's own kernel, and no way to make one
    // without the VM's files: a build with defaults is blocked, and doctor
    // exits with its own code.
    let headers = check(&report, "headers");
    assert_eq!(headers["status"], "fail", "{headers}");
    assert_eq!(headers["blocks"], serde_json::json!(["build"]));
    assert!(headers["fix"].as_str().unwrap().contains("--kernel-ref"));
    assert_eq!(report["blocks_build"], true);
    assert_eq!(report["blocks_load"], false);
    assert_eq!(out.status.code(), Some(33), "{}", stderr(&out));
    assert_eq!(check(&report, "caches")["status"], "ok");

    // The human form: a mark per check, the fix under it, the verdict.
    let cache = tempfile::tempdir().unwrap();
    let human = user_dmb()
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("DOCKER_HOST")
        .args(["doctor", "--no-vm-files"])
        .output()
        .unwrap();
    assert_eq!(human.status.code(), Some(33));
    let text = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(text.lines().any(|l| l.starts_with("✔ engine ")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("✔ privileged ")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("✖ headers ")), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("fix: ")),
        "{text}"
    );
    assert!(
        text.contains("blocked: a build with dmb's defaults"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "colour off a terminal: {text:?}");
}

#[test]
fn with_no_image_to_probe_with_doctor_says_how_to_get_one() {
    let engine = SpareEngine::start();
    let (out, report) = doctor(Some(&engine.host), &[]);
    assert_eq!(out.status.code(), Some(33), "{}", stderr(&out));
    assert_eq!(check(&report, "engine")["status"], "ok");
    let probe = check(&report, "probe-image");
    assert_eq!(probe["status"], "fail", "{probe}");
    assert!(
        probe["fix"].as_str().unwrap().contains("docker load"),
        "{probe}"
    );
    assert_eq!(report["blocks_build"], true);
    assert_eq!(report["blocks_load"], true);
    for skipped in ["pid-host", "vm-files", "kernel", "headers"] {
        assert_eq!(check(&report, skipped)["status"], "skipped", "{report}");
    }
}

#[test]
fn with_no_engine_doctor_says_so() {
    let (out, report) = doctor(Some("unix:///nonexistent/docker.sock"), &[]);
    assert_eq!(out.status.code(), Some(33));
    let engine = check(&report, "engine");
    assert_eq!(engine["status"], "fail");
    assert!(engine["fix"].as_str().unwrap().contains("docker info"));
}
