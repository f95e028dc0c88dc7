//! The one error at the edge. Each library area has its own error enum for
//! what goes wrong there; functions that span areas return [`Error`], and
//! the command line asks it for its exit code, its hint and the details
//! worth printing. [`Error::code`] is the README's table of exit codes.

use crate::check;
use crate::detect::DetectError;
use crate::dkms::DkmsError;
use crate::engine::EngineError;
use crate::kernel::{FactsError, KernelImageError};
use crate::load::plan::PlanError;
use crate::load::unload::UnloadError;
use crate::load::LoadError;
use crate::module_build::in_tree::InTreeError;
use crate::module_build::BuildError;
use crate::module_files::SourceError;
use crate::synth::SynthError;

pub const SUCCESS: i32 = 0;
pub const UNEXPECTED: i32 = 1;
pub const USAGE: i32 = 2;
pub const MODULE_DIR_MISSING: i32 = 10;
pub const NO_MAKEFILE: i32 = 11;
pub const UNUSABLE_FILE_NAME: i32 = 12;
pub const KERNEL_REF_NOT_GIVEN: i32 = 20;
pub const KERNEL_REF_NOT_FOUND: i32 = 21;
pub const KERNEL_LAYOUT: i32 = 22;
pub const KVER_NOT_IN_IMAGE: i32 = 23;
pub const KVER_AMBIGUOUS: i32 = 24;
pub const BUILD_REF_NOT_GIVEN: i32 = 25;
pub const BUILD_REF_NOT_FOUND: i32 = 26;
pub const TOOLCHAIN: i32 = 27;
pub const BAD_REFERENCE: i32 = 28;
pub const ENGINE_UNREACHABLE: i32 = 30;
pub const NO_BUILDKIT: i32 = 31;
pub const NO_PROBE_IMAGE: i32 = 32;
/// `dmb doctor` found something that blocks a build or a load.
pub const DOCTOR_FOUND_BLOCKER: i32 = 33;
/// The engine's disk (the VM's, under Docker Desktop) filled up.
pub const NO_SPACE: i32 = 35;
pub const MAKE_FAILED: i32 = 40;
pub const NO_MODULES: i32 = 41;
pub const BAD_MODULES: i32 = 42;
pub const WILL_NOT_LOAD: i32 = 50;
pub const MODULE_UNREADABLE: i32 = 51;
pub const KERNEL_FACTS: i32 = 52;
pub const INPUT_NOT_FOUND: i32 = 53;
pub const LOAD_REFUSED: i32 = 60;
pub const INSERT_FAILED: i32 = 61;
pub const NOT_LOADED: i32 = 62;
pub const IN_USE: i32 = 63;
pub const REMOVE_FAILED: i32 = 64;
/// Another run held the VM's module lock for longer than `--wait`.
pub const LOCK_HELD: i32 = 65;
pub const IN_TREE_UNKNOWN: i32 = 70;
pub const IN_TREE_NOT_A_MODULE: i32 = 71;
pub const IN_TREE_CHANGES_KERNEL: i32 = 72;
pub const IN_TREE_TOOLS: i32 = 73;
pub const IN_TREE_TREE_FAILED: i32 = 74;
pub const IN_TREE_DEPENDENCY: i32 = 75;
pub const SYNTH_FACTS: i32 = 80;
pub const SYNTH_SOURCE: i32 = 81;
pub const SYNTH_CONFIG: i32 = 82;
pub const SYNTH_CRCS: i32 = 83;
pub const SYNTH_FAILED: i32 = 84;
pub const KMM: i32 = 86;
/// `--timeout` ran out.
pub const TIMED_OUT: i32 = 124;
pub const INTERRUPTED: i32 = 130;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    KernelImage(#[from] KernelImageError),
    #[error("kernel directory {dir}: {source}")]
    KernelDir {
        dir: String,
        #[source]
        source: FactsError,
    },
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    InTree(#[from] InTreeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Unload(#[from] UnloadError),
    #[error(transparent)]
    Lock(#[from] crate::load::lock::LockError),
    #[error(transparent)]
    Synth(#[from] SynthError),
    #[error(transparent)]
    Dkms(#[from] DkmsError),
    #[error(transparent)]
    Kmm(#[from] crate::kmm::KmmError),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Whether the engine's disk ran full: the engine, the compiler or a
    /// tool said so (`ENOSPC`, "no space left on device"), whatever step
    /// failed. Told apart because the fix is the same for every step.
    pub fn no_space(&self) -> bool {
        if matches!(
            self,
            Error::Engine(EngineError::Interrupted) | Error::Load(LoadError::Interrupted { .. })
        ) {
            return false;
        }
        std::iter::once(self.to_string())
            .chain(self.details())
            .any(|l| l.to_ascii_lowercase().contains("no space left on device"))
    }

    /// The exit code: a contract, listed in the README.
    pub fn code(&self) -> i32 {
        if self.no_space() {
            return NO_SPACE;
        }
        self.kind_code()
    }

    fn kind_code(&self) -> i32 {
        use BuildError as B;
        use EngineError as En;
        use InTreeError as T;
        use KernelImageError as K;
        use LoadError as L;
        use SourceError as S;
        use UnloadError as U;
        match self {
            Error::Usage(_) => USAGE,
            Error::Synth(e) => e.code(),
            Error::Dkms(e) => e.code(),
            Error::Kmm(_) => KMM,
            Error::Lock(_) => LOCK_HELD,
            Error::Load(L::Interrupted { .. }) => crate::interrupt::exit_code(),
            Error::InTree(T::UnknownName { .. }) => IN_TREE_UNKNOWN,
            Error::InTree(
                T::NotAModule { .. }
                | T::NeedsBuiltIn { .. }
                | T::Unsatisfiable { .. }
                | T::UnknownDependency { .. }
                | T::BuildsNoModule { .. }
                | T::AlreadyBuiltIn { .. },
            ) => IN_TREE_NOT_A_MODULE,
            Error::InTree(T::ConfigChanges { .. } | T::KernelChanges { .. }) => {
                IN_TREE_CHANGES_KERNEL
            }
            Error::InTree(T::LacksTools { .. }) => IN_TREE_TOOLS,
            Error::InTree(
                T::KconfigFailed { .. } | T::PrepareFailed { .. } | T::CrcsFailed { .. },
            ) => IN_TREE_TREE_FAILED,
            Error::InTree(T::MissingDependency { .. }) => IN_TREE_DEPENDENCY,
            Error::Engine(En::CliNotFound { .. } | En::Unreachable { .. }) => ENGINE_UNREACHABLE,
            Error::Engine(En::NoBuildKit | En::NoBuildx) => NO_BUILDKIT,
            Error::Engine(En::Interrupted) => crate::interrupt::exit_code(),
            Error::Engine(En::Command { .. } | En::Stream { .. }) => UNEXPECTED,
            Error::Build(B::ModuleDirMissing { .. }) => MODULE_DIR_MISSING,
            Error::Build(B::NoMakefile { .. }) => NO_MAKEFILE,
            Error::Build(B::UnusableFileName { .. }) => UNUSABLE_FILE_NAME,
            Error::Build(B::BadMakeArgument) => USAGE,
            Error::KernelImage(K::NotGiven) => KERNEL_REF_NOT_GIVEN,
            Error::KernelImage(K::NotFound { .. }) => KERNEL_REF_NOT_FOUND,
            Error::KernelImage(
                K::MissingFile { .. }
                | K::NoHeaderTree { .. }
                | K::IncompleteTree { .. }
                | K::BadRelease(_),
            ) => KERNEL_LAYOUT,
            Error::KernelImage(K::ReleaseNotInImage { .. }) => KVER_NOT_IN_IMAGE,
            Error::KernelImage(K::AmbiguousRelease { .. }) => KVER_AMBIGUOUS,
            Error::Build(B::BuildRefNotGiven) => BUILD_REF_NOT_GIVEN,
            Error::Build(B::BuildRefNotFound { .. }) => BUILD_REF_NOT_FOUND,
            Error::Build(B::Toolchain { .. } | B::BuildEnvFailed { .. }) => TOOLCHAIN,
            Error::Build(B::InvalidReference { .. }) => BAD_REFERENCE,
            Error::Build(B::MakeFailed { .. }) => MAKE_FAILED,
            Error::Build(B::NoModules) => NO_MODULES,
            Error::Build(B::DuplicateModule { .. } | B::BadModule { .. }) => BAD_MODULES,
            Error::Build(B::WillNotLoad { .. }) | Error::Load(L::WillNotLoad { .. }) => {
                WILL_NOT_LOAD
            }
            Error::Source(S::Unreadable { .. } | S::NoModules { .. }) => MODULE_UNREADABLE,
            Error::KernelImage(K::Facts { .. })
            | Error::KernelDir { .. }
            | Error::Load(L::NoKernelFacts { .. } | L::KernelImageRelease { .. }) => KERNEL_FACTS,
            Error::Source(S::NotFound { .. }) => INPUT_NOT_FOUND,
            Error::Plan(_) | Error::Load(L::LoadRace { .. }) => LOAD_REFUSED,
            Error::Load(L::InsertFailed { .. }) => INSERT_FAILED,
            Error::Unload(U::NotLoaded { .. }) => NOT_LOADED,
            Error::Unload(U::InUse { .. }) => IN_USE,
            Error::Unload(U::RemoveFailed { .. }) => REMOVE_FAILED,
            Error::Detect(DetectError::NoProbeImage(_)) => NO_PROBE_IMAGE,
            Error::Build(B::BuildFailed { .. } | B::Io { .. })
            | Error::Detect(_)
            | Error::Source(S::Io { .. })
            | Error::Load(L::LoaderSilent { .. } | L::Io { .. })
            | Error::Unload(U::Io { .. }) => UNEXPECTED,
        }
    }

    /// One line that tells the user what to do next.
    pub fn hint(&self) -> Option<String> {
        if self.no_space() {
            return Some("the engine's disk is full (under Docker Desktop, the VM's): `dmb cache prune` removes what dmb keeps, `docker system df` shows what uses the rest; Docker Desktop's Settings → Resources sets the disk's size".into());
        }
        self.kind_hint()
    }

    fn kind_hint(&self) -> Option<String> {
        use BuildError as B;
        use EngineError as En;
        use InTreeError as T;
        use KernelImageError as K;
        use LoadError as L;
        use SourceError as S;
        use UnloadError as U;
        Some(match self {
            Error::Lock(_) => format!(
                "wait for it, or give it longer with --wait SECONDS; if that run is gone for good (killed on another machine), `docker rm -f {}` frees the VM",
                crate::load::lock::LOCK_NAME
            ),
            Error::Synth(e) => return e.hint(),
            Error::Dkms(e) => return e.hint(),
            Error::Kmm(crate::kmm::KmmError::WhichModule { .. }) => {
                "name the module modprobe is to load with --module".into()
            }
            Error::Kmm(_) => {
                "give one image per kernel, each built by `dmb build` from the same module (`dmb build --kernel-ref A --kernel-ref B` makes them)".into()
            }
            Error::InTree(T::UnknownName { .. }) => {
                "give a module name (`sctp`, `dm-crypt`) or a Kconfig option (`CONFIG_IP_SCTP`) of this kernel".into()
            }
            Error::InTree(T::NotAModule { .. } | T::NeedsBuiltIn { .. } | T::Unsatisfiable { .. }) => {
                "a module can only join a kernel that was built with the options it needs; this one needs a kernel built otherwise".into()
            }
            Error::InTree(T::AlreadyBuiltIn { .. }) => {
                "the kernel has it already; nothing to build".into()
            }
            Error::InTree(T::BuildsNoModule { .. }) => {
                "`dmb detect NAME` says which modules the kernel has; name a module (`obj-m` of the option's Makefile)".into()
            }
            Error::InTree(T::ConfigChanges { changes }) if changes.iter().any(|c| c.symbol.contains("BTF") || c.symbol.contains("PAHOLE")) => {
                "the builder's pahole (dwarves) is missing or older than the kernel's: BTF options are decided by it; use a builder with the kernel's pahole".into()
            }
            Error::InTree(T::ConfigChanges { .. }) => {
                "use the builder that built the kernel (its compiler decides some options), or choose options that need nothing built in".into()
            }
            Error::InTree(T::KernelChanges { .. }) => {
                "such a module would load and then corrupt the kernel's memory; only a kernel built with these options can have it".into()
            }
            Error::InTree(T::LacksTools { .. }) => {
                "use a builder image with these tools, or one with apk, apt-get or dnf so dmb can install them".into()
            }
            Error::InTree(T::KconfigFailed { .. } | T::PrepareFailed { .. }) => {
                "the log above says which tool or file the kernel's build wanted; `dmb build -v` shows every engine command".into()
            }
            Error::Engine(En::CliNotFound { .. }) => {
                "install the docker CLI, or point DMB_DOCKER at it".into()
            }
            Error::Engine(En::Unreachable { .. }) => {
                "start Docker Desktop (or `dockerd`), or set DOCKER_HOST (or a docker context) to an engine that runs".into()
            }
            Error::Detect(DetectError::NoProbeImage(_)) => {
                "load an image with sh, nsenter, zcat and insmod into the engine (`docker load -i busybox.tar`, from any machine with `docker save busybox`), or name one with --probe-image (DMB_PROBE_IMAGE)".into()
            }
            Error::Engine(En::NoBuildKit | En::NoBuildx) => {
                "install the buildx plugin, or use --builder legacy".into()
            }
            Error::KernelImage(K::NotGiven) => {
                "give the kernel image with --kernel-ref IMAGE or KERNEL_REF=IMAGE (for Docker Desktop: the `kernel.image` of /etc/linuxkit.yml in its VM)".into()
            }
            Error::KernelImage(K::NotFound { reference }) => format!(
                "`docker pull {reference}` (or build it) first; dmb uses images already in the engine. Where nobody published one (every Docker Desktop kernel since 5.15.49), make it: `dmb build` with no --kernel-ref synthesizes one for the engine's kernel (without --no-synthesize), and `dmb kernel synthesize [--source TARBALL|DIR|URL]` prints its reference"
            ),
            Error::Build(B::BuildRefNotFound { reference }) => format!(
                "`docker pull {reference}` (or build it) first; dmb uses images already in the engine"
            ),
            Error::KernelImage(K::MissingFile { .. } | K::NoHeaderTree { .. } | K::IncompleteTree { .. }) => {
                "a kernel image needs /kernel-dev.tar (usr/src/linux-headers-<kver>/ with .config, Makefile, Module.symvers) and /kernel.tar, as linuxkit/kernel images have".into()
            }
            Error::KernelImage(K::ReleaseNotInImage { .. } | K::AmbiguousRelease { .. }) => {
                "choose one of the image's releases with --kver".into()
            }
            Error::KernelDir { .. } => {
                "--kernel-dir wants a header tree: .config, Module.symvers, include/generated/utsrelease.h".into()
            }
            Error::Build(B::ModuleDirMissing { .. }) => {
                "give the directory that holds the module's Makefile and sources (default: ./module)".into()
            }
            Error::Build(B::NoMakefile { .. }) => {
                "the directory needs a Makefile whose default target builds the module, e.g. `obj-m += hello.o` with `all:` calling `$(MAKE) -C $(KDIR) M=$(PWD) modules`".into()
            }
            Error::Build(B::UnusableFileName { .. }) => {
                "rename the file, or name it in the directory's .dmbignore to leave it out of the build".into()
            }
            Error::Build(B::BuildRefNotGiven) => {
                "give the toolchain image with --build-ref IMAGE or BUILD_REF=IMAGE; its compiler must be the one that built the kernel".into()
            }
            Error::Build(B::InvalidReference { .. }) => {
                "image references are NAME[:TAG] or NAME@DIGEST".into()
            }
            Error::Build(B::WillNotLoad { .. }) => {
                "rebuild against the kernel the module is for; `dmb build --no-check` skips this check".into()
            }
            Error::Build(B::Toolchain { .. }) => {
                "use a builder image with make and gcc, or one with apk, apt-get or dnf so dmb can install them".into()
            }
            Error::Build(B::BuildEnvFailed { .. }) => {
                "installing the toolchain needs the network; check that the engine can reach the builder's package mirror".into()
            }
            Error::Build(B::MakeFailed { .. }) => {
                "fix the errors above; `dmb build -v` shows every engine command".into()
            }
            Error::Build(B::NoModules) => {
                "the Makefile's default target must build the module, e.g. `$(MAKE) -C $(KDIR) M=$(PWD) modules`".into()
            }
            Error::Build(B::DuplicateModule { .. }) => "rename one of the modules (obj-m names)".into(),
            Error::Source(S::Unreadable { .. }) => {
                "only kernel modules (.ko, .ko.gz, .ko.xz, .ko.zst) can be read".into()
            }
            Error::Source(S::NotFound { .. }) => {
                "give module files, directories of them, or an image in the engine".into()
            }
            Error::Plan(p) => return Some(plan_hint(p)),
            Error::Load(L::WillNotLoad { .. }) => {
                "build them against the running kernel: `dmb build` with no refs detects it; `dmb load --no-check` skips this check".into()
            }
            Error::Load(L::NoKernelFacts { .. }) => {
                "give the running kernel's image with --kernel-ref, or let dmb read the VM's modules (no --no-vm-files); --no-check skips the check".into()
            }
            Error::Load(L::KernelImageRelease { .. }) => {
                "give the image of the running kernel with --kernel-ref, or --crcs installed-modules".into()
            }
            Error::Load(L::InsertFailed { .. }) => {
                "the kernel's words are above; `dmb load -v` shows every engine command".into()
            }
            Error::Load(L::LoadRace { .. }) => "run dmb load again".into(),
            Error::Unload(U::NotLoaded { .. }) => {
                "`dmb status` lists what dmb loaded; /proc/modules all that is loaded".into()
            }
            Error::Unload(U::InUse { .. }) => {
                "unload its users first (name them too), or stop what holds it".into()
            }
            _ => return None,
        })
    }

    /// Lines worth printing after the message: what the compiler, the
    /// build log or the kernel said, and why modules will not load.
    pub fn details(&self) -> Vec<String> {
        let indented = |header: &str, lines: &[String]| {
            std::iter::once(header.to_string())
                .chain(lines.iter().map(|l| format!("  {l}")))
                .collect::<Vec<_>>()
        };
        match self {
            Error::Synth(e) => e.details(),
            Error::Dkms(e) => e.details(),
            Error::Build(BuildError::MakeFailed { errors, .. }) if !errors.is_empty() => {
                let first: Vec<String> = errors.iter().take(40).cloned().collect();
                indented("dmb: the compiler said:", &first)
            }
            Error::Build(
                BuildError::BuildEnvFailed { log, .. } | BuildError::BuildFailed { log },
            ) => indented("dmb: the last lines of the build log:", log),
            Error::Build(BuildError::WillNotLoad { report }) => report.misfit_lines(),
            Error::InTree(
                InTreeError::KconfigFailed { log, .. } | InTreeError::PrepareFailed { log },
            ) => indented("dmb: the last lines of its log:", log),
            Error::InTree(InTreeError::KernelChanges { differences, .. }) => {
                let mut lines: Vec<String> =
                    differences.iter().take(30).map(|d| d.describe()).collect();
                if differences.len() > 30 {
                    lines.push(format!("… and {} more", differences.len() - 30));
                }
                indented("dmb: symbols whose CRC the new options change:", &lines)
            }
            Error::Load(LoadError::WillNotLoad { report }) => {
                let mut lines = report.misfit_lines();
                lines.push("dmb: nothing was loaded".into());
                lines
            }
            Error::Load(LoadError::InsertFailed {
                kernel_log,
                rolled_back,
                stuck,
                ..
            }) => {
                let mut lines = if kernel_log.is_empty() {
                    vec![
                        "dmb: the kernel log has nothing more (reading it needs CAP_SYSLOG)".into(),
                    ]
                } else {
                    indented("dmb: the kernel said:", kernel_log)
                };
                if !rolled_back.is_empty() {
                    lines.push(format!(
                        "dmb: unloaded again what this run had loaded: {}",
                        rolled_back.join(", ")
                    ));
                }
                if !stuck.is_empty() {
                    lines.push(format!("dmb: could not unload again: {}", stuck.join(", ")));
                }
                lines
            }
            Error::Unload(UnloadError::RemoveFailed { unloaded, .. }) if !unloaded.is_empty() => {
                vec![format!(
                    "dmb: unloaded before that: {}",
                    unloaded.join(", ")
                )]
            }
            _ => Vec::new(),
        }
    }
}

fn plan_hint(p: &PlanError) -> String {
    match p {
        PlanError::MissingDependency { .. } => {
            "give the module it depends on too (a file, or one beside the given file)".into()
        }
        PlanError::BuiltIn { .. } => "the kernel has it already; nothing to load".into(),
        PlanError::Duplicate { .. } => "give each module once".into(),
        PlanError::Cycle { .. } => {
            "the kernel cannot load modules that depend on each other".into()
        }
        PlanError::Conflict { module, .. } => {
            format!("`dmb unload {module}` first (or load the build that is loaded)")
        }
        PlanError::ParamModule { .. } | PlanError::ParamUnknown { .. } => {
            "`dmb inspect FILE` lists a module's parameters".into()
        }
        PlanError::ParamsForLoaded { module } => {
            format!("`dmb unload {module}` first, then load it with the parameters")
        }
    }
}

/// Whether a check report is a success (`dmb check` exits with
/// [`WILL_NOT_LOAD`] when a module does not fit, without an error).
pub fn check_code(report: &check::Report) -> i32 {
    if report.all_fit() {
        SUCCESS
    } else {
        WILL_NOT_LOAD
    }
}

impl From<crate::kernel::BadRelease> for Error {
    fn from(e: crate::kernel::BadRelease) -> Self {
        Error::KernelImage(KernelImageError::BadRelease(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_area_reaches_its_code() {
        let cases: Vec<(Error, i32)> = vec![
            (Error::Usage("x".into()), USAGE),
            (EngineError::NoBuildKit.into(), NO_BUILDKIT),
            (EngineError::Interrupted.into(), INTERRUPTED),
            (KernelImageError::NotGiven.into(), KERNEL_REF_NOT_GIVEN),
            (BuildError::NoModules.into(), NO_MODULES),
            (
                SourceError::NotFound { what: "x".into() }.into(),
                INPUT_NOT_FOUND,
            ),
            (
                PlanError::Cycle {
                    modules: vec!["a".into()],
                }
                .into(),
                LOAD_REFUSED,
            ),
            (
                UnloadError::InUse {
                    module: "a".into(),
                    by: vec![],
                }
                .into(),
                IN_USE,
            ),
            (DetectError::NoRelease.into(), UNEXPECTED),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
        }
    }

    #[test]
    fn a_full_disk_is_told_apart_whatever_step_said_it() {
        let make: Error = BuildError::MakeFailed {
            code: 2,
            errors: vec!["dd: error writing 'fill': No space left on device".into()],
        }
        .into();
        assert_eq!(make.code(), NO_SPACE);
        assert!(make.hint().unwrap().contains("dmb cache prune"), "{make}");
        let log: Error = BuildError::BuildFailed {
            log: vec!["write /var/lib/docker/tmp/x: no space left on device".into()],
        }
        .into();
        assert_eq!(log.code(), NO_SPACE);
        let other: Error = BuildError::MakeFailed {
            code: 2,
            errors: vec!["hello.c:3: error: expected ';'".into()],
        }
        .into();
        assert_eq!(other.code(), MAKE_FAILED);
        assert!(!other.hint().unwrap().contains("disk"));
    }
}
