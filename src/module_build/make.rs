//! make in a container: the per-build image runs the build script over a
//! copy of the module directory, and the `.ko` files come back to the host
//! (exported by BuildKit, or copied out of a tagged image).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::log::{error_lines, BuildMarkers};
use super::{context, dockerfile, BuildError, BuildOptions, LOG_LINES};
use crate::engine::{BuildEngine, BuildOutput, BuildRequest, Session};
use crate::kernel::KernelRelease;
use crate::ko::Module;
use crate::progress::Progress;
use crate::scripts::Record;

/// Where the built files landed on the host.
pub struct BuiltFiles {
    pub ko_dir: PathBuf,
    /// File names in `ko_dir`, sorted.
    pub ko: Vec<String>,
    /// depmod's index files, when the builder had depmod.
    pub depmod_dir: Option<PathBuf>,
    /// Where a module goes in the kmod tree, relative to
    /// `lib/modules/<kver>/`, when not `extra/<file>` (a DKMS package's
    /// `DEST_MODULE_LOCATION`), by file name.
    pub places: BTreeMap<String, String>,
}

impl BuiltFiles {
    /// Where `file_name` goes in the kmod tree.
    pub fn place(&self, file_name: &str) -> String {
        self.places
            .get(file_name)
            .cloned()
            .unwrap_or_else(|| super::layout::default_place(file_name))
    }

    pub fn read_modules(&self) -> Result<Vec<Module>, BuildError> {
        self.ko
            .iter()
            .map(|name| {
                let bytes = std::fs::read(self.ko_dir.join(name))
                    .map_err(BuildError::io(format!("reading {name}")))?;
                Module::read(name, bytes).map_err(|source| BuildError::BadModule {
                    file: name.clone(),
                    source,
                })
            })
            .collect()
    }

    /// Copies the `.ko` files to `out`; the paths written.
    pub fn copy_to(&self, out: &Path) -> Result<Vec<PathBuf>, BuildError> {
        std::fs::create_dir_all(out)
            .map_err(BuildError::io(format!("creating {}", out.display())))?;
        self.ko
            .iter()
            .map(|name| {
                let dest = out.join(name);
                std::fs::copy(self.ko_dir.join(name), &dest)
                    .map_err(BuildError::io(format!("writing {}", dest.display())))?;
                Ok(dest)
            })
            .collect()
    }
}

/// Runs make in a container and brings the `.ko` files to the host.
pub fn build_modules<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    opts: &BuildOptions,
    buildenv: &str,
    release: &KernelRelease,
    work: &Path,
    progress: &mut dyn Progress,
) -> Result<BuiltFiles, crate::Error> {
    let context = work.join("build");
    context::write(&context, opts.module_dir.path())?;
    let what = format!("{} for {release}", opts.module_dir.path().display());
    run_build(
        session,
        &context,
        |export| dockerfile::build(buildenv, session.id(), release.as_str(), export),
        opts.network,
        &what,
        work,
        progress,
    )
}

/// Runs a module build whose context is written (`dockerfile` renders its
/// Dockerfile, with the export stage or not): the build script's records
/// tell a failing make from one that built nothing, and the `.ko` files
/// come to `work/out`.
pub fn run_build<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    context: &Path,
    dockerfile: impl FnOnce(bool) -> String,
    network: bool,
    what: &str,
    work: &Path,
    progress: &mut dyn Progress,
) -> Result<BuiltFiles, crate::Error> {
    let engine = session.engine();
    let export = engine.builder().is_buildkit();
    let dockerfile_path = context.join("Dockerfile");
    std::fs::write(&dockerfile_path, dockerfile(export))
        .map_err(BuildError::io("writing the Dockerfile"))?;
    let out = work.join("out");
    let output = if export {
        BuildOutput::Directory(out.clone())
    } else {
        let tag = format!("dmb-build:{}", session.id());
        session.track_image(&tag);
        BuildOutput::Image(tag)
    };
    progress.step(&format!(
        "building {what} with {}",
        engine.builder().describe()
    ));
    let mut records = Vec::new();
    let done = engine.build(
        &BuildRequest {
            context: context.to_path_buf(),
            dockerfile: dockerfile_path,
            output: output.clone(),
            network,
        },
        &mut |line| {
            if Record::find(line).is_some() {
                records.push(line.to_string());
            } else {
                progress.log(line);
            }
        },
    )?;
    let markers = BuildMarkers::from_log(records.iter().map(String::as_str));
    if !done.success() {
        if !markers.missing.is_empty() {
            return Err(crate::dkms::DkmsError::NotBuilt {
                missing: markers.missing,
            }
            .into());
        }
        if let Some((patch, missing)) = markers.patch {
            return Err(crate::dkms::DkmsError::Patch { patch, missing }.into());
        }
        return Err(if let Some(code) = markers.make_failed {
            BuildError::MakeFailed {
                code,
                errors: error_lines(&done.output_tail),
            }
        } else if markers.no_ko {
            BuildError::NoModules
        } else if let Some(name) = markers.duplicate {
            BuildError::DuplicateModule { name }
        } else {
            BuildError::BuildFailed {
                log: done.last_lines(LOG_LINES),
            }
        }
        .into());
    }
    collect(session, &output, &out, markers.depmod)
}

