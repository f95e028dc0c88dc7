//! What differs between the systems dmb runs on, kept to one small file so
//! that it can be reviewed by eye: file modes here; process groups and
//! signals live in `engine::process` behind the same `cfg`s.

use std::path::Path;

/// Whether a file's owner may execute it (always false where files have
/// no such bit).
#[cfg(unix)]
pub fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
pub fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Makes a file executable (mode 0755).
#[cfg(unix)]
pub fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// The engine's Linux containers see every file as executable when it
/// comes from a system without the bit; nothing to do.
#[cfg(not(unix))]
pub fn set_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
