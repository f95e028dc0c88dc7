//! `dmb build --in-tree` against this machine's engine and the kit's real
//! Debian kernel source: modules built with their closure, the prepared
//! tree reused, and every refusal (an option that changes what the kernel
//! uses, one that can only be built in, a builder that cannot build in the
//! kernel's tree, a name the source does not know). Loading what was built
//! happens in the desktop-sim, in `tests/in_tree_sim.rs`.
//!
//! The engine here runs another kernel than the kit's, so dmb builds every
//! module the asked-for ones need that the kernel does not have built in.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// `dmb build --in-tree NAME…` for the kit's kernel, BuildKit.
fn in_tree(names: &[&str], extra: &[&str]) -> Output {
    in_tree_with(BUILDKIT, names, extra)
}

fn in_tree_with(flavour: Flavour, names: &[&str], extra: &[&str]) -> Output {
    let probe = busybox();
    let mut cmd = dmb(flavour);
    cmd.args(["build", "--probe-image", &probe, "--in-tree"])
        .args(names)
        .args(extra);
    cmd.output().unwrap()
}

fn ko_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The kit kernel's own CRC of an exported symbol, from its image's
/// Module.symvers (read with dmb's library).
fn kit_crc(symbol: &str) -> u32 {
    use dmb::engine::{BuilderPreference, DockerCli, Session};
    static FACTS: std::sync::OnceLock<dmb::kernel::KernelFacts> = std::sync::OnceLock::new();
    let facts = FACTS.get_or_init(|| {
        let engine = DockerCli::connect("docker", BuilderPreference::Legacy, false).unwrap();
        let session = Session::new(&engine);
        let facts =
            dmb::kernel::image::facts_from_image(&session, &kit().kernel_ref, None).unwrap();
        drop(session);
        facts
    });
    facts.symvers.symbols[symbol].crc
}

