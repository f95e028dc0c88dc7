//! One `dmb load` or `dmb unload` at a time per VM.
//!
//! Two runs that change the VM's modules at once would plan from the same
//! view of what is loaded and then record over each other's loaders. The
//! lock lives in the engine, not on the host, because two hosts (a Mac
//! and a CI runner, say) may drive one VM: it is a container with a fixed
//! name, [`LOCK_NAME`], which the engine creates for one caller only. It
//! runs `sleep` for a lease ([`LEASE`]): a holder that was killed leaves
//! it for that long at most, a VM restart ends it at once, and a holder on
//! the same host whose process is gone gives it up at once. The holder
//! removes it when it is done (the session's cleanup does after Ctrl-C).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::engine::{ContainerSpec, Engine, EngineError, Session, SESSION_LABEL};
use crate::progress::Progress;
use crate::scripts;

/// The lock container's name: one per engine.
pub const LOCK_NAME: &str = "dmb-modules-lock";
/// Its label; the value is the [`Holder`], as JSON.
pub const LOCK_LABEL: &str = "dmb.lock";
/// Marks the containers that change the kernel (insert, unload), which
/// only a lock holder runs: any the next holder finds were left by a run
/// that was cut off (a VM restart, a SIGKILL) and are removed.
pub const UNDER_LOCK_LABEL: &str = "dmb.under-lock";
/// How long a lock is held at most. A load in an emulated VM reads and
/// inserts in a few minutes; a holder killed with SIGKILL on another host
/// blocks others this long.
pub const LEASE: Duration = Duration::from_secs(600);
/// A lock container that was created but never started is its holder's
/// first moment, or a holder killed in between.
const START_GRACE: Duration = Duration::from_secs(60);
/// How often a waiting run looks again.
const POLL: Duration = Duration::from_millis(500);

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// `load` or `unload`.
    pub command: String,
    /// Seconds since the epoch, by the holder's clock.
    pub since: u64,
    pub lease_secs: u64,
}

