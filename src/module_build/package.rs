//! The MODULE_REF image: built FROM scratch out of the built files, and the
//! image it replaces removed when it was dmb's and nothing else names it.

use std::path::Path;

use super::make::BuiltFiles;
use super::{dockerfile, layout, BuildError, LOG_LINES};
use crate::engine::{BuildEngine, BuildOutput, BuildRequest, Session};
use crate::ko::Module;
use crate::progress::Progress;

/// Builds `module_ref`; returns its image ID.
pub fn package<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    module_ref: &str,
    provenance: &layout::Provenance,
    modules: &[Module],
    files: &BuiltFiles,
    work: &Path,
    progress: &mut dyn Progress,
) -> Result<String, crate::Error> {
    let engine = session.engine();
    let context = work.join("image");
    let labels = layout::labels(provenance, modules);
    layout::write_context(
        &context,
        provenance.release,
        &files.ko_dir,
        modules,
        files.depmod_dir.as_deref(),
        &dockerfile::module_image(&labels),
    )
    .map_err(BuildError::io("writing the image context"))?;
    let previous = engine.image_id(module_ref)?;
    let done = engine.build(
        &BuildRequest {
            context: context.clone(),
            dockerfile: context.join("Dockerfile"),
            output: BuildOutput::Image(module_ref.to_string()),
            network: false,
        },
        &mut |line| progress.log(line),
    )?;
    if !done.success() {
        return Err(BuildError::BuildFailed {
            log: done.last_lines(LOG_LINES),
        }
        .into());
    }
    let image_id = engine.image_id(module_ref)?.unwrap_or_default();
    if let Some(old) = previous.filter(|old| *old != image_id) {
        // The image this tag named before is now dangling; if it is one of
        // dmb's and nothing else names it, it goes.
        if let Ok((0, Some(_))) = engine.image_tags_and_label(&old, layout::label::KERNEL_RELEASE) {
            let _ = engine.remove_image(&old);
        }
    }
    Ok(image_id)
}
