use super::*;

fn engine() -> EngineFacts {
    EngineFacts {
        cli: "docker".into(),
        client_version: "28.2.2".into(),
        server_version: "20.10.24".into(),
        api_version: "1.41".into(),
        platform: "linux/amd64".into(),
        builder: Builder::Legacy,
        docker_host: None,
    }
}

fn facts() -> Facts {
    Facts {
        engine: Ok(engine()),
        probe: Some(Ok(Settled {
            image: "dmb-kit/busybox:latest".into(),
            why: None,
        })),
        host_caps: Some(Ok(HostCaps {
            bounding_set: 0x1ff_ffff_ffff,
            last: 40,
        })),
        vm_files_asked: false,
        detection: None,
        build_ref_present: None,
        headers: None,
        caches: None,
    }
}

fn check<'a>(r: &'a Report, name: &str) -> &'a Finding {
    r.checks.iter().find(|c| c.check == name).unwrap()
}

#[test]
fn no_engine_blocks_everything_and_checks_nothing_else() {
    let mut f = facts();
    f.engine = Err("Cannot connect to the Docker daemon".into());
    let r = assess(&f);
    assert!(r.blocks_build && r.blocks_load);
    assert_eq!(check(&r, "engine").status, Status::Fail);
    assert!(r.checks[1..].iter().all(|c| c.status == Status::Skipped));
}

#[test]
fn a_withheld_capability_means_no_privileged_container() {
    let mut f = facts();
    f.host_caps = Some(Ok(HostCaps {
        bounding_set: 0x1ff_feff_ffff,
        last: 40,
    }));
    let r = assess(&f);
    let p = check(&r, "privileged");
    assert_eq!(p.status, Status::Ok);
    assert!(p.summary.contains("would refuse"), "{}", p.summary);
    assert!(p.summary.contains("CAP_SYS_RESOURCE"), "{}", p.summary);
    assert!(
        p.summary.contains("dmb needs no privileged container"),
        "{}",
        p.summary
    );
    // Reading the VM's files needs less: still possible, inferred.
    let v = check(&r, "vm-files");
    assert_eq!(v.status, Status::Ok, "{v:?}");
    assert!(v.summary.contains("not tried"), "{}", v.summary);
    // CAP_SYS_MODULE is still there: loading is possible.
    assert_eq!(check(&r, "module-loading").status, Status::Ok);
    assert!(!r.blocks_load);
}

#[test]
fn without_cap_sys_admin_the_vm_files_cannot_be_read() {
    let mut f = facts();
    f.host_caps = Some(Ok(HostCaps {
        bounding_set: 0x1ff_ffff_ffff & !(1 << caps::SYS_ADMIN),
        last: 40,
    }));
    let r = assess(&f);
    let v = check(&r, "vm-files");
    assert_eq!(v.status, Status::Warn);
    assert!(v.summary.contains("CAP_SYS_ADMIN"), "{}", v.summary);
    assert!(v.detail.as_deref().unwrap().contains("/etc/linuxkit.yml"));
}

#[test]
fn enhanced_container_isolation_blocks_loading() {
    let mut f = facts();
    f.host_caps = Some(Err(
        "docker: Error response from daemon: host PID namespace is not allowed".into(),
    ));
    let r = assess(&f);
    assert_eq!(check(&r, "pid-host").status, Status::Fail);
    assert!(check(&r, "pid-host")
        .detail
        .as_deref()
        .unwrap()
        .contains("Enhanced Container Isolation"));
    assert_eq!(check(&r, "module-loading").status, Status::Fail);
    assert!(r.blocks_load);
    assert!(!r.blocks_build);
}

#[test]
fn no_probe_image_blocks_and_says_how_to_get_one() {
    let mut f = facts();
    f.probe = Some(Err(ProbeFailure {
        message: "no image in the engine can run dmb's probe".into(),
        hint: Some("load an image with sh, nsenter, zcat and insmod".into()),
    }));
    f.host_caps = None;
    let r = assess(&f);
    let p = check(&r, "probe-image");
    assert_eq!(p.status, Status::Fail);
    assert!(p.fix.as_deref().unwrap().contains("insmod"));
    assert!(r.blocks_build && r.blocks_load);
    assert_eq!(check(&r, "pid-host").status, Status::Skipped);
}

#[test]
fn the_legacy_builder_is_a_warning_not_a_block() {
    let r = assess(&facts());
    assert_eq!(check(&r, "builder").status, Status::Warn);
    assert!(check(&r, "builder").fix.is_some());
    assert!(!r.blocks_build && !r.blocks_load);
}

#[test]
fn headers_nobody_can_make_block_a_build() {
    let mut f = facts();
    f.headers = Some(Headers::Nothing {
        why: "no kernel image is published for 6.1.0-57-amd64".into(),
        fix: "name one with --kernel-ref".into(),
    });
    let r = assess(&f);
    assert_eq!(check(&r, "headers").status, Status::Fail);
    assert!(r.blocks_build);
    f.headers = Some(Headers::Synthesis {
        source: "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.72.tar.xz".into(),
        missing: "the engine has no linuxkit/kernel:6.12.72".into(),
    });
    let r = assess(&f);
    assert_eq!(check(&r, "headers").status, Status::Ok);
    assert!(check(&r, "headers").summary.contains("cdn.kernel.org"));
}
