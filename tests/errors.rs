//! Every bad input of `dmb build`: a clear message, its own exit code, and
//! nothing left in the engine.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// Runs dmb, expects `code` and every one of `messages` on stderr, and no
/// change to the engine's containers and dangling images.
fn fails_with(flavour: Flavour, args: &[&str], env: &[(&str, &str)], code: i32, messages: &[&str]) {
    let _engine = engine_lock();
    let before = EngineState::now();
    let mut cmd = dmb(flavour);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{err}");
    for m in messages {
        assert!(err.contains(m), "{m:?} not in:\n{err}");
    }
    before.assert_unchanged();
}

#[test]
fn a_missing_module_directory() {
    fails_with(
        LEGACY,
        &["build", "tests/modules/nonexistent"],
        &[],
        10,
        &[
            "module directory tests/modules/nonexistent does not exist",
            "hint:",
        ],
    );
}

#[test]
fn a_module_directory_without_makefile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.c"), "").unwrap();
    let path = dir.path().to_str().unwrap();
    fails_with(LEGACY, &["build", path], &[], 11, &["has no Makefile"]);
}

#[test]
fn make_fails_legacy() {
    fails_with(
        LEGACY,
        &["build", "tests/modules/broken", "-q"],
        &[],
        40,
        &[
            "make failed",
            "broken.c:4:8: error: unknown type name 'intt'",
        ],
    );
}

#[test]
fn make_fails_buildkit() {
    fails_with(
        BUILDKIT,
        &["build", "tests/modules/broken", "-q"],
        &[],
        40,
        &[
            "make failed",
            "broken.c:4:8: error: unknown type name 'intt'",
        ],
    );
}

#[test]
fn make_builds_nothing() {
    fails_with(
        LEGACY,
        &["build", "tests/modules/no-ko"],
        &[],
        41,
        &["left no .ko file"],
    );
    fails_with(
        BUILDKIT,
        &["build", "tests/modules/no-ko"],
        &[],
        41,
        &["left no .ko file"],
    );
}

/// No KERNEL_REF: detection runs (here, on this machine's engine, only as
/// an ordinary container) and finds no kernel image for this kernel.
#[test]
fn no_kernel_ref() {
    let probe = busybox();
    let _engine = engine_lock();
    let before = EngineState::now();
    let out = dmb(LEGACY)
        .env_remove("KERNEL_REF")
        .env("DMB_PROBE_IMAGE", &probe)
        .args(["-v", "build", "examples/hello"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(20), "{err}");
    assert!(
        err.contains("is not a LinuxKit release: give --kernel-ref"),
        "{err}"
    );
    assert!(
        err.contains("--kernel-ref IMAGE or KERNEL_REF=IMAGE"),
        "{err}"
    );
    assert!(!err.contains("--privileged"), "{err}");
    before.assert_unchanged();
}

#[test]
fn a_kernel_ref_flag_wins_over_the_environment() {
    fails_with(
        LEGACY,
        &[
            "build",
            "examples/hello",
            "--kernel-ref",
            "dmb-test/no-such-kernel:1",
        ],
        &[],
        21,
        &["kernel image `dmb-test/no-such-kernel:1` is not in the engine"],
    );
}

#[test]
fn a_kernel_ref_that_is_not_there() {
    fails_with(
        LEGACY,
        &["build", "examples/hello"],
        &[("KERNEL_REF", "dmb-test/no-such-kernel:1")],
        21,
        &["kernel image `dmb-test/no-such-kernel:1` is not in the engine"],
    );
}

#[test]
fn a_build_ref_that_is_not_there() {
    fails_with(
        LEGACY,
        &[
            "build",
            "examples/hello",
            "--build-ref",
            "dmb-test/no-such-builder:1",
        ],
        &[],
        26,
        &["builder image `dmb-test/no-such-builder:1` is not in the engine"],
    );
}

/// A tarball of `(path, contents)` pairs.
fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    dmb::tarball::of_files(files.iter().copied())
}

