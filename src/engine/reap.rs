//! What runs that were cut off left in the engine.
//!
//! A run removes what it created when it ends, after a failure and after a
//! signal ([`super::Session`]). It cannot when it is killed (SIGKILL, a
//! crash) or when the engine goes away under it (a restart of dockerd or
//! of Docker Desktop): its containers and the steps of its legacy builds
//! stay. A session's ID names the host (a hash of its name) and the pid
//! that ran it, so the next run on the same host removes what belongs to
//! sessions whose process is gone. Sessions of other hosts are left alone:
//! whether their process lives cannot be told from here.

use std::collections::BTreeSet;

use super::{Engine, EngineError, SESSION_LABEL};

/// A session ID: this host's hash, the pid, and the nanoseconds of the
/// second it started, so that two runs of one pid never share one.
pub fn session_id(pid: u32, nanos: u32) -> String {
    format!("{:08x}{pid:x}-{nanos:08x}", host_hash())
}

/// The host and pid a session ID names, when it is one of this form.
pub fn owner(id: &str) -> Option<(u32, u32)> {
    let (head, _) = id.split_once('-')?;
    if head.len() <= 8 || !head.is_ascii() {
        return None;
    }
    let host = u32::from_str_radix(&head[..8], 16).ok()?;
    let pid = u32::from_str_radix(&head[8..], 16).ok()?;
    Some((host, pid))
}

/// FNV-1a of the host's name: a stable, short tag, not a secret.
fn host_hash() -> u32 {
    crate::platform::host_name()
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
}

/// Whether session `id` was this host's and its process is gone.
pub fn is_dead(id: &str, this_host: u32, alive: impl Fn(u32) -> bool) -> bool {
    matches!(owner(id), Some((host, pid)) if host == this_host && pid != std::process::id() && !alive(pid))
}

/// Removes the containers and dangling images of this host's sessions
/// whose process is gone; returns those sessions.
pub fn dead_sessions<E: ?Sized + Engine>(engine: &E) -> Result<Vec<String>, EngineError> {
    let me = host_hash();
    let alive = crate::platform::process_alive;
    let mut dead = BTreeSet::new();
    for c in engine.containers_with_label(SESSION_LABEL)? {
        if let Some(id) = c.labels.get(SESSION_LABEL) {
            if is_dead(id, me, alive) {
                dead.insert(id.clone());
            }
        }
    }
    for id in engine.dangling_label_values(SESSION_LABEL)? {
        if is_dead(&id, me, alive) {
            dead.insert(id);
        }
    }
    for id in &dead {
        engine.remove_labelled(SESSION_LABEL, id)?;
        engine.prune_dangling(SESSION_LABEL, id)?;
    }
    Ok(dead.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_host_and_pid() {
        let id = session_id(4242, 7);
        let (host, pid) = owner(&id).unwrap();
        assert_eq!((host, pid), (host_hash(), 4242));
        assert!(is_dead(&id, host, |_| false));
        assert!(!is_dead(&id, host, |_| true));
        // Another host's, or of a form dmb no longer makes: left alone.
        assert!(!is_dead(&id, host.wrapping_add(1), |_| false));
        assert!(!is_dead("10a4f3b2c1d0", host, |_| false));
        assert_eq!(owner("zz"), None);
        // This process's own sessions are never dead.
        assert!(!is_dead(&session_id(std::process::id(), 1), host, |_| {
            false
        }));
    }
}
