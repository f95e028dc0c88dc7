//! `dmb completions` and `dmb man`, run as a user runs them (no DMB_*
//! variables), and what they print used as a shell and `man` use it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// dmb with no DMB_* variable, no engine needed.
fn dmb(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dmb"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DMB_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The words bash offers after `line` (the last word being completed),
/// with dmb's completion script loaded.
fn bash_completes(script: &str, line: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dmb.bash");
    std::fs::write(&path, script).unwrap();
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let program = format!(
        "source '{}' && complete -p dmb >/dev/null && \
         COMP_WORDS=({words}) && COMP_CWORD={} && COMP_LINE='{}' && COMP_POINT=${{#COMP_LINE}} && \
         _dmb dmb \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\" && \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        line.len() - 1,
        line.join(" "),
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .unwrap();
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_and_options() {
    let script = stdout(&dmb(&["completions", "bash"]));
    let commands = bash_completes(&script, &["dmb", "bu"]);
    assert_eq!(commands, ["build"]);
    let options = bash_completes(&script, &["dmb", "build", "--para"]);
    assert_eq!(options, ["--parallel"]);
    let all = bash_completes(&script, &["dmb", ""]);
    for c in [
        "build",
        "inspect",
        "check",
        "detect",
        "load",
        "unload",
        "status",
        "kernel",
        "kmm",
        "completions",
        "man",
    ] {
        assert!(all.iter().any(|w| w == c), "{c} not in {all:?}");
    }
}

#[test]
fn every_shell_gets_a_script_naming_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout(&dmb(&["completions", shell]));
        for c in ["build", "detect", "load", "kmm", "synthesize"] {
            assert!(script.contains(c), "{shell}: no {c}");
        }
    }
    let bad = dmb(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `man -l -` renders the page (groff through man-db), as `dmb man | man
/// -l -` would on a terminal.
fn rendered(page: &str) -> String {
    let mut man = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "200")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("man (man-db) is installed by scripts/setup.sh");
    man.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    let text = stdout(&out);
    // Bold and underline come as backspace overstrikes; drop them.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn the_man_pages_render_and_name_the_options() {
    let top = rendered(&stdout(&dmb(&["man"])));
    assert!(top.contains("dmb - Build Linux kernel modules"), "{top}");
    for c in ["build", "detect", "load", "kmm", "completions"] {
        assert!(top.contains(c), "{c}: {top}");
    }
    let build = rendered(&stdout(&dmb(&["man", "build"])));
    for o in [
        "--kernel-ref",
        "--parallel",
        "--jobs",
        "--make-arg",
        "--fresh",
    ] {
        assert!(build.contains(o), "{o}: {build}");
    }
    let synth = rendered(&stdout(&dmb(&["man", "kernel", "synthesize"])));
    assert!(synth.contains("dmb-kernel-synthesize"), "{synth}");
    let missing = dmb(&["man", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no command `nope`"));
}
