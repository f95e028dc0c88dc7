//! Real DKMS packages from Debian's archive (`apt-get download
//! <name>-dkms`), built for the kit's kernel as dkms would build them, then
//! checked; dkms's refusals; and three of them loaded into the desktop-sim,
//! each doing what it is for there: an xtables target, a genetlink family,
//! a video device (after `--with-deps` built the media core the VM lacks).
//!
//! The packages, chosen for variety:
//! - vpoll: one module, MAKE `make -C ${kernel_source_dir} M=…`;
//! - jool: three modules in three directories, MAKE three makes joined
//!   with `&&`, jool and jool_siit need jool_common;
//! - xtables-addons: MAKE is `make …; find … -exec mv …` (it moves the
//!   modules), 23 modules placed at /updates;
//! - v4l2loopback: its dkms.conf sources the kernel's .config and computes
//!   BUILD_EXCLUSIVE_KERNEL with shell code; MAKE needs KERNEL_DIR; it
//!   needs videodev, which the sim lacks;
//! - acpi-call: BUILD_EXCLUSIVE_CONFIG="CONFIG_ACPI";
//! - dm-writeboost: BUILD_EXCLUSIVE_KERNEL_MIN, a scalar MAKE with
//!   KERNEL_TREE, DEST_MODULE_LOCATION /kernel/drivers/md.

mod common;

use common::sim::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `.deb` of a `*-dkms` package, downloaded once into the kit's cache.
fn deb(package: &str) -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let dir = std::env::var("DMB_KIT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&home).join(".cache/dmb-kit"))
        .join("dkms");
    std::fs::create_dir_all(&dir).unwrap();
    let find = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            })
    };
    if let Some(found) = find() {
        return found;
    }
    let download = || {
        Command::new("apt-get")
            .args(["download", package])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    if !download().status.success() {
        let update = Command::new("apt-get")
            .args(["update", "-q"])
            .output()
            .unwrap();
        assert!(
            update.status.success(),
            "apt-get update: {}",
            stderr(&update)
        );
        let again = download();
        assert!(
            again.status.success(),
            "apt-get download {package}: {}",
            stderr(&again)
        );
    }
    find().unwrap_or_else(|| panic!("apt-get download {package} left no .deb"))
}

/// The DKMS tree of a `.deb`, unpacked with dpkg-deb (not with dmb's own
/// reader, which the `.deb` builds below use).
fn tree(package: &str, into: &Path) -> PathBuf {
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb(package))
        .arg(into)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb -x: {}", stderr(&out));
    let src = into.join("usr/src");
    let dir = std::fs::read_dir(&src)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(dir.join("dkms.conf").is_file(), "{}", dir.display());
    dir
}

/// `dmb build SOURCE` for the kit, with -o; asserts success; the output
/// dir and dmb's stderr.
fn build(source: &Path, image: &TestImage, extra: &[&str], out: &Path) -> String {
    let done = dmb(BUILDKIT)
        .args(["build", "-q"])
        .arg(source)
        .args(["--module-ref", image.name(), "-o"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "dmb build {}: {}",
        source.display(),
        stderr(&done)
    );
    stderr(&done)
}

fn ko_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ko"))
        .collect();
    names.sort();
    names
}

fn label(image: &str, key: &str) -> String {
    docker_ok(&[
        "image",
        "inspect",
        "-f",
        &format!("{{{{index .Config.Labels \"{key}\"}}}}"),
        image,
    ])
    .trim()
    .to_string()
}

/// `dmb check` of every module of a directory against the kit's kernel.
fn check(dir: &Path) {
    let kit = kit();
    let mut cmd = dmb(BUILDKIT);
    cmd.args(["check", "--kernel-ref", &kit.kernel_ref]);
    for n in ko_names(dir) {
        cmd.arg(dir.join(n));
    }
    let done = cmd.output().unwrap();
    assert!(
        done.status.success(),
        "dmb check {}: {}",
        dir.display(),
        stderr(&done)
    );
}