/// A local image made of these files (`docker import`, no registry).
fn import_image(name: &str, files: &[(&str, &[u8])]) {
    let mut child = Command::new("docker")
        .args(["import", "-", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&tarball(files))
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_kernel_image_not_in_the_linuxkit_layout_names_the_missing_file() {
    let empty = unique_ref("empty-kernel");
    let half = unique_ref("half-kernel");
    {
        let _engine = engine_lock();
        import_image(&empty, &[("README", b"not a kernel")]);
        import_image(&half, &[("kernel-dev.tar", &tarball(&[]))]);
    }
    fails_with(
        LEGACY,
        &["build", "examples/hello", "--kernel-ref", &empty],
        &[],
        22,
        &["is not in the LinuxKit layout: it has no /kernel-dev.tar"],
    );
    fails_with(
        BUILDKIT,
        &["build", "examples/hello", "--kernel-ref", &half],
        &[],
        22,
        &["is not in the LinuxKit layout: it has no /kernel.tar"],
    );
    // Under the lock: a removal passes through moments where a parent
    // image dangles, which another test's snapshot must not see.
    let _engine = engine_lock();
    remove_image(&empty);
    remove_image(&half);
}

#[test]
fn a_kernel_image_without_header_trees() {
    let kit = kit();
    let hollow = unique_ref("hollow-kernel");
    let dev = tarball(&[("usr/src/README", b"no headers here")]);
    {
        let _engine = engine_lock();
        import_image(
            &hollow,
            &[("kernel-dev.tar", &dev), ("kernel.tar", &tarball(&[]))],
        );
    }
    fails_with(
        LEGACY,
        &["build", "examples/hello", "--kernel-ref", &hollow],
        &[],
        22,
        &["holds no usr/src/linux-headers-<release>/ with a .config"],
    );
    // The build environment made for this image is a cache keyed on it; it
    // goes with the image.
    let id = |r: &str| {
        docker_ok(&["image", "inspect", "--format", "{{.Id}}", r])
            .trim()
            .to_string()
    };
    let key = dmb::module_build::buildenv_key(&id(&kit.build_ref), &id(&hollow));
    let _engine = engine_lock();
    remove_image(&format!("dmb-buildenv:{key}"));
    remove_image(&hollow);
}

#[test]
fn a_kver_that_is_not_in_the_image() {
    let kit = kit();
    fails_with(
        BUILDKIT,
        &["build", "examples/hello", "--kver", "5.15.49-linuxkit"],
        &[],
        23,
        &[
            "kernel release 5.15.49-linuxkit is not in kernel image",
            &format!("it has: {}", kit.kver),
            "--kver",
        ],
    );
}

#[test]
fn an_engine_that_does_not_answer() {
    fails_with(
        LEGACY,
        &["build", "examples/hello"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        30,
        &["the Docker engine is not reachable", "DOCKER_HOST"],
    );
}

#[test]
fn a_docker_cli_that_is_not_there() {
    fails_with(
        LEGACY,
        &["build", "examples/hello"],
        &[("DMB_DOCKER", "/nonexistent/docker")],
        30,
        &[
            "the docker CLI `/nonexistent/docker` was not found",
            "DMB_DOCKER",
        ],
    );
}

/// Ctrl-C in a terminal signals the whole foreground process group
/// (SIGINT); a service manager or `kill` signals dmb alone (SIGTERM).
fn interrupt_a_build(flavour: Flavour, signal: nix::sys::signal::Signal) {
    let _engine = engine_lock();
    let before = EngineState::now();
    let mut child = dmb(flavour)
        .args([
            "build",
            "tests/modules/slow",
            "--module-ref",
            &unique_ref("slow"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut log = String::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("make never started:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if line.contains("slow build started") {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    if signal == nix::sys::signal::Signal::SIGINT {
        nix::sys::signal::killpg(pid, signal).unwrap();
    } else {
        nix::sys::signal::kill(pid, signal).unwrap();
    }
    let stopped = Instant::now();
    let status = child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert_eq!(status.code(), Some(128 + signal as i32), "{log}");
    assert!(
        stopped.elapsed() < Duration::from_secs(60),
        "took {:?} to stop",
        stopped.elapsed()
    );
    assert!(log.contains("interrupted"), "{log}");
    before.assert_unchanged();
}

#[test]
fn ctrl_c_during_a_legacy_build() {
    interrupt_a_build(LEGACY, nix::sys::signal::Signal::SIGINT);
}

#[test]
fn ctrl_c_during_a_buildkit_build() {
    interrupt_a_build(BUILDKIT, nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigterm_during_a_legacy_build() {
    interrupt_a_build(LEGACY, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sigterm_during_a_buildkit_build() {
    interrupt_a_build(BUILDKIT, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn a_builder_image_without_a_shell() {
    let kit = kit();
    // The kit's kernel image is files only: no /bin/sh, no make.
    fails_with(
        LEGACY,
        &["build", "examples/hello", "--build-ref", &kit.kernel_ref],
        &[],
        27,
        &["cannot run /bin/sh in it"],
    );
}

#[test]
fn a_built_module_that_would_not_load_fails_the_build() {
    fails_with(
        BUILDKIT,
        &["build", "tests/modules/unresolved", "-q"],
        &[],
        50,
        &[
            "1 of the built modules will not load",
            "unresolved.ko (unresolved): will NOT load",
            "symbol dmb_exported_by_nobody is exported by neither the kernel nor the given modules",
        ],
    );
    let _engine = engine_lock();
    let image = TestImage::new("unchecked");
    let out = dmb(BUILDKIT)
        .args([
            "build",
            "tests/modules/unresolved",
            "-q",
            "--no-check",
            "--module-ref",
            image.name(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
