//! Which image runs the probe when none is named: one the engine has,
//! checked, against this machine's engine (which has no `busybox` tag and
//! reaches no registry); and, in an engine of the test's own that has no
//! image at all and no network (`common::spare_engine`), the refusal: one
//! line and exit 32.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::spare_engine::SpareEngine;
use common::*;

/// dmb as a user runs it (`common::user_dmb`) against this machine's
/// engine, with a cache of its own (so no earlier choice is remembered).
fn user_dmb_with_cache(cache: &Path) -> Command {
    let mut cmd = user_dmb();
    cmd.env("XDG_CACHE_HOME", cache).env_remove("DOCKER_HOST");
    cmd
}

fn detect_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn detect_with_defaults_runs_in_an_image_the_engine_has() {
    // The kit's busybox is `dmb-kit/busybox`: no image is tagged `busybox`.
    let kit_busybox = busybox();
    let _engine = engine_lock();
    let plain_busybox = Command::new("docker")
        .args(["image", "inspect", "busybox"])
        .output()
        .unwrap();
    assert!(
        !plain_busybox.status.success(),
        "this test wants an engine without a `busybox` image"
    );
    let cache = tempfile::tempdir().unwrap();
    let before = EngineState::now();
    let out = user_dmb_with_cache(cache.path())
        .args(["detect", "--json", "--no-vm-files"])
        .output()
        .unwrap();
    let t = detect_json(&out);
    before.assert_unchanged();
    let chosen = t["probe_image"].as_str().unwrap().to_string();
    assert_eq!(chosen, kit_busybox, "{t}");
    let notes = t["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "probe image {chosen}: the engine has no `busybox`"
        )),
        "{notes}"
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(t["release"], release.trim());
    // The choice is remembered: the next run checks nothing again.
    let again = user_dmb_with_cache(cache.path())
        .args(["-v", "detect", "--json", "--no-vm-files"])
        .output()
        .unwrap();
    assert_eq!(detect_json(&again)["probe_image"], chosen.as_str());
    assert!(
        !stderr(&again).contains("probe-check"),
        "{}",
        stderr(&again)
    );
}

/// An engine command that fails is one line: what ran (its script elided)
/// and the engine's own message; never the script.
#[test]
fn a_failing_engine_command_is_reported_in_one_line() {
    let cache = tempfile::tempdir().unwrap();
    let out = user_dmb_with_cache(cache.path())
        .args([
            "detect",
            "--no-vm-files",
            "--probe-image",
            "dmb-test/not-here:1",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // What it was doing (its progress line), then the error in one line.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], "dmb: detecting the running kernel", "{err}");
    let lines = &lines[1..];
    // What dmb was doing, then what ran and what the engine said.
    assert!(
        lines[0].starts_with("dmb: error: detecting the running kernel: `docker run"),
        "{err}"
    );
    assert!(
        lines[0].contains("dmb-test/not-here:1 -c <script of "),
        "{err}"
    );
    assert!(lines[0].contains("failed: "), "{err}");
    assert!(
        !err.contains("#!/bin/sh") && !err.contains("uname"),
        "{err}"
    );
}

/// No image with the probe's tools and no registry: one line that says
/// what is needed and how to provide it, and exit 32; nothing left behind.
#[test]
fn with_no_usable_image_at_all_detect_says_so_in_one_line() {
    let engine = SpareEngine::start();
    // An image without a shell: it is tried and refused, not used.
    engine.import("dmb-test/no-shell:1", &[]);
    let cache = tempfile::tempdir().unwrap();
    for args in [&["detect"][..], &["status"][..]] {
        let out = user_dmb_with_cache(cache.path())
            .env("DOCKER_HOST", &engine.host)
            .args(args)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(32), "{args:?}: {err}");
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("dmb: error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].contains("busybox"), "{err}");
        let after_error: Vec<&str> = err
            .lines()
            .skip_while(|l| !l.starts_with("dmb: error: "))
            .collect();
        // The error, then its hint: no script, no command line.
        assert_eq!(after_error.len(), 2, "{err}");
        assert!(after_error[1].starts_with("hint: "), "{err}");
        assert!(after_error[1].contains("--probe-image"), "{err}");
        assert!(!err.contains("#!/bin/sh"), "{err}");
    }
    assert_eq!(engine.docker_ok(&["ps", "-a", "-q"]), "");
    let images = engine.docker_ok(&["image", "ls", "-q"]);
    assert_eq!(images.lines().count(), 1, "{images}");
}
