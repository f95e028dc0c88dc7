//! `dmb build --dry-run`: what a build would use and make, read from the
//! engine and the source; nothing is created (no build environment, no
//! image, no container but read-only probes, each removed at once).
//!
//! Every build settles the same things first ([`target`]); what it builds
//! from is planned by its own module: a module directory here, a DKMS
//! package in `dkms::dry_run`, in-tree modules in `in_tree::plan`.

use serde::Serialize;

use super::refs::{RefOptions, Refs};
use super::{buildenv, sources, BuildError};
use crate::engine::{Base, Session};
use crate::kernel::KernelFacts;
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
    /// What it builds from, and what of that it would build.
    #[serde(flatten)]
    pub source: PlannedSource,
    pub module_ref: String,
    pub check: bool,
}

/// What a build builds from, as far as a plan can tell without building.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum PlannedSource {
    /// A module directory.
    ModuleDir {
        /// What of the directory would go into the build.
        files: usize,
        bytes: u64,
        /// Links left out: they point outside the module directory.
        left_out: Vec<String>,
    },
    /// A DKMS package (a directory with dkms.conf, or a `.deb`).
    Dkms {
        /// What the user named.
        given: String,
        /// From dkms.conf, read in the build environment: `None` when that
        /// is not prepared yet (dkms.conf is shell; it runs only there).
        package: Option<DkmsPackage>,
        /// Whether what the modules need and the kernel lacks is built too.
        with_deps: bool,
    },
    /// Modules of the kernel's own source.
    InTree(InTreePlan),
}

/// What a DKMS package's dkms.conf says it builds for the kernel.
#[derive(Debug, Clone, Serialize)]
pub struct DkmsPackage {
    pub name: String,
    pub version: String,
    /// The modules, as they would be installed (`dest_name`).
    pub modules: Vec<String>,
    pub make: String,
}

/// What an in-tree build would configure and build.
#[derive(Debug, Clone, Serialize)]
pub struct InTreePlan {
    /// The asked-for modules.
    pub modules: Vec<String>,
    /// The options asked for (without `CONFIG_`).
    pub options: Vec<String>,
    /// The options it would turn on as modules, dependencies among them;
    /// empty when the running configuration has them all.
    pub enable: Vec<String>,
    /// The kernel's source, unpacked: present, or unpacked first.
    pub source_image: String,
    pub source_image_exists: bool,
    /// The tree configured and prepared for this configuration: present,
    /// or configured and prepared first.
    pub prepared_tree: Option<String>,
    pub prepared_tree_exists: bool,
    /// Whether the engine runs the kernel (else every module the
    /// asked-for ones need is built too, unless built in).
    pub knows_vm: bool,
}

/// What every build settles before it reads its source.
pub struct PlanTarget {
    pub refs: Refs,
    pub buildenv: String,
    pub buildenv_exists: bool,
    pub facts: KernelFacts,
}

/// The refs, the build environment and the kernel's facts; reads only.
pub fn target<E: ?Sized + Base>(
    engine: &E,
    refs: &RefOptions,
    progress: &mut dyn Progress,
) -> Result<PlanTarget, crate::Error> {
    let session = Session::new(engine);
    let refs = Refs::resolve(&session, refs, progress)?;
    let buildenv = format!(
        "{}:{}",
        buildenv::BUILDENV_REPOSITORY,
        buildenv::buildenv_key(&refs.build_id, &refs.kernel_id)
    );
    let buildenv_exists = engine.image_id(&buildenv)?.is_some();
    progress.step(&format!("reading {}", refs.kernel_ref));
    let facts =
        crate::kernel::image::facts_from_image(&session, &refs.kernel_ref, refs.kver.as_deref())?;
    Ok(PlanTarget {
        refs,
        buildenv,
        buildenv_exists,
        facts,
    })
}