fn images_named(repository: &str) -> Vec<String> {
    let mut v: Vec<String> = docker_ok(&["images", "-q", "--no-trunc", repository])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn in_tree_modules_build_with_their_closure_and_the_prepared_tree_is_reused() {
    let _engine = engine_lock();
    let kit = kit();
    let out = tempfile::tempdir().unwrap();
    let sctp = TestImage::new("in-tree-sctp");
    let before = EngineState::now();
    let done = in_tree(
        &["sctp"],
        &[
            "-q",
            "--module-ref",
            sctp.name(),
            "-o",
            out.path().join("sctp").to_str().unwrap(),
        ],
    );
    let err = stderr(&done);
    assert!(done.status.success(), "{err}");
    // sctp and what it needs: the engine's kernel is another, so every
    // module sctp depends on is built too.
    assert_eq!(
        ko_names(&out.path().join("sctp")),
        [
            "ip6_udp_tunnel.ko",
            "libcrc32c.ko",
            "sctp.ko",
            "udp_tunnel.ko"
        ]
    );
    let m = read_module(&out.path().join("sctp/sctp.ko"));
    assert_eq!(
        m.info.vermagic().unwrap(),
        format!("{} SMP preempt mod_unload modversions ", kit.kver)
    );
    let labels = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        sctp.name(),
    ]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    let mut deps: Vec<&str> = labels["dmb.dependencies"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    deps.sort();
    assert_eq!(deps, ["ip6_udp_tunnel", "libcrc32c", "udp_tunnel"]);
    assert_eq!(labels["dmb.in-tree"], "CONFIG_IP_SCTP");
    // The kmod layout has modprobe's index of the whole closure.
    let dep = String::from_utf8(image_file(
        sctp.name(),
        &format!("/opt/lib/modules/{}/modules.dep", kit.kver),
    ))
    .unwrap();
    assert!(
        dep.lines()
            .any(|l| l.starts_with("extra/sctp.ko:") && l.contains("extra/libcrc32c.ko")),
        "{dep}"
    );
    before.assert_unchanged();

    // A second build for the same kernel and configuration starts at make
    // M=: no source unpacked, no tree prepared, no new tree image. (And the
    // legacy builder works as BuildKit does.)
    let prepared = images_named("dmb-kernel-prepared");
    let crypt = TestImage::new("in-tree-dm-crypt");
    let done = in_tree_with(
        LEGACY,
        &["dm-crypt"],
        &[
            "--module-ref",
            crypt.name(),
            "-o",
            out.path().join("dm-crypt").to_str().unwrap(),
        ],
    );
    let err = stderr(&done);
    assert!(done.status.success(), "{err}");
    assert!(err.contains("is cached"), "{err}");
    assert!(!err.contains("modules_prepare"), "{err}");
    assert!(!err.contains("unpacking the source"), "{err}");
    assert_eq!(images_named("dmb-kernel-prepared"), prepared);
    assert_eq!(
        ko_names(&out.path().join("dm-crypt")),
        ["dm-crypt.ko", "dm-mod.ko"]
    );

    // openvswitch needs nsh, which only it uses, among others.
    let ovs = TestImage::new("in-tree-openvswitch");
    let done = in_tree(
        &["openvswitch"],
        &[
            "-q",
            "--module-ref",
            ovs.name(),
            "-o",
            out.path().join("openvswitch").to_str().unwrap(),
        ],
    );
    assert!(done.status.success(), "{}", stderr(&done));
    let built = ko_names(&out.path().join("openvswitch"));
    for m in [
        "openvswitch.ko",
        "nsh.ko",
        "nf_conntrack.ko",
        "libcrc32c.ko",
    ] {
        assert!(built.iter().any(|b| b == m), "{m} not in {built:?}");
    }
    before.assert_unchanged();
}

#[test]
fn an_option_that_changes_what_the_kernel_uses_is_refused_with_the_crcs() {
    let _engine = engine_lock();
    let before = EngineState::now();
    let image = TestImage::new("in-tree-dsa");
    let out = tempfile::tempdir().unwrap();
    // CONFIG_NET_DSA is off in Debian's 6.1 and adds a member to struct
    // net_device: every export that takes one has another CRC with it.
    let done = in_tree(
        &["CONFIG_NET_DSA"],
        &[
            "-q",
            "--module-ref",
            image.name(),
            "-o",
            out.path().join("dsa").to_str().unwrap(),
        ],
    );
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(72), "{err}");
    assert!(err.contains("built without CONFIG_NET_DSA"), "{err}");
    // Each symbol named comes with the running kernel's own CRC (the kit's
    // Module.symvers says which), and core networking is among them.
    let named: Vec<(String, String)> = err
        .lines()
        .filter(|l| l.contains(" in the running kernel, ") && l.starts_with("  "))
        .filter_map(|l| {
            let (symbol, rest) = l.trim().split_once(' ')?;
            let hex = rest.split("): 0x").nth(1)?.split(' ').next()?;
            Some((symbol.to_string(), hex.to_string()))
        })
        .collect();
    assert!(named.len() >= 10, "{err}");
    for (symbol, hex) in &named {
        assert_eq!(*hex, format!("{:08x}", kit_crc(symbol)), "{symbol}: {err}");
    }
    assert!(err.contains("(net/core/dev.c): 0x"), "{err}");
    // Nothing was handed out.
    assert!(!out.path().join("dsa").exists());
    assert!(docker(&["image", "inspect", image.name()]).status.code() != Some(0));
    before.assert_unchanged();
}

