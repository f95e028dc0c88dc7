//! `dkms.conf` is a bash fragment: it is sourced in a container of the
//! build environment (with the target's header tree and `.config`, which
//! some packages source), never on the host.

use super::conf::{DkmsConf, Unreadable};
use super::plan::Target;
use super::{DkmsError, PackageTree};
use crate::engine::{Engine, Session};
use crate::module_build::{context, BuildError};
use crate::scripts;

/// Reads the package's `dkms.conf` for `target`.
pub fn read<E: ?Sized + Engine>(
    session: &Session<E>,
    buildenv: &str,
    tree: &PackageTree,
    target: &Target,
) -> Result<DkmsConf, crate::Error> {
    let engine = session.engine();
    let stage = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    context::write_dkms_reading(stage.path(), tree.dir())?;
    let mut spec = session.container(buildenv, "dkms-conf", scripts::DKMS_READ);
    spec.script = Some((
        scripts::DKMS_READ,
        vec![
            target.release.to_string(),
            target.kernel_source_dir.to_string(),
            target.arch.to_string(),
        ],
    ));
    engine.create(&spec)?;
    engine.copy_into(&spec.name, stage.path(), "/dmb")?;
    let done = engine.start_attached(&spec.name)?;
    let _ = engine.remove_container(&spec.name);
    match DkmsConf::parse(&done.stdout) {
        Ok(conf) if done.success() => Ok(conf),
        Ok(_) => Err(DkmsError::ConfFailed {
            reason: "exited".into(),
            messages: done
                .output_tail
                .iter()
                .filter(|l| scripts::Record::parse(l).is_none())
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
        }
        .into()),
        Err(Unreadable::NoBash) => Err(DkmsError::NoBash.into()),
        Err(Unreadable::Failed { reason, messages }) => {
            Err(DkmsError::ConfFailed { reason, messages }.into())
        }
    }
}
