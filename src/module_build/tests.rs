//! Planning tests against a fake engine: which engine calls a build makes,
//! in which order, and that every path cleans up. The real engine is tested
//! in `tests/build.rs`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use super::*;
use crate::engine::{
    BuildOutput, BuildRequest, Builder, Builds, ContainerBuild, ContainerSpec, Containers,
    Finished, Images, RunRequest,
};
use crate::kernel::KernelImageError;
use crate::progress::Silent;
use crate::scripts;
use crate::Error;

struct Fake {
    builder: Builder,
    images: RefCell<BTreeMap<String, String>>,
    kernel_files: Vec<&'static str>,
    probe: &'static str,
    trees: &'static str,
    /// Log lines and success of the module build.
    make: (Vec<&'static str>, bool),
    calls: RefCell<Vec<String>>,
}

impl Fake {
    fn new(builder: Builder) -> Self {
        let images = [
            ("dmb-kit/kernel:6.1", "sha256:k"),
            ("dmb-kit/builder:bookworm", "sha256:b"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        Fake {
            builder,
            images: RefCell::new(images),
            kernel_files: vec!["/kernel-dev.tar", "/kernel.tar"],
            probe: "@@dmb:tool make\n@@dmb:tool gcc\n@@dmb:tool tar\n@@dmb:pm apt-get\n",
            trees: "@@dmb:tree 6.1.0-56-amd64\n@@dmb:has 6.1.0-56-amd64 .config\n@@dmb:has 6.1.0-56-amd64 Makefile\n@@dmb:has 6.1.0-56-amd64 Module.symvers\n",
            make: (vec!["@@dmb:ko hello.ko"], true),
            calls: RefCell::default(),
        }
    }

    fn call(&self, c: String) {
        self.calls.borrow_mut().push(c);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

fn status(ok: bool) -> ExitStatus {
    ExitStatus::from_raw(if ok { 0 } else { 1 << 8 })
}

fn finished(ok: bool, stdout: &str, tail: &[&str]) -> Finished {
    Finished {
        status: status(ok),
        stdout: stdout.to_string(),
        output_tail: tail.iter().map(|s| s.to_string()).collect(),
    }
}

/// A minimal ELF relocatable with a `.modinfo` section, as a module is.
fn tiny_module() -> Vec<u8> {
    use object::write::Object;
    let mut obj = Object::new(
        object::BinaryFormat::Elf,
        object::Architecture::X86_64,
        object::Endianness::Little,
    );
    let id = obj.add_section(
        Vec::new(),
        b".modinfo".to_vec(),
        object::SectionKind::ReadOnlyData,
    );
    obj.append_section_data(
        id,
        b"vermagic=6.1.0-56-amd64 SMP mod_unload \0name=hello\0depends=\0",
        1,
    );
    obj.write().unwrap()
}

impl Images for Fake {
    fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.call(format!("image_id {reference}"));
        Ok(self.images.borrow().get(reference).cloned())
    }

    fn image_tags_and_label(
        &self,
        r: &str,
        _: &str,
    ) -> Result<(usize, Option<String>), EngineError> {
        self.call(format!("inspect {r}"));
        Ok((0, Some("x".into())))
    }

    fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        self.call(format!("rmi {reference}"));
        self.images.borrow_mut().remove(reference);
        Ok(())
    }

    fn prune_dangling(&self, label: &str, _: &str) -> Result<(), EngineError> {
        self.call(format!("prune {label}"));
        Ok(())
    }

    fn local_images(&self, _: Option<&str>) -> Result<Vec<String>, EngineError> {
        Ok(self.images.borrow().keys().cloned().collect())
    }

    fn pull(&self, reference: &str) -> Result<(), EngineError> {
        self.call(format!("pull {reference}"));
        Ok(())
    }
}

impl Builds for Fake {
    fn builder(&self) -> Builder {
        self.builder
    }

    fn build(
        &self,
        request: &BuildRequest,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Finished, EngineError> {
        let text = std::fs::read_to_string(&request.dockerfile).unwrap();
        let what = if text.contains("dmb build environment") {
            "buildenv"
        } else if text.contains("dmb module build") {
            "make"
        } else {
            "package"
        };
        let target = match &request.output {
            BuildOutput::Image(tag) => tag.clone(),
            BuildOutput::Directory(_) => "<dir>".to_string(),
        };
        self.call(format!(
            "build {what} -> {target} network={}",
            request.network
        ));
        let ok = if what == "make" {
            for l in &self.make.0 {
                on_line(l);
            }
            if self.make.1 {
                if let BuildOutput::Directory(dir) = &request.output {
                    std::fs::create_dir_all(dir.join("ko")).unwrap();
                    std::fs::write(dir.join("ko/hello.ko"), tiny_module()).unwrap();
                }
            }
            self.make.1
        } else {
            true
        };
        if ok {
            if let BuildOutput::Image(tag) = &request.output {
                self.images
                    .borrow_mut()
                    .insert(tag.clone(), format!("sha256:{what}"));
            }
        }
        let tail: Vec<&str> = self.make.0.clone();
        Ok(finished(ok, "", &tail))
    }

    fn build_in_container(
        &self,
        build: &ContainerBuild,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Finished, EngineError> {
        self.call(format!(
            "make in container {} volume={}",
            build.image, build.volume
        ));
        for l in &self.make.0 {
            on_line(l);
        }
        if self.make.1 {
            let ko = build.output.join("ko");
            std::fs::create_dir_all(&ko).unwrap();
            std::fs::write(ko.join("hello.ko"), tiny_module()).unwrap();
        }
        Ok(finished(self.make.1, "", &self.make.0))
    }

    fn import(&self, _: &Path, reference: &str, _: &[String]) -> Result<String, EngineError> {
        self.call(format!("import -> {reference}"));
        let id = "sha256:package".to_string();
        self.images
            .borrow_mut()
            .insert(reference.to_string(), id.clone());
        Ok(id)
    }
}

impl Containers for Fake {
    fn run(&self, request: &RunRequest) -> Result<Finished, EngineError> {
        self.call(format!("run {}", request.image));
        let out = if request.script == scripts::TOOLCHAIN {
            self.probe
        } else {
            self.trees
        };
        Ok(finished(true, out, &[]))
    }

    fn create(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        self.call(format!("create {}", spec.image));
        Ok(())
    }

    fn file_size(&self, _: &str, path: &str) -> Result<Option<u64>, EngineError> {
        self.call(format!("stat {path}"));
        Ok(self.kernel_files.contains(&path).then_some(1))
    }

    fn read_file(
        &self,
        _: &str,
        path: &str,
        _: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<(), String>,
    ) -> Result<bool, EngineError> {
        self.call(format!("read {path}"));
        Ok(false)
    }

    fn copy_files_out(&self, _: &str, dir: &str, dest: &Path) -> Result<Vec<String>, EngineError> {
        self.call(format!("cp {dir}"));
        if dir.ends_with("/ko") {
            std::fs::write(dest.join("hello.ko"), tiny_module()).unwrap();
            return Ok(vec!["hello.ko".into()]);
        }
        Ok(vec![])
    }

    fn remove_container(&self, _: &str) -> Result<(), EngineError> {
        self.call("rm container".into());
        Ok(())
    }

    fn remove_labelled(&self, _: &str, _: &str) -> Result<(), EngineError> {
        self.call("rm session containers".into());
        Ok(())
    }
}

/// These tests count engine calls: the host's cache, which saves some,
/// must not be read. Every test sets the same value, once.
fn no_host_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("DMB_CACHE_DIR", "/dev/null/dmb-no-cache"));
}

fn options(module_dir: &Path) -> BuildOptions {
    no_host_cache();
    BuildOptions {
        module_dir: ModuleDir::new(module_dir).unwrap(),
        refs: RefOptions {
            build_ref: Some("dmb-kit/builder:bookworm".into()),
            kernel_ref: Some("dmb-kit/kernel:6.1".into()),
            kver: None,
            detect: None,
            detected: None,
        },
        module_ref: "kernel-module".into(),
        output: None,
        network: false,
        check: false,
        make: Default::default(),
        make_in: MakeIn::Builder,
    }
}

fn module_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Makefile"), "obj-m += hello.o\n").unwrap();
    dir
}

fn key() -> String {
    buildenv_key("sha256:b", "sha256:k")
}

#[test]
fn a_first_buildkit_build_prepares_the_environment_then_exports_files() {
    let dir = module_dir();
    let fake = Fake::new(Builder::BuildKitEnv);
    let outcome = run(&fake, &options(dir.path()), &mut Silent).unwrap();
    assert_eq!(outcome.release, "6.1.0-56-amd64");
    assert_eq!(outcome.modules[0].name, "hello");
    let env = format!("dmb-buildenv:{}", key());
    assert_eq!(
        fake.calls(),
        [
            "image_id dmb-kit/kernel:6.1".to_string(),
            "image_id dmb-kit/builder:bookworm".into(),
            format!("image_id {env}"),
            "create dmb-kit/kernel:6.1".into(),
            "stat /kernel-dev.tar".into(),
            "stat /kernel.tar".into(),
            "rm container".into(),
            "run dmb-kit/builder:bookworm".into(),
            format!("build buildenv -> {env} network=false"),
            format!("run {env}"),
            "build make -> <dir> network=false".into(),
            "image_id kernel-module".into(),
            "import -> kernel-module".into(),
            "rm session containers".into(),
            "prune dmb.session".into(),
            "prune dmb.buildenv".into(),
        ]
    );
}

#[test]
fn a_cached_environment_is_reused_and_legacy_builds_copy_files_out() {
    let dir = module_dir();
    let fake = Fake::new(Builder::Legacy);
    fake.images
        .borrow_mut()
        .insert(format!("dmb-buildenv:{}", key()), "sha256:e".into());
    fake.images
        .borrow_mut()
        .insert("kernel-module".into(), "sha256:old".into());
    run(&fake, &options(dir.path()), &mut Silent).unwrap();
    let calls = fake.calls();
    assert!(
        !calls.iter().any(|c| c.contains("buildenv ->")),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.starts_with("stat")), "{calls:?}");
    // make runs in a container of the build environment whose build
    // directory is a volume kept for this module; no per-build image.
    let make = calls
        .iter()
        .find(|c| c.starts_with("make in container"))
        .unwrap();
    assert!(
        make.starts_with(&format!(
            "make in container dmb-buildenv:{} volume=dmb-module-",
            key()
        )),
        "{make}"
    );
    assert!(!calls.iter().any(|c| c.contains("dmb-build:")), "{calls:?}");
    // The replaced MODULE_REF image was dmb's and is untagged now: removed.
    assert!(calls.contains(&"rmi sha256:old".to_string()), "{calls:?}");
}

#[test]
fn a_toolchain_is_installed_with_network_when_missing() {
    let dir = module_dir();
    let mut fake = Fake::new(Builder::Legacy);
    fake.probe = "@@dmb:tool tar\n@@dmb:pm apk\n";
    run(&fake, &options(dir.path()), &mut Silent).unwrap();
    assert!(fake
        .calls()
        .iter()
        .any(|c| c.starts_with("build buildenv") && c.ends_with("network=true")));
}

#[test]
fn a_missing_layout_file_is_named_and_nothing_is_built() {
    let dir = module_dir();
    let mut fake = Fake::new(Builder::Legacy);
    fake.kernel_files = vec!["/kernel-dev.tar"];
    let err = run(&fake, &options(dir.path()), &mut Silent).unwrap_err();
    assert!(
        matches!(&err, Error::KernelImage(KernelImageError::MissingFile { file, .. }) if file == "/kernel.tar"),
        "{err:?}"
    );
    let calls = fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("build")), "{calls:?}");
    assert_eq!(calls.last().unwrap(), "prune dmb.session");
}