impl Holder {
    pub fn describe(&self, now: u64) -> String {
        format!(
            "dmb {} (pid {} on {}, {} s ago)",
            self.command,
            self.pid,
            if self.host.is_empty() {
                "?"
            } else {
                &self.host
            },
            now.saturating_sub(self.since)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another {holder} is changing this VM's modules; waited {waited_secs} s")]
    Held { holder: String, waited_secs: u64 },
}

/// Whether a lock found in the engine may be taken over, and why. `status`
/// is the container's (`running`, `created`, `exited`…); `alive` says
/// whether a process of this host lives.
pub fn stale(
    holder: Option<&Holder>,
    status: &str,
    now: u64,
    this_host: &str,
    alive: impl Fn(u32) -> bool,
) -> Option<String> {
    let Some(holder) = holder else {
        return Some("its label does not say who holds it".into());
    };
    let age = now.saturating_sub(holder.since);
    match status {
        "running" | "restarting" => {}
        "created" if age < START_GRACE.as_secs() => return None,
        "created" => return Some("it was never started".into()),
        // The lease ran out, or the VM restarted.
        _ => return Some(format!("it is {status}: its lease ended")),
    }
    if !this_host.is_empty() && holder.host == this_host && !alive(holder.pid) {
        return Some(format!("pid {} is gone from this host", holder.pid));
    }
    // A clock that went back, or a container that outlived its sleep.
    if age > holder.lease_secs + START_GRACE.as_secs() {
        return Some(format!("its lease of {} s ended", holder.lease_secs));
    }
    None
}

/// The held lock; dropping it gives it up.
pub struct ModulesLock<'e, E: ?Sized + Engine> {
    engine: &'e E,
    /// What taking it over from a dead holder, or waiting, was.
    pub notes: Vec<String>,
}

impl<E: ?Sized + Engine> Drop for ModulesLock<'_, E> {
    fn drop(&mut self) {
        if let Err(e) = self.engine.remove_container(LOCK_NAME) {
            eprintln!("dmb: giving up the lock {LOCK_NAME}: {e}");
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Takes the lock for `command`, waiting up to `wait` for a live holder.
/// `image` runs the lease (any image with `sleep`: the probe image).
pub fn acquire<'e, E: ?Sized + Engine>(
    session: &Session<'e, E>,
    image: &str,
    command: &str,
    wait: Duration,
    progress: &mut dyn Progress,
) -> Result<ModulesLock<'e, E>, crate::Error> {
    let engine = session.engine();
    let me = Holder {
        host: crate::platform::host_name(),
        pid: std::process::id(),
        command: command.to_string(),
        since: now(),
        lease_secs: LEASE.as_secs(),
    };
    let started = std::time::Instant::now();
    let mut notes = Vec::new();
    let mut said_waiting = false;
    loop {
        if crate::interrupt::requested() {
            return Err(EngineError::Interrupted.into());
        }
        let spec = ContainerSpec {
            image: image.to_string(),
            name: LOCK_NAME.to_string(),
            labels: vec![
                (
                    LOCK_LABEL.to_string(),
                    serde_json::to_string(&Holder {
                        since: now(),
                        ..me.clone()
                    })
                    .expect("a holder serialises"),
                ),
                // Ctrl-C's cleanup removes it with the rest of the run.
                (SESSION_LABEL.to_string(), session.id().to_string()),
            ],
            cap_add: Vec::new(),
            restart_always: false,
            script: Some((scripts::LEASE, vec![LEASE.as_secs().to_string()])),
        };
        match engine.create(&spec) {
            Ok(()) => {
                let mut lock = ModulesLock { engine, notes };
                engine.start(LOCK_NAME)?;
                for left in engine.containers_with_label(UNDER_LOCK_LABEL)? {
                    engine.remove_container(&left.id)?;
                    lock.notes.push(format!(
                        "removed {} ({}), left by a run that was cut off",
                        left.name, left.status
                    ));
                }
                return Ok(lock);
            }
            Err(e) if e.is_name_conflict() => {}
            Err(e) => return Err(e.into()),
        }
        let found = engine
            .containers_with_label(LOCK_LABEL)?
            .into_iter()
            .find(|c| c.name == LOCK_NAME);
        // Given up between our create and our look: try again.
        let Some(found) = found else { continue };
        let holder: Option<Holder> = found
            .labels
            .get(LOCK_LABEL)
            .and_then(|v| serde_json::from_str(v).ok());
        let t = now();
        if let Some(why) = stale(
            holder.as_ref(),
            &found.status,
            t,
            &me.host,
            crate::platform::process_alive,
        ) {
            notes.push(format!(
                "took over the lock {LOCK_NAME}{}: {why}",
                holder
                    .as_ref()
                    .map(|h| format!(" of {}", h.describe(t)))
                    .unwrap_or_default()
            ));
            // Whoever removes it first wins the next create; a removal
            // that finds it gone is no error of ours.
            let _ = engine.remove_container(&found.id);
            continue;
        }
        let described = holder
            .as_ref()
            .map_or_else(|| "dmb run".to_string(), |h| h.describe(t));
        if started.elapsed() >= wait {
            return Err(LockError::Held {
                holder: described,
                waited_secs: started.elapsed().as_secs(),
            }
            .into());
        }
        if !said_waiting {
            progress.step(&format!(
                "waiting for {described} to finish changing the VM's modules"
            ));
            notes.push(format!("waited for {described}"));
            said_waiting = true;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, pid: u32, since: u64) -> Holder {
        Holder {
            host: host.into(),
            pid,
            command: "load".into(),
            since,
            lease_secs: 600,
        }
    }

    #[test]
    fn a_live_holder_keeps_it() {
        let h = holder("mac", 7, 1000);
        assert_eq!(stale(Some(&h), "running", 1010, "mac", |_| true), None);
        // Another host's pid is not ours to ask about.
        assert_eq!(stale(Some(&h), "running", 1010, "ci", |_| false), None);
        // Just created, not started yet.
        assert_eq!(stale(Some(&h), "created", 1010, "ci", |_| true), None);
    }

    #[test]
    fn a_dead_holder_gives_it_up() {
        let h = holder("mac", 7, 1000);
        let why =
            |status, now, host: &str, alive: bool| stale(Some(&h), status, now, host, |_| alive);
        assert!(why("running", 1010, "mac", false)
            .unwrap()
            .contains("pid 7 is gone"));
        assert!(why("exited", 1010, "ci", true)
            .unwrap()
            .contains("lease ended"));
        assert!(why("created", 1100, "ci", true)
            .unwrap()
            .contains("never started"));
        assert!(why("running", 1000 + 600 + 61, "ci", true)
            .unwrap()
            .contains("600 s"));
        assert!(stale(None, "running", 1010, "mac", |_| true).is_some());
    }

    #[test]
    fn the_holder_is_described_for_a_waiting_user() {
        assert_eq!(
            holder("mac", 7, 1000).describe(1012),
            "dmb load (pid 7 on mac, 12 s ago)"
        );
    }
}
