//! `dmb build --dry-run` as a user runs it (no DMB_* variables): it says
//! what the build would use and make, and makes nothing: no image, no
//! build environment, no container.

mod common;

use common::*;

fn images() -> String {
    docker_ok(&["images", "-q", "--no-trunc"])
}

#[test]
fn a_dry_run_plans_a_build_and_creates_nothing() {
    let _engine = engine_lock();
    let kit = kit();
    let state = EngineState::now();
    let before = images();
    let image = unique_ref("dry");
    let out = user_dmb()
        .args([
            "build",
            "examples/hello",
            "--dry-run",
            "--module-ref",
            &image,
        ])
        .args([
            "--kernel-ref",
            &kit.kernel_ref,
            "--build-ref",
            &kit.build_ref,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "for {} (kernel image {})",
            kit.kver, kit.kernel_ref
        )),
        "{said}"
    );
    assert!(
        said.contains("in build environment dmb-buildenv:"),
        "{said}"
    );
    assert!(
        said.contains(&format!("package them as image {image}")),
        "{said}"
    );

    // A builder no build environment was made from: the plan says one
    // would be prepared first, and none is.
    let builder = fresh_builder("dry-builder");
    let with_builder = images();
    let out = user_dmb()
        .args(["build", "examples/hello", "--dry-run", "--json"])
        .args([
            "--kernel-ref",
            &kit.kernel_ref,
            "--build-ref",
            builder.name(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["buildenv_exists"], false, "{plan}");
    assert_eq!(plan["release"], kit.kver.as_str(), "{plan}");
    assert_eq!(plan["module_ref"], "kernel-module", "{plan}");
    assert_eq!(images(), with_builder);
    drop(builder);
    assert_eq!(images(), before);
    state.assert_unchanged();
}

/// A DKMS tree of the test's own: one module, built by its Makefile.
fn dkms_tree(dir: &std::path::Path) {
    std::fs::write(
        dir.join("dkms.conf"),
        "PACKAGE_NAME=dmb-dry\nPACKAGE_VERSION=1.2\nBUILT_MODULE_NAME[0]=dmb_dry\nDEST_MODULE_LOCATION[0]=/extra\nMAKE[0]=\"make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build modules\"\nAUTOINSTALL=yes\n",
    )
    .unwrap();
    std::fs::write(dir.join("Makefile"), "obj-m += dmb_dry.o\n").unwrap();
    std::fs::write(
        dir.join("dmb_dry.c"),
        "#include <linux/module.h>\nMODULE_LICENSE(\"GPL\");\n",
    )
    .unwrap();
}

#[test]
fn a_dry_run_plans_a_dkms_package_reading_its_dkms_conf_in_the_build_environment() {
    let _engine = engine_lock();
    let kit = kit();
    let tree = tempfile::tempdir().unwrap();
    dkms_tree(tree.path());
    let state = EngineState::now();
    let before = images();
    let out = user_dmb()
        .args(["build", "--dry-run"])
        .arg(tree.path())
        .args([
            "--kernel-ref",
            &kit.kernel_ref,
            "--build-ref",
            &kit.build_ref,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("would build DKMS package dmb-dry 1.2: dmb_dry (make -C"),
        "{said}"
    );
    assert!(
        said.contains("package them as image kernel-module"),
        "{said}"
    );
    assert_eq!(images(), before);
    state.assert_unchanged();

    // No build environment for this builder: dkms.conf (shell) is not run
    // anywhere else; the plan says when it would be read.
    let builder = fresh_builder("dry-dkms-builder");
    let out = user_dmb()
        .args(["build", "--dry-run", "--json", "--with-deps"])
        .arg(tree.path())
        .args([
            "--kernel-ref",
            &kit.kernel_ref,
            "--build-ref",
            builder.name(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["source"], "dkms", "{plan}");
    assert_eq!(plan["buildenv_exists"], false, "{plan}");
    assert_eq!(plan["package"], serde_json::Value::Null, "{plan}");
    assert_eq!(plan["with_deps"], true, "{plan}");
    drop(builder);
    assert_eq!(images(), before);
    state.assert_unchanged();
}

#[test]
fn a_dry_run_plans_in_tree_modules_and_refuses_what_a_build_would() {
    let _engine = engine_lock();
    let kit = kit();
    let state = EngineState::now();
    let before = images();
    let refs = [
        "--kernel-ref",
        &kit.kernel_ref,
        "--build-ref",
        &kit.build_ref,
    ];
    let out = user_dmb()
        .args(["build", "--dry-run", "--in-tree", "sctp", "--json"])
        .args(refs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["source"], "in-tree", "{plan}");
    assert_eq!(plan["modules"], serde_json::json!(["sctp"]), "{plan}");
    assert_eq!(plan["options"], serde_json::json!(["IP_SCTP"]), "{plan}");
    assert_eq!(plan["release"], kit.kver.as_str(), "{plan}");

    let out = user_dmb()
        .args(["build", "--dry-run", "--in-tree", "sctp"])
        .args(refs)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("would build in-tree module(s) sctp (CONFIG_IP_SCTP)"),
        "{said}"
    );

    let out = user_dmb()
        .args(["build", "--dry-run", "--in-tree", "no_such_module_anywhere"])
        .args(refs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{}", stderr(&out));
    assert_eq!(images(), before);
    state.assert_unchanged();
}
