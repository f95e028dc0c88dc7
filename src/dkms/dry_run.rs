//! `dmb build --dry-run` of a DKMS package: what its dkms.conf says it
//! builds for the kernel. dkms.conf is shell: it is read in a container of
//! the build environment (removed at once), never on the host; when that
//! environment is not prepared, the plan says so instead of preparing it.

use super::plan::{self, DkmsPlan, Target};
use super::{evaluate, PackageTree};
use crate::engine::Engine;
use crate::kernel::headers_dir;
use crate::module_build::in_tree::TargetKernel;
use crate::module_build::plan::{target, BuildPlan, DkmsPackage, PlannedSource};
use crate::module_build::RefOptions;
use crate::progress::Progress;

/// Plans building the package in `tree`; creates nothing that outlives it.
pub fn plan<E: ?Sized + Engine>(
    engine: &E,
    tree: &PackageTree,
    refs: &RefOptions,
    with_deps: bool,
    module_ref: &str,
    check: bool,
    progress: &mut dyn Progress,
) -> Result<BuildPlan, crate::Error> {
    let session = crate::engine::Session::new(engine);
    let settled = target(engine, refs, progress)?;
    let package = if settled.buildenv_exists {
        let release = &settled.facts.release;
        let kernel = TargetKernel::of(refs.detected.as_ref(), release, &settled.facts);
        progress.step(&format!(
            "reading {}'s dkms.conf for {release}",
            tree.given().display()
        ));
        let kdir = headers_dir(release.as_str());
        let dkms_target = Target {
            release: release.as_str(),
            arch: plan::machine(&kernel.config),
            kernel_source_dir: &kdir,
            config: &kernel.config,
        };
        let conf = evaluate::read(&session, &settled.buildenv, tree, &dkms_target)?;
        let p = DkmsPlan::new(&conf, &dkms_target)?;
        Some(DkmsPackage {
            modules: p.modules.iter().map(|m| m.dest_name.clone()).collect(),
            name: p.name,
            version: p.version,
            make: p.make,
        })
    } else {
        None
    };
    let source = PlannedSource::Dkms {
        given: tree.given().display().to_string(),
        package,
        with_deps,
    };
    Ok(settled.plan(source, module_ref, check))
}
