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
