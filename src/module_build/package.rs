//! The MODULE_REF image: built FROM scratch out of the built files, and the
//! image it replaces removed when it was dmb's and nothing else names it.

use std::path::{Path, PathBuf};

use super::make::BuiltFiles;
use super::{dockerfile, layout, BuildError, Refs};
use crate::engine::{BuildEngine, Session};
use crate::kernel::KernelRelease;
use crate::ko::Module;
use crate::progress::Progress;

/// What MODULE_REF and `--output` may hold to stand for the kernel
/// release: KMM's own variable, so that one template names the image of
/// every kernel (`repo:${KERNEL_FULL_VERSION}`) in dmb and in a KMM
/// `Module` alike.
pub const RELEASE_VARIABLE: &str = "${KERNEL_FULL_VERSION}";

/// `template` with the release in place of [`RELEASE_VARIABLE`].
pub fn for_release(template: &str, release: &KernelRelease) -> String {
    template.replace(RELEASE_VARIABLE, release.as_str())
}

/// What [`deliver`] made.
pub struct Delivered {
    /// MODULE_REF, its variable replaced.
    pub module_ref: String,
    pub image_id: String,
    pub output_files: Vec<PathBuf>,
}

/// Packages built modules as MODULE_REF (with `extra_labels` beside the
/// provenance) and writes them to `--output` (both may hold
/// [`RELEASE_VARIABLE`]).
#[allow(clippy::too_many_arguments)]
pub fn deliver<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    refs: &Refs,
    release: &KernelRelease,
    module_ref: &str,
    output: Option<&Path>,
    extra_labels: &[(String, String)],
    modules: &[Module],
    files: &BuiltFiles,
    work: &Path,
    progress: &mut dyn Progress,
) -> Result<Delivered, crate::Error> {
    let module_ref = for_release(module_ref, release);
    super::check_reference(&module_ref)?;
    let module_ref = module_ref.as_str();
    progress.step(&format!("packaging {} as {module_ref}", files.ko.join(" ")));
    let provenance = layout::Provenance {
        release: release.as_str(),
        kernel_ref: &refs.kernel_ref,
        kernel_id: &refs.kernel_id,
        build_ref: &refs.build_ref,
        build_id: &refs.build_id,
    };
    let image_id = package(
        session,
        module_ref,
        &provenance,
        extra_labels,
        modules,
        files,
        work,
    )?;
    let output_files = match output {
        Some(out) => match out.to_str() {
            Some(text) if text.contains(RELEASE_VARIABLE) => {
                files.copy_to(Path::new(&for_release(text, release)))?
            }
            _ => files.copy_to(out)?,
        },
        None => Vec::new(),
    };
    Ok(Delivered {
        module_ref: module_ref.to_string(),
        image_id,
        output_files,
    })
}

/// Makes `module_ref` (one layer, imported: no image build), labelled
/// with where it came from and `extra_labels`; drops the image it replaces
/// when nothing else uses it. Returns its image ID.
fn package<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    module_ref: &str,
    provenance: &layout::Provenance,
    extra_labels: &[(String, String)],
    modules: &[Module],
    files: &BuiltFiles,
    work: &Path,
) -> Result<String, crate::Error> {
    let engine = session.engine();
    let context = work.join("image");
    let mut labels = layout::labels(provenance, modules);
    labels.extend(extra_labels.iter().cloned());
    let layer = work.join("image.tar");
    layout::write_context(
        &context,
        provenance.release,
        &files.ko_dir,
        modules,
        &|m| files.place(&m.file_name),
        files.depmod_dir.as_deref(),
    )
    .and_then(|()| layout::write_layer(&context, &layer))
    .map_err(BuildError::io("writing the image's files"))?;
    let previous = engine.image_id(module_ref)?;
    let image_id = engine.import(
        &layer,
        module_ref,
        &dockerfile::module_image_labels(&labels)
            .into_iter()
            .collect::<Vec<_>>(),
    )?;
    if let Some(old) = previous.filter(|old| *old != image_id) {
        // The image this tag named before is now dangling; if it is one of
        // dmb's and nothing else names it, it goes.
        if let Ok((0, Some(_))) = engine.image_tags_and_label(&old, layout::label::KERNEL_RELEASE) {
            let _ = engine.remove_image(&old);
        }
    }
    // Another build into the same MODULE_REF at the same moment may have
    // tagged its image between our look and our import: the image our tag
    // took over is dangling now, and `previous` did not know it. A dmb
    // module image with no tag is nobody's (an import tags at once).
    // Removed one by one: the engine runs one prune at a time, and the
    // other build may be pruning too.
    for displaced in engine.dangling_images(layout::label::KERNEL_RELEASE, provenance.release)? {
        let _ = engine.remove_image(&displaced);
    }
    Ok(image_id)
}
