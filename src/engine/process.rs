//! Running the engine's CLI: argument vectors only, live line streaming,
//! a bounded tail for error reports, and Ctrl-C forwarding.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{interrupt, platform};

/// How long a child gets to stop after SIGINT before it is killed.
const GRACE: Duration = Duration::from_secs(20);
/// How many trailing output lines are kept for error reports.
const TAIL_LINES: usize = 400;
/// How much of a command's stdout is kept: far more than any of dmb's
/// scripts print (a probe prints a few MB), far less than a build whose
/// Makefile floods its log. The rest still streams to `on_line`.
pub const STDOUT_LIMIT: usize = 64 << 20;
/// A line longer than this is cut there (the rest, up to its newline, is
/// passed over): a Makefile that prints a gigabyte with no newline must
/// not make dmb hold it.
pub const LINE_LIMIT: usize = 64 << 10;

/// One command line: a program and its arguments, plus environment overrides.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The command as a human would type it, for `-v` traces.
    pub fn display(&self) -> String {
        let mut words: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        words.push(quote(&self.program.to_string_lossy()));
        words.extend(self.args.iter().map(|a| quote(&a.to_string_lossy())));
        words.join(" ")
    }

    /// The command line as an error names it: one line, the scripts and
    /// other long arguments elided (`-v` shows them whole, before each
    /// command runs).
    pub fn summary(&self) -> String {
        let mut words = vec![quote(&self.program.to_string_lossy())];
        let mut skip_value = false;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if skip_value {
                skip_value = false;
                continue;
            }
            // Labels and environment say nothing about what failed.
            if arg == "--label" || arg == "--env" {
                skip_value = true;
                continue;
            }
            words.push(if arg.contains('\n') {
                format!("<script of {} lines>", arg.lines().count())
            } else if arg.chars().count() > SUMMARY_ARG {
                let head: String = arg.chars().take(SUMMARY_ARG).collect();
                format!("{}…", quote(&head))
            } else {
                quote(&arg)
            });
        }
        words.join(" ")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        crate::platform::own_process_group(&mut cmd);
        cmd.stdin(Stdio::null());
        cmd
    }
}

/// The longest argument [`Invocation::summary`] shows whole.
const SUMMARY_ARG: usize = 80;

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a finished command left: its status, its stdout (the first
/// [`STDOUT_LIMIT`] bytes), and the last lines of its combined output.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, as they came.
    pub output_tail: Vec<String>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The trailing output, for messages.
    pub fn tail_text(&self) -> String {
        self.output_tail.join("\n")
    }

    /// The last `n` lines of the output, for an error report.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        last_lines(&self.output_tail, n)
    }
}

