//! `dmb load`, `unload` and `status` refusing, against this machine's
//! engine: each with its message and exit code, nothing left behind, and
//! never a privileged container. Every `load` here is `--dry-run`, and
//! `unload` only names modules that are not loaded: nothing here can reach
//! an insmod or rmmod of this machine's kernel (the loading itself is
//! tested in the desktop-sim, `tests/load.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;

/// dmb against this machine's engine: detection as an ordinary container.
fn dmb_here(args: &[&str], without_kernel_ref: bool) -> std::process::Output {
    let _engine = engine_lock();
    let before = EngineState::now();
    let mut cmd = dmb(LEGACY);
    cmd.env("DMB_PROBE_IMAGE", busybox_image())
        .arg("-v")
        .args(args);
    if without_kernel_ref {
        cmd.env_remove("KERNEL_REF");
    }
    let out = cmd.output().unwrap();
    before.assert_unchanged();
    let err = stderr(&out);
    assert!(
        !err.contains("--privileged") && !err.contains("SYS_MODULE"),
        "a privileged or module-loading container against this machine's engine:\n{err}"
    );
    out
}

fn busybox_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(busybox)
}

fn expect(out: &std::process::Output, code: i32, messages: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{err}");
    for m in messages {
        assert!(err.contains(m), "{m:?} not in:\n{err}");
    }
}

/// The dependent pair, built once with the kit.
fn pair() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("load-errors-pair");
        let _ = std::fs::remove_dir_all(&parent);
        let image = TestImage::new("load-errors");
        let _engine = engine_lock();
        build_module("tests/modules/dependent-pair", &parent, &image, None)
    })
}

#[test]
fn a_dependency_found_nowhere_is_refused_before_anything() {
    // The consumer alone: its provider is neither beside it nor loaded.
    let alone = tempfile::tempdir().unwrap();
    let consumer = alone.path().join("dmb_consumer.ko");
    std::fs::copy(pair().join("dmb_consumer.ko"), &consumer).unwrap();
    let out = dmb_here(&["load", "--dry-run", consumer.to_str().unwrap()], false);
    expect(
        &out,
        60,
        &[
            "dmb_consumer depends on dmb_provider, which is not loaded",
            "hint:",
        ],
    );
}

#[test]
fn a_parameter_the_module_does_not_have() {
    let provider = pair().join("dmb_provider.ko");
    let out = dmb_here(
        &[
            "load",
            "--dry-run",
            provider.to_str().unwrap(),
            "--param",
            "dmb_provider.question=1",
        ],
        false,
    );
    expect(
        &out,
        60,
        &[
            "dmb_provider has no parameter question (it has: answer)",
            "dmb inspect",
        ],
    );
    let out = dmb_here(
        &[
            "load",
            "--dry-run",
            provider.to_str().unwrap(),
            "--param",
            "nodot=1",
        ],
        false,
    );
    expect(&out, 2, &["is not MODULE.KEY=VALUE"]);
}

#[test]
fn a_source_that_is_not_there() {
    let out = dmb_here(&["load", "--dry-run", "dmb-test/no-such-image:x"], false);
    expect(&out, 53, &["is neither a file, a directory, nor an image"]);
}

#[test]
fn without_the_running_kernels_crcs_nothing_is_loaded() {
    let provider = pair().join("dmb_provider.ko");
    let provider = provider.to_str().unwrap();
    // The kit's kernel image is not the kernel this engine runs.
    let out = dmb_here(&["load", "--dry-run", provider], false);
    expect(
        &out,
        52,
        &[
            "holds 6.1.0-",
            "but the engine runs",
            "--crcs installed-modules",
        ],
    );
    // No image, and the VM's installed modules are not to be read.
    let out = dmb_here(&["load", "--dry-run", provider], true);
    expect(
        &out,
        52,
        &[
            "cannot tell whether the modules fit the running kernel",
            "cannot be read without entering the VM",
        ],
    );
}

#[test]
fn unloading_a_module_that_is_not_loaded() {
    let out = dmb_here(&["unload", "dmb-not-loaded-anywhere"], false);
    expect(
        &out,
        62,
        &["dmb_not_loaded_anywhere is not loaded", "dmb status"],
    );
}

#[test]
fn status_without_loaders() {
    let out = dmb_here(&["status", "--json"], false);
    expect(&out, 0, &[]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["modules"], serde_json::json!([]));
    assert_eq!(s["loaders"], serde_json::json!([]));
    assert!(!s["release"].as_str().unwrap().is_empty());
}

/// A kept loader whose kernel is no longer the one its modules were built
/// for (a Docker Desktop update) loads nothing, says so, and stays up
/// instead of being restarted over and over. The container has no
/// capability at all: it could not load anything here anyway.
#[test]
fn a_kept_loader_on_another_kernel_loads_nothing_and_stays_up() {
    let probe = busybox_image();
    let stage = tempfile::tempdir().unwrap();
    std::fs::write(stage.path().join("release"), "0.0.0-not-this-kernel\n").unwrap();
    std::fs::write(stage.path().join("load.list"), "hello\thello.ko\t-\t-\n").unwrap();
    std::fs::write(stage.path().join("hello.ko"), b"not loaded").unwrap();
    let _engine = engine_lock();
    let name = format!("dmb-test-loader-{}", std::process::id());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = docker(&["rm", "--force", &self.0]);
        }
    }
    docker_ok(&[
        "create",
        "--network",
        "none",
        "--name",
        &name,
        "--entrypoint",
        "/bin/sh",
        probe,
        "-c",
        dmb::scripts::LOAD,
        "sh",
        "boot",
    ]);
    let _remove = Remove(name.clone());
    docker_ok(&[
        "cp",
        &format!("{}/.", stage.path().display()),
        &format!("{name}:/dmb"),
    ]);
    docker_ok(&["start", &name]);
    let started = std::time::Instant::now();
    let logs = loop {
        let logs = docker_ok(&["logs", &name]);
        if logs.contains("@@dmb:") || started.elapsed().as_secs() > 30 {
            break logs;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let release = docker_ok(&["run", "--rm", "--network", "none", probe, "uname", "-r"]);
    assert_eq!(
        logs.trim(),
        format!(
            "@@dmb:wrong-kernel {} 0.0.0-not-this-kernel",
            release.trim()
        )
    );
    let state = docker_ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(state.trim(), "running");
}
