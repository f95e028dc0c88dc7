//! `dmb build` of a DKMS package: the flow of [`super`], over the same
//! build environment, check and packaging as any module build.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::plan::{self, DkmsPlan, Target};
use super::{evaluate, DkmsError, PackageTree};
use crate::engine::{Engine, Session};
use crate::kernel::headers_dir;
use crate::module_build::in_tree::{self, closure, TargetKernel};
use crate::module_build::{
    buildenv, context, dockerfile, layout, make, package, BuildError, BuildOutcome, RefOptions,
    Refs,
};
use crate::progress::Progress;

/// Labels of a DKMS package's image, beside every module image's.
pub mod label {
    pub const PACKAGE: &str = "dmb.dkms.package";
    pub const VERSION: &str = "dmb.dkms.version";
}

/// What the user asked for.
#[derive(Debug)]
pub struct DkmsOptions {
    /// Shared: one tree builds for every kernel of a run.
    pub tree: std::sync::Arc<PackageTree>,
    pub refs: RefOptions,
    pub module_ref: String,
    pub output: Option<PathBuf>,
    pub network: bool,
    pub check: bool,
    /// Build in-tree what the modules need and the kernel lacks.
    pub with_deps: bool,
    /// make's `-j` (default: the build container's CPU count).
    pub jobs: Option<u32>,
}

/// Builds the package for the target kernel; on any outcome, removes what
/// it created.
pub fn run<E: ?Sized + Engine>(
    engine: &E,
    opts: &DkmsOptions,
    progress: &mut dyn Progress,
) -> Result<BuildOutcome, crate::Error> {
    let session = Session::new(engine);
    let detection = opts.refs.detected.clone();
    let refs = Refs::resolve_detected(&session, &opts.refs, detection.as_ref(), progress)?;
    let buildenv = buildenv::ensure(&session, &refs, progress)?;
    let release = buildenv::release(&session, &buildenv, &refs)?;
    let facts = buildenv::facts(&session, &buildenv, &refs.kernel_ref, &release)?;
    let target_kernel = TargetKernel::of(detection.as_ref(), &release, &facts);

    progress.step(&format!(
        "reading {}'s dkms.conf for {release}",
        opts.tree.given().display()
    ));
    let kdir = headers_dir(release.as_str());
    let target = Target {
        release: release.as_str(),
        arch: plan::machine(&target_kernel.config),
        kernel_source_dir: &kdir,
        config: &target_kernel.config,
    };
    let conf = evaluate::read(&session, &buildenv, &opts.tree, &target)?;
    let plan = DkmsPlan::new(&conf, &target)?;
    progress.step(&format!(
        "{} {}: {} ({})",
        plan.name,
        plan.version,
        plan.modules
            .iter()
            .map(|m| m.dest_name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        plan.make
    ));

    let work = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let build_context = work.path().join("build");
    let mut plan_files = plan.files();
    if let Some(jobs) = opts.jobs {
        plan_files.push(("jobs", format!("{jobs}\n")));
    }
    context::write_dkms(&build_context, opts.tree.dir(), &plan_files)?;
    let package_dir = format!("{}-{}", plan.name, plan.version);
    let mut files = make::run_build(
        &session,
        &build_context,
        |export| {
            dockerfile::dkms_build(
                &buildenv,
                session.id(),
                release.as_str(),
                &package_dir,
                export,
            )
        },
        opts.network,
        &format!("DKMS package {package_dir} for {release}"),
        work.path(),
        progress,
    )?;
    let mut modules = files.read_modules()?;

    // What the modules need that the kernel lacks.
    let missing: BTreeMap<String, closure::Missing> = closure::missing(&modules, &target_kernel)
        .into_iter()
        .filter(|(_, m)| !m.soft)
        .collect();
    let mut dependencies = Vec::new();
    let mut notes = Vec::new();
    let mut _in_tree_work = None;
    if !missing.is_empty() && opts.with_deps {
        let names: Vec<String> = missing.keys().cloned().collect();
        progress.step(&format!(
            "{} needs {}: building {} from the kernel's own source (--with-deps)",
            needed_by(&missing).join(", "),
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" }
        ));
        let ref_opts = RefOptions {
            kernel_ref: Some(refs.kernel_ref.clone()),
            build_ref: Some(refs.build_ref.clone()),
            ..opts.refs.clone()
        };
        let built = in_tree::build(&session, &ref_opts, &names, opts.jobs, progress)?;
        for m in &built.modules {
            if modules.iter().any(|own| own.name == m.name) {
                continue;
            }
            std::fs::copy(
                built.files.ko_dir.join(&m.file_name),
                files.ko_dir.join(&m.file_name),
            )
            .map_err(BuildError::io(format!("gathering {}", m.file_name)))?;
            files.ko.push(m.file_name.clone());
            dependencies.push(m.name.clone());
            modules.push(m.clone());
        }
        files.ko.sort();
        // One index over both: dmb writes modules.dep across the set.
        files.depmod_dir = None;
        _in_tree_work = Some(built.work);
        notes.push(format!(
            "built too, from the kernel's source, because the package needs them and the kernel lacks them: {}",
            dependencies.join(", ")
        ));
    } else if !missing.is_empty() && target_kernel.knows_vm {
        return Err(DkmsError::NeedsModules {
            modules: missing.keys().cloned().collect(),
            needed_by: needed_by(&missing),
        }
        .into());
    } else if !missing.is_empty() {
        notes.push(format!(
            "{} needs {}, not built into the kernel: `dmb load` takes them from the VM; if it lacks them, --with-deps builds them",
            needed_by(&missing).join(", "),
            missing.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }

    if opts.check {
        progress.step(&format!("checking that they will load into {release}"));
        let report = crate::check::check(&facts, &modules, &[]);
        if !report.all_fit() {
            return Err(BuildError::WillNotLoad { report }.into());
        }
    }
    let mut labels = vec![
        (label::PACKAGE.to_string(), plan.name.clone()),
        (label::VERSION.to_string(), plan.version.clone()),
    ];
    if !dependencies.is_empty() {
        labels.push((
            layout::label::DEPENDENCIES.to_string(),
            dependencies.join(","),
        ));
    }
    let delivered = package::deliver(
        &session,
        &refs,
        &release,
        &opts.module_ref,
        opts.output.as_deref(),
        &labels,
        &modules,
        &files,
        work.path(),
        progress,
    )?;
    Ok(BuildOutcome {
        refs,
        release,
        module_ref: delivered.module_ref,
        image_id: delivered.image_id,
        modules,
        output_files: delivered.output_files,
        checked: opts.check,
        notes,
    })
}

fn needed_by(missing: &BTreeMap<String, closure::Missing>) -> Vec<String> {
    let mut out: Vec<String> = missing.values().map(|m| m.needed_by.clone()).collect();
    out.sort();
    out.dedup();
    out
}
