//! `dmb build --in-tree NAME… --dry-run`: the names resolved against the
//! kernel's Kconfig and Makefiles, the options the build would turn on, and
//! which of its cached trees exist; nothing is configured or built (what
//! `olddefconfig` would settle, and so what else the modules need, is known
//! only once the tree is configured).

use super::{asked, running_kernel, tree, Asked, TargetKernel};
use crate::engine::{Engine, Session};
use crate::module_build::plan::{self, BuildPlan, InTreePlan, PlannedSource};
use crate::module_build::RefOptions;
use crate::progress::Progress;

/// Plans building the modules `names` name; reads only.
pub fn plan<E: ?Sized + Engine>(
    engine: &E,
    ref_opts: &RefOptions,
    names: &[String],
    module_ref: &str,
    check: bool,
    progress: &mut dyn Progress,
) -> Result<BuildPlan, crate::Error> {
    let session = Session::new(engine);
    let detection = running_kernel(&session, ref_opts, progress)?;
    let ref_opts = RefOptions {
        detected: detection.clone(),
        ..ref_opts.clone()
    };
    let target = plan::target(engine, &ref_opts, progress)?;
    let kernel = TargetKernel::of(detection.as_ref(), &target.facts.release, &target.facts);

    // What a build refuses before it unpacks anything, a plan refuses too.
    let Asked {
        request,
        plan: config,
        ..
    } = asked(&session, &target.refs.kernel_ref, &kernel, names, progress)?;

    let source_image =
        tree::source_tag(engine, &target.refs, &target.buildenv, &kernel.config)?.tag;
    // Keys are made of image ids: without the build environment (or the
    // source image) no tag names an image that could exist.
    let source_image_exists = target.buildenv_exists && engine.image_id(&source_image)?.is_some();
    let prepared_tree = if source_image_exists {
        Some(tree::prepared_tag(engine, &source_image, &kernel.release, &config)?.0)
    } else {
        None
    };
    let prepared_tree_exists = match &prepared_tree {
        Some(tag) => engine.image_id(tag)?.is_some(),
        None => false,
    };
    let planned = InTreePlan {
        modules: request.modules.iter().map(|m| m.name.clone()).collect(),
        options: request.symbols.clone(),
        enable: config.enable.keys().cloned().collect(),
        source_image,
        source_image_exists,
        prepared_tree,
        prepared_tree_exists,
        knows_vm: kernel.knows_vm,
    };
    Ok(target.plan(PlannedSource::InTree(planned), module_ref, check))
}
