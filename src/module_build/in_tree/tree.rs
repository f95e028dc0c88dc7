//! The kernel's source tree in the engine, in two cached images:
//! - `dmb-kernel-source:<key>`: the build environment (with what a
//!   kernel-tree build needs installed, when it lacks it) plus the kernel
//!   image's `/linux.tar.xz` unpacked at `/usr/src/linux`; keyed on the
//!   build environment and the kernel image.
//! - `dmb-kernel-prepared:<key>`: that tree configured and through `make
//!   modules_prepare`; keyed on the source image and the configuration
//!   dmb hands to `olddefconfig` (which settles it the same way each time),
//!   so a second build with the same configuration starts at `make M=`.

use super::config_plan::{self, ConfigPlan};
use super::{InTreeError, TargetKernel};
use crate::engine::{Base, BuildOutput, BuildRequest, Engine, Session};
use crate::kernel::kconfig::Kconfig;
use crate::kernel::{KernelConfig, KernelRelease};
use crate::module_build::buildenv::cache_key;
use crate::module_build::{dockerfile, BuildError, Refs, LOG_LINES};
use crate::progress::Progress;
use crate::scripts;
use crate::toolchain::{kernel_tools, Toolchain};

/// Bump when a recipe changes, so old images are not reused.
const SOURCE_RECIPE: &str = "2";
const PREPARED_RECIPE: &str = "1";

pub const SOURCE_REPOSITORY: &str = "dmb-kernel-source";
pub const PREPARED_REPOSITORY: &str = "dmb-kernel-prepared";

/// Where the tree is, in both images.
pub const TREE: &str = "/usr/src/linux";

/// A prepared tree, ready for `make M=`.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub image: String,
    /// The configuration it was prepared with (after `olddefconfig`).
    pub config: KernelConfig,
    /// What the settling noted (toolchain differences, new options).
    pub notes: Vec<String>,
}

/// The tag of the source image for `refs` and what its key is made of.
pub struct SourceTag {
    pub tag: String,
    key: String,
    compiler: String,
    arch: &'static str,
}

/// The source image's tag for `refs` in `buildenv` (which must exist for
/// the tag to be one an image could have).
pub fn source_tag<E: ?Sized + Base>(
    engine: &E,
    refs: &Refs,
    buildenv: &str,
    config: &KernelConfig,
) -> Result<SourceTag, crate::Error> {
    let buildenv_id = engine.image_id(buildenv)?.unwrap_or_default();
    // The compiler command the kernel was built with (`gcc-12`): the
    // configuration records it, and kconfig compares.
    let compiler = config
        .get("CC_VERSION_TEXT")
        .and_then(crate::toolchain::compiler::parse_compiler)
        .map_or_else(|| "gcc".to_string(), |c| c.command);
    let arch = super::srcarch(config);
    let key = cache_key(&[
        SOURCE_RECIPE,
        &buildenv_id,
        &refs.kernel_id,
        &compiler,
        arch,
    ]);
    Ok(SourceTag {
        tag: format!("{SOURCE_REPOSITORY}:{key}"),
        key,
        compiler,
        arch,
    })
}

/// The prepared tree's tag for `plan` over `source_image`, and its key.
pub fn prepared_tag<E: ?Sized + Base>(
    engine: &E,
    source_image: &str,
    release: &KernelRelease,
    plan: &ConfigPlan,
) -> Result<(String, String), crate::Error> {
    let source_id = engine.image_id(source_image)?.unwrap_or_default();
    let key = cache_key(&[PREPARED_RECIPE, &source_id, release.as_str(), &plan.text]);
    Ok((format!("{PREPARED_REPOSITORY}:{key}"), key))
}

/// The source image for `refs`, made when it is not there.
pub fn source_image<E: ?Sized + Engine>(
    session: &Session<E>,
    refs: &Refs,
    buildenv: &str,
    release: &KernelRelease,
    config: &KernelConfig,
    progress: &mut dyn Progress,
) -> Result<String, crate::Error> {
    let engine = session.engine();
    let SourceTag {
        tag,
        key,
        compiler,
        arch,
    } = source_tag(engine, refs, buildenv, config)?;
    if engine.image_id(&tag)?.is_some() {
        return Ok(tag);
    }
    let install = tools_install(
        session,
        buildenv,
        &refs.build_ref,
        &kernel_tools::needs(config),
        progress,
    )?;
    progress.step(&format!(
        "unpacking the source of {} into {tag} (once per kernel and builder)",
        refs.kernel_ref
    ));
    let context = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    std::fs::write(
        context.path().join("kernel_source.sh"),
        scripts::KERNEL_SOURCE,
    )
    .map_err(BuildError::io("writing the build context"))?;
    let text = dockerfile::kernel_source(
        buildenv,
        &refs.kernel_ref,
        &key,
        release.as_str(),
        &compiler,
        arch,
        install.as_deref(),
    );
    build_image(
        session,
        context.path(),
        &text,
        &tag,
        install.is_some(),
        &key,
        progress,
    )?
    .map_err(|log| BuildError::BuildEnvFailed {
        reference: refs.build_ref.clone(),
        log,
    })?;
    Ok(tag)
}