#[test]
fn make_failures_and_empty_builds_are_told_apart() {
    let dir = module_dir();
    let mut fake = Fake::new(Builder::BuildKitEnv);
    fake.make = (
        vec!["#9 1.0 a.c:1:1: error: boom", "#9 1.1 @@dmb:make-failed 2"],
        false,
    );
    match run(&fake, &options(dir.path()), &mut Silent).unwrap_err() {
        Error::Build(BuildError::MakeFailed { code, errors }) => {
            assert_eq!(code, 2);
            assert_eq!(errors, ["a.c:1:1: error: boom"]);
        }
        other => panic!("{other:?}"),
    }
    fake.make = (vec!["@@dmb:no-ko"], false);
    assert!(matches!(
        run(&fake, &options(dir.path()), &mut Silent).unwrap_err(),
        Error::Build(BuildError::NoModules)
    ));
}

#[test]
fn the_failed_legacy_build_is_removed() {
    let dir = module_dir();
    let mut fake = Fake::new(Builder::Legacy);
    fake.make = (vec!["@@dmb:make-failed 2"], false);
    run(&fake, &options(dir.path()), &mut Silent).unwrap_err();
    let calls = fake.calls();
    let tail: Vec<&str> = calls.iter().rev().take(2).map(String::as_str).collect();
    assert_eq!(tail, ["prune dmb.buildenv", "prune dmb.session"]);
}