/// The last `n` of `lines`.
pub fn last_lines(lines: &[String], n: usize) -> Vec<String> {
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("waiting for `{program}` failed: {source}")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

enum Line {
    Out(String),
    Err(String),
}

/// Runs a command to its end. Each output line goes to `on_line` as it
/// arrives. With `interruptible`, a Ctrl-C is forwarded to the child and the
/// result is [`RunError::Interrupted`]; cleanup commands pass `false` so that
/// they run to completion after a Ctrl-C.
pub fn run(
    inv: &Invocation,
    interruptible: bool,
    on_line: &mut dyn FnMut(&str),
) -> Result<Finished, RunError> {
    let done = run_once(inv, interruptible, on_line)?;
    // A Ctrl-C sent to dmb's process group in the instant a child is being
    // spawned (before it has a group of its own) reaches the child as it
    // starts, and kills it before it runs. dmb never sends a child that
    // signal without saying so (`run_once` returns `Interrupted` then).
    if interrupt::pending() && platform::killed_by_stop_signal(&done.status) {
        if interrupt::requested() {
            return Err(RunError::Interrupted);
        }
        // Held back (a step that must finish): the child never ran; again.
        return run_once(inv, interruptible, on_line);
    }
    Ok(done)
}

fn run_once(
    inv: &Invocation,
    interruptible: bool,
    on_line: &mut dyn FnMut(&str),
) -> Result<Finished, RunError> {
    let program = inv.program.to_string_lossy().into_owned();
    let mut child = inv
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
    // Bounded: a child that prints faster than dmb handles its lines
    // waits, instead of filling dmb's memory.
    let (tx, rx) = mpsc::sync_channel(1024);
    let readers = [
        pump(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            tx.clone(),
            Line::Out,
            STDOUT_LIMIT,
        ),
        pump(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            tx,
            Line::Err,
            0,
        ),
    ];
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let mut interrupted_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let text = match line {
                    Line::Out(t) | Line::Err(t) => t,
                };
                on_line(&text);
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if interruptible {
            stop_on_interrupt(&mut child, &mut interrupted_at);
        }
    }
    let [out_reader, err_reader] = readers;
    let kept = out_reader
        .map(|r| r.join().unwrap_or_default())
        .unwrap_or_default();
    if let Some(r) = err_reader {
        let _ = r.join();
    }
    // What the parsers read: each line as the user would see it last.
    let stdout: String = String::from_utf8_lossy(&kept)
        .split_inclusive('\n')
        .map(|l| shown(l.as_bytes()) + "\n")
        .collect();
    let status = loop {
        if interruptible {
            stop_on_interrupt(&mut child, &mut interrupted_at);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(source) => return Err(RunError::Wait { program, source }),
        }
    };
    if interrupted_at.is_some() {
        return Err(RunError::Interrupted);
    }
    Ok(Finished {
        status,
        stdout,
        output_tail: tail.into(),
    })
}

/// First Ctrl-C: SIGINT to the child's group (the docker CLI cancels the
/// build). After the grace period, or at once where no SIGINT can be sent:
/// killed.
fn stop_on_interrupt(child: &mut Child, interrupted_at: &mut Option<Instant>) {
    if !interrupt::requested() {
        return;
    }
    match interrupted_at {
        None => {
            if !platform::interrupt(child) {
                platform::kill(child);
            }
            *interrupted_at = Some(Instant::now());
        }
        Some(t) if t.elapsed() > GRACE => platform::kill(child),
        Some(_) => {}
    }
}

/// Reads a child's stream: each line, cut at [`LINE_LIMIT`], goes to `tx`
/// as the user would see it last (BuildKit and the legacy builder redraw
/// progress lines with `\r`); the first `keep` bytes are kept whole (a
/// line of JSON longer than a display line is still read whole) and
/// returned at the end.
fn pump(
    stream: Option<Box<dyn Read + Send>>,
    tx: mpsc::SyncSender<Line>,
    wrap: fn(String) -> Line,
    keep: usize,
) -> Option<thread::JoinHandle<Vec<u8>>> {
    let stream = stream?;
    Some(thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut kept = Vec::new();
        let mut lines = LineSplitter::default();
        let mut open = true;
        let mut send = |line: &[u8]| {
            if open && tx.send(wrap(shown(line))).is_err() {
                open = false;
            }
        };
        loop {
            let n = match reader.fill_buf() {
                Ok(chunk) if !chunk.is_empty() => {
                    let room = keep.saturating_sub(kept.len()).min(chunk.len());
                    kept.extend_from_slice(&chunk[..room]);
                    lines.feed(chunk, &mut send);
                    chunk.len()
                }
                _ => break,
            };
            reader.consume(n);
        }
        lines.finish(&mut send);
        kept
    }))
}

/// A line as the user would see it last: its `\r` redraws resolved.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    text.rsplit('\r').next().unwrap_or("").to_string()
}

/// Splits a byte stream into lines of at most [`LINE_LIMIT`] bytes (the
/// rest of a longer line is dropped): a Makefile that prints a gigabyte
/// with no newline must not make dmb hold it.
#[derive(Default)]
struct LineSplitter {
    line: Vec<u8>,
}

impl LineSplitter {
    fn feed(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(&[u8])) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.push(&chunk[..end]);
            emit(&self.line);
            self.line.clear();
            chunk = &chunk[end + 1..];
        }
        self.push(chunk);
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = LINE_LIMIT.saturating_sub(self.line.len()).min(bytes.len());
        self.line.extend_from_slice(&bytes[..room]);
    }

    fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.line.is_empty() {
            emit(&self.line);
            self.line.clear();
        }
    }
}