/// The command that installs what of `needs` (what a kernel-tree build
/// needs: [`kernel_tools::needs`]) `image` (the builder `reference`, or an image made from it) lacks;
/// none when it lacks nothing. Refused when it lacks something and has no
/// package manager.
pub(crate) fn tools_install<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    reference: &str,
    needs: &[kernel_tools::Need],
    progress: &mut dyn Progress,
) -> Result<Option<String>, crate::Error> {
    let found = session
        .engine()
        .run(&session.request(image, "tools", scripts::TOOLCHAIN))?;
    let toolchain = Toolchain::from_probe(&found.stdout);
    let lacking = toolchain.lacks(needs);
    match (&lacking[..], toolchain.package_manager) {
        ([], _) => Ok(None),
        (_, Some(pm)) => {
            progress.step(&format!(
                "{reference} lacks {}: installing (cached)",
                lacking
                    .iter()
                    .map(|n| format!("{} for {}", n.what, n.why))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            Ok(Some(pm.install_kernel_tools(&lacking)))
        }
        (_, None) => Err(InTreeError::LacksTools {
            reference: reference.to_string(),
            lacking: lacking
                .iter()
                .map(|n| format!("{} (for {})", n.what, n.why))
                .collect(),
        }
        .into()),
    }
}

/// What a prepared tree is made of, and how.
#[derive(Clone, Copy)]
pub struct PrepareRequest<'a> {
    pub source_image: &'a str,
    pub plan: &'a ConfigPlan,
    pub release: &'a KernelRelease,
    pub kconfig: &'a Kconfig,
    pub target: &'a TargetKernel,
    /// make's `-j` (default: the container's `nproc`); not part of the
    /// key, as it changes nothing in the tree.
    pub jobs: Option<u32>,
}

/// The prepared tree for `plan`: from the cache, or configured (and
/// refused when the configuration would not describe the running kernel)
/// and prepared now.
pub fn prepared<E: ?Sized + Engine>(
    session: &Session<E>,
    request: &PrepareRequest<'_>,
    progress: &mut dyn Progress,
) -> Result<Prepared, crate::Error> {
    let PrepareRequest {
        source_image,
        plan,
        release,
        kconfig,
        target,
        jobs,
    } = *request;
    let engine = session.engine();
    let (tag, key) = prepared_tag(engine, source_image, release, plan)?;
    let cached = engine.image_id(&tag)?.is_some();
    let effective = if cached {
        progress.step(&format!("prepared tree {tag} is cached"));
        let text = session
            .scratch(&tag)?
            .read_small_file(&format!("{TREE}/.config"), 16 * 1024 * 1024)?
            .unwrap_or_default();
        KernelConfig::parse(&String::from_utf8_lossy(&text))
    } else {
        olddefconfig(session, source_image, &plan.text)?
    };
    let settled = config_plan::settle(kconfig, &target.config, &effective)?;
    let mut notes = Vec::new();
    if !settled.new_modules.is_empty() {
        notes.push(format!(
            "the configuration gains the module options {}",
            crate::kernel::config::option_list(&settled.new_modules)
        ));
    }
    if !settled.toolchain.is_empty() {
        notes.push(format!(
            "the builder's tools differ from the kernel's: {}",
            settled
                .toolchain
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !cached {
        progress.step(&format!(
            "preparing the kernel tree for {release} as {tag} (make modules_prepare; cached)"
        ));
        let context =
            tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
        std::fs::write(context.path().join("config"), &plan.text)
            .map_err(BuildError::io("writing the build context"))?;
        std::fs::write(
            context.path().join("kernel_prepare.sh"),
            scripts::KERNEL_PREPARE,
        )
        .map_err(BuildError::io("writing the build context"))?;
        let text = dockerfile::kernel_prepared(source_image, &key, release.as_str(), jobs);
        build_image(session, context.path(), &text, &tag, false, &key, progress)?
            .map_err(|log| InTreeError::PrepareFailed { log })?;
    }
    Ok(Prepared {
        image: tag,
        config: effective,
        notes,
    })
}

/// The configuration `olddefconfig` makes of `text` in the source tree.
pub(crate) fn olddefconfig<E: ?Sized + Engine>(
    session: &Session<E>,
    source_image: &str,
    text: &str,
) -> Result<KernelConfig, crate::Error> {
    let engine = session.engine();
    let spec = session.container(source_image, "kconfig", scripts::KERNEL_CONFIG);
    engine.create(&spec)?;
    let dir = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    std::fs::write(dir.path().join("config"), text)
        .map_err(BuildError::io("writing the configuration"))?;
    engine.copy_into(&spec.name, dir.path(), "/dmb")?;
    let done = engine.start_attached(&spec.name)?;
    let sections = scripts::sections(&done.stdout);
    match sections.get("config") {
        Some(config) if done.success() => Ok(KernelConfig::parse(config)),
        _ => Err(InTreeError::KconfigFailed {
            detail: scripts::records(&done.stdout)
                .find(|r| r.verb == "failed")
                .map(|r| r.args.to_string())
                .unwrap_or_else(|| "no configuration came back".into()),
            log: done.last_lines(LOG_LINES),
        }
        .into()),
    }
}

/// Builds and tags an image; a build that fails gives the last lines of
/// its log.
pub(crate) fn build_image<E: ?Sized + Engine>(
    session: &Session<E>,
    context: &std::path::Path,
    dockerfile_text: &str,
    tag: &str,
    network: bool,
    key: &str,
    progress: &mut dyn Progress,
) -> Result<Result<(), Vec<String>>, crate::Error> {
    let dockerfile = context.join("Dockerfile");
    std::fs::write(&dockerfile, dockerfile_text)
        .map_err(BuildError::io("writing the Dockerfile"))?;
    session.track_dangling(dockerfile::BUILDENV_LABEL, key);
    let done = session.engine().build(
        &BuildRequest {
            context: context.to_path_buf(),
            dockerfile,
            output: BuildOutput::Image(tag.to_string()),
            network,
        },
        &mut |line| progress.log(line),
    )?;
    Ok(if done.success() {
        Ok(())
    } else {
        Err(done.last_lines(LOG_LINES))
    })
}