#[test]
fn real_dkms_packages_build_for_the_kit_kernel_and_pass_the_check() {
    let _lock = engine_lock();
    let kit = kit();
    let work = tempfile::tempdir().unwrap();
    let before = EngineState::now();

    // vpoll from its directory, with neither --dkms nor --no-dkms: the
    // dkms.conf decides.
    let vpoll_tree = tree("vpoll-dkms", &work.path().join("vpoll"));
    let image = TestImage::new("dkms-vpoll");
    let out = work.path().join("out-vpoll");
    build(&vpoll_tree, &image, &[], &out);
    assert_eq!(ko_names(&out), ["vpoll.ko"]);
    let m = read_module(&out.join("vpoll.ko"));
    assert!(m
        .info
        .vermagic()
        .unwrap()
        .starts_with(&format!("{} ", kit.kver)));
    check(&out);
    let files = image_files(image.name());
    assert!(files.contains(&"vpoll.ko".to_string()), "{files:?}");
    assert!(
        files.contains(&format!("opt/lib/modules/{}/extra/vpoll.ko", kit.kver)),
        "{files:?}"
    );
    assert_eq!(label(image.name(), "dmb.dkms.package"), "vpoll");
    assert_eq!(label(image.name(), "dmb.dkms.version"), "0.1");

    // jool from its .deb: three directories, `&&`, and a dependency
    // between the package's own modules in modules.dep.
    let image = TestImage::new("dkms-jool");
    let out = work.path().join("out-jool");
    build(&deb("jool-dkms"), &image, &[], &out);
    assert_eq!(
        ko_names(&out),
        ["jool.ko", "jool_common.ko", "jool_siit.ko"]
    );
    assert!(read_module(&out.join("jool.ko"))
        .info
        .depends()
        .contains(&"jool_common".to_string()));
    check(&out);
    let dep = String::from_utf8(image_file(
        image.name(),
        &format!("/opt/lib/modules/{}/modules.dep", kit.kver),
    ))
    .unwrap();
    assert!(
        dep.lines()
            .any(|l| l == "extra/jool.ko: extra/jool_common.ko"),
        "{dep}"
    );
    assert_eq!(label(image.name(), "dmb.dkms.package"), "jool-dkms");

    // xtables-addons: `make …; find … -exec mv` moves every module to the
    // top of the build directory, where BUILT_MODULE_LOCATION "" finds them.
    let image = TestImage::new("dkms-xtables");
    let out = work.path().join("out-xtables");
    build(&deb("xtables-addons-dkms"), &image, &[], &out);
    let names = ko_names(&out);
    assert!(names.len() >= 20, "{names:?}");
    for n in [
        "xt_CHAOS.ko",
        "xt_TARPIT.ko",
        "xt_DELUDE.ko",
        "compat_xtables.ko",
        "xt_pknock.ko",
    ] {
        assert!(names.contains(&n.to_string()), "{n} not in {names:?}");
    }
    check(&out);
    let files = image_files(image.name());
    assert!(
        files.contains(&format!("opt/lib/modules/{}/updates/xt_CHAOS.ko", kit.kver)),
        "{files:?}"
    );

    // v4l2loopback: shell code in dkms.conf (it sources the kernel's
    // .config); the kit's Module.symvers has videodev, so it checks.
    let image = TestImage::new("dkms-v4l2loopback");
    let out = work.path().join("out-v4l2loopback");
    let said = build(&deb("v4l2loopback-dkms"), &image, &[], &out);
    assert_eq!(ko_names(&out), ["v4l2loopback.ko"]);
    assert!(said.contains("needs videodev"), "{said}");
    check(&out);

    // acpi-call: BUILD_EXCLUSIVE_CONFIG="CONFIG_ACPI", which the kit's
    // kernel has.
    let image = TestImage::new("dkms-acpi-call");
    let out = work.path().join("out-acpi-call");
    build(&deb("acpi-call-dkms"), &image, &[], &out);
    assert_eq!(ko_names(&out), ["acpi_call.ko"]);
    check(&out);

    // dm-writeboost: BUILD_EXCLUSIVE_KERNEL_MIN, placed under kernel/.
    let image = TestImage::new("dkms-writeboost");
    let out = work.path().join("out-writeboost");
    build(&deb("dm-writeboost-dkms"), &image, &[], &out);
    assert_eq!(ko_names(&out), ["dm-writeboost.ko"]);
    check(&out);
    let files = image_files(image.name());
    assert!(
        files.contains(&format!(
            "opt/lib/modules/{}/kernel/drivers/md/dm-writeboost.ko",
            kit.kver
        )),
        "{files:?}"
    );

    // --no-dkms runs the directory's own Makefile instead (vpoll's default
    // target uses `uname -r`, which the build container answers with the
    // target's release): the seed recipe's contract, no dkms.conf read.
    let image = TestImage::new("dkms-no-dkms");
    let out = work.path().join("out-no-dkms");
    let said = build(&vpoll_tree, &image, &["--no-dkms"], &out);
    assert_eq!(ko_names(&out), ["vpoll.ko"]);
    assert!(!said.contains("dkms.conf"), "{said}");
    assert!(!label(image.name(), "dmb.dkms.package").contains("vpoll"));
    before.assert_unchanged();
}

