//! A kernel image synthesized for a kernel whose image the engine does not
//! have: a snapshot of the desktop-sim's kernel (`dmb detect --save` in the
//! VM, whose engine has had the kit's kernel image removed), `dmb kernel
//! synthesize --snapshot` on this machine's engine from the kit kernel's own
//! Debian source tarball, modules built against it here, loaded there.
//! Then what must be refused: a source with a structure changed (a patch),
//! a configuration changed, a builder without pahole for a BTF kernel.

mod common;

use common::http::FileServer;
use common::sim::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kit kernel's Debian source tarball.
fn kit_source() -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join("scripts/kit.sh"))
        .arg("--source-tarball")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kit.sh --source-tarball: {}",
        stderr(&out)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `dmb kernel synthesize` as a user runs it: no DMB_* variables, and the
/// builder named (the VM's detection, with no kernel image to name the
/// kit's builder, picks `debian:bookworm` by the kernel's gcc, which no
/// registry can bring here; the kit's builder is that image, debootstrapped)
/// unless `args` name another.
fn synthesize(args: &[&str]) -> std::process::Output {
    run(synthesize_command(args), 40 * MIN, "dmb kernel synthesize")
}

fn synthesize_command(args: &[&str]) -> Command {
    let kit = kit();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dmb"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DMB_") || k == "KERNEL_REF" || k == "BUILD_REF" {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("DOCKER_HOST")
        .env("XDG_CACHE_HOME", cache_dir())
        .args(["kernel", "synthesize"])
        .args(args)
        .current_dir(root());
    if !args.contains(&"--build-ref") {
        cmd.args(["--build-ref", &kit.build_ref]);
    }
    cmd
}

