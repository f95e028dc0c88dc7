//! One module for two kernels in one run (the kit's kernel and the kit's
//! other kernel), each image checked against its own kernel, and the KMM
//! `Module` that loads them, against the real engine.

mod common;

use std::process::Command;

use common::*;

fn label(image: &str, key: &str) -> String {
    docker_ok(&[
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels {key:?}}}}}"),
        image,
    ])
    .trim()
    .to_string()
}

#[test]
fn one_run_builds_for_two_kernels_and_kmm_maps_both() {
    let _engine = engine_lock();
    let kit = kit();
    let other = other_kernel();
    let repo = unique_ref("matrix");
    let repo = repo.split(':').next().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let state = EngineState::now();
    let done = dmb(LEGACY)
        .args(["build", "tests/modules/dependent-pair", "--kernel-ref"])
        .arg(&kit.kernel_ref)
        .args(["--kernel-ref", &other, "--module-ref", &repo, "--output"])
        .arg(out.path())
        .output()
        .unwrap();
    let log = stderr(&done);
    assert!(done.status.success(), "{log}");
    state.assert_unchanged();
    assert_eq!(log.matches("(checked: they will load)").count(), 2, "{log}");
    // Both at once (--parallel defaults to 2), each line labelled with its
    // kernel: the second kernel's build began before the first one's ended.
    assert!(log.contains("building for 2 kernels, 2 at a time"), "{log}");
    let first_line = |label: &str| log.find(&format!("dmb: [{label}] ")).expect(label);
    let last_line = |label: &str| log.rfind(&format!("dmb: [{label}] ")).expect(label);
    assert!(
        first_line(&other) < last_line(&kit.kernel_ref)
            && first_line(&kit.kernel_ref) < last_line(&other),
        "{log}"
    );

    // The kit names its kernel images by release.
    let other_release = other.rsplit(':').next().unwrap().to_string();
    let images = [
        (
            format!("{repo}:{}", kit.kver),
            kit.kver.clone(),
            kit.kernel_ref.clone(),
        ),
        (
            format!("{repo}:{other_release}"),
            other_release.clone(),
            other.clone(),
        ),
    ];
    let _cleanup: Vec<TestImage> = images.iter().map(|(i, ..)| TestImage(i.clone())).collect();
    for (image, release, kernel_ref) in &images {
        assert_eq!(&label(image, "dmb.kernel.release"), release);
        assert_eq!(&label(image, "dmb.kernel.image"), kernel_ref);
        let files = image_files(image);
        assert!(
            files.contains(&format!("opt/lib/modules/{release}/extra/dmb_consumer.ko")),
            "{files:?}"
        );
        // --output: a directory per release, each module for its kernel
        // and for no other.
        let dir = out.path().join(release);
        let modules = dir.join("dmb_consumer.ko");
        let check = |kernel: &str| {
            dmb(LEGACY)
                .args(["check", "--kernel-ref", kernel])
                .arg(&modules)
                .arg(dir.join("dmb_provider.ko"))
                .output()
                .unwrap()
        };
        assert!(check(kernel_ref).status.success());
        let other_kernel = if kernel_ref == &kit.kernel_ref {
            &other
        } else {
            &kit.kernel_ref
        };
        assert_eq!(check(other_kernel).status.code(), Some(50));
    }

    // The KMM Module, as a user runs it (no DMB_* variables).
    let kmm = Command::new(env!("CARGO_BIN_EXE_dmb"))
        .arg("kmm")
        .args(images.iter().map(|(i, ..)| i))
        .output()
        .unwrap();
    assert!(kmm.status.success(), "{}", stderr(&kmm));
    let yaml: serde_norway::Value = serde_norway::from_slice(&kmm.stdout).unwrap();
    assert_eq!(yaml["apiVersion"], "kmm.sigs.x-k8s.io/v1beta1");
    assert_eq!(yaml["kind"], "Module");
    assert_eq!(yaml["metadata"]["name"], "dmb-consumer");
    let container = &yaml["spec"]["moduleLoader"]["container"];
    assert_eq!(container["modprobe"]["moduleName"], "dmb_consumer");
    assert_eq!(container["modprobe"]["dirName"], "/opt");
    let mappings = container["kernelMappings"].as_sequence().unwrap();
    assert_eq!(mappings.len(), 2);
    for (mapping, (image, release, _)) in mappings.iter().zip(&images) {
        assert_eq!(mapping["literal"].as_str(), Some(release.as_str()));
        assert_eq!(mapping["containerImage"].as_str(), Some(image.as_str()));
    }
    assert_eq!(yaml["spec"]["selector"]["kubernetes.io/arch"], "amd64");

    // Two images for one kernel make no Module.
    let twice = Command::new(env!("CARGO_BIN_EXE_dmb"))
        .args(["kmm", &images[0].0, &images[0].0])
        .output()
        .unwrap();
    assert_eq!(twice.status.code(), Some(86), "{}", stderr(&twice));
}

/// A named builder is a buildx builder; this machine's CLIs have no buildx
/// plugin, so the name is refused before anything is built.
#[test]
fn a_named_builder_needs_buildx() {
    let out = dmb(LEGACY)
        .env_remove("DMB_BUILDER")
        .args(["build", "examples/hello", "--builder", "kube-builder"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(31), "{}", stderr(&out));
    assert!(stderr(&out).contains("buildx"), "{}", stderr(&out));
    let bad = dmb(LEGACY)
        .args(["build", "examples/hello", "--builder", "--x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// One kernel named twice would build one image twice, into one tag: it
/// is refused before the engine is reached.
#[test]
fn the_same_kernel_twice_is_refused() {
    let out = dmb(LEGACY)
        .args(["build", "examples/hello"])
        .args([
            "--kernel-ref",
            "k:1",
            "--kernel-ref",
            "k:2",
            "--kernel-ref",
            "k:1",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/dmb-test.sock")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--kernel-ref k:1 is given twice"), "{err}");
}
