//! The desktop-sim (`scripts/sim.sh`): a qemu VM that boots the kit's kernel
//! and runs a Docker engine, standing in for Docker Desktop's VM.
//!
//! One test walks the whole path: `up` → the engine reports the kit's kernel
//! → `/etc/linuxkit.yml` in the VM names the kit's kernel image → `dmb build`
//! against the VM's engine → a privileged container there `insmod`s the
//! `.ko` → `/proc/modules` lists it → `restart` keeps the images but not the
//! module → `down`. The VM runs from a state dir of its own and is stopped
//! at the end, also when the test fails (`Sim`'s `Drop`).
//!
//! Slow (minutes: the VM runs under TCG). Every step has a time bound.
//! Without qemu & co the test is skipped, except under CI (`CI=true`), where
//! that is a failure; `DMB_SIM_TEST=skip` skips it on a developer machine.

mod common;

use common::*;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const MIN: Duration = Duration::from_secs(60);
/// `up` from a cold cache builds the VM (debootstrap, initramfs) and the
/// seed disk with the kit's images first.
const UP_COLD: Duration = Duration::from_secs(20 * 60);
const UP_WARM: Duration = Duration::from_secs(5 * 60);
const DOWN: Duration = Duration::from_secs(3 * 60);
const BUILD: Duration = Duration::from_secs(10 * 60);
const BUSYBOX: &str = "dmb-kit/busybox:latest";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// What the sim needs on this machine; `Err` names what is missing.
fn prerequisites() -> Result<(), String> {
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
fn run(mut cmd: Command, limit: Duration, what: &str) -> Output {
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

fn run_ok(cmd: Command, limit: Duration, what: &str) -> String {
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
struct Sim {
    state: tempfile::TempDir,
}

impl Sim {
    fn new() -> Sim {
        let state = tempfile::Builder::new()
            .prefix("dmb-sim-test.")
            .tempdir()
            .unwrap();
        Sim { state }
    }

    fn script(&self, verb: &str) -> Command {
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
    fn start(&self, verb: &str, limit: Duration) -> String {
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

    fn status(&self) -> Output {
        run(self.script("status"), MIN, "sim.sh status")
    }

    fn console_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.state.path().join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("sim test: VM console (tail):\n{}", self.console_tail());
        }
        let out = run(self.script("down"), DOWN, "sim.sh down");
        if !out.status.success() {
            eprintln!("sim.sh down failed:\n{}", stderr(&out));
        }
    }
}

/// The docker CLI against the VM's engine.
fn vm_docker(host: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT");
    cmd
}

fn vm_docker_ok(host: &str, args: &[&str], limit: Duration) -> String {
    run_ok(
        vm_docker(host, args),
        limit,
        &format!("docker {}", args.join(" ")),
    )
}

fn loaded_modules(host: &str) -> Vec<String> {
    vm_docker_ok(
        host,
        &["run", "--rm", BUSYBOX, "cat", "/proc/modules"],
        2 * MIN,
    )
    .lines()
    .filter_map(|l| l.split_whitespace().next().map(str::to_string))
    .collect()
}

#[test]
fn a_module_built_by_dmb_loads_in_the_sim_and_a_restart_unloads_it() {
    if let Err(missing) = prerequisites() {
        if under_ci() {
            panic!("the desktop-sim test cannot run under CI: {missing}");
        }
        eprintln!("SKIPPED: the desktop-sim test: {missing}");
        return;
    }
    if !under_ci() && std::env::var("DMB_SIM_TEST").as_deref() == Ok("skip") {
        eprintln!("SKIPPED: the desktop-sim test (DMB_SIM_TEST=skip)");
        return;
    }
    let kit = kit();
    let sim = Sim::new();

    let host = sim.start("up", UP_COLD);
    let status = sim.status();
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "status: {report}{}",
        stderr(&status)
    );
    assert!(report.contains(&format!("DOCKER_HOST={host}")), "{report}");

    // The engine runs on the kit's kernel...
    let kver = vm_docker_ok(&host, &["info", "--format", "{{.KernelVersion}}"], MIN);
    assert_eq!(kver.trim(), kit.kver);

    // ...and the VM names the kit's kernel image the way Docker Desktop does.
    let yml = vm_docker_ok(
        &host,
        &[
            "run",
            "--rm",
            "--privileged",
            "--pid=host",
            BUSYBOX,
            "nsenter",
            "-t",
            "1",
            "-m",
            "cat",
            "/etc/linuxkit.yml",
        ],
        2 * MIN,
    );
    assert_eq!(
        dmb::target::linuxkit_kernel_image(&yml).unwrap().as_deref(),
        Some(kit.kernel_ref.as_str()),
        "{yml}"
    );

    // dmb finds all of that by itself: release, the kernel image named in
    // linuxkit.yml, the kit's builder (the kernel image's label), the config.
    let mut detect = Command::new(env!("CARGO_BIN_EXE_dmb"));
    detect
        .env("DOCKER_HOST", &host)
        .env("DMB_PROBE_IMAGE", BUSYBOX)
        .args(["detect", "--json"])
        .current_dir(root());
    let found: serde_json::Value =
        serde_json::from_str(&run_ok(detect, 3 * MIN, "dmb detect (in the VM)")).unwrap();
    assert_eq!(found["release"], kit.kver.as_str());
    assert_eq!(found["platform"], "docker-desktop");
    assert_eq!(found["vm_files"], true);
    assert_eq!(found["kernel_ref"]["reference"], kit.kernel_ref.as_str());
    assert_eq!(
        found["kernel_ref"]["source"],
        "/etc/linuxkit.yml kernel.image"
    );
    assert_eq!(found["build_ref"]["reference"], kit.build_ref.as_str());
    assert_eq!(found["build_ref"]["quality"], "exact");
    assert_eq!(
        found["config_source"],
        format!("/boot/config-{}", kit.kver).as_str()
    );
    assert_eq!(found["config_compiler"]["command"], "gcc-12");
    let mut lookup = Command::new(env!("CARGO_BIN_EXE_dmb"));
    lookup
        .env("DOCKER_HOST", &host)
        .env("DMB_PROBE_IMAGE", BUSYBOX)
        .args(["detect", "sctp", "overlay"])
        .current_dir(root());
    let said = run_ok(lookup, 3 * MIN, "dmb detect sctp overlay (in the VM)");
    assert!(said.contains("module sctp: not in this kernel"), "{said}");
    assert!(said.contains("module overlay: loaded"), "{said}");

    // dmb builds hello.ko against the VM's engine with no refs at all.
    let out_dir = tempfile::tempdir().unwrap();
    let mut build = dmb(BUILDKIT);
    build
        .env("DOCKER_HOST", &host)
        .env("DMB_PROBE_IMAGE", BUSYBOX)
        // In the VM, detection reads the VM's files (the tests' default is
        // not to, against this machine's engine).
        .env_remove("DMB_NO_VM_FILES")
        .env_remove("KERNEL_REF")
        .env_remove("BUILD_REF")
        .args([
            "build",
            "examples/hello",
            "-q",
            "--module-ref",
            "dmb-test/sim-hello",
        ])
        .arg("--output")
        .arg(out_dir.path());
    run_ok(
        build,
        BUILD,
        "dmb build examples/hello with no refs (in the VM)",
    );
    let ko = out_dir.path().join("hello.ko");
    assert!(ko.is_file(), "dmb build wrote no {}", ko.display());
    let vermagic = read_module(&ko).info.vermagic().unwrap_or("").to_string();
    assert!(
        vermagic.starts_with(&format!("{} ", kit.kver)),
        "vermagic {vermagic:?} is not the sim kernel's"
    );
    assert!(
        !loaded_modules(&host).contains(&"hello".to_string()),
        "hello is loaded before the test loads it"
    );

    // A privileged container in the VM loads it into the VM's kernel.
    insmod(&host, &kit.build_ref, &ko);
    let loaded = loaded_modules(&host);
    assert!(
        loaded.contains(&"hello".to_string()),
        "hello not in /proc/modules: {loaded:?}"
    );

    // A restart is a reboot: the images stay on the disk, the module is gone.
    let host = sim.start("restart", UP_WARM);
    for image in [
        kit.build_ref.as_str(),
        kit.kernel_ref.as_str(),
        BUSYBOX,
        "dmb-test/sim-hello",
    ] {
        vm_docker_ok(
            &host,
            &["image", "inspect", "--format", "{{.Id}}", image],
            MIN,
        );
    }
    let kver = vm_docker_ok(&host, &["info", "--format", "{{.KernelVersion}}"], MIN);
    assert_eq!(kver.trim(), kit.kver);
    let loaded = loaded_modules(&host);
    assert!(
        !loaded.contains(&"hello".to_string()),
        "hello survived the restart: {loaded:?}"
    );

    run_ok(sim.script("down"), DOWN, "sim.sh down");
    let status = sim.status();
    assert_eq!(
        status.status.code(),
        Some(3),
        "status after down: {status:?}"
    );
}

/// `docker create --privileged <builder> insmod /hello.ko`, copy the `.ko`
/// in, start it attached; the container goes afterwards, also on failure.
fn insmod(host: &str, image: &str, ko: &Path) {
    struct Container<'a> {
        host: &'a str,
        id: String,
    }
    impl Drop for Container<'_> {
        fn drop(&mut self) {
            let _ = run(
                vm_docker(self.host, &["rm", "-f", &self.id]),
                MIN,
                "docker rm",
            );
        }
    }
    let created = vm_docker_ok(
        host,
        &["create", "--privileged", image, "insmod", "/hello.ko"],
        MIN,
    );
    let container = Container {
        host,
        id: created.trim().to_string(),
    };
    vm_docker_ok(
        host,
        &[
            "cp",
            ko.to_str().unwrap(),
            &format!("{}:/hello.ko", container.id),
        ],
        MIN,
    );
    let out = run(
        vm_docker(host, &["start", "-a", &container.id]),
        2 * MIN,
        "insmod in the VM",
    );
    assert!(out.status.success(), "insmod failed: {}", stderr(&out));
}
