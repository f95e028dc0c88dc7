//! How a command shows its progress on stderr. On a terminal each step of
//! dmb's is a spinner with the time it has taken so far, the build log
//! scrolls above it, a transfer is a bar with bytes and rate, and a step
//! that took a second or more is left behind with its time. Off a terminal
//! (a pipe, a log, CI) every step and log line is a plain line. `-q`
//! silences both; errors are printed by [`super::output::report`] anyway.
//! Colours follow `NO_COLOR` and `CLICOLOR` (the `console` crate reads them).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Meter, NoMeter, Progress};

/// The last step any terminal of this process began, for an error that
/// comes out of it ([`super::output::report`]).
static LAST_STEP: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

pub fn last_step() -> Option<String> {
    LAST_STEP.lock().ok()?.clone()
}

fn began(step: &str) {
    if let Ok(mut last) = LAST_STEP.lock() {
        *last = Some(step.to_string());
    }
}

/// A step shorter than this leaves no line with its time behind.
const WORTH_TIMING: Duration = Duration::from_secs(1);

/// What a command prints while it works.
pub struct Terminal {
    mode: Mode,
}

enum Mode {
    Quiet,
    Plain,
    Live {
        multi: MultiProgress,
        step: Option<Step>,
    },
}

/// The step a spinner shows.
struct Step {
    spinner: ProgressBar,
    message: String,
    started: Instant,
}

impl Terminal {
    /// Spinners when stderr is a terminal (and `TERM` is not `dumb`),
    /// plain lines otherwise or under `-v` (whose command lines would cut
    /// through a spinner), nothing under `-q`.
    pub fn for_cli(cli: &super::Cli) -> Terminal {
        let interactive = std::io::stderr().is_terminal()
            && std::env::var("TERM").map_or(true, |t| t != "dumb")
            && !cli.verbose;
        Terminal {
            mode: if cli.quiet {
                Mode::Quiet
            } else if interactive {
                Mode::Live {
                    multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                    step: None,
                }
            } else {
                Mode::Plain
            },
        }
    }

    /// Ends the running step, if any (before a result or an error is
    /// printed).
    pub fn finish(&mut self) {
        if let Mode::Live { multi, step } = &mut self.mode {
            if let Some(s) = step.take() {
                s.end(multi);
            }
        }
    }
}

impl Step {
    fn start(multi: &MultiProgress, message: &str) -> Step {
        let spinner = multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} dmb: {msg} {elapsed:.dim}")
        {
            spinner.set_style(style);
        }
        spinner.set_message(message.to_string());
        spinner.enable_steady_tick(Duration::from_millis(100));
        Step {
            spinner,
            message: message.to_string(),
            started: Instant::now(),
        }
    }

    /// Leaves `dmb: <step> (12.3 s)` behind when it took a while, else the
    /// step's line as it would be printed off a terminal.
    fn end(self, multi: &MultiProgress) {
        let took = self.started.elapsed();
        self.spinner.finish_and_clear();
        multi.remove(&self.spinner);
        let line = if took >= WORTH_TIMING {
            format!("dmb: {} ({:.1} s)", self.message, took.as_secs_f64())
        } else {
            format!("dmb: {}", self.message)
        };
        let _ = multi.println(line);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for Terminal {
    fn step(&mut self, message: &str) {
        began(message);
        match &mut self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("dmb: {message}"),
            Mode::Live { multi, step } => {
                if let Some(s) = step.take() {
                    s.end(multi);
                }
                *step = Some(Step::start(multi, message));
            }
        }
    }

    fn log(&mut self, line: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("  {line}"),
            Mode::Live { multi, .. } => {
                let _ = multi.println(format!("  {line}"));
            }
        }
    }

    fn warn(&mut self, message: &str) {
        let line = format!("dmb: warning: {message}");
        match &self.mode {
            Mode::Live { multi, .. } => {
                let _ = multi.println(line);
            }
            _ => eprintln!("{line}"),
        }
    }

    fn meter(&mut self, what: &str, total: Option<u64>) -> Box<dyn Meter> {
        match &self.mode {
            Mode::Quiet => Box::new(NoMeter),
            Mode::Plain => Box::new(Lines::new(what.to_string(), total)),
            Mode::Live { multi, .. } => Box::new(Bar::new(multi, what, total)),
        }
    }
}

/// The output of one of several builds running at once: each line says
/// which one it belongs to, and every step and transfer is a plain line
/// (spinners of several builds would draw over each other).
pub struct Labelled {
    pub label: String,
    pub quiet: bool,
}

impl Progress for Labelled {
    fn step(&mut self, message: &str) {
        began(&format!("[{}] {message}", self.label));
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
            Box::new(Lines::new(format!("[{}] {what}", self.label), total))
        }
    }
}

/// A bar with bytes, rate and time left, on a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new(multi: &MultiProgress, what: &str, total: Option<u64>) -> Bar {
        let bar = multi.add(match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        });
        let template = if total.is_some() {
            "  {msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
        } else {
            "  {msg} [{elapsed_precise}] {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
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
    fn new(what: String, total: Option<u64>) -> Lines {
        Lines {
            what,
            total,
            started: Instant::now(),
            next: 0,
        }
    }

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
