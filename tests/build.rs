//! `dmb build` against the real engine and the kit's real kernel headers,
//! with both builders.

mod common;

use common::*;

/// Builds `module_dir` and checks the contract: the `.ko` files in
/// `--output`, their vermagic, and the image layout.
fn build_and_check(flavour: Flavour, module_dir: &str, expect: &[&str]) -> Vec<dmb::ko::Module> {
    let kit = kit();
    let _engine = engine_lock();
    let before = EngineState::now();
    let out_dir = tempfile::tempdir().unwrap();
    let image = TestImage::new("build");
    let module_ref = image.name().to_string();
    let out = dmb(flavour)
        .args(["build", module_dir, "--module-ref", &module_ref, "--output"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "dmb build failed:\n{}", stderr(&out));

    let mut modules = Vec::new();
    for ko in expect {
        let module = read_module(&out_dir.path().join(ko));
        let vermagic = module.info.vermagic().expect("a vermagic").to_string();
        assert!(
            vermagic.starts_with(&format!("{} ", kit.kver)),
            "{ko}: vermagic {vermagic:?} is not for {}",
            kit.kver
        );
        modules.push(module);
    }

    let files = image_files(&module_ref);
    for ko in expect {
        assert!(
            files.contains(&ko.to_string()),
            "{ko} not at / in {files:?}"
        );
        let kmod = format!("opt/lib/modules/{}/extra/{ko}", kit.kver);
        assert!(files.contains(&kmod), "{kmod} not in {files:?}");
        assert_eq!(
            image_file(&module_ref, &format!("/{ko}")),
            std::fs::read(out_dir.path().join(ko)).unwrap()
        );
    }
    let dep = format!("opt/lib/modules/{}/modules.dep", kit.kver);
    assert!(files.contains(&dep), "{dep} not in {files:?}");
    let labels = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"dmb.kernel.release\"}}|{{index .Config.Labels \"dmb.kernel.image\"}}|{{index .Config.Labels \"dmb.builder.image\"}}",
        &module_ref,
    ]);
    assert_eq!(
        labels.trim(),
        format!("{}|{}|{}", kit.kver, kit.kernel_ref, kit.build_ref)
    );
    before.assert_unchanged();
    modules
}

#[test]
fn hello_with_the_legacy_builder() {
    build_and_check(LEGACY, "examples/hello", &["hello.ko"]);
}

#[test]
fn hello_with_buildkit() {
    build_and_check(BUILDKIT, "examples/hello", &["hello.ko"]);
}

/// `$(shell uname -r)` and `M=$(PWD)` only work when the container says the
/// target's release and make starts in the module directory.
#[test]
fn a_uname_r_makefile_with_the_legacy_builder() {
    assert_ne!(
        host_release(),
        kit().kver,
        "the test needs a host kernel other than the kit's"
    );
    build_and_check(LEGACY, "tests/modules/kbuild-style", &["kbuild_style.ko"]);
}

