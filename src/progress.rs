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
