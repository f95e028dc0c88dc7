//! `dmb build --in-tree NAME…`: modules from the kernel's own source, for
//! the running kernel, with every module they need that the kernel lacks.
//!
//! The flow: resolve the names against the source's Makefiles and Kconfig
//! ([`names`]) → the running configuration with the asked-for options and
//! their dependencies as modules ([`config_plan::plan`]) → the source tree
//! unpacked in an image, and `olddefconfig` ([`tree`]) → refuse whatever
//! would change what the running kernel has built in
//! ([`config_plan::settle`]) → the prepared tree, cached by its
//! configuration ([`tree`]) → `make M=` for the modules and their closure
//! ([`closure`], [`make`]) → when the configuration changed, the CRCs of
//! what the modules import recomputed under it and compared with the
//! running kernel's ([`crcs`]) → the check → MODULE_REF.

pub mod closure;
pub mod config_plan;
pub mod crcs;
mod make;
pub mod names;
pub mod plan;
pub mod tree;

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{buildenv, layout, package, BuildError, BuildOutcome, RefOptions, Refs};
use crate::detect::{self, Detection};
use crate::engine::{Base, Engine, Session};
use crate::kernel::kbuild::{ModuleIndex, ModuleSite};
use crate::kernel::kconfig::Kconfig;
use crate::kernel::{KernelConfig, KernelFacts, KernelRelease};
use crate::ko::Module;
use crate::module_build::make::BuiltFiles;
use crate::progress::Progress;
use config_plan::Change;

/// How often the closure may grow before dmb gives up on it.
const MAX_CLOSURE_ROUNDS: usize = 4;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct InTreeOptions {
    /// Module names, Kconfig symbols (`CONFIG_IP_SCTP`), catalog names.
    pub names: Vec<String>,
    pub refs: RefOptions,
    pub module_ref: String,
    pub output: Option<PathBuf>,
    /// Check that the built modules will load into the kernel.
    pub check: bool,
    /// make's `-j` for preparing the tree and building (default: the
    /// build container's `nproc`).
    pub jobs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InTreeError {
    #[error(
        "`{name}` is neither a module nor an option of this kernel's source{}",
        suggest(suggestions)
    )]
    UnknownName {
        name: String,
        suggestions: Vec<String>,
    },
    #[error(
        "CONFIG_{symbol} is {kind}: it can only be built into the kernel, never added as a module"
    )]
    NotAModule { symbol: String, kind: &'static str },
    #[error("CONFIG_{symbol} needs CONFIG_{dependency}, which is {kind} and off in the running kernel: it would have to be built into the kernel")]
    NeedsBuiltIn {
        symbol: String,
        dependency: String,
        kind: &'static str,
    },
    #[error("CONFIG_{symbol} depends on `{depends}`, which the running kernel's configuration does not allow")]
    Unsatisfiable { symbol: String, depends: String },
    #[error(
        "CONFIG_{needed_by} needs CONFIG_{symbol}, which this kernel's Kconfig does not define"
    )]
    UnknownDependency { symbol: String, needed_by: String },
    #[error(
        "{} build(s) no module of its own; name the modules you want",
        crate::kernel::config::option_list(symbols)
    )]
    BuildsNoModule { symbols: Vec<String> },
    #[error(
        "{} is built into the running kernel already (CONFIG_{symbol}=y)",
        module
    )]
    AlreadyBuiltIn { module: String, symbol: String },
    #[error("the module(s) cannot be added: the kernel's own configuration would change where the running kernel has it built in: {}", changes.iter().map(Change::describe).collect::<Vec<_>>().join("; "))]
    ConfigChanges { changes: Vec<Change> },
    #[error("{}: the running kernel was built without {}, and turning {} on changes what the kernel's own code uses: {} of the kernel symbols the modules import have other CRCs with it ({}{})", modules.join(", "), crate::kernel::config::option_list(options), if options.len() == 1 { "it" } else { "them" }, differences.len(), differences.iter().take(3).map(crcs::Difference::describe).collect::<Vec<_>>().join("; "), if differences.len() > 3 { "; …" } else { "" })]
    KernelChanges {
        modules: Vec<String>,
        options: Vec<String>,
        differences: Vec<crcs::Difference>,
    },
    #[error("builder image `{reference}` lacks what building in the kernel's tree needs, and has no package manager dmb knows: {}", lacking.join(", "))]
    LacksTools {
        reference: String,
        lacking: Vec<String>,
    },
    #[error("the kernel's configuration tool failed in the kernel's source: {detail}")]
    KconfigFailed { detail: String, log: Vec<String> },
    #[error("preparing the kernel's source tree for module builds failed")]
    PrepareFailed { log: Vec<String> },
    #[error("{needed_by} needs module {module}, which the running kernel does not have and this source does not build")]
    MissingDependency { module: String, needed_by: String },
    #[error("computing the CRCs of the kernel's exports failed: {detail}")]
    CrcsFailed { detail: String },
}

fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

/// What the running kernel has, as far as this build can tell: its
/// configuration, and the modules it would not need built.
#[derive(Debug, Clone)]
pub struct TargetKernel {
    pub release: KernelRelease,
    /// The configuration the kernel was built with: the running kernel's
    /// (`/proc/config.gz`, `/boot/config-<kver>`) when the engine runs
    /// this release, else the kernel image's.
    pub config: KernelConfig,
    /// Modules the kernel has loaded, built in or on its disk (by name and
    /// by alias): a dependency among them is not built.
    pub available: BTreeSet<String>,
    /// Whether `available` is the running VM's (else: only built-in ones).
    pub knows_vm: bool,
}

impl TargetKernel {
    pub fn of(detection: Option<&Detection>, release: &KernelRelease, facts: &KernelFacts) -> Self {
        match detection.filter(|d| d.release == *release) {
            Some(d) => TargetKernel {
                release: release.clone(),
                config: if d.config.is_empty() {
                    facts.config.clone()
                } else {
                    d.config.clone()
                },
                available: d
                    .modules
                    .loaded
                    .iter()
                    .chain(&d.modules.builtin)
                    .chain(&d.modules.on_disk)
                    .chain(d.aliases.keys())
                    .cloned()
                    .collect(),
                knows_vm: true,
            },
            None => TargetKernel {
                release: release.clone(),
                config: facts.config.clone(),
                available: facts.builtin.iter().cloned().collect(),
                knows_vm: false,
            },
        }
    }

    pub fn has(&self, module: &str) -> bool {
        self.available.contains(&crate::ko::module_name(module))
    }
}

/// `$(SRCARCH)` of a kernel with this configuration.
pub fn srcarch(config: &KernelConfig) -> &'static str {
    if config.is_set("X86") || config.is_set("X86_64") {
        "x86"
    } else if config.is_set("ARM64") {
        "arm64"
    } else if config.is_set("ARM") {
        "arm"
    } else if config.is_set("RISCV") {
        "riscv"
    } else if config.is_set("PPC") {
        "powerpc"
    } else if config.is_set("S390") {
        "s390"
    } else {
        "x86"
    }
}

/// In-tree modules built, on the host, not yet checked or packaged.
pub struct Built {
    pub refs: Refs,
    pub release: KernelRelease,
    pub facts: KernelFacts,
    /// The modules, asked-for ones and what they need, in load order.
    pub modules: Vec<Module>,
    pub files: BuiltFiles,
    /// The modules built only because the asked-for ones need them.
    pub dependencies: Vec<String>,
    /// The Kconfig symbols asked for, without `CONFIG_`.
    pub symbols: Vec<String>,
    /// Holds `files`.
    pub work: tempfile::TempDir,
}

/// The running kernel, which says what it has; with both refs given, a
/// build can go on without it (for a kernel the engine may not even run).
pub fn running_kernel<E: ?Sized + Engine>(
    session: &Session<E>,
    ref_opts: &RefOptions,
    progress: &mut dyn Progress,
) -> Result<Option<Detection>, crate::Error> {
    let refs_given = ref_opts.kernel_ref.is_some() && ref_opts.build_ref.is_some();
    Ok(match (&ref_opts.detected, &ref_opts.detect) {
        (Some(found), _) => Some(found.clone()),
        (None, Some(d)) => {
            progress.step("detecting the running kernel");
            match detect::detect(session, d) {
                Ok(found) => Some(found),
                Err(e)
                    if refs_given
                        && !matches!(
                            e,
                            crate::Error::Engine(crate::engine::EngineError::Interrupted)
                        ) =>
                {
                    progress.warn(&format!("the engine's kernel cannot be read ({e}): building for the kernel image alone"));
                    None
                }
                Err(e) => return Err(e),
            }
        }
        (None, None) => None,
    })
}

/// What the names ask of the kernel's source, and its configuration.
pub struct Asked {
    pub kconfig: Kconfig,
    pub index: ModuleIndex,
    pub request: names::Request,
    /// The options to turn on as modules.
    pub plan: config_plan::ConfigPlan,
}

