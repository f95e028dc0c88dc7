//! The build context of a module build: a copy of the module directory at
//! `module/` and dmb's scripts at `dmb/`.

use std::path::Path;

use super::BuildError;
use crate::scripts;

/// `module/` (a copy of the user's directory) and dmb's own scripts.
pub fn write(context: &Path, module_dir: &Path) -> Result<(), BuildError> {
    let bin = context.join("dmb/bin");
    std::fs::create_dir_all(&bin).map_err(BuildError::io("creating the build context"))?;
    write_executable(&bin.join("uname"), scripts::UNAME)?;
    write_executable(&context.join("dmb/build.sh"), scripts::BUILD)?;
    copy_tree(module_dir, &context.join("module"))
        .map_err(BuildError::io(format!("copying {}", module_dir.display())))
}

fn write_executable(path: &Path, text: &str) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(BuildError::io(format!("writing {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
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
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