/// A copy of vpoll's tree with `lines` added to its dkms.conf.
fn vpoll_with(work: &Path, name: &str, lines: &str) -> PathBuf {
    let dir = tree("vpoll-dkms", &work.join(name));
    let conf = dir.join("dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{text}\n{lines}\n")).unwrap();
    dir
}

#[test]
fn dkms_refusals_are_clear_distinct_and_leave_nothing_behind() {
    let _lock = engine_lock();
    let work = tempfile::tempdir().unwrap();
    let before = EngineState::now();
    let image = TestImage::new("dkms-refused");
    let refused = |dir: &Path| {
        let done = dmb(BUILDKIT)
            .args(["build", "-q"])
            .arg(dir)
            .args(["--module-ref", image.name()])
            .output()
            .unwrap();
        (done.status.code(), stderr(&done))
    };

    let (code, said) = refused(&vpoll_with(
        work.path(),
        "max",
        "BUILD_EXCLUSIVE_KERNEL_MAX=\"5.0\"",
    ));
    assert_eq!(code, Some(91), "{said}");
    assert!(
        said.contains("includes a BUILD_EXCLUSIVE directive which does not match"),
        "{said}"
    );
    assert!(
        said.contains("BUILD_EXCLUSIVE_KERNEL_MAX=\"5.0\""),
        "{said}"
    );

    let (code, said) = refused(&vpoll_with(
        work.path(),
        "kernel",
        "BUILD_EXCLUSIVE_KERNEL=\"^5\\.\"",
    ));
    assert_eq!(code, Some(91), "{said}");
    assert!(said.contains("does not match"), "{said}");

    let (code, said) = refused(&vpoll_with(
        work.path(),
        "ghost",
        "BUILT_MODULE_NAME[1]=\"vpoll_ghost\"\nDEST_MODULE_LOCATION[1]=\"/extra\"",
    ));
    assert_eq!(code, Some(92), "{said}");
    assert!(said.contains("did not build vpoll_ghost.ko"), "{said}");

    let (code, said) = refused(&vpoll_with(work.path(), "syntax", "if then fi ("));
    assert_eq!(code, Some(90), "{said}");
    assert!(said.contains("syntax error"), "{said}");

    let (code, said) = refused(&vpoll_with(work.path(), "exits", "exit 3"));
    assert_eq!(code, Some(90), "{said}");
    assert!(said.contains("ended the shell"), "{said}");

    let (code, said) = refused(&vpoll_with(
        work.path(),
        "location",
        "DEST_MODULE_LOCATION[0]=\"/lib\"",
    ));
    assert_eq!(code, Some(90), "{said}");
    assert!(
        said.contains("does not begin with '/kernel', '/updates', or '/extra'"),
        "{said}"
    );

    // The fragment's commands ran in the build container, not here.
    let marker = work.path().join("ran-on-the-host");
    let (code, said) = refused(&vpoll_with(
        work.path(),
        "host",
        &format!(
            "touch {}\nBUILD_EXCLUSIVE_ARCH=\"^sparc$\"",
            marker.display()
        ),
    ));
    assert_eq!(code, Some(91), "{said}");
    assert!(!marker.exists(), "dkms.conf ran on the host");

    let not_deb = work.path().join("x.deb");
    std::fs::write(&not_deb, "not a package").unwrap();
    let done = dmb(BUILDKIT)
        .args(["build", "-q"])
        .arg(&not_deb)
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(94), "{}", stderr(&done));

    assert_eq!(
        docker(&["image", "inspect", image.name()]).status.code(),
        Some(1)
    );
    before.assert_unchanged();
}