#[test]
fn an_option_that_only_adds_a_driver_builds_after_the_crcs_agree() {
    let _engine = engine_lock();
    let out = tempfile::tempdir().unwrap();
    let image = TestImage::new("in-tree-ublk");
    // CONFIG_BLK_DEV_UBLK is off in Debian's 6.1 config and touches nothing
    // the kernel's own code uses.
    let done = in_tree(
        &["ublk_drv"],
        &[
            "--module-ref",
            image.name(),
            "-o",
            out.path().join("ublk").to_str().unwrap(),
            // --jobs reaches the in-tree make (the default, nproc, is
            // what the other tests run with).
            "--jobs",
            "1",
        ],
    );
    let err = stderr(&done);
    assert!(done.status.success(), "{err}");
    // --jobs reaches the in-tree make: its log says `make -j1`, unless
    // BuildKit answered the step from its cache (an identical build ran
    // before, with -j1: the ARG that carries it is part of the step's key).
    let make_step = err
        .lines()
        .find(|l| l.contains("in_tree_build.sh\"]"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string);
    let cached = make_step.is_some_and(|n| err.lines().any(|l| l.trim() == format!("{n} CACHED")));
    assert!(
        err.contains("dmb: make -j1 M=drivers/block ") || cached,
        "{err}"
    );
    assert!(
        err.contains("enabling as modules: CONFIG_BLK_DEV_UBLK"),
        "{err}"
    );
    assert!(err.contains("CRCs agree"), "{err}");
    assert_eq!(ko_names(&out.path().join("ublk")), ["ublk_drv.ko"]);
}

#[test]
fn options_that_can_only_be_built_in_and_unknown_names_are_refused() {
    let _engine = engine_lock();
    let before = EngineState::now();
    let done = in_tree(&["CONFIG_MCTP"], &[]);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(71), "{err}");
    assert!(err.contains("CONFIG_MCTP is bool"), "{err}");
    let done = in_tree(&["mctp-serial"], &[]);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(71), "{err}");
    assert!(
        err.contains("needs CONFIG_MCTP, which is bool and off"),
        "{err}"
    );
    let done = in_tree(&["stcp"], &[]);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(70), "{err}");
    assert!(err.contains("did you mean sctp"), "{err}");
    before.assert_unchanged();
}

/// Images of some repositories made after `since`, removed on drop.
struct NewImages {
    repositories: Vec<String>,
    before: Vec<String>,
}

impl NewImages {
    fn since(repositories: &[&str]) -> Self {
        let repositories: Vec<String> = repositories.iter().map(|r| r.to_string()).collect();
        let before = repositories.iter().flat_map(|r| images_named(r)).collect();
        NewImages {
            repositories,
            before,
        }
    }
}

impl Drop for NewImages {
    fn drop(&mut self) {
        for r in &self.repositories {
            for id in images_named(r) {
                if !self.before.contains(&id) {
                    let _ = docker(&["image", "rm", "--force", &id]);
                }
            }
        }
    }
}

/// A builder image made from the kit's, changed by `run` (no network).
fn derived_builder(what: &str, run: &str) -> TestImage {
    let image = TestImage::new(what);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\nRUN {run}\n", kit().build_ref),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        image.name(),
        dir.path().to_str().unwrap(),
    ]);
    image
}

#[test]
fn a_builder_that_lacks_what_the_kernel_tree_needs_is_told_so() {
    let _engine = engine_lock();
    // The caches these builders make (a build environment and a source tree
    // each) are of no use afterwards: they go when the test ends.
    let _caches = NewImages::since(&["dmb-buildenv", "dmb-kernel-source"]);
    // No pahole, and nothing to install it with.
    let bare = derived_builder(
        "builder-no-pahole",
        "rm -f /usr/bin/pahole /usr/bin/apt-get /usr/bin/apt /usr/bin/dpkg",
    );
    let done = in_tree(&["sctp"], &["--build-ref", bare.name()]);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(73), "{err}");
    assert!(
        err.contains("pahole (dwarves) (for CONFIG_DEBUG_INFO_BTF=y)"),
        "{err}"
    );

    // A pahole too old for split BTF: kconfig quietly turns BTF for
    // modules off, which would make the running kernel refuse every one.
    let old = derived_builder(
        "builder-old-pahole",
        "printf '#!/bin/sh\\necho v1.10\\n' > /usr/bin/pahole && chmod +x /usr/bin/pahole",
    );
    let done = in_tree(&["sctp"], &["--build-ref", old.name()]);
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(72), "{err}");
    assert!(
        err.contains(
            "CONFIG_DEBUG_INFO_BTF_MODULES: y in the running kernel, n after olddefconfig"
        ),
        "{err}"
    );
    assert!(err.contains("pahole"), "{err}");
}
