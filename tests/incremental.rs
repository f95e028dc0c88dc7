//! Incremental builds against the real engine and the kit's kernel: a
//! one-file change recompiles that file's object only; a change of a
//! header, of the file set, of the make arguments, of the builder image or
//! of the kernel image, and `--fresh`, recompile everything. With both
//! builders: the legacy builder keeps the build directory in a volume,
//! BuildKit in a cache mount.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

/// The objects make compiled, by file name, from a build's log.
fn compiled(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter_map(|l| l.split("CC [M]").nth(1))
        .map(|p| p.trim().rsplit('/').next().unwrap().to_string())
        .filter(|o| !o.ends_with(".mod.o"))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// One `dmb build` of `dir` with a log; returns the log.
fn build(flavour: Flavour, dir: &Path, image: &TestImage, extra: &[&str]) -> String {
    let out = dmb(flavour)
        .arg("build")
        .arg(dir)
        .args(["--module-ref", image.name(), "--output"])
        .arg(dir.join("out"))
        .args(extra)
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "dmb build {extra:?}: {log}");
    log
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn module_has(dir: &Path, needle: &str) -> bool {
    let ko = std::fs::read(dir.join("out/counter.ko")).unwrap();
    ko.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A copy of the two-file module in a directory of its own: a build cache
/// of its own.
fn two_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["Makefile", "counter.h", "counter_main.c", "counter_step.c"] {
        std::fs::copy(
            root().join("tests/modules/two-files").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    // A host-side build's leftovers never reach the build.
    std::fs::write(dir.path().join("counter_step.o"), "stale").unwrap();
    dir
}

fn rebuilds_only_what_changed(flavour: Flavour) {
    let _engine = engine_lock();
    let image = TestImage::new("incremental");
    let dir = two_files();
    let d = dir.path();
    let both = set(&["counter_main.o", "counter_step.o"]);

    let log = build(flavour, d, &image, &[]);
    assert!(log.contains("full build"), "{log}");
    assert_eq!(compiled(&log), both, "{log}");

    let state = EngineState::now();
    append(
        &d.join("counter_step.c"),
        "const char counter_step_tag[] = \"dmbtag-step2\";\n",
    );
    let log = build(flavour, d, &image, &[]);
    assert!(log.contains("incremental build: 1 changed file"), "{log}");
    assert_eq!(compiled(&log), set(&["counter_step.o"]), "{log}");
    assert!(module_has(d, "dmbtag-step2"));
    // Nothing left behind: no container, no dangling image.
    state.assert_unchanged();

    // Nothing changed: nothing compiled (BuildKit answers from its cache).
    let log = build(flavour, d, &image, &[]);
    assert_eq!(compiled(&log), set(&[]), "{log}");
    assert!(module_has(d, "dmbtag-step2"));

    // A header both files include: kbuild's own dependencies recompile both.
    append(&d.join("counter.h"), "/* header changed */\n");
    assert_eq!(compiled(&build(flavour, d, &image, &[])), both);

    // Make arguments decide what objects hold: other arguments, other cache.
    let log = build(flavour, d, &image, &["--make-arg", "KCFLAGS=-DDMB_TEST=1"]);
    assert!(log.contains("full build"), "{log}");
    assert_eq!(compiled(&log), both, "{log}");
    // ... and each set of arguments keeps its own objects.
    append(
        &d.join("counter_main.c"),
        "MODULE_INFO(dmbtest2, \"main2\");\n",
    );
    let log = build(flavour, d, &image, &["--make-arg", "KCFLAGS=-DDMB_TEST=1"]);
    assert_eq!(compiled(&log), set(&["counter_main.o"]), "{log}");

    // --fresh: from scratch.
    let log = build(flavour, d, &image, &["--fresh"]);
    assert_eq!(compiled(&log), both, "{log}");

    // A file added (or removed): what the build makes may change; full.
    std::fs::write(d.join("notes.txt"), "x").unwrap();
    let log = build(flavour, d, &image, &[]);
    assert!(log.contains("files were added or removed"), "{log}");
    assert_eq!(compiled(&log), both, "{log}");
    assert!(module_has(d, "dmbtest2=main2") && module_has(d, "dmbtag-step2"));
}

#[test]
fn legacy_builds_keep_objects_in_a_volume() {
    rebuilds_only_what_changed(LEGACY);
}

#[test]
fn buildkit_builds_keep_objects_in_a_cache_mount() {
    rebuilds_only_what_changed(BUILDKIT);
}

/// The build environment a build used, from its `-v` output.
fn buildenv_of(log: &str) -> String {
    let at = log.find("dmb-buildenv:").expect("a build environment");
    log[at..at + "dmb-buildenv:".len() + 16].to_string()
}

#[test]
fn another_builder_or_kernel_image_recompiles_everything() {
    let _engine = engine_lock();
    let kit = kit();
    let image = TestImage::new("incremental");
    let dir = two_files();
    let d = dir.path();
    let both = set(&["counter_main.o", "counter_step.o"]);
    assert_eq!(compiled(&build(LEGACY, d, &image, &[])), both);

    // The same builder under another image ID (a label is enough).
    let variant = TestImage::new("builder-variant");
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {}\nLABEL dmb.test=variant\n", kit.build_ref),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "-t",
        variant.name(),
        context.path().to_str().unwrap(),
    ]);
    let log = build(LEGACY, d, &image, &["-v", "--build-ref", variant.name()]);
    let variant_env = TestImage(buildenv_of(&log));
    assert!(log.contains("full build"), "{log}");
    assert_eq!(compiled(&log), both, "{log}");
    drop(variant_env);

    // Another kernel image: the kit's other kernel.
    let other = other_kernel();
    let log = build(LEGACY, d, &image, &["--kernel-ref", &other]);
    assert!(log.contains("full build"), "{log}");
    assert_eq!(compiled(&log), both, "{log}");

    // Back to the kit's own: its objects were kept, one file recompiles.
    append(&d.join("counter_step.c"), "/* back */\n");
    assert_eq!(
        compiled(&build(LEGACY, d, &image, &[])),
        set(&["counter_step.o"])
    );
}

/// Two builds of one module at once share its kept build directory: the
/// second waits for the first (a lock in the volume), both succeed, and
/// what they leave is a consistent build directory.
#[test]
fn two_builds_of_one_module_at_once_take_turns() {
    let _engine = engine_lock();
    let dir = two_files();
    let d = dir.path();
    let images = [TestImage::new("incremental"), TestImage::new("incremental")];
    let state = EngineState::now();
    let runs: Vec<_> = images
        .iter()
        .map(|image| {
            dmb(LEGACY)
                .arg("build")
                .arg(d)
                .args(["--module-ref", image.name()])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let logs: Vec<String> = runs
        .into_iter()
        .map(|r| {
            let out = r.wait_with_output().unwrap();
            let log = stderr(&out);
            assert!(out.status.success(), "{log}");
            log
        })
        .collect();
    // One of them built everything; the other found it built.
    let full: usize = logs.iter().filter(|l| l.contains("full build")).count();
    assert_eq!(full, 1, "{logs:?}");
    assert!(logs.iter().any(|l| compiled(l).is_empty()), "{logs:?}");
    state.assert_unchanged();
    let log = build(LEGACY, d, &images[0], &[]);
    assert!(log.contains("incremental build: 0 changed file"), "{log}");
}

/// Two builds at once that both need a build environment nobody made yet
/// (a builder image of this test's own): both succeed, and the engine ends
/// with one build environment for it, no second copy and no dangling one.
#[test]
fn two_builds_that_need_one_new_build_environment_make_one() {
    let _engine = engine_lock();
    let _kit = kit();
    let builder = fresh_builder("builder");
    let buildenvs = || {
        let mut v: Vec<String> = docker_ok(&[
            "images",
            "-q",
            "--no-trunc",
            "--filter",
            "label=dmb.buildenv",
        ])
        .lines()
        .map(str::to_string)
        .collect();
        v.sort();
        v
    };
    let before = buildenvs();
    let state = EngineState::now();
    for flavour in [LEGACY, BUILDKIT] {
        let dirs = [unique_hello("env-a"), unique_hello("env-b")];
        let images = [TestImage::new("env"), TestImage::new("env")];
        let runs: Vec<_> = dirs
            .iter()
            .zip(&images)
            .map(|(dir, image)| {
                dmb(flavour)
                    .arg("build")
                    .arg(dir.path())
                    .args(["--module-ref", image.name(), "--build-ref", builder.name()])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for r in runs {
            let out = r.wait_with_output().unwrap();
            assert!(out.status.success(), "{flavour:?}: {}", stderr(&out));
        }
    }
    let made: Vec<String> = buildenvs()
        .into_iter()
        .filter(|i| !before.contains(i))
        .collect();
    // One per builder kind at most (the legacy builder and BuildKit may
    // each make it once, first come); never two of one key left.
    let keys: BTreeSet<String> = made
        .iter()
        .map(|id| {
            docker_ok(&[
                "image",
                "inspect",
                "--format",
                "{{index .Config.Labels \"dmb.buildenv\"}}",
                id,
            ])
            .trim()
            .to_string()
        })
        .collect();
    assert_eq!(
        keys.len(),
        made.len(),
        "two images of one build environment: {made:?}"
    );
    assert!(!made.is_empty(), "no build environment was made");
    state.assert_unchanged();
    for id in made {
        let _ = docker(&["rmi", "-f", &id]);
    }
}

/// Two builds of different modules into one MODULE_REF at once: both
/// succeed, and the image is one build's whole result (its module and
/// the labels that describe it), never a mix.
#[test]
fn two_builds_into_one_module_ref_at_once_leave_one_whole_image() {
    for flavour in [LEGACY, BUILDKIT] {
        let _engine = engine_lock();
        let state = EngineState::now();
        let image = TestImage::new("one-ref");
        let dirs = [unique_hello("ref-a"), unique_hello("ref-b")];
        let runs: Vec<_> = dirs
            .iter()
            .map(|dir| {
                dmb(flavour)
                    .args(["build", "-q"])
                    .arg(dir.path())
                    .args(["--module-ref", image.name()])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for r in runs {
            let out = r.wait_with_output().unwrap();
            assert!(out.status.success(), "{flavour:?}: {}", stderr(&out));
        }
        // The image's hello.ko is whole (it reads as a module) and one of
        // the two builds', and its copy in the KMM layout is the same
        // file: one build's result, not a mix of two.
        let ko = image_file(image.name(), "/hello.ko");
        let kmm = image_file(
            image.name(),
            &format!("/opt/lib/modules/{}/extra/hello.ko", kit().kver),
        );
        assert!(ko == kmm, "{flavour:?}: the two copies of hello.ko differ");
        let module = dmb::ko::Module::read("hello.ko", ko).unwrap();
        let tag = module.info.get("dmbtest").unwrap_or_default().to_string();
        assert!(tag == "ref-a" || tag == "ref-b", "{flavour:?}: {tag:?}");
        state.assert_unchanged();
    }
}
