//! The engine restarted in the middle of a build (the kit's dockerd, the
//! one scripts/setup.sh started, stopped by its pid file and started
//! again): dmb says so and exits, and the next run finds no leftovers of
//! it (what it could not remove is removed then) and a build directory it
//! can build in. One test in a binary of its own: nothing else may use the
//! engine while it is down.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("DMB_STATE_DIR").unwrap_or_else(|_| "/run/dmb".into()))
}

fn setup(args: &[&str]) {
    let out = Command::new("bash")
        .arg(root().join("scripts/setup.sh"))
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "setup.sh {args:?}: {}", stderr(&out));
}

/// Containers and dangling images that carry dmb's session label.
fn session_leftovers() -> (String, String) {
    (
        docker_ok(&["ps", "-a", "-q", "--filter", "label=dmb.session"]),
        docker_ok(&[
            "images",
            "-q",
            "--filter",
            "dangling=true",
            "--filter",
            "label=dmb.session",
        ]),
    )
}

#[test]
fn a_build_whose_engine_restarts_fails_clearly_and_leaves_nothing() {
    if !state_dir().join("dockerd.pid").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "under CI, scripts/setup.sh must have started the engine (no {})",
            state_dir().join("dockerd.pid").display()
        );
        eprintln!("SKIPPED: the engine was not started by scripts/setup.sh");
        return;
    }
    let _kit = kit();
    for flavour in [LEGACY, BUILDKIT] {
        let _engine = engine_lock();
        // A module whose make waits a while, until its Makefile is fixed.
        let dir = unique_hello("restart");
        let makefile = |sleep: bool| {
            format!(
                "obj-m += hello.o\nall:\n{}\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules\n",
                if sleep {
                    "\t@echo 'waiting for a restart'\n\tsleep 300\n"
                } else {
                    ""
                }
            )
        };
        std::fs::write(dir.path().join("Makefile"), makefile(true)).unwrap();
        let image = TestImage::new("restart");
        let mut child = dmb(flavour)
            .arg("build")
            .arg(dir.path())
            .args(["--module-ref", image.name()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut log = String::new();
        let deadline = Instant::now() + Duration::from_secs(600);
        while !log.contains("waiting for a restart") {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("{flavour:?}: make never started:\n{log}"));
            log.push_str(&line);
            log.push('\n');
        }
        let restarted = Instant::now();
        setup(&["--stop-engine"]);
        let status = child.wait().unwrap();
        let failed_after = restarted.elapsed();
        setup(&[]);
        let back_after = restarted.elapsed();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            log.push_str(&line);
            log.push('\n');
        }
        eprintln!(
            "{flavour:?}: dmb gave up {:.1} s after the engine was stopped (exit {:?}); engine back after {:.1} s",
            failed_after.as_secs_f64(),
            status.code(),
            back_after.as_secs_f64()
        );
        assert!(!status.success(), "{flavour:?}: the build survived?\n{log}");
        let error = log
            .lines()
            .find(|l| l.starts_with("dmb: error:"))
            .unwrap_or_else(|| panic!("{flavour:?}: no error line:\n{log}"));
        assert!(!error.contains("#!/bin/sh"), "{error}");

        // The next run, as the user runs it after fixing the Makefile:
        // what the cut-off run left is gone, and the kept build directory
        // builds.
        std::fs::write(dir.path().join("Makefile"), makefile(false)).unwrap();
        let next = dmb(flavour)
            .arg("build")
            .arg(dir.path())
            .args(["--module-ref", image.name()])
            .output()
            .unwrap();
        assert!(next.status.success(), "{flavour:?}: {}", stderr(&next));
        assert_eq!(
            session_leftovers(),
            (String::new(), String::new()),
            "{flavour:?}: left after the next run:\n{}",
            stderr(&next)
        );
        let files = image_files(image.name());
        assert!(files.iter().any(|f| f.ends_with("hello.ko")), "{files:?}");
    }
}
