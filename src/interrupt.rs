//! Ctrl-C, SIGTERM, SIGHUP and `--timeout` as a flag that long-running
//! steps poll.
//!
//! Children run in their own process group so that a terminal's Ctrl-C reaches
//! only dmb; dmb then forwards it to the child it is waiting for and cleans up
//! what the run created before it exits, with the shell's status for the
//! signal (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The exit status the first stop signal asks for; 0 while none came.
fn flag() -> &'static Arc<AtomicUsize> {
    static FLAG: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Installs the process-wide handlers. Call once, from the binary.
pub fn install_handler() -> std::io::Result<()> {
    crate::platform::on_stop_signals(flag())
}

/// Nesting depth of [`deferred`] sections.
static DEFERRED: AtomicUsize = AtomicUsize::new(0);

/// Whether dmb should stop now: a stop signal came, and no step that must
/// not be cut in half ([`deferred`]) is running.
pub fn requested() -> bool {
    DEFERRED.load(Ordering::SeqCst) == 0 && pending()
}

/// Whether a stop signal came or the time ran out, deferred or not.
pub fn pending() -> bool {
    flag().load(Ordering::SeqCst) != 0 || timed_out()
}

/// When `--timeout` ends the run.
static DEADLINE: OnceLock<(Instant, Duration)> = OnceLock::new();

/// Makes the run stop, as a signal would, once `limit` has passed.
pub fn stop_after(limit: Duration) {
    let _ = DEADLINE.set((Instant::now() + limit, limit));
}

/// Whether `--timeout` ran out (and no signal came first).
pub fn timed_out() -> bool {
    flag().load(Ordering::SeqCst) == 0
        && DEADLINE.get().is_some_and(|(at, _)| Instant::now() >= *at)
}

/// What stopped the run, for its error message.
pub fn describe() -> String {
    match DEADLINE.get() {
        Some((_, limit)) if timed_out() => {
            format!("timed out after {} s (--timeout)", limit.as_secs())
        }
        _ => "interrupted".to_string(),
    }
}

/// Runs `f` with stop signals held back: engine commands are not cut
/// short, and the caller asks [`pending`] afterwards. For the steps that
/// change the VM's kernel (inserting, removing, recording), where a cut
/// would leave modules half-loaded or loaded without a record; they take
/// seconds.
pub fn deferred<T>(f: impl FnOnce() -> T) -> T {
    struct Section;
    impl Drop for Section {
        fn drop(&mut self) {
            DEFERRED.fetch_sub(1, Ordering::SeqCst);
        }
    }
    DEFERRED.fetch_add(1, Ordering::SeqCst);
    let _section = Section;
    f()
}

/// The exit status for a run that stopped because it was asked to: 128 +
/// the signal's number, 124 when `--timeout` ran out (as timeout(1)), 130
/// (Ctrl-C) otherwise (a child that was interrupted by the terminal).
pub fn exit_code() -> i32 {
    if timed_out() {
        return crate::error::TIMED_OUT;
    }
    match flag().load(Ordering::SeqCst) {
        0 => 130,
        code => code as i32,
    }
}
