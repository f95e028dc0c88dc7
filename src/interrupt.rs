//! Ctrl-C (SIGINT/SIGTERM) as a flag that long-running steps poll.
//!
//! Children run in their own process group so that a terminal's Ctrl-C reaches
//! only dmb; dmb then forwards it to the child it is waiting for and cleans up
//! what the build created before it exits.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the process-wide handler. Call once, from the binary.
pub fn install_handler() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| REQUESTED.store(true, Ordering::SeqCst))
}

/// Whether the user asked dmb to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
