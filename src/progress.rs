//! Where a long command tells what it does: its own steps, the log of what
//! it runs, warnings. The command line prints them; tests stay silent.

pub trait Progress {
    /// A step of dmb's own ("preparing the build environment").
    fn step(&mut self, message: &str);
    /// A line of the build log.
    fn log(&mut self, line: &str);
    /// Something the user should know even when the log is quiet.
    fn warn(&mut self, message: &str) {
        eprintln!("dmb: warning: {message}");
    }
    /// A transfer of `total` bytes (when known) named `what` begins.
    fn meter(&mut self, _what: &str, _total: Option<u64>) -> Box<dyn Meter> {
        Box::new(NoMeter)
    }
}

/// How far a transfer has come.
pub trait Meter {
    fn set(&mut self, done: u64);
    fn finish(&mut self, done: u64);
}

/// Shows nothing.
pub struct NoMeter;

impl Meter for NoMeter {
    fn set(&mut self, _: u64) {}
    fn finish(&mut self, _: u64) {}
}

/// Says nothing.
pub struct Silent;

impl Progress for Silent {
    fn step(&mut self, _: &str) {}
    fn log(&mut self, _: &str) {}
    fn warn(&mut self, _: &str) {}
}

/// Passes everything on and keeps how long each step took, for the
/// `timings` of a command's JSON.
pub struct StepTimer<'a> {
    inner: &'a mut dyn Progress,
    started: std::time::Instant,
    steps: Vec<(String, std::time::Instant)>,
}

/// How long a command and each of its steps took (a step lasts until the
/// next begins; the last until the command ends).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timings {
    pub total_seconds: f64,
    pub steps: Vec<StepTime>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StepTime {
    pub step: String,
    pub seconds: f64,
}

impl<'a> StepTimer<'a> {
    pub fn new(inner: &'a mut dyn Progress) -> Self {
        StepTimer {
            inner,
            started: std::time::Instant::now(),
            steps: Vec::new(),
        }
    }

    pub fn timings(&self) -> Timings {
        let end = std::time::Instant::now();
        let seconds = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, (step, at))| {
                let until = self.steps.get(i + 1).map_or(end, |(_, next)| *next);
                StepTime {
                    step: step.clone(),
                    seconds: seconds(until - *at),
                }
            })
            .collect();
        Timings {
            total_seconds: seconds(end - self.started),
            steps,
        }
    }
}

impl Progress for StepTimer<'_> {
    fn step(&mut self, message: &str) {
        self.steps
            .push((message.to_string(), std::time::Instant::now()));
        self.inner.step(message);
    }
    fn log(&mut self, line: &str) {
        self.inner.log(line);
    }
    fn warn(&mut self, message: &str) {
        self.inner.warn(message);
    }
    fn meter(&mut self, what: &str, total: Option<u64>) -> Box<dyn Meter> {
        self.inner.meter(what, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_lasts_until_the_next() {
        let mut silent = Silent;
        let mut timer = StepTimer::new(&mut silent);
        timer.step("one");
        std::thread::sleep(std::time::Duration::from_millis(30));
        timer.step("two");
        let t = timer.timings();
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].step, "one");
        assert!(t.steps[0].seconds >= 0.03, "{t:?}");
        assert!(t.total_seconds >= t.steps[0].seconds + t.steps[1].seconds - 0.002);
    }
}
