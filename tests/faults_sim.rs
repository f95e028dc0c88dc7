//! Faults and concurrency around `dmb load`/`dmb unload`, in the
//! desktop-sim (every insmod happens in that VM; this machine's engine only
//! builds the test modules):
//!
//! - two loads at once are serialized by the lock in the VM's engine, and
//!   both records survive; a lock whose holder is gone is taken over at
//!   once, a live one makes `--wait` run out with its own exit code;
//! - SIGINT (to the process group, as a terminal's Ctrl-C) and SIGTERM (to
//!   the process, as a service manager) while detecting and while the
//!   kernel is inserting: exit 130/143, nothing half-loaded (what was
//!   inserted is removed again), no container of the run left, the lock
//!   given up;
//! - the VM restarted while a `--persist` load is inserting: `dmb status`
//!   afterwards tells the truth, and loading again converges.

mod common;

use common::sim::*;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LOAD: Duration = Duration::from_secs(5 * 60);
const LOCK: &str = "dmb-modules-lock";

fn dmb_vm_run(host: &str, args: &[&str]) -> Output {
    run(dmb_vm(host, args), LOAD, &format!("dmb {}", args.join(" ")))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Names of the VM engine's containers (all of them: loaders, the lock,
/// whatever a run left).
fn containers(host: &str) -> Vec<String> {
    vm_docker_ok(host, &["ps", "--all", "--format", "{{.Names}}"], MIN)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Nothing of a run is left: no session container, no lock; only loaders.
fn assert_only_loaders(host: &str, when: &str) {
    let left: Vec<String> = containers(host)
        .into_iter()
        .filter(|c| !c.starts_with("dmb-loader-"))
        .collect();
    assert!(left.is_empty(), "{when}: left behind: {left:?}");
}

fn loaders(host: &str) -> Vec<String> {
    let mut l: Vec<String> = containers(host)
        .into_iter()
        .filter(|c| c.starts_with("dmb-loader-"))
        .collect();
    l.sort();
    l
}

#[test]
fn loads_under_concurrency_signals_and_a_vm_restart() {
    if !sim_available("the faults test") {
        return;
    }
    let _kit = kit();
    let out = tempfile::tempdir().unwrap();
    let images: Vec<TestImage> = (0..3).map(|_| TestImage::new("faults")).collect();
    let hello = build_module("examples/hello", out.path(), &images[0], None).join("hello.ko");
    let pair = build_module("tests/modules/dependent-pair", out.path(), &images[1], None);
    let slow = build_module("tests/modules/slow-init", out.path(), &images[2], None)
        .join("dmb_slow_init.ko");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let pair_files: Vec<String> = std::fs::read_dir(&pair)
        .unwrap()
        .map(|e| path(&e.unwrap().path()))
        .filter(|p| p.ends_with(".ko"))
        .collect();
    assert_eq!(pair_files.len(), 2, "{pair_files:?}");

    let sim = Sim::new();
    let host = sim.start("up", UP_COLD);

    // Two loads at once, both kept: one waits for the other, and both
    // records survive.
    let spawn_load = |files: Vec<String>| {
        let host = host.clone();
        std::thread::spawn(move || {
            let mut args = vec!["load".to_string(), "--persist".into()];
            args.extend(files);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            dmb_vm_run(&host, &args)
        })
    };
    let started = Instant::now();
    let a = spawn_load(vec![path(&hello)]);
    let b = spawn_load(pair_files.clone());
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    eprintln!(
        "two loads at once: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    assert!(
        text(&a).contains("waited for dmb load") || text(&b).contains("waited for dmb load"),
        "neither load waited for the other:\n{}\n{}",
        text(&a),
        text(&b)
    );
    let loaded = loaded_modules(&host);
    for m in ["hello", "dmb_provider", "dmb_consumer"] {
        assert!(loaded.iter().any(|l| l == m), "{m} not loaded: {loaded:?}");
    }
    assert_eq!(loaders(&host).len(), 2, "{:?}", loaders(&host));
    assert_only_loaders(&host, "after two loads at once");

    // A lock whose holder (a pid of this host) is gone is taken over at
    // once; a live holder's makes --wait run out (exit 65).
    let this_host = dmb::platform::host_name();
    let fake_lock = |pid: u32| {
        let holder = serde_json::json!({
            "host": this_host, "pid": pid, "command": "load",
            "since": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            "lease_secs": 600,
        });
        vm_docker_ok(
            &host,
            &[
                "run",
                "-d",
                "--name",
                LOCK,
                "--network",
                "none",
                "--label",
                &format!("dmb.lock={holder}"),
                BUSYBOX,
                "sleep",
                "600",
            ],
            MIN,
        );
    };
    fake_lock(std::process::id());
    let held = dmb_vm_run(&host, &["unload", "hello", "--wait", "3"]);
    assert_eq!(held.status.code(), Some(65), "{}", text(&held));
    assert!(
        stderr(&held).contains(&format!("pid {}", std::process::id())),
        "{}",
        text(&held)
    );
    assert!(loaded_modules(&host).iter().any(|l| l == "hello"));
    vm_docker_ok(&host, &["rm", "-f", LOCK], MIN);
    // A pid no process has (above the kernel's pid_max).
    fake_lock(4_194_999);
    let took = dmb_vm_run(&host, &["unload", "hello", "--persist"]);
    assert!(took.status.success(), "{}", text(&took));
    assert!(
        text(&took).contains("took over the lock")
            && text(&took).contains("is gone from this host"),
        "{}",
        text(&took)
    );
    assert!(!loaded_modules(&host).iter().any(|l| l == "hello"));
    assert_only_loaders(&host, "after taking over a dead holder's lock");

    // Stop signals: while detecting (nothing happened yet) and while the
    // kernel inserts a module whose init takes 8 s (what was inserted is
    // removed again). Either way: the signal's status, nothing loaded, no
    // loader made, nothing of the run left.
    let before = loaders(&host);
    let slow_args = [
        "load",
        &path(&slow) as &str,
        "--param",
        "dmb_slow_init.delay_ms=8000",
    ];
    for (at, stop) in [
        ("detecting the running kernel", Stop::CtrlC),
        ("detecting the running kernel", Stop::Term),
        ("inserting dmb_slow_init", Stop::CtrlC),
        ("inserting dmb_slow_init", Stop::Term),
    ] {
        let code = stop.code();
        let (status, log) = stop_when(dmb_vm(&host, &slow_args), at, stop, LOAD);
        assert_eq!(status, Some(code), "{stop:?} at {at}:\n{log}");
        if at.starts_with("inserting") {
            assert!(
                log.contains("removed what this run had inserted (dmb_slow_init)"),
                "{stop:?} at {at}:\n{log}"
            );
        }
        assert!(
            !loaded_modules(&host).iter().any(|l| l == "dmb_slow_init"),
            "{stop:?} at {at}: dmb_slow_init is loaded:\n{log}"
        );
        assert_eq!(loaders(&host), before, "{stop:?} at {at}:\n{log}");
        assert_only_loaders(&host, &format!("{stop:?} at {at}"));
    }

    // The VM restarted while a kept load is inserting: the run fails, and
    // afterwards status tells the truth (nothing of it loaded or recorded);
    // the lock the restart ended is taken over and a new load converges.
    let mut load = dmb_vm(
        &host,
        &[
            "load",
            "--persist",
            &path(&slow),
            "--param",
            "dmb_slow_init.delay_ms=20000",
        ],
    );
    load.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = load.spawn().unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LOAD;
    let mut log = String::new();
    while !log.contains("inserting dmb_slow_init") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the load never inserted:\n{log}"));
        log.push_str(&line);
        log.push('\n');
    }
    // The init is in its 20 s sleep now.
    std::thread::sleep(Duration::from_secs(3));
    let restarted = Instant::now();
    let host = sim.start("restart", UP_WARM);
    eprintln!(
        "restart during a load: {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    let failed = child.wait_with_output().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(
        !failed.status.success(),
        "the load survived a restart?\n{log}"
    );
    let status: serde_json::Value = serde_json::from_str(&run_ok(
        dmb_vm(&host, &["status", "--json"]),
        LOAD,
        "dmb status --json",
    ))
    .unwrap();
    let said = status.to_string();
    assert!(
        !said.contains("dmb_slow_init"),
        "status after the restart: {said}"
    );
    // The pair's kept loader brought it back; hello was unloaded with --persist.
    let loaded = loaded_modules(&host);
    assert!(!loaded.iter().any(|l| l == "dmb_slow_init"), "{loaded:?}");
    assert!(loaded.iter().any(|l| l == "dmb_consumer"), "{loaded:?}");
    let again = dmb_vm_run(
        &host,
        &[
            "load",
            "--persist",
            &path(&slow),
            "--param",
            "dmb_slow_init.delay_ms=10",
        ],
    );
    assert!(again.status.success(), "{}", text(&again));
    assert!(loaded_modules(&host).iter().any(|l| l == "dmb_slow_init"));
    assert_only_loaders(&host, "after the load that followed the restart");
    let status = run_ok(dmb_vm(&host, &["status"]), LOAD, "dmb status");
    assert!(status.contains("dmb_slow_init"), "{status}");
}
