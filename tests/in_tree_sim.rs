//! In-tree modules built on this machine's engine for the kit's kernel and
//! loaded with `dmb load` into the desktop-sim, whose module tree lacks
//! them (and what only they use): sctp, dm-crypt, openvswitch, and ublk
//! (whose option Debian's config leaves off). Each is then used in the VM:
//! an SCTP socket, a dm-crypt table, the ovs genetlink families, ublk's
//! control device. `dmb detect` in the VM says what can be built in-tree.

mod common;

use common::sim::*;
use common::*;
use std::path::{Path, PathBuf};

/// Builds in-tree modules for the kit's kernel here; returns their dir.
fn build_in_tree(name: &str, out: &Path, image: &TestImage) -> PathBuf {
    let dest = out.join(name);
    let probe = busybox();
    let mut cmd = dmb(BUILDKIT);
    cmd.args(["build", "-q", "--probe-image", &probe, "--in-tree", name])
        .args(["--module-ref", image.name(), "-o"])
        .arg(&dest);
    let done = cmd.output().unwrap();
    assert!(done.status.success(), "in-tree {name}: {}", stderr(&done));
    dest
}

#[test]
fn in_tree_modules_load_in_the_sim_with_their_closure_and_work() {
    if !sim_available("the in-tree load test") {
        return;
    }
    let kit = kit();
    let out = tempfile::tempdir().unwrap();
    let images: Vec<TestImage> = (0..4).map(|_| TestImage::new("in-tree-load")).collect();
    build_in_tree("sctp", out.path(), &images[0]);
    let crypt = build_in_tree("dm-crypt", out.path(), &images[1]).join("dm-crypt.ko");
    let ovs = build_in_tree("openvswitch", out.path(), &images[2]).join("openvswitch.ko");
    let ublk = build_in_tree("ublk_drv", out.path(), &images[3]).join("ublk_drv.ko");

    let sim = Sim::new();
    let host = sim.start("up", UP_COLD);
    assert_eq!(
        vm_docker_ok(&host, &["info", "--format", "{{.KernelVersion}}"], MIN).trim(),
        kit.kver
    );
    for m in ["sctp", "dm_crypt", "openvswitch", "nsh", "ublk_drv"] {
        assert!(
            !loaded_modules(&host).iter().any(|l| l == m),
            "{m} is loaded before dmb loaded it"
        );
    }

    // What the VM lacks, and whether the kernel's source can make it.
    let said = run_ok(
        dmb_vm(&host, &["detect", "vcan", "mctp-serial"]),
        5 * MIN,
        "dmb detect vcan mctp-serial (in the VM)",
    );
    assert!(
        said.contains("module vcan: can be built in-tree: yes: CONFIG_CAN_VCAN is a module"),
        "{said}"
    );
    assert!(
        said.contains(
            "module mctp-serial: can be built in-tree: no: CONFIG_MCTP_SERIAL needs CONFIG_MCTP"
        ),
        "{said}"
    );

    // sctp from its MODULE_REF image: the image's dependencies come along
    // where the kernel lacks them.
    image_to_vm(&host, images[0].name(), out.path());
    let loaded = run_ok(
        dmb_vm(&host, &["load", "--json", images[0].name()]),
        5 * MIN,
        "dmb load (sctp image)",
    );
    let plan: serde_json::Value = serde_json::from_str(&loaded).unwrap();
    let steps: Vec<&str> = plan["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["module"].as_str().unwrap())
        .collect();
    assert_eq!(steps.last(), Some(&"sctp"), "{loaded}");
    assert!(steps.contains(&"udp_tunnel"), "{loaded}");
    let socket = vm_docker_ok(
        &host,
        &[
            "run", "--rm", "--network", "none", &kit.build_ref, "python3", "-c",
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP); print('sctp socket', s.fileno() >= 0)",
        ],
        3 * MIN,
    );
    assert_eq!(socket.trim(), "sctp socket True");

    // dm-crypt from its file, dm-mod beside it: a crypt table over a zero
    // device.
    run_ok(
        dmb_vm(&host, &["load", crypt.to_str().unwrap()]),
        5 * MIN,
        "dmb load dm-crypt.ko",
    );
    let table = in_vm(
        &host,
        "/usr/sbin/dmsetup create dmbzero --table '0 2048 zero' \
         && mm=$(/usr/sbin/dmsetup info -c -o major,minor --noheadings dmbzero) \
         && /usr/sbin/dmsetup create dmbcrypt --table \"0 2048 crypt aes-cbc-essiv:sha256 000102030405060708090a0b0c0d0e0f 0 $mm 0\" \
         && /usr/sbin/dmsetup table dmbcrypt; rc=$?; \
         /usr/sbin/dmsetup remove dmbcrypt; /usr/sbin/dmsetup remove dmbzero; exit $rc",
    );
    assert!(table.contains("crypt aes-cbc-essiv:sha256"), "{table}");

    // openvswitch, with nsh (which the VM lacks) from beside it.
    let loaded = run_ok(
        dmb_vm(&host, &["load", ovs.to_str().unwrap()]),
        5 * MIN,
        "dmb load openvswitch.ko",
    );
    assert!(loaded.contains("nsh"), "{loaded}");
    let families = in_vm(&host, "/usr/sbin/genl ctrl list");
    for f in ["ovs_datapath", "ovs_vport", "ovs_flow", "ovs_packet"] {
        assert!(families.contains(f), "{f} not in {families}");
    }

    // ublk: its option is off in the running kernel's config, and only adds
    // a driver.
    run_ok(
        dmb_vm(&host, &["load", ublk.to_str().unwrap()]),
        5 * MIN,
        "dmb load ublk_drv.ko",
    );
    let control = in_vm(&host, "ls /dev/ublk-control");
    assert_eq!(control.trim(), "/dev/ublk-control");
    let loaded = loaded_modules(&host);
    for m in [
        "sctp",
        "dm_crypt",
        "dm_mod",
        "openvswitch",
        "nsh",
        "ublk_drv",
    ] {
        assert!(loaded.iter().any(|l| l == m), "{m} not loaded: {loaded:?}");
    }
    drop(sim);
}
