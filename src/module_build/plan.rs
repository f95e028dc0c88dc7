//! `dmb build --dry-run`: what a build of a module directory would use and
//! make, read from the engine and the directory; nothing is created (no
//! build environment, no image, no container but a read-only probe).

use serde::Serialize;

use super::refs::{RefOptions, Refs};
use super::{buildenv, sources, BuildError};
use crate::engine::{Base, Session};
use crate::progress::Progress;

/// What a build would do.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    pub kernel_ref: String,
    pub build_ref: String,
    pub release: String,
    /// The build environment (`dmb-buildenv:KEY`) it would build in.
    pub buildenv: String,
    /// Whether that exists (else preparing it comes first, minutes).
    pub buildenv_exists: bool,
    /// What of the module directory would go into the build.
    pub files: usize,
    pub bytes: u64,
    /// Links left out: they point outside the module directory.
    pub left_out: Vec<String>,
    pub module_ref: String,
    pub check: bool,
}

/// Plans a build of `module_dir`; reads only.
pub fn plan<E: ?Sized + Base>(
    engine: &E,
    module_dir: &std::path::Path,
    refs: &RefOptions,
    module_ref: &str,
    check: bool,
    progress: &mut dyn Progress,
) -> Result<BuildPlan, crate::Error> {
    let session = Session::new(engine);
    let refs = Refs::resolve(&session, refs, progress)?;
    let tag = format!(
        "{}:{}",
        buildenv::BUILDENV_REPOSITORY,
        buildenv::buildenv_key(&refs.build_id, &refs.kernel_id)
    );
    let buildenv_exists = engine.image_id(&tag)?.is_some();
    progress.step(&format!("reading {}", refs.kernel_ref));
    let facts =
        crate::kernel::image::facts_from_image(&session, &refs.kernel_ref, refs.kver.as_deref())?;
    // Counted as a build copies it, into a directory removed at once.
    let scratch = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let read = sources::copy(module_dir, scratch.path())?;
    Ok(BuildPlan {
        kernel_ref: refs.kernel_ref,
        build_ref: refs.build_ref,
        release: facts.release.to_string(),
        buildenv: tag,
        buildenv_exists,
        files: read.files.len(),
        bytes: read.bytes,
        left_out: read
            .outside_links
            .iter()
            .map(|(path, target)| format!("{path} -> {target}"))
            .collect(),
        module_ref: module_ref.to_string(),
        check,
    })
}

impl BuildPlan {
    /// The plan in words, one step a line.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "would build {} file(s) ({} KiB) for {} (kernel image {}) with {}",
            self.files,
            self.bytes.div_ceil(1024),
            self.release,
            self.kernel_ref,
            self.build_ref
        )];
        lines.push(if self.buildenv_exists {
            format!("in build environment {} (present)", self.buildenv)
        } else {
            format!(
                "in build environment {}, which it would prepare first (not in the engine)",
                self.buildenv
            )
        });
        for l in &self.left_out {
            lines.push(format!(
                "leaving out {l}: it points outside the module directory"
            ));
        }
        if self.check {
            lines.push(format!(
                "check that the modules will load into {}",
                self.release
            ));
        }
        lines.push(format!("package them as image {}", self.module_ref));
        lines
    }
}
