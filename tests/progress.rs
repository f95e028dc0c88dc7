//! Progress as users see it: a spinner with the elapsed time on a terminal
//! (a pseudo-terminal made by `script`), plain lines off one, nothing
//! under `-q`, no colour under `NO_COLOR`. The long step is a fresh build
//! of `examples/hello` against the kit's kernel on this machine's engine.

mod common;

use std::process::{Command, Output};

use common::*;

/// One run of `dmb build examples/hello --fresh`, with these extra
/// arguments and environment, on a pseudo-terminal when `tty`.
fn build(tty: bool, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let _engine = engine_lock();
    let mut args = vec![
        env!("CARGO_BIN_EXE_dmb"),
        "build",
        "examples/hello",
        "--fresh",
        "--module-ref",
        "dmb-test/progress",
    ];
    args.extend_from_slice(extra);
    let mut cmd = if tty {
        // script(1) runs the command on a new pseudo-terminal and copies
        // everything written to it (stdout and stderr) to its stdout.
        let line = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut c = Command::new("script");
        c.args(["-qfec", &line, "/dev/null"]);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    let dmb_env = dmb(LEGACY);
    for (k, v) in dmb_env.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("TERM", "xterm").env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.current_dir(root()).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The text without its terminal control sequences (`ESC [ … letter`).
fn without_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// indicatif's default spinner frames.
const FRAMES: &[char] = &[
    '⠁', '⠂', '⠄', '⡀', '⢀', '⠠', '⠐', '⠈', '⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏',
];

#[test]
fn on_a_terminal_each_long_step_is_a_spinner_with_its_time() {
    kit();
    let out = build(true, &[], &[]);
    let screen = text(&out.stdout);
    // Redrawn in place (carriage return, erase line) with a spinner frame,
    // the step's message and the seconds so far.
    assert!(screen.contains("\r\x1b[2K"), "{screen}");
    assert!(screen.chars().any(|c| FRAMES.contains(&c)), "{screen}");
    let shown = without_escapes(&screen);
    let lines: Vec<&str> = shown.split(['\r', '\n']).map(str::trim).collect();
    let spinning = lines.iter().any(|l| {
        l.chars().next().is_some_and(|c| FRAMES.contains(&c))
            && l.contains(" dmb: building examples/hello for")
            && l.ends_with("s")
    });
    assert!(spinning, "no spinner for the build step: {shown}");
    // A step that took a second or more is left behind with its time.
    // (The terminal wraps a padded line: the next may follow on the same
    // line of the capture.)
    let timed = lines.iter().any(|l| {
        l.strip_prefix("dmb: building examples/hello for")
            .and_then(|rest| rest.split(" (").nth(2))
            .and_then(|t| t.split_once(" s)"))
            .is_some_and(|(secs, _)| secs.parse::<f64>().is_ok_and(|s| s >= 1.0))
    });
    assert!(timed, "the build step's line has no time: {screen}");
    // Colour by default, none under NO_COLOR.
    assert!(screen.contains("\x1b[36m"), "{screen}");
    let plain = text(&build(true, &[], &[("NO_COLOR", "1")]).stdout);
    assert!(!plain.contains("\x1b[36m"), "{plain}");
    assert!(plain.contains("\r\x1b[2K"), "{plain}");
}

#[test]
fn off_a_terminal_steps_are_plain_lines_and_q_silences_them() {
    kit();
    let out = build(false, &[], &[]);
    let err = text(&out.stderr);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    let steps: Vec<&str> = err.lines().filter(|l| l.starts_with("dmb: ")).collect();
    assert!(
        steps
            .iter()
            .any(|l| l.starts_with("dmb: building examples/hello for")),
        "{err}"
    );
    assert!(
        steps
            .iter()
            .any(|l| l.starts_with("dmb: checking that they will load")),
        "{err}"
    );
    // The build log is there too, indented.
    assert!(err.lines().any(|l| l.starts_with("  ")), "{err}");
    // The result is on stdout, whatever stderr shows.
    assert!(
        text(&out.stdout).starts_with("hello.ko\t"),
        "{}",
        text(&out.stdout)
    );

    let quiet = build(false, &["-q"], &[]);
    assert_eq!(text(&quiet.stderr), "", "-q printed progress");
    assert!(text(&quiet.stdout).starts_with("hello.ko\t"));
    let _ = docker(&["image", "rm", "dmb-test/progress"]);
}