fn sha256_of(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The symbols and CRCs of a module's `__versions`, in order.
fn versions(path: &Path) -> Vec<(String, u32)> {
    read_module(path)
        .versions
        .iter()
        .map(|v| (v.symbol.clone(), v.crc))
        .collect()
}

fn build_hello(kernel_ref: &str, src: &Path, out: &Path, image: &TestImage) -> PathBuf {
    let mut cmd = dmb(BUILDKIT);
    cmd.args([
        "build",
        "-q",
        "--kernel-ref",
        kernel_ref,
        "--module-ref",
        image.name(),
    ])
    .arg(src)
    .arg("-o")
    .arg(out);
    let done = cmd.output().unwrap();
    assert!(
        done.status.success(),
        "build against {kernel_ref}: {}",
        stderr(&done)
    );
    out.join("hello.ko")
}

#[test]
fn a_kernel_image_synthesized_from_the_vms_facts_builds_modules_that_load_there() {
    if !sim_available("the synthesis test") {
        return;
    }
    let kit = kit();
    let source = kit_source();
    let scratch = tempfile::tempdir().unwrap();
    let snapshot = scratch.path().join("sim.dmb");

    // The VM, without any kernel image for its kernel.
    let sim = Sim::new();
    let host = sim.start("up", UP_COLD);
    vm_docker_ok(&host, &["image", "rm", &kit.kernel_ref], MIN);
    let said = run_ok(
        dmb_vm(&host, &["detect", "--save", snapshot.to_str().unwrap()]),
        10 * MIN,
        "dmb detect --save (in the VM)",
    );
    assert!(
        said.contains(&format!("kernel:      {}", kit.kver)),
        "{said}"
    );
    // A dry run of a build there says that it would synthesize first,
    // and makes nothing.
    let images_before = vm_docker_ok(&host, &["images", "-q", "--no-trunc"], MIN);
    let plan = run_ok(
        dmb_vm(&host, &["build", "examples/hello", "--dry-run"]),
        10 * MIN,
        "dmb build --dry-run (in the VM)",
    );
    assert!(
        plan.contains(&format!(
            "would first synthesize a kernel image for {}",
            kit.kver
        )),
        "{plan}"
    );
    assert_eq!(
        vm_docker_ok(&host, &["images", "-q", "--no-trunc"], MIN),
        images_before
    );

    // A dry run of the synthesis there reads the VM's facts, names the
    // image it would make and the builder, and makes nothing.
    let plan = run_ok(
        dmb_vm(
            &host,
            &[
                "kernel",
                "synthesize",
                "--dry-run",
                "--source",
                source.to_str().unwrap(),
            ],
        ),
        10 * MIN,
        "dmb kernel synthesize --dry-run (in the VM)",
    );
    assert!(
        plan.contains(&format!("would synthesize dmb-synth/kernel:{}-", kit.kver)),
        "{plan}"
    );
    assert!(plan.contains(&format!("with {}", kit.build_ref)), "{plan}");
    assert!(plan.contains("kernel exports with genksyms"), "{plan}");
    assert_eq!(
        vm_docker_ok(&host, &["images", "-q", "--no-trunc"], MIN),
        images_before
    );

    // The image, from the snapshot and the source (fetched from a loopback
    // server, verified by its hash), on this machine's engine.
    let sha256 = sha256_of(&source);
    let _ = std::fs::remove_dir_all(cache_dir().join("dmb/downloads"));
    let server = FileServer::new(source.clone());
    let url = format!("{}/linux-source-6.1.tar.xz", server.base);
    // Planned first (JSON): nothing downloaded, no image made.
    let host_images = docker_ok(&["images", "-q", "--no-trunc"]);
    let planned = synthesize(&[
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--source",
        &url,
        "--dry-run",
        "--json",
    ]);
    assert!(planned.status.success(), "{}", stderr(&planned));
    let planned: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(planned["release"], kit.kver.as_str(), "{planned}");
    assert_eq!(planned["source"], url.as_str(), "{planned}");
    assert!(
        planned["crcs_to_compute"].as_u64().unwrap() > 0,
        "{planned}"
    );
    assert_eq!(server.served(), 0);
    assert_eq!(docker_ok(&["images", "-q", "--no-trunc"]), host_images);
    let done = synthesize(&[
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--source",
        &url,
        "--sha256",
        &sha256,
    ]);
    let err = stderr(&done);
    assert!(done.status.success(), "synthesize: {err}");
    assert_eq!(server.served(), 1, "{err}");
    assert!(err.contains(&format!("downloading {url}")), "{err}");
    // A download that is not the file the hash names is refused, not kept.
    let wrong = synthesize(&[
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--source",
        &format!("{}/other.tar.xz", server.base),
        "--sha256",
        &"0".repeat(64),
    ]);
    assert_eq!(wrong.status.code(), Some(81), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains(&format!("its SHA-256 is {sha256}")),
        "{}",
        stderr(&wrong)
    );
    drop(server);
    let reference = String::from_utf8(done.stdout).unwrap().trim().to_string();
    assert!(
        reference.starts_with(&format!("dmb-synth/kernel:{}-", kit.kver)),
        "{reference}"
    );
    // Every kernel export is listed; what both sides know agrees.
    let coverage = err
        .lines()
        .find(|l| l.starts_with("dmb: Module.symvers: "))
        .unwrap_or_else(|| panic!("no coverage line: {err}"));
    eprintln!("{coverage}");
    assert!(coverage.contains("kernel exports listed"), "{coverage}");
    // What the engine adds to every container (.dockerenv, /etc/hosts, …) aside.
    let files: Vec<String> = image_files(&reference)
        .into_iter()
        .filter(|f| !(f == ".dockerenv" || f.starts_with("dev/") || f.starts_with("etc/")))
        .collect();
    assert_eq!(
        files,
        [
            "kernel-dev.tar",
            "kernel.tar",
            "linux.tar.xz",
            "vmlinux.btf"
        ],
        "{files:?}"
    );
    let symvers = read_symvers(&reference, &kit.kver);
    let real = read_symvers(&kit.kernel_ref, &kit.kver);
    let vmlinux = |s: &dmb::kernel::symvers::Symvers| {
        s.symbols
            .iter()
            .filter(|(_, e)| e.module == "vmlinux")
            .map(|(k, e)| (k.clone(), e.crc))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (ours, theirs) = (vmlinux(&symvers), vmlinux(&real));
    let wrong: Vec<&String> = ours
        .iter()
        .filter(|(k, c)| theirs.get(*k).is_some_and(|t| t != *c))
        .map(|(k, _)| k)
        .collect();
    assert!(wrong.is_empty(), "CRCs not the real kernel's: {wrong:?}");
    eprintln!(
        "synthesized Module.symvers: {} of the real {} vmlinux CRCs, all equal",
        ours.len(),
        theirs.len()
    );
    assert!(
        ours.len() * 100 >= theirs.len() * 95,
        "{} of {}",
        ours.len(),
        theirs.len()
    );

    // A second run finds it, and the source in the cache (the server is gone).
    let again = synthesize(&[
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--source",
        &url,
        "--sha256",
        &sha256,
        "--json",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    let said: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(said["reference"], reference.as_str(), "{said}");
    assert_eq!(said["cached"], true, "{said}");
    assert_eq!(said["release"], kit.kver.as_str(), "{said}");
    assert!(stderr(&again).contains("is cached"), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("downloaded before"),
        "{}",
        stderr(&again)
    );

    // A module built against it is the module built against the real
    // headers: the same __versions, byte for byte.
    let hello = unique_hello("synth");
    let (a, b) = (TestImage::new("synth-hello"), TestImage::new("kit-hello"));
    let ours = build_hello(&reference, hello.path(), &scratch.path().join("ours"), &a);
    let theirs = build_hello(
        &kit.kernel_ref,
        hello.path(),
        &scratch.path().join("kit"),
        &b,
    );
    assert_eq!(versions(&ours), versions(&theirs));
    assert!(!versions(&ours).is_empty());

    // ... and loads in the VM.
    image_to_vm(&host, a.name(), scratch.path());
    run_ok(
        dmb_vm(&host, &["load", a.name()]),
        5 * MIN,
        "dmb load (hello built against the synthesized image)",
    );
    assert!(loaded_modules(&host).iter().any(|m| m == "hello"));

    // In-tree modules against it: sctp and its closure, loaded there.
    let sctp = TestImage::new("synth-sctp");
    let mut cmd = dmb(BUILDKIT);
    cmd.env_remove("KERNEL_REF").args([
        "build",
        "-q",
        "--in-tree",
        "sctp",
        "--kernel-ref",
        &reference,
        "--build-ref",
        &kit.build_ref,
        "--module-ref",
        sctp.name(),
    ]);
    run_ok(
        cmd,
        30 * MIN,
        "dmb build --in-tree sctp (synthesized image)",
    );
    image_to_vm(&host, sctp.name(), scratch.path());
    run_ok(
        dmb_vm(&host, &["load", sctp.name()]),
        5 * MIN,
        "dmb load (sctp built against the synthesized image)",
    );
    assert!(loaded_modules(&host).iter().any(|m| m == "sctp"));

    // In the VM, with the synthesized image in its engine: `dmb build` with
    // no refs finds it (and the builder it was made with), builds, checks;
    // `dmb load` reads its Module.symvers.
    // Without it there, `dmb build` with no refs goes to synthesize one (the
    // VM is emulated: a synthesis there would take hours, so the source
    // given is one that is not there, refused before the snapshot).
    let mut build = dmb_vm(
        &host,
        &["build", "--kernel-source", "/nonexistent/linux.tar.xz"],
    );
    build.env_remove("BUILD_REF").arg(hello.path());
    let refused = run(build, 10 * MIN, "dmb build (in the VM, no kernel image)");
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(81), "{err}");
    assert!(
        err.contains(&format!(
            "the engine has no {}: synthesizing one for {}",
            kit.kernel_ref, kit.kver
        )),
        "{err}"
    );
    assert!(
        err.contains("kernel source /nonexistent/linux.tar.xz"),
        "{err}"
    );

    image_to_vm(&host, &reference, scratch.path());
    run_ok(
        dmb_vm(&host, &["unload", "hello"]),
        5 * MIN,
        "dmb unload hello",
    );
    let mut build = dmb_vm(&host, &["build", "--module-ref", "synth-auto-hello"]);
    build.env_remove("BUILD_REF").arg(hello.path());
    let built = run(build, 30 * MIN, "dmb build (in the VM, no refs)");
    let err = stderr(&built);
    assert!(built.status.success(), "dmb build in the VM: {err}");
    assert!(
        err.contains(&format!("using {reference}, synthesized earlier")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "BUILD_REF {} (the builder the kernel image was synthesized with)",
            kit.build_ref
        )),
        "{err}"
    );
    assert!(err.contains("checking that they will load"), "{err}");
    let mut load = dmb_vm(&host, &["load", "synth-auto-hello"]);
    load.env_remove("BUILD_REF");
    let loaded = run(load, 10 * MIN, "dmb load (in the VM)");
    let err = stderr(&loaded);
    assert!(loaded.status.success(), "dmb load in the VM: {err}");
    assert!(
        err.contains(&format!("reading Module.symvers of {reference}")),
        "{err}"
    );
    assert!(loaded_modules(&host).iter().any(|m| m == "hello"));

    vm_disk_full_during_a_build(&host, &kit.build_ref);
    drop(sim);

    refusals(&snapshot, &source, scratch.path());
}

/// The VM's disk full while make runs there: a clear error (exit 35, the
/// line that said so, the hint), nothing left behind, and the next build
/// (the disk freed) reuses the build environment as it was.
fn vm_disk_full_during_a_build(host: &str, build_ref: &str) {
    const FILL: &str = "dmb-test-fill";
    let images = |host: &str| {
        let mut ids: Vec<String> = vm_docker_ok(host, &["images", "-q", "--no-trunc"], MIN)
            .lines()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    };
    let containers = |host: &str| {
        vm_docker_ok(
            host,
            &[
                "ps",
                "-a",
                "--format",
                "{{.ID}} {{.Names}} {{.Status}} {{.Labels}}",
            ],
            MIN,
        )
    };
    let before = images(host);
    let containers_before = containers(host);
    // All but 64 MiB of the disk, root's reserve too (the build runs as
    // root), in a volume: fallocate takes no time.
    vm_docker_ok(host, &["volume", "create", FILL], MIN);
    vm_docker_ok(
        host,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{FILL}:/fill"),
            build_ref,
            "sh",
            "-c",
            "set -e; free=$(( $(stat -f -c '%f * %S' /fill) )); fallocate -l $(( free - 64 * 1024 * 1024 )) /fill/big",
        ],
        2 * MIN,
    );
    let fills = root().join("tests/modules/fills-disk");
    let mut build = dmb_vm(host, &["build", "--module-ref", "synth-disk-full"]);
    build.env_remove("BUILD_REF").arg(&fills);
    let failed = run(build, 30 * MIN, "dmb build (in the VM, its disk full)");
    let err = stderr(&failed);
    vm_docker_ok(host, &["volume", "rm", FILL], MIN);
    assert_eq!(failed.status.code(), Some(35), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("the engine's disk is full"), "{err}");
    assert_eq!(
        containers(host),
        containers_before,
        "containers left behind; the build said:\n{err}"
    );
    assert_eq!(
        vm_docker_ok(host, &["images", "-q", "--filter", "dangling=true"], MIN).trim(),
        "",
        "dangling images left behind"
    );
    assert_eq!(images(host), before, "images made or lost");

    // The disk freed, a build goes on from the same build environment.
    let mut build = dmb_vm(host, &["build", "--module-ref", "synth-after-full"]);
    build
        .env_remove("BUILD_REF")
        .arg(root().join("tests/modules/slow-init"));
    let built = run(build, 30 * MIN, "dmb build (in the VM, its disk freed)");
    let err = stderr(&built);
    assert!(built.status.success(), "{err}");
    assert!(!err.contains("preparing the build environment"), "{err}");
}

/// What the cross-check and the configuration check must refuse.
fn refusals(snapshot: &Path, source: &Path, scratch: &Path) {
    // One member more in a structure much of the kernel uses.
    let patches = scratch.join("patches");
    std::fs::create_dir_all(&patches).unwrap();
    std::fs::write(
        patches.join("0001-grow-struct-device.patch"),
        device_patch(source),
    )
    .unwrap();
    let patched = [
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--source",
        source.to_str().unwrap(),
        "--patches",
        patches.to_str().unwrap(),
    ];
    // Stopped while it checks the configuration against the source (a
    // step every run takes; the unpacked source may be cached already):
    // the signal's status, and nothing left (no container, no dangling
    // image).
    for stop in [Stop::CtrlC, Stop::Term] {
        let _engine = engine_lock();
        let before = EngineState::now();
        let (code, log) = stop_when(synthesize_command(&patched), "olddefconfig", stop, 20 * MIN);
        assert_eq!(code, Some(stop.code()), "{log}");
        before.assert_unchanged();
    }
    let done = synthesize(&patched);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(83), "{err}");
    assert!(err.contains("symbols whose CRCs disagree"), "{err}");
    assert!(err.contains("computed from the source"), "{err}");

    // The configuration says the kernel was built without autogroups
    // (`struct signal_struct` loses a member): its modules say otherwise.
    let mut facts = dmb::synth::Snapshot::read(snapshot).unwrap();
    facts.config = facts.config.replace(
        "CONFIG_SCHED_AUTOGROUP=y",
        "# CONFIG_SCHED_AUTOGROUP is not set",
    );
    let changed = scratch.join("changed.dmb");
    facts.write(&changed).unwrap();
    let done = synthesize(&[
        "--snapshot",
        changed.to_str().unwrap(),
        "--source",
        source.to_str().unwrap(),
    ]);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(83), "{err}");
    assert!(err.contains("symbols whose CRCs disagree"), "{err}");

    // A builder without pahole (and nothing to install it with) for a
    // kernel with BTF.
    let builder = TestImage::new("no-pahole");
    let context = scratch.join("no-pahole");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nRUN rm -f /usr/bin/pahole /usr/bin/apt-get /usr/bin/apt /usr/bin/dpkg\n",
            kit().build_ref
        ),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "-t",
        builder.name(),
        context.to_str().unwrap(),
    ]);
    let done = synthesize(&[
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--source",
        source.to_str().unwrap(),
        "--build-ref",
        builder.name(),
    ]);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(73), "{err}");
    assert!(
        err.contains("pahole (dwarves) (for CONFIG_DEBUG_INFO_BTF=y)"),
        "{err}"
    );
}

/// A patch that adds a member to `struct device`.
fn device_patch(source: &Path) -> String {
    let out = Command::new("tar")
        .arg("-xJOf")
        .arg(source)
        .arg("--wildcards")
        .arg("*/include/linux/device.h")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let header = String::from_utf8(out.stdout).unwrap();
    let at =
        header.find("\nstruct device {\n").expect("struct device") + "\nstruct device {\n".len();
    // Inserted after the line that opens the structure.
    let line = header[..at].lines().count();
    format!(
        "--- a/include/linux/device.h\n+++ b/include/linux/device.h\n@@ -{line},0 +{},1 @@\n+\tunsigned long dmb_test_member;\n",
        line + 1
    )
}

/// The Module.symvers of a kernel image's header tree for `kver`.
fn read_symvers(reference: &str, kver: &str) -> dmb::kernel::symvers::Symvers {
    let tar = image_file(reference, "/kernel-dev.tar");
    let want = format!("usr/src/linux-headers-{kver}/Module.symvers");
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            == want
        {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            return dmb::kernel::symvers::Symvers::parse(&text).unwrap();
        }
    }
    panic!("no {want} in {reference}");
}
