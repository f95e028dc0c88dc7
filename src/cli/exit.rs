//! Exit codes and hints. The codes are a contract, listed in the README.

use crate::build::BuildError;
use crate::check::sources::SourceError;
use crate::engine::EngineError;
use crate::kernel::image::ImageFactsError;
use crate::kernel::KernelImageError;
use crate::load::plan::PlanError;
use crate::load::{LoadError, UnloadError};

pub const UNEXPECTED: i32 = 1;
pub const MODULE_DIR_MISSING: i32 = 10;
pub const NO_MAKEFILE: i32 = 11;
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
pub const INTERRUPTED: i32 = 130;

fn kernel_image_code(k: &KernelImageError) -> i32 {
    match k {
        KernelImageError::NotGiven => KERNEL_REF_NOT_GIVEN,
        KernelImageError::NotFound { .. } => KERNEL_REF_NOT_FOUND,
        KernelImageError::MissingFile { .. }
        | KernelImageError::NoHeaderTree { .. }
        | KernelImageError::IncompleteTree { .. }
        | KernelImageError::BadRelease { .. } => KERNEL_LAYOUT,
        KernelImageError::ReleaseNotInImage { .. } => KVER_NOT_IN_IMAGE,
        KernelImageError::AmbiguousRelease { .. } => KVER_AMBIGUOUS,
    }
}

fn engine_code(e: &EngineError) -> i32 {
    match e {
        EngineError::CliNotFound { .. } | EngineError::Unreachable { .. } => ENGINE_UNREACHABLE,
        EngineError::NoBuildKit => NO_BUILDKIT,
        EngineError::Interrupted => INTERRUPTED,
        EngineError::Command { .. } | EngineError::Stream { .. } => UNEXPECTED,
    }
}

fn image_facts_code(e: &ImageFactsError) -> i32 {
    match e {
        ImageFactsError::Kernel(k) => kernel_image_code(k),
        ImageFactsError::Facts { .. } => KERNEL_FACTS,
        ImageFactsError::Engine(e) => engine_code(e),
    }
}

fn image_facts_code_and_hint(e: &ImageFactsError) -> (i32, Option<String>) {
    let hint = match e {
        ImageFactsError::Kernel(k) => kernel_image_hint(k),
        ImageFactsError::Engine(e) => engine_hint(e),
        ImageFactsError::Facts { .. } => None,
    };
    (image_facts_code(e), hint)
}

fn kernel_image_hint(k: &KernelImageError) -> Option<String> {
    Some(match k {
        KernelImageError::NotGiven => {
            "give the kernel image with --kernel-ref IMAGE or KERNEL_REF=IMAGE (for Docker Desktop: the `kernel.image` of /etc/linuxkit.yml in its VM)".into()
        }
        KernelImageError::NotFound { reference } => format!(
            "`docker pull {reference}` (or build it) first; dmb uses images already in the engine"
        ),
        KernelImageError::MissingFile { .. }
        | KernelImageError::NoHeaderTree { .. }
        | KernelImageError::IncompleteTree { .. } => {
            "a kernel image needs /kernel-dev.tar (usr/src/linux-headers-<kver>/ with .config, Makefile, Module.symvers) and /kernel.tar, as linuxkit/kernel images have".into()
        }
        KernelImageError::ReleaseNotInImage { .. } | KernelImageError::AmbiguousRelease { .. } => {
            "choose one of the image's releases with --kver".into()
        }
        KernelImageError::BadRelease { .. } => return None,
    })
}

fn engine_hint(e: &EngineError) -> Option<String> {
    Some(match e {
        EngineError::CliNotFound { .. } => "install the docker CLI, or point DMB_DOCKER at it".into(),
        EngineError::Unreachable { .. } => {
            "start Docker Desktop (or `dockerd`), or set DOCKER_HOST (or a docker context) to an engine that runs".into()
        }
        EngineError::NoBuildKit => "install the buildx plugin, or use --builder legacy".into(),
        _ => return None,
    })
}

/// Exit code and hint of `dmb inspect` and `dmb check` failures.
pub fn source_code_and_hint(e: &SourceError) -> (i32, Option<String>) {
    match e {
        SourceError::Unreadable { .. } => (
            MODULE_UNREADABLE,
            Some("only kernel modules (.ko, .ko.gz, .ko.xz, .ko.zst) can be read".into()),
        ),
        SourceError::NoModules { .. } => (MODULE_UNREADABLE, None),
        SourceError::NotFound { .. } => (
            INPUT_NOT_FOUND,
            Some("give module files, directories of them, or an image in the engine".into()),
        ),
        SourceError::KernelDir { .. } => (
            KERNEL_FACTS,
            Some("--kernel-dir wants a header tree: .config, Module.symvers, include/generated/utsrelease.h".into()),
        ),
        SourceError::KernelImage(k) => image_facts_code_and_hint(k),
        SourceError::Engine(e) => (engine_code(e), engine_hint(e)),
        SourceError::Io { .. } => (UNEXPECTED, None),
    }
}

