//! DKMS packages: `dmb build DIR` where DIR holds a `dkms.conf`, or a
//! `*-dkms` `.deb`, builds the package the way dkms builds it, for the
//! target kernel instead of the machine it runs on.
//!
//! The flow: the tree (a directory, or unpacked from a `.deb`: [`deb`]) →
//! its `dkms.conf` sourced by bash in a container of the build environment,
//! with dkms's variables set for the target ([`evaluate`], never on the
//! host: it is shell code) → [`conf::DkmsConf`] → what dkms would do for
//! that kernel, or its refusal ([`plan::DkmsPlan`], pure) → patches,
//! PRE_BUILD, make, POST_BUILD and the modules gathered by the build script
//! (`src/scripts/dkms_build.sh`) → the modules the kernel lacks built
//! in-tree with `--with-deps` → the check → MODULE_REF, each module at its
//! `DEST_MODULE_LOCATION` ([`build`]).

pub mod build;
pub mod conf;
pub mod deb;
pub mod dry_run;
pub mod error;
pub mod evaluate;
pub mod plan;

use std::path::{Path, PathBuf};

pub use error::DkmsError;

/// A DKMS source tree: a directory with a `dkms.conf`, maybe unpacked from
/// a `.deb` (then the temporary directory it lives in comes along).
#[derive(Debug)]
pub struct PackageTree {
    dir: PathBuf,
    /// What the user named: the directory, or the `.deb`.
    given: PathBuf,
    _unpacked: Option<tempfile::TempDir>,
}

impl PackageTree {
    /// A directory that holds `dkms.conf`.
    pub fn from_dir(dir: &Path) -> Result<Self, DkmsError> {
        if !dir.join("dkms.conf").is_file() {
            return Err(DkmsError::NoConf {
                path: dir.to_path_buf(),
            });
        }
        Ok(PackageTree {
            dir: dir.to_path_buf(),
            given: dir.to_path_buf(),
            _unpacked: None,
        })
    }

    /// The tree a `*-dkms` `.deb` installs to `/usr/src`.
    pub fn from_deb(deb_file: &Path) -> Result<Self, DkmsError> {
        let tmp = tempfile::tempdir().map_err(|e| DkmsError::BadPackage {
            path: deb_file.to_path_buf(),
            detail: format!("no temporary directory to unpack it in: {e}"),
        })?;
        let dir = deb::unpack(deb_file, tmp.path())?;
        Ok(PackageTree {
            dir,
            given: deb_file.to_path_buf(),
            _unpacked: Some(tmp),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn given(&self) -> &Path {
        &self.given
    }
}

/// Whether `dir` is a DKMS source tree (holds a `dkms.conf`).
pub fn has_conf(dir: &Path) -> bool {
    dir.join("dkms.conf").is_file()
}
