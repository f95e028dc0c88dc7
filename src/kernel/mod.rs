//! Kernels: their release ([`release`]), configuration ([`config`]),
//! exports ([`symvers`]) and what a module must agree with ([`facts`]);
//! kernel images in the LinuxKit layout ([`image`]) and the header trees
//! they carry.
//!
//! A LinuxKit kernel image holds `/kernel`, `/System.map`, `/kernel.tar`
//! (`lib/modules/<kver>/`) and `/kernel-dev.tar` (`usr/src/linux-headers-<kver>/`
//! plus whatever that tree links into). dmb builds against the headers and
//! needs nothing else from the image.

pub mod config;
pub mod facts;
pub mod image;
pub mod kbuild;
pub mod kconfig;
pub mod release;
pub mod source;
pub mod symvers;

use std::collections::BTreeSet;

use crate::scripts;
pub use config::KernelConfig;
pub use facts::{FactsError, KernelFacts};
pub use release::{BadRelease, KernelRelease};

/// The headers archive; the only part of the image a build reads.
pub const KERNEL_DEV_TAR: &str = "/kernel-dev.tar";
/// The modules archive; checked for presence so a wrong image is caught early.
pub const KERNEL_TAR: &str = "/kernel.tar";
/// Files of the layout that must be there, in the order they are checked.
pub const REQUIRED_FILES: [&str; 2] = [KERNEL_DEV_TAR, KERNEL_TAR];
/// Files a header tree needs for an out-of-tree build.
pub const TREE_FILES: [&str; 3] = [".config", "Makefile", "Module.symvers"];

/// Where a release's headers live, in the image and in the build container.
pub fn headers_dir(release: &str) -> String {
    format!("/usr/src/linux-headers-{release}")
}

/// One `usr/src/linux-headers-*` directory of a kernel image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTree {
    pub release: String,
    pub present: BTreeSet<String>,
}

impl HeaderTree {
    /// A tree with a `.config` is a kernel's; others (Debian's `-common`)
    /// are parts that such a tree links into.
    pub fn is_kernel_tree(&self) -> bool {
        self.present.contains(".config")
    }