/// The names resolved against the Kconfig and Makefiles of `kernel_ref`'s
/// source, and the options they turn on; refused when one is built in.
pub fn asked<E: ?Sized + Base>(
    session: &Session<E>,
    kernel_ref: &str,
    target: &TargetKernel,
    names: &[String],
    progress: &mut dyn Progress,
) -> Result<Asked, crate::Error> {
    progress.step(&format!(
        "reading the Kconfig and Makefiles of {kernel_ref}"
    ));
    let source = crate::kernel::source::source_files(session, kernel_ref)?;
    let arch = srcarch(&target.config);
    let kconfig = source.kconfig(arch);
    let index = source.modules(arch);
    let request = names::resolve(names, &kconfig, &index)?;
    for site in &request.modules {
        if target.config.get(&site.symbol) == Some("y") {
            return Err(InTreeError::AlreadyBuiltIn {
                module: site.name.clone(),
                symbol: site.symbol.clone(),
            }
            .into());
        }
    }
    let plan = config_plan::plan(&kconfig, &target.config, &request.symbols)?;
    Ok(Asked {
        kconfig,
        index,
        request,
        plan,
    })
}

/// Builds the modules `opts.names` name from the kernel image's source.
pub fn run<E: ?Sized + Engine>(
    engine: &E,
    opts: &InTreeOptions,
    progress: &mut dyn Progress,
) -> Result<BuildOutcome, crate::Error> {
    let session = Session::new(engine);
    let Built {
        refs,
        release,
        facts,
        modules,
        files,
        dependencies,
        symbols,
        work,
    } = build(&session, &opts.refs, &opts.names, opts.jobs, progress)?;
    if opts.check {
        progress.step(&format!("checking that they will load into {release}"));
        let report = crate::check::check(&facts, &modules, &[]);
        if !report.all_fit() {
            return Err(BuildError::WillNotLoad { report }.into());
        }
    }

    let labels = [
        (
            layout::label::DEPENDENCIES.to_string(),
            dependencies.join(","),
        ),
        (
            layout::label::IN_TREE.to_string(),
            symbols
                .iter()
                .map(|s| format!("CONFIG_{s}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
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
    let mut notes = Vec::new();
    if !dependencies.is_empty() {
        notes.push(format!(
            "built too, because the modules need them and the kernel lacks them: {}",
            dependencies.join(", ")
        ));
    }
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

/// Builds the in-tree modules `names` name, and what they need that the
/// kernel lacks, for the kernel of `ref_opts`.
pub fn build<E: ?Sized + Engine>(
    session: &Session<E>,
    ref_opts: &RefOptions,
    names: &[String],
    jobs: Option<u32>,
    progress: &mut dyn Progress,
) -> Result<Built, crate::Error> {
    let detection = running_kernel(session, ref_opts, progress)?;
    let refs = Refs::resolve_detected(session, ref_opts, detection.as_ref(), progress)?;
    let buildenv = buildenv::ensure(session, &refs, progress)?;
    let release = buildenv::release(session, &buildenv, &refs)?;
    let facts = buildenv::facts(session, &buildenv, &refs.kernel_ref, &release)?;
    let target = TargetKernel::of(detection.as_ref(), &release, &facts);
    if !target.knows_vm {
        progress.step(&format!(
            "the engine does not run {release}: every module the asked-for ones need is built too, unless the kernel has it built in"
        ));
    }

    let Asked {
        kconfig,
        index,
        request,
        plan,
    } = asked(session, &refs.kernel_ref, &target, names, progress)?;
    if plan.is_unchanged() {
        progress.step(&format!(
            "{} already set in the running kernel's configuration: it stays as it is",
            crate::kernel::config::option_list(&request.symbols)
        ));
    } else {
        progress.step(&format!(
            "enabling as modules: {}",
            crate::kernel::config::option_list(plan.enable.keys())
        ));
    }

    let source_image = tree::source_image(
        session,
        &refs,
        &buildenv,
        &release,
        &target.config,
        progress,
    )?;
    let prepared = tree::prepared(
        session,
        &tree::PrepareRequest {
            source_image: &source_image,
            plan: &plan,
            release: &release,
            kconfig: &kconfig,
            target: &target,
            jobs,
        },
        progress,
    )?;
    for note in &prepared.notes {
        progress.step(note);
    }

    let changed = !plan.is_unchanged();
    let asked: BTreeSet<String> = request.modules.iter().map(|s| s.name.clone()).collect();
    let forecast = closure::forecast(
        &kconfig,
        &index,
        &prepared.config,
        &request.symbols,
        &target,
    );
    if !forecast.is_empty() {
        progress.step(&format!(
            "the options need {}, which the kernel lacks: building them alongside (kept where the modules import them)",
            forecast.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    // A module whose exports the kernel's Module.symvers gives (with the
    // same configuration, the same CRCs) need not be built before the
    // modules that import them.
    let symvers_modules: BTreeSet<&str> = facts
        .symvers
        .symbols
        .values()
        .map(|e| e.module.as_str())
        .collect();
    let known = |site: &ModuleSite| !changed && symvers_modules.contains(site.path().as_str());
    let mut gathered = make::Gathered::new()?;
    make::build_round(
        session,
        &prepared,
        &release,
        &closure::first_round(&request.modules, forecast, known),
        jobs,
        &mut gathered,
        progress,
    )?;
    // Then what the modules turn out to need that the kernel lacks, until
    // nothing is missing.
    for round in 1.. {
        let missing = closure::missing(&gathered.modules, &target);
        let mut sites = Vec::new();
        for (module, why) in &missing {
            match index.by_name(module).first() {
                Some(site) if round <= MAX_CLOSURE_ROUNDS => {
                    progress.step(&format!(
                        "{} needs {module}, which the kernel lacks: building it too",
                        why.needed_by
                    ));
                    sites.push((*site).clone());
                }
                // A soft dependency by alias: the kernel resolves it (or
                // goes without), as modprobe does.
                _ if why.soft => {}
                _ => {
                    return Err(InTreeError::MissingDependency {
                        module: module.clone(),
                        needed_by: why.needed_by.clone(),
                    }
                    .into())
                }
            }
        }
        if sites.is_empty() {
            break;
        }
        make::build_round(
            session,
            &prepared,
            &release,
            &[sites],
            jobs,
            &mut gathered,
            progress,
        )?;
    }
    let (gathered, order) = gathered.keep(&asked);
    if changed {
        crcs::compare(
            session,
            &prepared,
            &plan,
            &asked,
            &gathered.modules,
            &facts,
            progress,
        )?;
    }
    let dependencies: Vec<String> = order
        .iter()
        .filter(|n| !asked.contains(*n))
        .cloned()
        .collect();
    let files = make::index(session, &prepared, &gathered)?;
    let make::Gathered { work, modules, .. } = gathered;
    Ok(Built {
        refs,
        release,
        facts,
        modules,
        files,
        dependencies,
        symbols: request.symbols,
        work,
    })
}

/// What `dmb detect NAME` says about building NAME in-tree: the
/// configuration check, without building anything.
pub fn assess(
    name: &str,
    kconfig: &Kconfig,
    index: &ModuleIndex,
    config: &KernelConfig,
) -> Result<String, InTreeError> {
    let request = names::resolve(&[name.to_string()], kconfig, index)?;
    for site in &request.modules {
        if config.get(&site.symbol) == Some("y") {
            return Err(InTreeError::AlreadyBuiltIn {
                module: site.name.clone(),
                symbol: site.symbol.clone(),
            });
        }
    }
    let plan = config_plan::plan(kconfig, config, &request.symbols)?;
    Ok(if plan.is_unchanged() {
        format!(
            "yes: CONFIG_{} is a module in the running kernel's configuration",
            request.symbols.join(", CONFIG_")
        )
    } else {
        format!(
            "yes, if the build finds no change to what the kernel has built in: it enables {} as module(s)",
            crate::kernel::config::option_list(plan.enable.keys())
        )
    })
}

/// For `dmb detect NAME…`: whether each can be built in-tree for the
/// detected kernel, from its kernel image's source (read once, then
/// cached); `Err` says why dmb cannot tell.
pub fn can_build<E: ?Sized + crate::engine::Base>(
    session: &Session<E>,
    detection: &Detection,
    names: &[String],
) -> Result<Vec<Result<String, InTreeError>>, String> {
    let Some(reference) = detection.kernel_ref.reference.as_deref() else {
        return Err("no kernel image is known for this kernel, so neither is its source".into());
    };
    if detection.config.is_empty() {
        return Err("the kernel's configuration is out of reach".into());
    }
    let source = crate::kernel::source::source_files(session, reference)
        .map_err(|e| format!("the source of {reference} is out of reach ({e})"))?;
    let arch = srcarch(&detection.config);
    let kconfig = source.kconfig(arch);
    let index = source.modules(arch);
    Ok(names
        .iter()
        .map(|n| assess(n, &kconfig, &index, &detection.config))
        .collect())
}
