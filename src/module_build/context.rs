//! The build context of a module build: a copy of the module directory at
//! `module/` and dmb's scripts at `dmb/`.

use std::path::Path;

use super::{sources, BuildError};
use crate::scripts;

/// How make is to run, as the build script reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MakeInputs {
    /// Arguments after `make -C /usr/src/module` (`W=1`, a target).
    pub args: Vec<String>,
    /// `-j`; `None`: the build container's CPU count.
    pub jobs: Option<u32>,
    /// Empty the kept build directory first.
    pub fresh: bool,
    /// What the `fresh` file holds when `fresh`: a text of its own for
    /// each run (see `make::build_modules`).
    pub fresh_marker: Option<String>,
}

/// The context of a module build, all under `dmb/` (copied to
/// `/usr/local/dmb`): the scripts, `module/` (what of the user's directory
/// the build needs, see [`sources`]), its manifest and how make runs.
pub fn write(
    context: &Path,
    module_dir: &Path,
    make: &MakeInputs,
) -> Result<sources::Sources, BuildError> {
    let dmb = context.join("dmb");
    let bin = dmb.join("bin");
    std::fs::create_dir_all(&bin).map_err(BuildError::io("creating the build context"))?;
    write_executable(&bin.join("uname"), scripts::UNAME)?;
    write_executable(&dmb.join("build.sh"), scripts::BUILD)?;
    write_executable(&dmb.join("sync_sources.sh"), scripts::SYNC_SOURCES)?;
    std::fs::write(dmb.join("serial.mk"), scripts::SERIAL_MK)
        .map_err(BuildError::io("writing serial.mk"))?;
    let sources = sources::copy(module_dir, &dmb.join("module"))?;
    let write = |name: &str, text: String| {
        std::fs::write(dmb.join(name), text).map_err(BuildError::io(format!("writing {name}")))
    };
    write(sources::MANIFEST, sources.manifest())?;
    if make.args.iter().any(|a| a.contains('\n')) {
        return Err(BuildError::BadMakeArgument);
    }
    write(
        "make-args",
        make.args.iter().map(|a| format!("{a}\n")).collect(),
    )?;
    if let Some(jobs) = make.jobs {
        write("jobs", format!("{jobs}\n"))?;
    }
    if make.fresh {
        write("fresh", make.fresh_marker.clone().unwrap_or_default())?;
    }
    Ok(sources)
}

/// A DKMS build's context: `package/` (a copy of the tree), dmb's scripts
/// and the plan's files at `dmb/dkms/`.
pub fn write_dkms(
    context: &Path,
    tree: &Path,
    plan_files: &[(&str, String)],
) -> Result<(), BuildError> {
    let bin = context.join("dmb/bin");
    let plan = context.join("dmb/dkms");
    for dir in [&bin, &plan] {
        std::fs::create_dir_all(dir).map_err(BuildError::io("creating the build context"))?;
    }
    write_executable(&bin.join("uname"), scripts::UNAME)?;
    write_executable(&context.join("dmb/dkms_build.sh"), scripts::DKMS_BUILD)?;
    for (name, text) in plan_files {
        std::fs::write(plan.join(name), text)
            .map_err(BuildError::io(format!("writing the plan's {name}")))?;
    }
    copy_tree(tree, &context.join("package"))
        .map_err(BuildError::io(format!("copying {}", tree.display())))
}

/// What reads a DKMS package's dkms.conf: `package/` and the script.
pub fn write_dkms_reading(dir: &Path, tree: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir).map_err(BuildError::io("creating a temporary directory"))?;
    write_executable(&dir.join("dkms_conf.sh"), scripts::DKMS_CONF)?;
    copy_tree(tree, &dir.join("package"))
        .map_err(BuildError::io(format!("copying {}", tree.display())))
}

fn write_executable(path: &Path, text: &str) -> Result<(), BuildError> {
    std::fs::write(path, text).map_err(BuildError::io(format!("writing {}", path.display())))?;
    crate::platform::set_executable(path)
        .map_err(BuildError::io(format!("writing {}", path.display())))
}

/// Copies a directory tree: files with their modes, symlinks as links.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            crate::platform::symlink(&std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
