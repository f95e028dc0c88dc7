//! What the command line prints: progress on stderr, results on stdout
//! (JSON under `--json`), and errors with their causes, details and hint.

use std::io::Write;

use std::io::IsTerminal;
use std::time::Instant;

use crate::progress::{Meter, NoMeter, Progress};
use crate::Error;

/// Human output on stderr; the build log only when not quiet.
pub struct Terminal {
    pub quiet: bool,
}

impl Progress for Terminal {
    fn step(&mut self, message: &str) {
        if !self.quiet {
            eprintln!("dmb: {message}");
        }
    }

    fn log(&mut self, line: &str) {
        if !self.quiet {
            eprintln!("  {line}");
        }
    }

    fn meter(&mut self, what: &str, total: Option<u64>) -> Box<dyn Meter> {
        if self.quiet {
            Box::new(NoMeter)
        } else if std::io::stderr().is_terminal() {
            Box::new(Bar::new(what, total))
        } else {
            Box::new(Lines {
                what: what.to_string(),
                total,
                started: Instant::now(),
                next: 0,
            })
        }
    }
}

/// The output of one of several builds running at once: each line says
/// which one it belongs to, and transfers are plain lines (two bars would
/// draw over each other).
pub struct Labelled {
    pub label: String,
    pub quiet: bool,
}

impl Progress for Labelled {
    fn step(&mut self, message: &str) {
        if !self.quiet {
            eprintln!("dmb: [{}] {message}", self.label);
        }
    }

    fn log(&mut self, line: &str) {
        if !self.quiet {
            eprintln!("  [{}] {line}", self.label);
        }
    }

    fn warn(&mut self, message: &str) {
        eprintln!("dmb: [{}] warning: {message}", self.label);
    }

    fn meter(&mut self, what: &str, total: Option<u64>) -> Box<dyn Meter> {
        if self.quiet {
            Box::new(NoMeter)
        } else {
            Box::new(Lines {
                what: format!("[{}] {what}", self.label),
                total,
                started: Instant::now(),
                next: 0,
            })
        }
    }
}

/// A bar with bytes, rate and time left, on a terminal.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(what: &str, total: Option<u64>) -> Bar {
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let template = if total.is_some() {
            "  {msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
        } else {
            "  {msg} [{elapsed_precise}] {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        Bar(bar)
    }
}

impl Meter for Bar {
    fn set(&mut self, done: u64) {
        self.0.set_position(done);
    }
    fn finish(&mut self, done: u64) {
        self.0.set_position(done);
        self.0.finish();
    }
}

/// A line every tenth (or every 64 MiB of an unknown size) where no
/// terminal would redraw a bar: logs, CI.
struct Lines {
    what: String,
    total: Option<u64>,
    started: Instant,
    next: u64,
}

impl Lines {
    fn say(&self, done: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let of = self
            .total
            .map(|t| format!(" of {:.1} MiB", mib(t)))
            .unwrap_or_default();
        eprintln!(
            "  {}: {:.1} MiB{of} in {secs:.0} s ({:.1} MiB/s)",
            self.what,
            mib(done),
            mib(done) / secs
        );
    }
}

impl Meter for Lines {
    fn set(&mut self, done: u64) {
        if done >= self.next {
            if self.next > 0 {
                self.say(done);
            }
            self.next = done + self.total.map_or(64 << 20, |t| (t / 10).max(1));
        }
    }
    fn finish(&mut self, done: u64) {
        self.say(done);
    }
}

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
    eprintln!("dmb: error: {e}");
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