/// The `.ko` files (and depmod's index) of a finished build, on the host
/// in `out/ko` (`out/depmod`): exported there by BuildKit already, or
/// copied out of the tagged image, which then goes.
pub fn collect<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    output: &BuildOutput,
    out: &Path,
    depmod: bool,
) -> Result<BuiltFiles, crate::Error> {
    let (ko_dir, depmod_dir) = (out.join("ko"), out.join("depmod"));
    if let BuildOutput::Image(tag) = output {
        for dir in [&ko_dir, &depmod_dir] {
            std::fs::create_dir_all(dir)
                .map_err(BuildError::io("creating a temporary directory"))?;
        }
        let image = session.scratch(tag)?;
        image.copy_files_out("/dmb-out/ko", &ko_dir)?;
        image.copy_files_out("/dmb-out/depmod", &depmod_dir)?;
        drop(image);
        session.engine().remove_image(tag)?;
        session.forget_image(tag);
    }
    let mut ko: Vec<String> = std::fs::read_dir(&ko_dir)
        .map_err(BuildError::io("reading the built modules"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ko"))
        .collect();
    ko.sort();
    if ko.is_empty() {
        return Err(BuildError::NoModules.into());
    }
    let places = read_places(&ko_dir.join(PLACES_FILE))?;
    Ok(BuiltFiles {
        ko_dir,
        ko,
        depmod_dir: depmod.then_some(depmod_dir),
        places,
    })
}

/// The file beside the built modules that says where each goes in the kmod
/// tree (`FILE<TAB>PLACE` lines), when a build script wrote one.
pub const PLACES_FILE: &str = "places";

fn read_places(path: &Path) -> Result<BTreeMap<String, String>, BuildError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(BuildError::io("reading where the modules go")(e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(file, place)| is_safe_place(file, place))
        .map(|(f, p)| (f.to_string(), p.to_string()))
        .collect())
}

/// A place must stay inside the kmod tree and end in the file itself.
fn is_safe_place(file: &str, place: &str) -> bool {
    !place.starts_with('/')
        && place
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && place.rsplit('/').next() == Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_stay_inside_the_kmod_tree() {
        assert!(is_safe_place("a.ko", "updates/dkms/a.ko"));
        assert!(is_safe_place("a.ko", "a.ko"));
        assert!(!is_safe_place("a.ko", "/etc/a.ko"));
        assert!(!is_safe_place("a.ko", "extra/../../a.ko"));
        assert!(!is_safe_place("a.ko", "extra//a.ko"));
        assert!(!is_safe_place("a.ko", "extra/b.ko"));
    }

    #[test]
    fn places_are_read_from_the_build_scripts_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(PLACES_FILE);
        assert!(read_places(&file).unwrap().is_empty());
        std::fs::write(
            &file,
            "a.ko\tkernel/drivers/md/a.ko\nb.ko\t../b.ko\nnot a line\n",
        )
        .unwrap();
        let places = read_places(&file).unwrap();
        assert_eq!(places.len(), 1);
        assert_eq!(places["a.ko"], "kernel/drivers/md/a.ko");
    }
}
