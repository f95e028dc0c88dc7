//! Everything that differs between the systems dmb runs on (Linux, macOS,
//! Windows), in one file small enough to review by eye: file modes and
//! links, child processes and how to stop them, where caches live. Each
//! function has a `cfg(unix)` and a `cfg(windows)` body; nothing else in
//! dmb names `std::os::unix`, `std::os::windows` or `nix`.
//!
//! The test suite runs on Linux only: the Windows bodies are reviewed, not
//! tested (README, "Where dmb runs").

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// Whether a file's owner may execute it (always false where files have
/// no such bit).
#[cfg(unix)]
pub fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o100 != 0
}

#[cfg(windows)]
pub fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Makes a file executable (mode 0755).
pub fn set_executable(path: &Path) -> std::io::Result<()> {
    set_mode(path, 0o755)
}

/// Sets a file's permission bits.
#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Windows files have no mode; the engine's Linux containers see every
/// file that comes from there as executable.
#[cfg(windows)]
pub fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Makes `at` a symbolic link to `target`.
#[cfg(unix)]
pub fn symlink(target: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

/// Windows makes symbolic links only with developer mode or an
/// administrator's rights; without them the link is left out (module
/// sources checked out on Windows hold none that make needs).
#[cfg(windows)]
pub fn symlink(target: &Path, at: &Path) -> std::io::Result<()> {
    match std::os::windows::fs::symlink_file(target, at) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

/// Puts a child in a process group of its own, so that a terminal's Ctrl-C
/// reaches dmb only and dmb decides how to stop the child and what to
/// clean up.
#[cfg(unix)]
pub fn own_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

#[cfg(windows)]
pub fn own_process_group(cmd: &mut Command) {
    use std::os::windows::process::CommandExt;
    // CREATE_NEW_PROCESS_GROUP: the console's Ctrl-C is not sent to it.
    cmd.creation_flags(0x0000_0200);
}

/// Asks a child started with [`own_process_group`] (and its group) to
/// stop, as Ctrl-C would: the docker CLI then cancels what it runs.
/// Returns false where that cannot be asked (Windows): the caller kills.
#[cfg(unix)]
pub fn interrupt(child: &Child) -> bool {
    signal_group(child, nix::sys::signal::Signal::SIGINT);
    true
}

#[cfg(windows)]
pub fn interrupt(_child: &Child) -> bool {
    false
}

/// Ends a child and its process group at once.
#[cfg(unix)]
pub fn kill(child: &mut Child) {
    signal_group(child, nix::sys::signal::Signal::SIGKILL);
}

#[cfg(windows)]
pub fn kill(child: &mut Child) {
    let _ = child.kill();
}

#[cfg(unix)]
fn signal_group(child: &Child, signal: nix::sys::signal::Signal) {
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let _ = nix::sys::signal::kill(group, signal);
}

/// Where per-user caches go when neither `DMB_CACHE_DIR` nor
/// `XDG_CACHE_HOME` says: `~/.cache` (on macOS too, as most command-line
/// tools do), `%LOCALAPPDATA%` on Windows.
#[cfg(unix)]
pub fn user_cache_home() -> Option<PathBuf> {
    non_empty_var("HOME").map(|h| h.join(".cache"))
}

#[cfg(windows)]
pub fn user_cache_home() -> Option<PathBuf> {
    non_empty_var("LOCALAPPDATA")
}

fn non_empty_var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// On SIGINT, SIGTERM or SIGHUP, stores 128 + its number in `status`
/// (the shell's convention for the exit status), and nothing else: the
/// run polls it and stops cleanly.
#[cfg(unix)]
pub fn on_stop_signals(
    status: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_usize(signal, status.clone(), 128 + signal as usize)?;
    }
    Ok(())
}

/// The console's Ctrl-C (and Ctrl-Break, close) as SIGINT's 130.
#[cfg(windows)]
pub fn on_stop_signals(
    status: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    let status = status.clone();
    ctrlc::set_handler(move || status.store(130, std::sync::atomic::Ordering::SeqCst))
        .map_err(std::io::Error::other)
}

/// Whether a child was ended by SIGINT, SIGTERM or SIGHUP.
#[cfg(unix)]
pub fn killed_by_stop_signal(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(status.signal(), Some(2 | 15 | 1))
}

/// A Windows console's Ctrl-C does not reach a child of a group of its own.
#[cfg(windows)]
pub fn killed_by_stop_signal(_status: &std::process::ExitStatus) -> bool {
    false
}

/// This machine's name, to tell a user whose run holds a lock.
#[cfg(unix)]
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|n| n.into_string().ok())
        .unwrap_or_default()
}

#[cfg(windows)]
pub fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

/// Whether a process of this machine is still there (a lock whose holder
/// is gone may be taken over at once). Where that cannot be asked, it is
/// assumed alive: the lock's lease ends it.
#[cfg(unix)]
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists, and is someone else's.
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

#[cfg(windows)]
pub fn process_alive(_pid: u32) -> bool {
    true
}
