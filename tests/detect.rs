//! `dmb detect` against the host engine. Only what an ordinary container
//! sees: no privileged container ever runs against this machine's engine
//! (`--no-vm-files`). Against a VM standing in for Docker Desktop, in
//! `tests/sim.rs`.

mod common;

use common::*;

#[test]
fn detect_describes_the_host_kernel_without_privilege() {
    let image = busybox();
    let _engine = engine_lock();
    let before = EngineState::now();
    let out = dmb(LEGACY)
        .args([
            "-v",
            "detect",
            "--json",
            "--no-vm-files",
            "--probe-image",
            &image,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("--privileged"), "{}", stderr(&out));
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(t["release"], release.trim());
    let version = std::fs::read_to_string("/proc/version").unwrap();
    assert_eq!(t["proc_version"], version.trim());
    assert_eq!(t["arch"], std::env::consts::ARCH);
    assert_eq!(t["vm_files"], false);
    assert!(t["platform"].is_string());
    assert!(t["build_ref"]["quality"].is_string());
    before.assert_unchanged();
}