impl PlanTarget {
    /// The plan of building `source` on this target.
    pub fn plan(self, source: PlannedSource, module_ref: &str, check: bool) -> BuildPlan {
        BuildPlan {
            kernel_ref: self.refs.kernel_ref,
            build_ref: self.refs.build_ref,
            release: self.facts.release.to_string(),
            buildenv: self.buildenv,
            buildenv_exists: self.buildenv_exists,
            source,
            module_ref: module_ref.to_string(),
            check,
        }
    }
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
    let target = target(engine, refs, progress)?;
    // Counted as a build copies it, into a directory removed at once.
    let scratch = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let read = sources::copy(module_dir, scratch.path())?;
    let source = PlannedSource::ModuleDir {
        files: read.files.len(),
        bytes: read.bytes,
        left_out: read
            .outside_links
            .iter()
            .map(|(path, target)| format!("{path} -> {target}"))
            .collect(),
    };
    Ok(target.plan(source, module_ref, check))
}

impl BuildPlan {
    /// The plan in words, one step a line.
    pub fn describe(&self) -> Vec<String> {
        let on = format!(
            "for {} (kernel image {}) with {}",
            self.release, self.kernel_ref, self.build_ref
        );
        let mut lines = vec![match &self.source {
            PlannedSource::ModuleDir { files, bytes, .. } => format!(
                "would build {files} file(s) ({} KiB) {on}",
                bytes.div_ceil(1024)
            ),
            PlannedSource::Dkms {
                package: Some(p), ..
            } => format!(
                "would build DKMS package {} {}: {} ({}) {on}",
                p.name,
                p.version,
                p.modules.join(", "),
                p.make
            ),
            PlannedSource::Dkms {
                given,
                package: None,
                ..
            } => format!("would build the DKMS package {given} {on}"),
            PlannedSource::InTree(t) => format!(
                "would build in-tree module(s) {} ({}) {on}",
                t.modules.join(", "),
                crate::kernel::config::option_list(&t.options)
            ),
        }];
        lines.push(if self.buildenv_exists {
            format!("in build environment {} (present)", self.buildenv)
        } else {
            format!(
                "in build environment {}, which it would prepare first (not in the engine)",
                self.buildenv
            )
        });
        match &self.source {
            PlannedSource::ModuleDir { left_out, .. } => {
                for l in left_out {
                    lines.push(format!(
                        "leaving out {l}: it points outside the module directory"
                    ));
                }
            }
            PlannedSource::Dkms {
                package, with_deps, ..
            } => {
                if package.is_none() {
                    lines.push("its dkms.conf is shell, and runs only in the build environment: what it builds is read there once that is prepared".into());
                }
                if *with_deps {
                    lines.push("with what its modules need and the kernel lacks, built from the kernel's source (--with-deps)".into());
                }
            }
            PlannedSource::InTree(t) => lines.extend(t.describe(&self.release)),
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

impl InTreePlan {
    fn describe(&self, release: &str) -> Vec<String> {
        let mut lines = vec![if self.enable.is_empty() {
            "the running kernel's configuration has the options already: it stays as it is"
                .to_string()
        } else {
            format!(
                "enabling as modules: {} (refused if that changes what the kernel has built in)",
                crate::kernel::config::option_list(&self.enable)
            )
        }];
        lines.push(if self.source_image_exists {
            format!(
                "from the kernel's source in {} (present)",
                self.source_image
            )
        } else {
            "unpacking the kernel's source into an image first (once per kernel and builder)"
                .to_string()
        });
        lines.push(match (&self.prepared_tree, self.prepared_tree_exists) {
            (Some(tag), true) => format!("in the prepared tree {tag} (present)"),
            _ => "configuring the tree (olddefconfig) and preparing it first (make modules_prepare; cached)".to_string(),
        });
        lines.push(if self.knows_vm {
            "with what they need that the running kernel lacks (known once the tree is configured)"
                .to_string()
        } else {
            format!("the engine does not run {release}: with every module they need, unless the kernel has it built in")
        });
        lines
    }
}