/// A running command whose stdout is read as a byte stream (`docker cp … -`).
pub struct Streaming {
    child: Child,
    program: String,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Streaming {
    pub fn spawn(inv: &Invocation) -> Result<(Self, ChildStdout), RunError> {
        let program = inv.program.to_string_lossy().into_owned();
        let mut child = inv
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RunError::Spawn {
                program: program.clone(),
                source,
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok((
            Streaming {
                child,
                program,
                stderr: Some(stderr),
            },
            stdout,
        ))
    }

    /// Waits for the end; `abandon` kills it first (the reader has all it needs).
    pub fn finish(mut self, abandon: bool) -> Result<(ExitStatus, String), RunError> {
        if abandon {
            let _ = self.child.kill();
        }
        let status = self.child.wait().map_err(|source| RunError::Wait {
            program: self.program.clone(),
            source,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok((status, stderr))
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_longer_than_the_limit_is_cut_and_the_next_is_whole() {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        let long = vec![b'x'; LINE_LIMIT * 3 + 17];
        // Fed in pieces, as a pipe delivers it.
        for piece in long.chunks(4096) {
            splitter.feed(piece, &mut |l| lines.push(l.to_vec()));
        }
        splitter.feed(b"\nnext\nlast", &mut |l| lines.push(l.to_vec()));
        splitter.finish(&mut |l| lines.push(l.to_vec()));
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), LINE_LIMIT);
        assert_eq!(lines[1], b"next");
        assert_eq!(lines[2], b"last");
    }

    #[test]
    fn stdout_keeps_a_line_longer_than_a_display_line_whole() {
        // `docker system df --format '{{json .}}'` prints one long line.
        let inv = Invocation::new("sh").args(["-c", "head -c 200000 /dev/zero | tr '\\0' x; echo"]);
        let mut longest = 0;
        let done = run(&inv, false, &mut |l| longest = longest.max(l.len())).unwrap();
        assert_eq!(done.stdout.len(), 200_001);
        assert_eq!(longest, LINE_LIMIT);
    }

    #[test]
    fn display_quotes_only_what_needs_it() {
        let inv = Invocation::new("docker")
            .args(["build", "-t", "kernel-module", "a b", "it's"])
            .env("DOCKER_BUILDKIT", "1");
        assert_eq!(
            inv.display(),
            r"DOCKER_BUILDKIT=1 docker build -t kernel-module 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn a_summary_is_one_line_without_scripts_labels_or_env() {
        let script = "#!/bin/sh\n# What the kernel says\nuname -r\n";
        let long = "x".repeat(200);
        let inv = Invocation::new("docker")
            .args(["run", "--rm", "--label", "dmb.session=1", "--env", "A=b"])
            .args([
                "--entrypoint",
                "/bin/sh",
                "--",
                "busybox",
                "-c",
                script,
                &long,
            ]);
        let summary = inv.summary();
        assert_eq!(
            summary,
            format!(
                "docker run --rm --entrypoint /bin/sh -- busybox -c <script of 3 lines> {}…",
                "x".repeat(80)
            )
        );
        assert!(!summary.contains('\n'));
    }

    #[test]
    fn run_streams_lines_and_keeps_stdout() {
        let inv = Invocation::new("sh").args(["-c", "echo one; echo two >&2; printf 'a\\rb\\n'"]);
        let mut seen = Vec::new();
        let done = run(&inv, false, &mut |l| seen.push(l.to_string())).unwrap();
        assert!(done.success());
        assert_eq!(done.stdout, "one\nb\n");
        seen.sort();
        assert_eq!(seen, ["b", "one", "two"]);
    }

    #[test]
    fn run_reports_a_missing_program() {
        let inv = Invocation::new("/nonexistent/dmb-test-program");
        let err = run(&inv, false, &mut |_| {}).unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err:?}");
    }
}