#[test]
fn a_uname_r_makefile_with_buildkit() {
    assert_ne!(
        host_release(),
        kit().kver,
        "the test needs a host kernel other than the kit's"
    );
    build_and_check(BUILDKIT, "tests/modules/kbuild-style", &["kbuild_style.ko"]);
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_module_of_two_source_files_with_a_parameter() {
    let modules = build_and_check(BUILDKIT, "tests/modules/two-files", &["counter.ko"]);
    let info = &modules[0].info;
    assert_eq!(info.get("parm"), Some("step:how much to add"));
    assert_eq!(info.get("parmtype"), Some("step:int"));
}

#[test]
fn two_modules_get_a_modules_dep_in_load_order() {
    build_and_check(
        LEGACY,
        "tests/modules/dependent-pair",
        &["dmb_consumer.ko", "dmb_provider.ko"],
    );
    let kit = kit();
    let _engine = engine_lock();
    let image = TestImage::new("pair");
    let module_ref = image.name().to_string();
    let out = dmb(BUILDKIT)
        .args([
            "build",
            "tests/modules/dependent-pair",
            "-q",
            "--module-ref",
            &module_ref,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dep = image_file(
        &module_ref,
        &format!("/opt/lib/modules/{}/modules.dep", kit.kver),
    );
    let dep = String::from_utf8(dep).unwrap();
    assert!(
        dep.lines()
            .any(|l| l == "extra/dmb_consumer.ko: extra/dmb_provider.ko"),
        "{dep}"
    );
    assert!(dep.lines().any(|l| l == "extra/dmb_provider.ko:"), "{dep}");
}

/// Builds again into the same MODULE_REF: the image it replaces goes, it
/// does not linger as a dangling image.
#[test]
fn rebuilding_into_the_same_ref_leaves_no_dangling_image() {
    let _engine = engine_lock();
    let image = TestImage::new("again");
    let module_ref = image.name();
    let hello = unique_hello(module_ref);
    let first = dmb(LEGACY)
        .args(["build", "-q", "--module-ref", module_ref])
        .arg(hello.path())
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let before = EngineState::now();
    let first_id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", module_ref]);
    let second = dmb(LEGACY)
        .args([
            "build",
            "tests/modules/kbuild-style",
            "-q",
            "--module-ref",
            module_ref,
        ])
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    let second_id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", module_ref]);
    assert_ne!(first_id, second_id);
    assert!(!docker(&["image", "inspect", first_id.trim()])
        .status
        .success());
    before.assert_unchanged();
}

#[test]
fn auto_picks_the_legacy_builder_on_a_cli_without_buildx() {
    let _engine = engine_lock();
    let out = dmb(LEGACY)
        .env("DMB_BUILDER", "auto")
        .args(["-v", "build", "tests/modules/no-ko", "-q"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("legacy builder"), "{}", stderr(&out));
}

#[test]
fn auto_picks_buildkit_on_a_cli_that_has_it() {
    let _engine = engine_lock();
    let out = dmb(BUILDKIT)
        .env("DMB_BUILDER", "auto")
        .args(["-v", "build", "tests/modules/no-ko", "-q"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("BuildKit (DOCKER_BUILDKIT=1)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_build_log_streams_and_quiet_silences_it() {
    let _engine = engine_lock();
    let image = TestImage::new("log");
    let module_ref = image.name();
    // A module no build has seen, so BuildKit's cache cannot skip the compile.
    let dir = unique_hello(module_ref);
    let module_dir = dir.path().to_str().unwrap();
    let loud = dmb(BUILDKIT)
        .args(["build", module_dir, "--module-ref", module_ref])
        .output()
        .unwrap();
    assert!(loud.status.success());
    assert!(
        stderr(&loud).contains("CC [M]  /usr/src/module/hello.o"),
        "{}",
        stderr(&loud)
    );
    std::fs::write(dir.path().join("unique"), "not seen before either").unwrap();
    let quiet = dmb(BUILDKIT)
        .args(["build", module_dir, "-q", "--module-ref", module_ref])
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert!(!stderr(&quiet).contains("hello.o"), "{}", stderr(&quiet));
}

/// A builder image without make gets a toolchain installed by its own
/// package manager, in a cached step. Hermetic: the image's apt source is a
/// local repository holding make, repacked from the image itself.
#[test]
fn a_builder_without_make_gets_it_from_apt_once() {
    let kit = kit();
    let _engine = engine_lock();
    let bare_image = TestImage::new("no-make-builder");
    let bare = bare_image.name().to_string();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            r#"FROM {builder}
RUN set -e; mkdir -p /tmp/pkg/DEBIAN /var/local/dmb-repo; \
    dpkg -L make | while read -r f; do \
      if [ -f "$f" ] && [ ! -L "$f" ]; then mkdir -p "/tmp/pkg$(dirname "$f")"; cp -a "$f" "/tmp/pkg$f"; fi; \
    done; \
    dpkg-query -W -f='Package: ${{Package}}\nVersion: ${{Version}}\nArchitecture: ${{Architecture}}\nMaintainer: ${{Maintainer}}\nDepends: ${{Depends}}\nDescription: ${{binary:Summary}}\n' make > /tmp/pkg/DEBIAN/control; \
    dpkg-deb --build /tmp/pkg /var/local/dmb-repo/make.deb >/dev/null; \
    cd /var/local/dmb-repo; \
    {{ dpkg-deb -f make.deb; echo "Filename: ./make.deb"; echo "Size: $(stat -c %s make.deb)"; echo "SHA256: $(sha256sum make.deb | cut -d' ' -f1)"; echo; }} > Packages; \
    rm -rf /tmp/pkg /etc/apt/sources.list.d/*; \
    echo 'deb [trusted=yes] file:/var/local/dmb-repo ./' > /etc/apt/sources.list; \
    dpkg -r make >/dev/null; \
    ! command -v make
"#,
            builder = kit.build_ref
        ),
    )
    .unwrap();
    let made = docker(&[
        "build",
        "--network",
        "none",
        "-q",
        "-t",
        &bare,
        context.path().to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let before = EngineState::now();

    let out_dir = tempfile::tempdir().unwrap();
    let image = TestImage::new("apt-built");
    let module_ref = image.name().to_string();
    let build = |flavour: Flavour| {
        dmb(flavour)
            .args([
                "build",
                "examples/hello",
                "--build-ref",
                &bare,
                "--module-ref",
                &module_ref,
            ])
            .arg("--output")
            .arg(out_dir.path())
            .output()
            .unwrap()
    };
    let first = build(LEGACY);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains(&format!("{bare} lacks make: installing a toolchain")),
        "{}",
        stderr(&first)
    );
    let module = read_module(&out_dir.path().join("hello.ko"));
    assert!(module
        .info
        .vermagic()
        .unwrap()
        .starts_with(&format!("{} ", kit.kver)));
    let second = build(BUILDKIT);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("installing a toolchain"),
        "{}",
        stderr(&second)
    );

    let id = |r: &str| {
        docker_ok(&["image", "inspect", "--format", "{{.Id}}", r])
            .trim()
            .to_string()
    };
    let key = dmb::module_build::buildenv_key(&id(&bare), &id(&kit.kernel_ref));
    remove_image(&format!("dmb-buildenv:{key}"));
    before.assert_unchanged();
}

/// `dmb build --json` as a user types it (no DMB_* variable; the kit's
/// images named with flags): what was built, for which kernel, into which
/// image, the files written and how long each step took.
#[test]
fn build_json_says_what_was_built() {
    let kit = kit();
    let _engine = engine_lock();
    let before = EngineState::now();
    let out_dir = tempfile::tempdir().unwrap();
    let image = TestImage::new("json");
    let out = user_dmb()
        .env("DMB_CACHE_DIR", cache_dir())
        .args([
            "build",
            "tests/modules/dependent-pair",
            "--json",
            "--kernel-ref",
            &kit.kernel_ref,
            "--build-ref",
            &kit.build_ref,
            "--module-ref",
            image.name(),
            "--output",
        ])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["release"], kit.kver.as_str());
    assert_eq!(report["kernel_ref"], kit.kernel_ref.as_str());
    assert_eq!(report["build_ref"], kit.build_ref.as_str());
    assert_eq!(report["image"], image.name());
    let id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", image.name()]);
    assert_eq!(report["image_id"], id.trim());
    let kernel_id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", &kit.kernel_ref]);
    assert_eq!(report["kernel_image_id"], kernel_id.trim());
    assert_eq!(report["checked"], true);
    let modules = report["modules"].as_array().unwrap();
    let names: Vec<&str> = modules
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dmb_consumer", "dmb_provider"], "{report}");
    for m in modules {
        let ko = read_module(&out_dir.path().join(m["file"].as_str().unwrap()));
        assert_eq!(m["vermagic"], ko.info.vermagic().unwrap());
    }
    assert_eq!(modules[0]["depends"], serde_json::json!(["dmb_provider"]));
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{report}");
    assert!(files
        .iter()
        .all(|f| std::path::Path::new(f).starts_with(out_dir.path())));
    let timings = &report["timings"];
    let steps = timings["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["step"].as_str().unwrap().starts_with("packaging ")),
        "{timings}"
    );
    let sum: f64 = steps.iter().map(|s| s["seconds"].as_f64().unwrap()).sum();
    assert!(
        sum <= timings["total_seconds"].as_f64().unwrap() + 0.01,
        "{timings}"
    );
    before.assert_unchanged();
}