    pub fn missing(&self) -> Vec<String> {
        TREE_FILES
            .iter()
            .filter(|f| !self.present.contains(**f))
            .map(|f| f.to_string())
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelImageError {
    #[error("no kernel image given")]
    NotGiven,
    #[error("kernel image `{reference}` is not in the engine")]
    NotFound { reference: String },
    #[error("kernel image `{reference}` is not in the LinuxKit layout: it has no {file}")]
    MissingFile { reference: String, file: String },
    #[error("kernel image `{reference}`: {tar} holds no usr/src/linux-headers-<release>/ with a .config")]
    NoHeaderTree {
        reference: String,
        tar: &'static str,
    },
    #[error("kernel image `{reference}`: usr/src/linux-headers-{release}/ in {tar} lacks {}", missing.join(", "))]
    IncompleteTree {
        reference: String,
        release: String,
        tar: &'static str,
        missing: Vec<String>,
    },
    #[error("kernel release {wanted} is not in kernel image `{reference}` (it has: {})", available.join(", "))]
    ReleaseNotInImage {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("kernel image `{reference}` holds more than one kernel release ({}); choose one", available.join(", "))]
    AmbiguousRelease {
        reference: String,
        available: Vec<String>,
    },
    #[error(transparent)]
    BadRelease(#[from] BadRelease),
    #[error("kernel image `{reference}`, release {release}: {source}")]
    Facts {
        reference: String,
        release: String,
        #[source]
        source: FactsError,
    },
}

/// Reads the output of [`scripts::TREE_LISTING`].
pub fn parse_tree_listing(text: &str) -> Vec<HeaderTree> {
    let mut trees: Vec<HeaderTree> = Vec::new();
    for r in scripts::records(text) {
        match (r.verb, r.arg(0), r.arg(1)) {
            ("tree", release, "") if !release.is_empty() => trees.push(HeaderTree {
                release: release.to_string(),
                present: BTreeSet::new(),
            }),
            ("has", release, file) if !file.is_empty() => {
                if let Some(t) = trees.iter_mut().find(|t| t.release == release) {
                    t.present.insert(file.to_string());
                }
            }
            _ => {}
        }
    }
    trees
}

/// Picks the header tree to build against: `wanted` (from `--kver`), or the
/// only kernel tree of the image; returns its release.
pub fn select_tree(
    reference: &str,
    trees: &[HeaderTree],
    wanted: Option<&str>,
) -> Result<KernelRelease, KernelImageError> {
    let kernels: Vec<&HeaderTree> = trees.iter().filter(|t| t.is_kernel_tree()).collect();
    let available = || kernels.iter().map(|t| t.release.clone()).collect();
    let chosen = match wanted {
        Some(w) => trees
            .iter()
            .find(|t| t.release == w && t.is_kernel_tree())
            .ok_or_else(|| KernelImageError::ReleaseNotInImage {
                reference: reference.to_string(),
                wanted: w.to_string(),
                available: available(),
            })?,
        None => match kernels.as_slice() {
            [] => {
                return Err(KernelImageError::NoHeaderTree {
                    reference: reference.to_string(),
                    tar: KERNEL_DEV_TAR,
                })
            }
            [only] => only,
            _ => {
                return Err(KernelImageError::AmbiguousRelease {
                    reference: reference.to_string(),
                    available: available(),
                })
            }
        },
    };
    let release = KernelRelease::parse(&chosen.release)?;
    let missing = chosen.missing();
    if !missing.is_empty() {
        return Err(KernelImageError::IncompleteTree {
            reference: reference.to_string(),
            release: chosen.release.clone(),
            tar: KERNEL_DEV_TAR,
            missing,
        });
    }
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "@@dmb:tree 6.1.0-56-amd64\n@@dmb:has 6.1.0-56-amd64 .config\n@@dmb:has 6.1.0-56-amd64 Makefile\n@@dmb:has 6.1.0-56-amd64 Module.symvers\n@@dmb:tree 6.1.0-56-common\n@@dmb:has 6.1.0-56-common Makefile\n";

    #[test]
    fn debian_common_tree_is_not_a_kernel() {
        let trees = parse_tree_listing(DEBIAN);
        assert_eq!(trees.len(), 2);
        let t = select_tree("k", &trees, None).unwrap();
        assert_eq!(t, "6.1.0-56-amd64");
    }

    #[test]
    fn wanted_release_must_be_a_kernel_tree() {
        let trees = parse_tree_listing(DEBIAN);
        let err = select_tree("k", &trees, Some("6.1.0-56-common")).unwrap_err();
        assert_eq!(
            err,
            KernelImageError::ReleaseNotInImage {
                reference: "k".into(),
                wanted: "6.1.0-56-common".into(),
                available: vec!["6.1.0-56-amd64".into()],
            }
        );
        assert!(err.to_string().contains("it has: 6.1.0-56-amd64"));
    }

    #[test]
    fn two_kernels_need_a_choice() {
        let text = "@@dmb:tree 5.10.104-linuxkit\n@@dmb:has 5.10.104-linuxkit .config\n@@dmb:tree 5.15.49-linuxkit\n@@dmb:has 5.15.49-linuxkit .config\n";
        let trees = parse_tree_listing(text);
        assert!(matches!(
            select_tree("k", &trees, None),
            Err(KernelImageError::AmbiguousRelease { .. })
        ));
        let err = select_tree("k", &trees, Some("5.15.49-linuxkit")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel image `k`: usr/src/linux-headers-5.15.49-linuxkit/ in /kernel-dev.tar lacks Makefile, Module.symvers"
        );
    }

    #[test]
    fn no_tree_at_all() {
        assert!(matches!(
            select_tree("k", &[], None),
            Err(KernelImageError::NoHeaderTree { .. })
        ));
    }

    #[test]
    fn releases_are_checked_for_odd_characters() {
        let odd = parse_tree_listing("@@dmb:tree 6.1$x\n@@dmb:has 6.1$x .config\n@@dmb:has 6.1$x Makefile\n@@dmb:has 6.1$x Module.symvers\n");
        assert!(matches!(
            select_tree("k", &odd, None),
            Err(KernelImageError::BadRelease(_))
        ));
    }
}
