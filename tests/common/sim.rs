//! The desktop-sim (`scripts/sim.sh`) for tests: a VM of a test's own,
//! commands with time bounds, the docker CLI against the VM's engine.
//!
//! Without qemu & co a sim test is skipped, except under CI (`CI=true`),
//! where that is a failure; `DMB_SIM_TEST=skip` skips it on a developer
//! machine.

use super::*;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const MIN: Duration = Duration::from_secs(60);
/// `up` from a cold cache builds the VM (debootstrap, initramfs) and the
/// seed disk with the kit's images first.
pub const UP_COLD: Duration = Duration::from_secs(20 * 60);
pub const UP_WARM: Duration = Duration::from_secs(5 * 60);
pub const DOWN: Duration = Duration::from_secs(3 * 60);
pub const BUILD: Duration = Duration::from_secs(10 * 60);
pub const BUSYBOX: &str = "dmb-kit/busybox:latest";

pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// What the sim needs on this machine; `Err` names what is missing.
pub fn prerequisites() -> Result<(), String> {
    let missing: Vec<&str> = [
        "qemu-system-x86_64",
        "cpio",
        "lz4",
        "zstd",
        "mkfs.ext4",
        "python3",
        "debootstrap",
        "docker",
    ]
    .into_iter()
    .filter(|tool| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not installed: {} (scripts/setup.sh installs them)",
            missing.join(", ")
        ))
    }
}

/// Runs `cmd` (in a process group of its own) for at most `limit`; on
/// timeout the group gets SIGTERM, then (2 minutes later) SIGKILL, and the
/// test fails with what the command printed so far.
pub fn run(mut cmd: Command, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            // sim.sh stops a VM it started when it is terminated; give it
            // the time for that before SIGKILL.
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let grace = Instant::now();
            while child.try_wait().unwrap().is_none() && grace.elapsed() < 2 * MIN {
                thread::sleep(Duration::from_millis(200));
            }
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
            panic!("{what}: no result within {limit:?}; it printed:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    eprintln!("sim test: {what}: {:.1?}", started.elapsed());
    output
}

pub fn run_ok(cmd: Command, limit: Duration, what: &str) -> String {
    let out = run(cmd, limit, what);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A VM of this test's own (own state dir: pid file, disk, logs). Dropping
/// it stops the VM.
pub struct Sim {
    pub state: tempfile::TempDir,
}

impl Sim {
    pub fn new() -> Sim {
        let state = tempfile::Builder::new()
            .prefix("dmb-sim-test.")
            .tempdir()
            .unwrap();
        Sim { state }
    }

    pub fn script(&self, verb: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("scripts/sim.sh"))
            .arg(verb)
            .env("DMB_SIM_STATE", self.state.path())
            .env_remove("DOCKER_HOST")
            .current_dir(root());
        cmd
    }

    /// `up` or `restart`: returns the DOCKER_HOST it printed, after checking
    /// that the state file says the same.
    pub fn start(&self, verb: &str, limit: Duration) -> String {
        let out = run_ok(self.script(verb), limit, &format!("sim.sh {verb}"));
        let host = out
            .lines()
            .find_map(|l| l.strip_prefix("DOCKER_HOST="))
            .unwrap_or_else(|| panic!("sim.sh {verb} printed no DOCKER_HOST=: {out:?}"))
            .to_string();
        assert!(
            host.starts_with("tcp://127.0.0.1:"),
            "not a loopback address: {host}"
        );
        let file = std::fs::read_to_string(self.state.path().join("docker-host")).unwrap();
        assert_eq!(file.trim(), format!("DOCKER_HOST={host}"));
        host
    }

    pub fn status(&self) -> Output {
        run(self.script("status"), MIN, "sim.sh status")
    }

    pub fn console_tail(&self) -> String {
        let log = self.console();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.state.path().join("console.log")).unwrap_or_default()
    }
}

/// Where a hung guest's console starts to say so: the first lockup or RCU
/// stall report and the lines after it (its call trace), which a tail of
/// repeated watchdog lines no longer shows.
fn first_hang_report(console: &str) -> Option<String> {
    let lines: Vec<&str> = console.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.contains("soft lockup") || l.contains("rcu: INFO:"))?;
    Some(lines[first.saturating_sub(5)..(first + 60).min(lines.len())].join("\n"))
}

impl Drop for Sim {
    fn drop(&mut self) {
        if thread::panicking() {
            if let Some(report) = first_hang_report(&self.console()) {
                eprintln!("sim test: the guest hung; its console from the first report:\n{report}");
            }
            eprintln!("sim test: VM console (tail):\n{}", self.console_tail());
        }
        let out = run(self.script("down"), DOWN, "sim.sh down");
        if !out.status.success() {
            eprintln!("sim.sh down failed:\n{}", stderr(&out));
        }
    }
}

/// `dmb` against the VM's engine, reading the VM's files (the default;
/// the tests' `DMB_NO_VM_FILES` is for this machine's engine only), with
/// the kernel image found through the VM's /etc/linuxkit.yml.
pub fn dmb_vm(host: &str, args: &[&str]) -> Command {
    assert!(
        host.starts_with("tcp://127.0.0.1:"),
        "only the sim's engine: {host}"
    );
    let mut cmd = dmb(LEGACY);
    cmd.env("DOCKER_HOST", host)
        .env("DMB_PROBE_IMAGE", BUSYBOX)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DMB_NO_VM_FILES")
        .env_remove("KERNEL_REF")
        .args(args);
    cmd
}

/// Copies an image of this machine's engine into the VM's (no registry).
pub fn image_to_vm(host: &str, image: &str, scratch: &Path) {
    let saved = scratch.join("image.tar");
    docker_ok(&["save", "-o", saved.to_str().unwrap(), image]);
    vm_docker_ok(host, &["load", "-i", saved.to_str().unwrap()], 2 * MIN);
    let _ = std::fs::remove_file(saved);
}

/// The docker CLI against the VM's engine.
pub fn vm_docker(host: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT");
    cmd
}

pub fn vm_docker_ok(host: &str, args: &[&str], limit: Duration) -> String {
    run_ok(
        vm_docker(host, args),
        limit,
        &format!("docker {}", args.join(" ")),
    )
}

pub fn loaded_modules(host: &str) -> Vec<String> {
    vm_docker_ok(
        host,
        &["run", "--rm", BUSYBOX, "cat", "/proc/modules"],
        2 * MIN,
    )
    .lines()
    .filter_map(|l| l.split_whitespace().next().map(str::to_string))
    .collect()
}

/// Whether a sim test may run here: `false` (after saying why) when it is
/// to be skipped; a panic under CI when it cannot run.
pub fn sim_available(what: &str) -> bool {
    if let Err(missing) = prerequisites() {
        if under_ci() {
            panic!("{what} cannot run under CI: {missing}");
        }
        eprintln!("SKIPPED: {what}: {missing}");
        return false;
    }
    if !under_ci() && std::env::var("DMB_SIM_TEST").as_deref() == Ok("skip") {
        eprintln!("SKIPPED: {what} (DMB_SIM_TEST=skip)");
        return false;
    }
    true
}

/// A command in the VM's own mount namespace (its /usr/sbin tools), in a
/// privileged container of the VM's engine (never this machine's).
pub fn in_vm(host: &str, script: &str) -> String {
    vm_docker_ok(
        host,
        &[
            "run",
            "--rm",
            "--privileged",
            "--pid=host",
            "--network",
            "none",
            BUSYBOX,
            "nsenter",
            "-t",
            "1",
            "-m",
            "/bin/sh",
            "-c",
            script,
        ],
        3 * MIN,
    )
}