#[test]
fn unsafe_references_never_reach_a_dockerfile() {
    let dir = module_dir();
    let fake = Fake::new(Builder::Legacy);
    let mut opts = options(dir.path());
    opts.refs.kernel_ref = Some("x\nRUN rm -rf /".into());
    assert!(matches!(
        run(&fake, &opts, &mut Silent).unwrap_err(),
        Error::Build(BuildError::InvalidReference { .. })
    ));
}

#[test]
fn refs_must_be_given() {
    let dir = module_dir();
    let fake = Fake::new(Builder::Legacy);
    let mut opts = options(dir.path());
    opts.refs.kernel_ref = None;
    assert!(matches!(
        run(&fake, &opts, &mut Silent).unwrap_err(),
        Error::KernelImage(KernelImageError::NotGiven)
    ));
    opts.refs.kernel_ref = Some("dmb-kit/kernel:6.1".into());
    opts.refs.build_ref = None;
    assert!(matches!(
        run(&fake, &opts, &mut Silent).unwrap_err(),
        Error::Build(BuildError::BuildRefNotGiven)
    ));
}

#[test]
fn module_directory_checks() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        ModuleDir::new(&dir.path().join("nope")),
        Err(BuildError::ModuleDirMissing { .. })
    ));
    assert!(matches!(
        ModuleDir::new(dir.path()),
        Err(BuildError::NoMakefile { .. })
    ));
}

#[test]
fn buildenv_keys_depend_on_both_images() {
    assert_ne!(buildenv_key("a", "b"), buildenv_key("b", "a"));
    assert_eq!(buildenv_key("a", "b").len(), 16);
}

#[test]
fn by_default_make_runs_in_the_engine_even_with_buildkit() {
    let dir = module_dir();
    let fake = Fake::new(Builder::BuildKitEnv);
    fake.images
        .borrow_mut()
        .insert(format!("dmb-buildenv:{}", key()), "sha256:e".into());
    let opts = BuildOptions {
        make_in: MakeIn::Engine,
        ..options(dir.path())
    };
    run(&fake, &opts, &mut Silent).unwrap();
    let calls = fake.calls();
    assert!(
        calls.iter().any(|c| c.starts_with("make in container")),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("build make")),
        "{calls:?}"
    );
    // The package is imported, never built.
    assert!(
        calls.iter().any(|c| c == "import -> kernel-module"),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("build package")),
        "{calls:?}"
    );
}
