//! The engine restarted in the middle of a build (a spare dockerd of the
//! test's own, holding the kit's images, stopped by its pid and started
//! again on the same data): dmb says so and exits, and the next run finds
//! no leftovers of it (what it could not remove is removed then) and a
//! build directory it can build in.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::spare_engine::SpareEngine;
use common::*;

/// Containers and dangling images that carry dmb's session label.
fn session_leftovers(engine: &SpareEngine) -> (String, String) {
    (
        engine.docker_ok(&["ps", "-a", "-q", "--filter", "label=dmb.session"]),
        engine.docker_ok(&[
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
    let kit = kit();
    let mut engine = SpareEngine::start();
    // The kit's images, copied in (no registry).
    let saved = engine.path().join("kit.tar");
    docker_ok(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        &kit.kernel_ref,
        &kit.build_ref,
    ]);
    engine.docker_ok(&["load", "-i", saved.to_str().unwrap()]);
    std::fs::remove_file(&saved).unwrap();
    for flavour in [LEGACY, BUILDKIT] {
        // A module whose make waits a while, until its Makefile is fixed.
        let dir = unique_hello("restart");
        let makefile = |sleep: bool| {
            format!(
                "obj-m += hello.o\nall:\n{}\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules\n",
                if sleep {
                    "\t@echo 'waiting for a restart'\n\tsleep 60\n"
                } else {
                    ""
                }
            )
        };
        std::fs::write(dir.path().join("Makefile"), makefile(true)).unwrap();
        let image = unique_ref("restart");
        let mut child = dmb(flavour)
            .env("DOCKER_HOST", &engine.host)
            .arg("build")
            .arg(dir.path())
            .args(["--module-ref", &image])
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
        engine.restart();
        let back_after = restarted.elapsed();
        let status = child.wait().unwrap();
        let failed_after = restarted.elapsed();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            log.push_str(&line);
            log.push('\n');
        }
        eprintln!(
            "{flavour:?}: dmb had exited {:.1} s after the restart began (exit {:?}); the engine answered again after {:.1} s",
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
        eprintln!("{flavour:?}: {error}");

        // The next run, as the user runs it after fixing the Makefile:
        // what the cut-off run left is gone, and the kept build directory
        // builds.
        std::fs::write(dir.path().join("Makefile"), makefile(false)).unwrap();
        let next = dmb(flavour)
            .env("DOCKER_HOST", &engine.host)
            .arg("build")
            .arg(dir.path())
            .args(["--module-ref", &image])
            .output()
            .unwrap();
        eprintln!("{flavour:?}: the next run said:\n{}", stderr(&next));
        assert!(next.status.success(), "{flavour:?}: {}", stderr(&next));
        assert_eq!(
            session_leftovers(&engine),
            (String::new(), String::new()),
            "{flavour:?}: left after the next run:\n{}",
            stderr(&next)
        );
        assert!(
            !engine
                .docker_ok(&["images", "-q", &image])
                .trim()
                .is_empty(),
            "{flavour:?}: no image {image}"
        );
    }
}
