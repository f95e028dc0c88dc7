//! make in a container: the per-build image runs the build script over a
//! copy of the module directory, and the `.ko` files come back to the host
//! (exported by BuildKit, or copied out of a tagged image).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::context::{self, MakeInputs};
use super::incremental::{BuildCache, VOLUME_LABEL};
use super::log::{error_lines, BuildMarkers};
use super::{dockerfile, BuildError, BuildOptions, MakeIn, LOG_LINES};
use crate::engine::{
    BuildEngine, BuildOutput, BuildRequest, ContainerBuild, Finished, Session, SESSION_LABEL,
};
use crate::kernel::{headers_dir, KernelRelease};
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

/// More records than a build of thousands of modules says.
const MAX_RECORDS: usize = 100_000;

/// Runs make in a container and brings the `.ko` files to the host. The
/// build directory is kept between builds ([`BuildCache`]): as a volume of
/// a container of the engine that runs the build script, or, when the
/// build is to run in a BuildKit builder ([`MakeIn::Builder`]), as a cache
/// mount of that build.
pub fn build_modules<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    opts: &BuildOptions,
    buildenv: &str,
    release: &KernelRelease,
    work: &Path,
    progress: &mut dyn Progress,
) -> Result<BuiltFiles, crate::Error> {
    let engine = session.engine();
    let context = work.join("build");
    let make = MakeInputs {
        // A fresh build under BuildKit must not be answered from the
        // build's own cache: a fresh marker that differs in every run
        // makes the step run.
        fresh_marker: opts.make.fresh.then(|| session.id().to_string()),
        ..opts.make.clone()
    };
    let sources = context::write(&context, opts.module_dir.path(), &make)?;
    for (path, target) in &sources.outside_links {
        progress.warn(&format!(
            "{path} (a link to {target}) is left out of the build: it points outside the module directory"
        ));
    }
    if sources.bytes > super::sources::LARGE_CONTEXT {
        progress.warn(&format!(
            "the module directory puts {} MB into every build's context; name what make does not need in .dmbignore",
            sources.bytes / 1_000_000
        ));
    }
    let cache = BuildCache::new(
        buildenv,
        release.as_str(),
        &BuildCache::module_identity(opts.module_dir.path()),
        &opts.make.args,
        opts.make.fresh,
    );
    progress.step(&format!(
        "building {} for {release} with {} ({} files, {} KiB; build directory {})",
        opts.module_dir.path().display(),
        engine.builder().describe(),
        sources.files.len(),
        sources.bytes.div_ceil(1024),
        cache.name(),
    ));
    let out = work.join("out");
    let mut records = Vec::new();
    let mut on_line = |line: &str| {
        if Record::find(line).is_some() {
            // A Makefile that prints records by the million gets no more
            // memory for them than a real build needs.
            if records.len() < MAX_RECORDS {
                records.push(line.to_string());
            }
        } else {
            progress.log(line);
        }
    };
    let in_builder = opts.make_in == MakeIn::Builder && engine.builder().is_buildkit();
    let output = if in_builder {
        let dockerfile = context.join("Dockerfile");
        std::fs::write(
            &dockerfile,
            dockerfile::build(buildenv, session.id(), release.as_str(), &cache.name()),
        )
        .map_err(BuildError::io("writing the Dockerfile"))?;
        let output = BuildOutput::Directory(out.clone());
        let done = engine.build(
            &BuildRequest {
                context: context.clone(),
                dockerfile,
                output: output.clone(),
                network: opts.network,
            },
            &mut on_line,
        )?;
        (done, output)
    } else {
        let done = engine.build_in_container(
            &ContainerBuild {
                image: buildenv.to_string(),
                name: session.name("make"),
                labels: vec![(SESSION_LABEL.to_string(), session.id().to_string())],
                env: vec![
                    ("KVER".into(), release.as_str().into()),
                    ("KDIR".into(), headers_dir(release.as_str())),
                ],
                volume: cache.name(),
                volume_dir: dockerfile::MODULE_DIR_IN_CONTAINER.into(),
                volume_labels: vec![(VOLUME_LABEL.into(), "module".into())],
                input: context.join("dmb"),
                input_dir: "/usr/local/dmb".into(),
                script: "/usr/local/dmb/build.sh".into(),
                output_dir: "/dmb-out".into(),
                output_subdirs: vec!["ko".into(), "depmod".into()],
                output: out.clone(),
            },
            &mut on_line,
        )?;
        (done, BuildOutput::Directory(out.clone()))
    };
    let (done, output) = output;
    let markers = outcome(&done, &records)?;
    collect(session, &output, &out, markers.depmod)
}

/// Runs a module build whose context is written (`dockerfile` renders its
/// Dockerfile, with the export stage or not), and brings the `.ko` files
/// to `work/out`.
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
    let markers = outcome(&done, &records)?;
    collect(session, &output, &out, markers.depmod)
}

/// What a finished build script said: its records, or the error they (and
/// the log) tell when it failed. They tell a failing make from one that
/// built nothing.
fn outcome(done: &Finished, records: &[String]) -> Result<BuildMarkers, crate::Error> {
    let markers = BuildMarkers::from_log(records.iter().map(String::as_str));
    if done.success() {
        return Ok(markers);
    }
    if !markers.missing.is_empty() {
        return Err(crate::dkms::DkmsError::NotBuilt {
            missing: markers.missing,
        }
        .into());
    }
    if let Some((patch, missing)) = markers.patch {
        return Err(crate::dkms::DkmsError::Patch { patch, missing }.into());
    }
    Err(if let Some(code) = markers.make_failed {
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
    .into())
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