#[test]
fn dkms_packages_load_in_the_sim_and_work() {
    if !sim_available("the DKMS load test") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let images: Vec<TestImage> = (0..3).map(|_| TestImage::new("dkms-sim")).collect();
    let (xt, jool, v4l2) = (
        work.path().join("xt"),
        work.path().join("jool"),
        work.path().join("v4l2"),
    );
    {
        let _lock = engine_lock();
        build(&deb("xtables-addons-dkms"), &images[0], &[], &xt);
        build(&deb("jool-dkms"), &images[1], &[], &jool);
        let probe = busybox();
        let said = build(
            &deb("v4l2loopback-dkms"),
            &images[2],
            &["--with-deps", "--probe-image", &probe],
            &v4l2,
        );
        assert!(said.contains("videodev"), "{said}");
        let names = ko_names(&v4l2);
        assert!(names.contains(&"videodev.ko".to_string()), "{names:?}");
        assert!(names.contains(&"v4l2loopback.ko".to_string()), "{names:?}");
        let deps = label(images[2].name(), "dmb.dependencies");
        assert!(deps.contains("videodev"), "{deps}");
    }

    let sim = Sim::new();
    let host = sim.start("up", UP_COLD);
    let loaded = loaded_modules(&host);
    for m in ["xt_CHAOS", "jool", "v4l2loopback", "videodev"] {
        assert!(
            !loaded.iter().any(|l| l == m),
            "{m} is loaded before dmb loaded it"
        );
    }

    // Without its dependency, v4l2loopback is refused before anything is
    // loaded: the VM has no videodev.
    let alone = work.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(v4l2.join("v4l2loopback.ko"), alone.join("v4l2loopback.ko")).unwrap();
    let refused = run(
        dmb_vm(
            &host,
            &["load", alone.join("v4l2loopback.ko").to_str().unwrap()],
        ),
        5 * MIN,
        "dmb load v4l2loopback.ko alone",
    );
    assert_eq!(refused.status.code(), Some(60), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("videodev"),
        "{}",
        stderr(&refused)
    );

    // xt_CHAOS (with xt_DELUDE and xt_TARPIT from beside it): the CHAOS
    // target is registered.
    run_ok(
        dmb_vm(&host, &["load", xt.join("xt_CHAOS.ko").to_str().unwrap()]),
        5 * MIN,
        "dmb load xt_CHAOS.ko",
    );
    // The list is ip_tables' (the VM's dockerd may use nftables alone).
    let targets = in_vm(
        &host,
        "/usr/sbin/modprobe ip_tables && cat /proc/net/ip_tables_targets",
    );
    assert!(targets.lines().any(|l| l == "CHAOS"), "{targets}");

    // jool (jool_common beside it): its genetlink family.
    run_ok(
        dmb_vm(&host, &["load", jool.join("jool.ko").to_str().unwrap()]),
        5 * MIN,
        "dmb load jool.ko",
    );
    let families = in_vm(&host, "/usr/sbin/genl ctrl list");
    assert!(families.contains("Jool"), "{families}");

    // v4l2loopback with the media core built in-tree: a video device.
    run_ok(
        dmb_vm(
            &host,
            &["load", v4l2.join("v4l2loopback.ko").to_str().unwrap()],
        ),
        5 * MIN,
        "dmb load v4l2loopback.ko (with videodev beside it)",
    );
    let devices = in_vm(&host, "ls /dev/video* && cat /sys/class/video4linux/*/name");
    assert!(devices.contains("/dev/video0"), "{devices}");
    let loaded = loaded_modules(&host);
    for m in [
        "xt_CHAOS",
        "jool",
        "jool_common",
        "v4l2loopback",
        "videodev",
    ] {
        assert!(loaded.iter().any(|l| l == m), "{m} not loaded: {loaded:?}");
    }
    drop(sim);
}
