//! Shared by the integration tests: the kit, the real engine, the dmb binary,
//! and a check that a run left nothing behind.
#![allow(dead_code)]

pub mod http;
pub mod sim;
pub mod spare_engine;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The kit's images (`scripts/kit.sh`).
#[derive(Debug, Clone)]
pub struct Kit {
    pub kver: String,
    pub kernel_ref: String,
    pub build_ref: String,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the kit once per test binary. No kit is a failure, never a skip.
pub fn kit() -> &'static Kit {
    static KIT: OnceLock<Kit> = OnceLock::new();
    KIT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("scripts/kit.sh"))
            .output()
            .expect("running scripts/kit.sh");
        assert!(
            out.status.success(),
            "scripts/kit.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("kit.sh printed no {key}: {text}"))
                .to_string()
        };
        Kit {
            kver: value("KVER"),
            kernel_ref: value("KERNEL_REF"),
            build_ref: value("BUILD_REF"),
        }
    })
}

/// Engine tests run one at a time: they compare the engine's whole state
/// before and after.
pub fn engine_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The two ways dmb builds: the legacy builder through the first docker CLI
/// on PATH (28.x here, no buildx), BuildKit through Debian's 20.10 CLI.
#[derive(Debug, Clone, Copy)]
pub struct Flavour {
    pub docker: &'static str,
    pub builder: &'static str,
}

pub const LEGACY: Flavour = Flavour {
    docker: "docker",
    builder: "legacy",
};
pub const BUILDKIT: Flavour = Flavour {
    docker: "/usr/bin/docker",
    builder: "buildkit",
};

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running docker")
}

pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `dmb` with the kit's refs in the environment and the flavour's CLI.
pub fn dmb(flavour: Flavour) -> Command {
    let kit = kit();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dmb"));
    cmd.env("DMB_DOCKER", flavour.docker)
        .env("DMB_BUILDER", flavour.builder)
        .env("KERNEL_REF", &kit.kernel_ref)
        .env("BUILD_REF", &kit.build_ref)
        .env_remove("MODULE_REF")
        // Detection against this machine's engine reads only what an
        // ordinary container sees: never a privileged container here.
        .env("DMB_NO_VM_FILES", "1")
        .env("DMB_CACHE_DIR", cache_dir())
        .current_dir(root());
    cmd
}

/// dmb as a user runs it: no DMB_*, KERNEL_REF or BUILD_REF variable
/// (defaults are what users get), in the repository.
pub fn user_dmb() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dmb"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DMB_") || k == "KERNEL_REF" || k == "BUILD_REF" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(root());
    cmd
}

/// dmb's cache for one test binary, empty when the binary starts: each
/// binary reads kernel images afresh once, then from the cache.
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dmb-cache-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The kit's other kernel image (`scripts/kit.sh --other-kernel`, made
/// when missing), named by its release.
pub fn other_kernel() -> String {
    let out = Command::new("bash")
        .arg(root().join("scripts/kit.sh"))
        .arg("--other-kernel")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kit.sh --other-kernel: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .strip_prefix("KERNEL_REF=")
        .expect("KERNEL_REF=")
        .to_string()
}