pub fn exit_code(e: &BuildError) -> i32 {
    use BuildError::*;
    match e {
        ModuleDirMissing { .. } => MODULE_DIR_MISSING,
        NoMakefile { .. } => NO_MAKEFILE,
        BuildRefNotGiven => BUILD_REF_NOT_GIVEN,
        BuildRefNotFound { .. } => BUILD_REF_NOT_FOUND,
        InvalidReference { .. } => BAD_REFERENCE,
        Kernel(k) => kernel_image_code(k),
        KernelFacts(e) => image_facts_code(e),
        WillNotLoad { .. } => WILL_NOT_LOAD,
        Detect(crate::target::DetectError::Engine(e)) => engine_code(e),
        Detect(_) => UNEXPECTED,
        Toolchain { .. } | BuildEnvFailed { .. } => TOOLCHAIN,
        MakeFailed { .. } => MAKE_FAILED,
        NoModules => NO_MODULES,
        DuplicateModule { .. } | BadModule { .. } => BAD_MODULES,
        BuildFailed { .. } | Io { .. } => UNEXPECTED,
        Engine(e) => engine_code(e),
    }
}

/// One line that tells the user what to do next.
pub fn hint(e: &BuildError) -> Option<String> {
    use BuildError::*;
    Some(match e {
        ModuleDirMissing { .. } => {
            "give the directory that holds the module's Makefile and sources (default: ./module)".into()
        }
        NoMakefile { .. } => {
            "the directory needs a Makefile whose default target builds the module, e.g. `obj-m += hello.o` with `all:` calling `$(MAKE) -C $(KDIR) M=$(PWD) modules`".into()
        }
        BuildRefNotGiven => {
            "give the toolchain image with --build-ref IMAGE or BUILD_REF=IMAGE; its compiler must be the one that built the kernel".into()
        }
        BuildRefNotFound { reference } => format!(
            "`docker pull {reference}` (or build it) first; dmb uses images already in the engine"
        ),
        InvalidReference { .. } => "image references are NAME[:TAG] or NAME@DIGEST".into(),
        Kernel(k) => return kernel_image_hint(k),
        WillNotLoad { .. } => "rebuild against the kernel the module is for; `dmb build --no-check` skips this check".into(),
        Toolchain { .. } => {
            "use a builder image with make and gcc, or one with apk, apt-get or dnf so dmb can install them".into()
        }
        BuildEnvFailed { .. } => {
            "installing the toolchain needs the network; check that the engine can reach the builder's package mirror".into()
        }
        MakeFailed { .. } => "fix the errors above; `dmb build -v` shows every engine command".into(),
        NoModules => {
            "the Makefile's default target must build the module, e.g. `$(MAKE) -C $(KDIR) M=$(PWD) modules`".into()
        }
        DuplicateModule { .. } => "rename one of the modules (obj-m names)".into(),
        Engine(e) => return engine_hint(e),
        _ => return None,
    })
}

/// Exit code and hint of `dmb load` failures.
pub fn load_code_and_hint(e: &LoadError) -> (i32, Option<String>) {
    match e {
        LoadError::Source(s) => source_code_and_hint(s),
        LoadError::Detect(crate::target::DetectError::Engine(e)) | LoadError::Engine(e) => {
            (engine_code(e), engine_hint(e))
        }
        LoadError::Detect(_) => (UNEXPECTED, None),
        LoadError::Plan(p) => (
            LOAD_REFUSED,
            Some(match p {
                PlanError::MissingDependency { .. } => {
                    "give the module it depends on too (a file, or one beside the given file)".into()
                }
                PlanError::BuiltIn { .. } => "the kernel has it already; nothing to load".into(),
                PlanError::Duplicate { .. } => "give each module once".into(),
                PlanError::Cycle { .. } => "the kernel cannot load modules that depend on each other".into(),
                PlanError::Conflict { module, .. } => format!(
                    "`dmb unload {module}` first (or load the build that is loaded)"
                ),
                PlanError::ParamModule { .. } | PlanError::ParamUnknown { .. } => {
                    "`dmb inspect FILE` lists a module's parameters".into()
                }
                PlanError::ParamsForLoaded { module } => {
                    format!("`dmb unload {module}` first, then load it with the parameters")
                }
            }),
        ),
        LoadError::WillNotLoad { .. } => (
            WILL_NOT_LOAD,
            Some("build them against the running kernel: `dmb build` with no refs detects it; `dmb load --no-check` skips this check".into()),
        ),
        LoadError::NoKernelFacts { .. } => (
            KERNEL_FACTS,
            Some("give the running kernel's image with --kernel-ref, or let dmb read the VM's modules (no --no-vm-files); --no-check skips the check".into()),
        ),
        LoadError::KernelImage(k) => image_facts_code_and_hint(k),
        LoadError::KernelImageRelease { .. } => (
            KERNEL_FACTS,
            Some("give the image of the running kernel with --kernel-ref, or --crcs installed-modules".into()),
        ),
        LoadError::InsertFailed { .. } => (
            INSERT_FAILED,
            Some("the kernel's words are above; `dmb load -v` shows every engine command".into()),
        ),
        LoadError::LoadRace { .. } => (LOAD_REFUSED, Some("run dmb load again".into())),
        LoadError::LoaderSilent { .. } | LoadError::Io { .. } => (UNEXPECTED, None),
    }
}

/// Exit code and hint of `dmb unload` failures.
pub fn unload_code_and_hint(e: &UnloadError) -> (i32, Option<String>) {
    match e {
        UnloadError::Engine(e) => (engine_code(e), engine_hint(e)),
        UnloadError::NotLoaded { .. } => (
            NOT_LOADED,
            Some("`dmb status` lists what dmb loaded; /proc/modules all that is loaded".into()),
        ),
        UnloadError::InUse { .. } => (
            IN_USE,
            Some("unload its users first (name them too), or stop what holds it".into()),
        ),
        UnloadError::RemoveFailed { .. } => (REMOVE_FAILED, None),
        UnloadError::Io { .. } => (UNEXPECTED, None),
    }
}
