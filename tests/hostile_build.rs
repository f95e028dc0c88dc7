//! `dmb build` against module directories that try to hurt it: a Makefile
//! that floods its log (with lines and with one endless line), one that
//! never ends, one that forks a daemon; links out of the directory; file
//! names with spaces, newlines and bytes that are not UTF-8; a directory of
//! hundreds of MB. Each: a clear outcome, memory that stays bounded, and
//! nothing left in the engine or on this machine.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `cmd` to its end and returns its output and its peak resident
/// memory (VmHWM, KiB), sampled from /proc until it exits.
fn with_peak_rss(mut cmd: Command) -> (std::process::Output, u64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(s) = std::fs::read_to_string(&status_file) {
                    if let Some(kib) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                    {
                        peak = peak.max(kib);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let out = child.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    (out, sampler.join().unwrap())
}

/// A copy of examples/hello whose Makefile's default target runs `extra`
/// (recipe lines) before kbuild.
fn hello_with_recipe(tag: &str, extra: &str) -> tempfile::TempDir {
    let dir = unique_hello(tag);
    std::fs::write(
        dir.path().join("Makefile"),
        format!("obj-m += hello.o\nall:\n{extra}\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules\n"),
    )
    .unwrap();
    dir
}

/// Host processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn a_flooding_makefile_keeps_memory_bounded() {
    let _engine = engine_lock();
    let before = EngineState::now();
    // 300 MB of short lines, then 100 MB in one line, then the build.
    let dir = hello_with_recipe(
        "flood",
        "\tyes 'flooding the log with a line of some length' | head -c 300000000\n\
         \thead -c 100000000 /dev/zero | tr '\\0' x; echo\n",
    );
    let image = TestImage::new("flood");
    let mut cmd = dmb(LEGACY);
    cmd.args(["build", "-v"])
        .arg(dir.path())
        .args(["--module-ref", image.name()]);
    let started = Instant::now();
    let (out, peak_kib) = with_peak_rss(cmd);
    eprintln!(
        "flood of 400 MB: exit {:?} in {:.1} s, dmb's peak RSS {} MiB",
        out.status.code(),
        started.elapsed().as_secs_f64(),
        peak_kib / 1024
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // All of the log went through (-v prints it), one line cut short.
    assert!(out.stderr.len() > 300_000_000, "{}", out.stderr.len());
    assert!(
        peak_kib < 200 * 1024,
        "dmb held {peak_kib} KiB for a 400 MB log"
    );
    drop(image);
    before.assert_unchanged();
}

#[test]
fn a_daemon_forked_by_make_does_not_outlive_the_build() {
    for flavour in [LEGACY, BUILDKIT] {
        let _engine = engine_lock();
        let before = EngineState::now();
        let marker = format!("{}", 3_000_000 + std::process::id() % 100_000);
        // One holds the log's pipe, one is detached from everything.
        let dir = hello_with_recipe(
            "daemon",
            &format!(
                "\tsleep {marker} &\n\tsetsid sh -c 'sleep {marker}' </dev/null >/dev/null 2>&1 &\n"
            ),
        );
        let image = TestImage::new("daemon");
        let done = dmb(flavour)
            .args(["build", "-q"])
            .arg(dir.path())
            .args(["--module-ref", image.name(), "--timeout", "600"])
            .output()
            .unwrap();
        assert!(done.status.success(), "{flavour:?}: {}", stderr(&done));
        let left = processes_with(&format!("sleep {marker}"));
        assert!(left.is_empty(), "{flavour:?}: outlived the build: {left:?}");
        drop(image);
        before.assert_unchanged();
    }
}

#[test]
fn a_makefile_that_never_ends_meets_timeout() {
    for flavour in [LEGACY, BUILDKIT] {
        let _engine = engine_lock();
        let before = EngineState::now();
        let started = Instant::now();
        let done = dmb(flavour)
            .args([
                "build",
                "tests/modules/slow",
                "--timeout",
                "20",
                "--module-ref",
                &unique_ref("timeout"),
            ])
            .output()
            .unwrap();
        let took = started.elapsed();
        eprintln!(
            "{flavour:?}: --timeout 20 ended the run in {:.1} s",
            took.as_secs_f64()
        );
        assert_eq!(done.status.code(), Some(124), "{}", stderr(&done));
        assert!(
            stderr(&done).contains("timed out after 20 s (--timeout)"),
            "{}",
            stderr(&done)
        );
        before.assert_unchanged();
    }
}

#[test]
fn links_out_of_the_directory_never_reach_the_build() {
    let _engine = engine_lock();
    let before = EngineState::now();
    let dir = unique_hello("links");
    std::os::unix::fs::symlink("/etc/shadow", dir.path().join("shadow")).unwrap();
    std::os::unix::fs::symlink("../../../etc/passwd", dir.path().join("passwd")).unwrap();
    let image = TestImage::new("links");
    let done = dmb(BUILDKIT)
        .arg("build")
        .arg(dir.path())
        .args(["--module-ref", image.name()])
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    let said = format!("{}{}", String::from_utf8_lossy(&done.stdout), stderr(&done));
    assert!(
        said.contains("shadow") && said.contains("points outside the module directory"),
        "{said}"
    );
    let files = image_files(image.name());
    assert!(
        !files
            .iter()
            .any(|f| f.contains("shadow") || f.contains("passwd")),
        "{files:?}"
    );
    drop(image);
    before.assert_unchanged();
}

#[test]
fn file_names_with_spaces_build_and_unusable_ones_are_refused() {
    let _engine = engine_lock();
    // Spaces: carried (make itself cannot have one in a prerequisite's
    // name, so they are files the build does not compile).
    let dir = unique_hello("spaces");
    std::fs::create_dir_all(dir.path().join("a dir with spaces")).unwrap();
    std::fs::write(dir.path().join("a dir with spaces/read me.txt"), "spaces\n").unwrap();
    std::fs::write(dir.path().join("tab\tand  two spaces.txt"), "tab\n").unwrap();
    let image = TestImage::new("spaces");
    let done = dmb(BUILDKIT)
        .args(["build", "-q"])
        .arg(dir.path())
        .args(["--module-ref", image.name()])
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    drop(image);

    // A newline or bytes that are not UTF-8: refused by name, exit 12,
    // before the engine is asked anything.
    for name in [&b"bad\nname.c"[..], b"latin1-\xe9t\xe9.c"] {
        let before = EngineState::now();
        let dir = unique_hello("names");
        std::fs::write(
            dir.path().join(std::ffi::OsStr::from_bytes(name)),
            "int x;\n",
        )
        .unwrap();
        let done = dmb(BUILDKIT).arg("build").arg(dir.path()).output().unwrap();
        assert_eq!(done.status.code(), Some(12), "{}", stderr(&done));
        assert!(stderr(&done).contains("file name"), "{}", stderr(&done));
        before.assert_unchanged();
    }
}

#[test]
fn a_large_module_directory_is_streamed_with_a_warning() {
    let _engine = engine_lock();
    let before = EngineState::now();
    let dir = unique_hello("large");
    // 600 MB of data make never reads (a firmware blob, a recording).
    let blob = std::fs::File::create(dir.path().join("data.bin")).unwrap();
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(blob);
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..600 {
            w.write_all(&chunk).unwrap();
        }
    }
    let image = TestImage::new("large");
    let mut cmd = dmb(BUILDKIT);
    cmd.arg("build")
        .arg(dir.path())
        .args(["--module-ref", image.name()]);
    let started = Instant::now();
    let (out, peak_kib) = with_peak_rss(cmd);
    eprintln!(
        "a 600 MB module directory: exit {:?} in {:.1} s, dmb's peak RSS {} MiB",
        out.status.code(),
        started.elapsed().as_secs_f64(),
        peak_kib / 1024
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("629 MB") && stderr(&out).contains(".dmbignore"),
        "{}",
        stderr(&out)
    );
    assert!(peak_kib < 200 * 1024, "dmb held {peak_kib} KiB");
    drop(image);
    before.assert_unchanged();
}

#[test]
fn a_module_image_of_thousands_of_files_a_huge_ko_and_non_elf_is_refused_within_bounds() {
    let _engine = engine_lock();
    let before = EngineState::now();
    let image = TestImage::new("hostile-modules");
    let context = tempfile::tempdir().unwrap();
    // 3000 files that are named like modules and are not ELF, one of 2 GiB
    // (over dmb's 256 MiB limit for a module; sparse in the layer).
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN for i in $(seq 3000); do echo \"not elf $i\" > /m$i.ko; done && truncate -s 2G /big.ko\n",
            busybox()
        ),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "-t",
        image.name(),
        context.path().to_str().unwrap(),
    ]);
    let before_build = EngineState::now();
    let mut cmd = dmb(LEGACY);
    cmd.args(["inspect", image.name()]);
    let started = Instant::now();
    let (out, peak_kib) = with_peak_rss(cmd);
    eprintln!(
        "a MODULE_REF of 3001 bad modules: exit {:?} in {:.1} s, dmb's peak RSS {} MiB",
        out.status.code(),
        started.elapsed().as_secs_f64(),
        peak_kib / 1024
    );
    assert_eq!(out.status.code(), Some(51), "{}", stderr(&out));
    let err = stderr(&out);
    // Named as the image holds it, with the reason.
    assert!(err.contains(&format!("{}:/", image.name())), "{err}");
    assert!(err.contains(".ko"), "{err}");
    assert!(err.lines().count() < 10, "{err}");
    assert!(peak_kib < 200 * 1024, "dmb held {peak_kib} KiB");
    before_build.assert_unchanged();
    drop(image);
    before.assert_unchanged();
}