/// The busybox image the sim script makes (from Debian's busybox-static).
pub fn busybox() -> String {
    let out = Command::new("bash")
        .arg(root().join("scripts/sim.sh"))
        .arg("busybox")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/sim.sh busybox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What must be the same after a run as before it.
#[derive(Debug, PartialEq, Eq)]
pub struct EngineState {
    containers: Vec<String>,
    dangling: Vec<String>,
}

impl EngineState {
    pub fn now() -> Self {
        let list = |args: &[&str]| {
            let mut v: Vec<String> = docker_ok(args).lines().map(str::to_string).collect();
            v.sort();
            v
        };
        EngineState {
            containers: list(&["ps", "-a", "-q", "--no-trunc"]),
            dangling: list(&["images", "-q", "--no-trunc", "-f", "dangling=true"]),
        }
    }

    pub fn assert_unchanged(&self) {
        assert_eq!(
            &EngineState::now(),
            self,
            "the run left containers or dangling images behind"
        );
    }
}

/// A unique image name for one test.
pub fn unique_ref(what: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "dmb-test/{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The paths of the files in an image (via `docker export`).
pub fn image_files(reference: &str) -> Vec<String> {
    let id = docker_ok(&["create", reference, "/none"])
        .trim()
        .to_string();
    let out = Command::new("docker")
        .args(["export", &id])
        .output()
        .expect("docker export");
    docker_ok(&["rm", &id]);
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut files: Vec<String> = archive
        .entries()
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.header().entry_type().is_file())
        .map(|e| e.path().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// One file of an image.
pub fn image_file(reference: &str, path: &str) -> Vec<u8> {
    let id = docker_ok(&["create", reference, "/none"])
        .trim()
        .to_string();
    let out = Command::new("docker")
        .args(["cp", &format!("{id}:{path}"), "-"])
        .output()
        .expect("docker cp");
    docker_ok(&["rm", &id]);
    assert!(out.status.success(), "no {path} in {reference}");
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
    data
}

pub fn remove_image(reference: &str) {
    let _ = docker(&["image", "rm", reference]);
}

/// An image a test creates; removed when the test ends, also on failure.
pub struct TestImage(pub String);

impl TestImage {
    pub fn new(what: &str) -> Self {
        TestImage(unique_ref(what))
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        remove_image(&self.0);
    }
}

/// A copy of `examples/hello` whose module differs from every other build,
/// so that no builder cache and no other image can stand in for it.
pub fn unique_hello(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("examples/hello/Makefile"),
        dir.path().join("Makefile"),
    )
    .unwrap();
    let source = std::fs::read_to_string(root().join("examples/hello/hello.c")).unwrap();
    std::fs::write(
        dir.path().join("hello.c"),
        format!("{source}MODULE_INFO(dmbtest, \"{tag}\");\n"),
    )
    .unwrap();
    dir
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Reads a built module with the library's own parser.
pub fn read_module(path: &Path) -> dmb::ko::Module {
    dmb::ko::Module::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Builds a test module directory with the kit on this machine's engine;
/// returns the directory holding its `.ko` files.
pub fn build_module(dir: &str, out: &Path, image: &TestImage, kernel_ref: Option<&str>) -> PathBuf {
    let dest = out.join(Path::new(dir).file_name().unwrap());
    let mut cmd = dmb(BUILDKIT);
    cmd.args(["build", dir, "-q", "--module-ref", image.name(), "--output"])
        .arg(&dest);
    if let Some(k) = kernel_ref {
        cmd.args(["--kernel-ref", k]);
    }
    let done = cmd.output().unwrap();
    assert!(done.status.success(), "dmb build {dir}: {}", stderr(&done));
    dest
}

/// How a stop signal reaches dmb.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// SIGINT to the whole foreground group, as a terminal's Ctrl-C.
    CtrlC,
    /// SIGTERM to dmb alone, as a service manager or `kill`.
    Term,
}

impl Stop {
    /// The exit status dmb owes it (128 + the signal's number).
    pub fn code(self) -> i32 {
        match self {
            Stop::CtrlC => 130,
            Stop::Term => 143,
        }
    }
}

/// Runs `cmd` in a process group of its own, sends `stop` once a stderr
/// line contains `at` (a progress step), and returns its exit code and
/// everything it printed.
pub fn stop_when(
    mut cmd: Command,
    at: &str,
    stop: Stop,
    limit: std::time::Duration,
) -> (Option<i32>, String) {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + limit;
    let mut log = String::new();
    loop {
        let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        else {
            let _ = child.kill();
            panic!("it never said {at:?}:\n{log}");
        };
        log.push_str(&line);
        log.push('\n');
        if line.contains(at) {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    match stop {
        Stop::CtrlC => nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT).unwrap(),
        Stop::Term => nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap(),
    }
    let stopped = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(1)) {
        log.push_str(&line);
        log.push('\n');
    }
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    eprintln!(
        "{stop:?} at {at:?}: exit {:?} after {:.1} s",
        out.status.code(),
        stopped.elapsed().as_secs_f64()
    );
    (out.status.code(), log)
}

/// A builder image of the test's own: the kit's builder under another ID
/// (a label names it), from which no build environment was made yet.
pub fn fresh_builder(what: &str) -> TestImage {
    let builder = TestImage::new(what);
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\nLABEL dmb.test.builder=\"{}\"\n",
            kit().build_ref,
            builder.name()
        ),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "-t",
        builder.name(),
        context.path().to_str().unwrap(),
    ]);
    builder
}
