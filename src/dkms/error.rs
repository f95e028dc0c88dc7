//! What goes wrong with a DKMS package, with its exit codes and hints.

use std::path::PathBuf;

/// A dkms.conf that bash could not read, or that dkms would refuse.
pub const DKMS_CONF: i32 = 90;
/// A `BUILD_EXCLUSIVE_*` directive excludes the kernel.
pub const DKMS_EXCLUDED: i32 = 91;
/// make succeeded but a `BUILT_MODULE_NAME` is not where dkms.conf says.
pub const DKMS_NOT_BUILT: i32 = 92;
/// A `PATCH` is missing or does not apply.
pub const DKMS_PATCH: i32 = 93;
/// The package itself: not a DKMS tree, an unreadable `.deb`.
pub const DKMS_INPUT: i32 = 94;
/// The built modules need modules the running kernel lacks.
pub const DKMS_NEEDS_MODULES: i32 = 95;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkmsError {
    #[error("{} has no dkms.conf: it is not a DKMS source tree", path.display())]
    NoConf { path: PathBuf },
    #[error("{}: {detail}", path.display())]
    BadPackage { path: PathBuf, detail: String },
    #[error("the builder image has no bash, which reading a dkms.conf needs")]
    NoBash,
    #[error("dkms.conf could not be read: {}", if reason == "syntax" { "bash finds a syntax error in it" } else { "it ended the shell that read it" })]
    ConfFailed { reason: String, messages: String },
    #[error("dkms.conf: Error! {}", problems.join(" "))]
    Invalid { problems: Vec<String> },
    #[error("the dkms.conf for module {package} includes a BUILD_EXCLUSIVE directive which does not match this kernel/arch/config ({release})")]
    Excluded {
        package: String,
        release: String,
        conditions: Vec<String>,
    },
    #[error("make succeeded but did not build {}", missing.iter().map(|(n, l)| format!("{n}.ko (BUILT_MODULE_LOCATION {l})")).collect::<Vec<_>>().join(", "))]
    NotBuilt { missing: Vec<(String, String)> },
    #[error("patch {patch} {}", if *missing { "as specified in dkms.conf cannot be found in patches/" } else { "does not apply" })]
    Patch { patch: String, missing: bool },
    #[error("{} needs {}, which the running kernel lacks", needed_by.join(", "), modules.join(", "))]
    NeedsModules {
        modules: Vec<String>,
        needed_by: Vec<String>,
    },
}

impl DkmsError {
    pub fn code(&self) -> i32 {
        match self {
            DkmsError::NoConf { .. } | DkmsError::BadPackage { .. } => DKMS_INPUT,
            DkmsError::NoBash => crate::error::TOOLCHAIN,
            DkmsError::ConfFailed { .. } | DkmsError::Invalid { .. } => DKMS_CONF,
            DkmsError::Excluded { .. } => DKMS_EXCLUDED,
            DkmsError::NotBuilt { .. } => DKMS_NOT_BUILT,
            DkmsError::Patch { .. } => DKMS_PATCH,
            DkmsError::NeedsModules { .. } => DKMS_NEEDS_MODULES,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            DkmsError::NoConf { .. } => "give the directory that holds dkms.conf (a *-dkms package installs it to /usr/src/<name>-<version>/), or --no-dkms to run its Makefile's default target".into(),
            DkmsError::BadPackage { .. } => "give a *-dkms .deb (`apt-get download <name>-dkms`) or the directory it installs to /usr/src".into(),
            DkmsError::NoBash => "use a BUILD_REF with bash (every Debian, Ubuntu and Fedora image has it; on Alpine, add it: apk add bash)".into(),
            DkmsError::ConfFailed { .. } | DkmsError::Invalid { .. } => "dkms itself would refuse this dkms.conf; fix it, or build with --no-dkms".into(),
            DkmsError::Excluded { .. } => "the package says it does not build for this kernel; a newer version of the package may".into(),
            DkmsError::NotBuilt { .. } => "BUILT_MODULE_NAME and BUILT_MODULE_LOCATION must name the .ko files make leaves (see the build log above)".into(),
            DkmsError::Patch { .. } => "the package's patches do not fit its sources; PATCH_MATCH chooses patches by kernel release".into(),
            DkmsError::NeedsModules { .. } => "dmb build --with-deps builds them from the kernel's own source into the same image".into(),
        })
    }

    pub fn details(&self) -> Vec<String> {
        match self {
            DkmsError::ConfFailed { messages, .. } => messages
                .lines()
                .take(20)
                .map(|l| format!("  {l}"))
                .collect(),
            DkmsError::Excluded { conditions, .. } => {
                conditions.iter().map(|c| format!("  {c}")).collect()
            }
            _ => Vec::new(),
        }
    }
}
