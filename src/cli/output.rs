//! What the command line prints when a command is done: results on stdout
//! (JSON under `--json`), and errors with their causes, details and hint.
//! Progress is [`super::terminal`]'s.

use std::io::Write;

use crate::Error;

/// Writes a command's result to stdout: pretty JSON under `--json`, else
/// its human form. A write error (a closed pipe) is not worth an exit code.
pub fn print_result<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&mut std::io::StdoutLock<'static>, &T) -> std::io::Result<()>,
) {
    let mut out = std::io::stdout().lock();
    let _ = if json {
        let text = serde_json::to_string_pretty(value).expect("serialisable");
        writeln!(out, "{text}")
    } else {
        human(&mut out, value)
    };
}

/// Prints an error, the chain of its causes, its details and its hint;
/// returns its exit code.
pub fn report(e: &Error) -> i32 {
    // An engine command that failed says what dmb was doing when it did:
    // the command line alone (its scripts elided) rarely does.
    let doing = match e {
        Error::Engine(
            crate::engine::EngineError::Command { .. } | crate::engine::EngineError::Stream { .. },
        ) => super::terminal::last_step().map(|s| format!("{s}: ")),
        _ => None,
    };
    eprintln!("dmb: error: {}{e}", doing.unwrap_or_default());
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    for line in e.details() {
        eprintln!("{line}");
    }
    if let Some(h) = e.hint() {
        eprintln!("hint: {h}");
    }
    e.code()
}
