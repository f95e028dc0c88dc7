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
//! See `common::sim` for when it is skipped (never under CI).

mod common;

use common::sim::*;
use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn a_module_built_by_dmb_loads_in_the_sim_and_a_restart_unloads_it() {
    if !sim_available("the desktop-sim test") {
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
        dmb::detect::linuxkit::kernel_image(&yml)
            .unwrap()
            .as_deref(),
        Some(kit.kernel_ref.as_str()),
        "{yml}"
    );

    // dmb finds all of that by itself, run as a user runs it (no DMB_*
    // variable): release, the kernel image named in linuxkit.yml, the kit's
    // builder (the kernel image's label), the config; and an image to probe
    // with that the VM's engine has (it has no `busybox`, and no registry
    // is in reach).
    let user_cache = tempfile::tempdir().unwrap();
    let mut detect = user_dmb_in(&host, user_cache.path());
    detect.args(["detect", "--json"]);
    let found: serde_json::Value =
        serde_json::from_str(&run_ok(detect, 3 * MIN, "dmb detect (in the VM)")).unwrap();
    assert_eq!(found["probe_image"], BUSYBOX);
    assert!(
        found["notes"]
            .to_string()
            .contains("the engine has no `busybox`"),
        "{found}"
    );
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
    // dmb doctor there, with defaults: everything works. (Debian's 20.10
    // CLI, named by flag: the 28.x CLI first on PATH has no BuildKit,
    // which doctor rightly warns about; Docker Desktop's CLI has buildx.)
    let mut doctor = user_dmb_in(&host, user_cache.path());
    doctor.args(["--docker", "/usr/bin/docker", "doctor", "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(&run_ok(doctor, 3 * MIN, "dmb doctor (in the VM)")).unwrap();
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "{c}\n{report}");
    }
    assert_eq!(report["blocks_build"], false);
    assert_eq!(report["blocks_load"], false);
    let vm_files = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "vm-files")
        .unwrap();
    assert!(
        vm_files["summary"]
            .as_str()
            .unwrap()
            .contains("reads the VM's own files"),
        "{vm_files}"
    );
    // detect, too, entered the VM without a privileged container.
    let mut traced = user_dmb_in(&host, user_cache.path());
    traced.args(["-v", "detect", "--json"]);
    let out = run(traced, 3 * MIN, "dmb -v detect (in the VM)");
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = stderr(&out);
    assert!(!trace.contains("--privileged"), "{trace}");
    assert!(
        trace.contains("--pid=host --cap-add SYS_ADMIN --cap-add SYS_PTRACE"),
        "{trace}"
    );
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["vm_files"], true);
    let mut lookup = Command::new(env!("CARGO_BIN_EXE_dmb"));
    lookup
        .env("DOCKER_HOST", &host)
        .env("DMB_PROBE_IMAGE", BUSYBOX)
        .env("DMB_CACHE_DIR", cache_dir())
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

    // dmb load and dmb status as a user runs them: the probe and the
    // loader run in the image the VM's engine has.
    let mut load = user_dmb_in(&host, user_cache.path());
    load.args(["load", "dmb-test/sim-hello"]);
    run_ok(load, 5 * MIN, "dmb load with defaults (in the VM)");
    assert!(
        loaded_modules(&host).contains(&"hello".to_string()),
        "dmb load did not load hello"
    );
    let mut status = user_dmb_in(&host, user_cache.path());
    status.args(["status", "--json"]);
    let s: serde_json::Value = serde_json::from_str(&run_ok(
        status,
        3 * MIN,
        "dmb status with defaults (in the VM)",
    ))
    .unwrap();
    assert!(
        s["modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "hello" && m["loaded"] == true),
        "{s}"
    );
    let mut unload = user_dmb_in(&host, user_cache.path());
    unload.args(["unload", "hello", "--json"]);
    let u: serde_json::Value = serde_json::from_str(&run_ok(
        unload,
        3 * MIN,
        "dmb unload with defaults (in the VM)",
    ))
    .unwrap();
    assert_eq!(u["unloaded"], serde_json::json!(["hello"]), "{u}");
    assert_eq!(u["dry_run"], false, "{u}");
    assert!(!loaded_modules(&host).contains(&"hello".to_string()));

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

/// dmb as a user runs it (`common::user_dmb`) against the VM, with a
/// cache of its own.
fn user_dmb_in(host: &str, cache: &Path) -> Command {
    let mut cmd = user_dmb();
    cmd.env("DOCKER_HOST", host).env("XDG_CACHE_HOME", cache);
    cmd
}
