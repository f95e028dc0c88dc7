//! The build environment: the builder image, completed with a toolchain
//! when it lacks one, plus the kernel's header trees; an image tagged
//! `dmb-buildenv:<key>`, where the key hashes both images' IDs, so that it
//! is made once per builder and kernel and never goes stale.

use sha2::{Digest, Sha256};

use super::{dockerfile, BuildError, Refs, LOG_LINES};
use crate::engine::{BuildEngine, BuildOutput, BuildRequest, EngineError, Session};
use crate::kernel::image::{facts_of_tree, MAX_FACT_FILE};
use crate::kernel::{self, KernelFacts, KernelImageError, KernelRelease};
use crate::progress::Progress;
use crate::scripts;
use crate::toolchain::{Toolchain, ToolchainError};

/// Bump when the build environment's recipe changes, so old caches are not
/// reused.
const BUILDENV_RECIPE: &str = "2";

/// Image name of the cached build environments.
pub const BUILDENV_REPOSITORY: &str = "dmb-buildenv";

/// The cache key of a build environment.
pub fn buildenv_key(build_id: &str, kernel_id: &str) -> String {
    cache_key(&[BUILDENV_RECIPE, build_id, kernel_id])
}

/// A cache image's key: 16 hex digits of a hash of what the image is made
/// of (image IDs, recipes, configurations), so it is never stale.
pub fn cache_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tag of the build environment for `refs`, made when it is not there.
pub fn ensure<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    refs: &Refs,
    progress: &mut dyn Progress,
) -> Result<String, crate::Error> {
    let key = buildenv_key(&refs.build_id, &refs.kernel_id);
    let tag = format!("{BUILDENV_REPOSITORY}:{key}");
    if session.engine().image_id(&tag)?.is_none() {
        prepare(session, refs, &key, &tag, progress)?;
    }
    Ok(tag)
}

/// The release to build for: `--kver`, or the only kernel tree there is.
///
/// The listing of a build environment's trees is kept on the host, under
/// its key: the key hashes the images it was made of, so the listing can
/// never go stale, and a warm build needs no container for it.
pub fn release<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    buildenv: &str,
    refs: &Refs,
) -> Result<KernelRelease, crate::Error> {
    let cached = crate::cache::file_for_image("buildenv-trees", buildenv);
    let listing = match crate::cache::read_files(cached.as_deref())
        .and_then(|mut f| f.remove("listing"))
        .and_then(|l| String::from_utf8(l).ok())
    {
        Some(listing) => listing,
        None => {
            let listing = session
                .engine()
                .run(&session.request(buildenv, "trees", scripts::TREE_LISTING))?
                .stdout;
            if let Some(path) = cached {
                let files = [("listing".to_string(), listing.clone().into_bytes())].into();
                crate::cache::store_files(&path, &files);
            }
            listing
        }
    };
    let trees = kernel::parse_tree_listing(&listing);
    Ok(kernel::select_tree(
        &refs.kernel_ref,
        &trees,
        refs.kver.as_deref(),
    )?)
}

/// The kernel's facts from the header tree already unpacked in the build
/// environment: a few small files, instead of streaming the whole
/// `kernel-dev.tar` out of the engine again. They are kept on the host
/// under the build environment's key and the release, as its tree listing
/// is.
pub fn facts<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    buildenv: &str,
    kernel_ref: &str,
    release: &KernelRelease,
) -> Result<KernelFacts, crate::Error> {
    let cached =
        crate::cache::file_for_image("buildenv-facts", &cache_key(&[buildenv, release.as_str()]));
    let files = match crate::cache::read_files(cached.as_deref()) {
        Some(files) => files,
        None => {
            let scratch = session.scratch(buildenv)?;
            let tree = kernel::headers_dir(release.as_str());
            let mut files = std::collections::BTreeMap::new();
            for name in kernel::facts::FACT_FILES {
                if let Some(data) =
                    scratch.read_small_file(&format!("{tree}/{name}"), MAX_FACT_FILE)?
                {
                    files.insert(name.to_string(), data);
                }
            }
            drop(scratch);
            if let Some(path) = cached {
                crate::cache::store_files(&path, &files);
            }
            files
        }
    };
    Ok(facts_of_tree(kernel_ref, release, &files)?)
}

/// Builds and tags the build environment for this builder and kernel.
fn prepare<E: ?Sized + BuildEngine>(
    session: &Session<E>,
    refs: &Refs,
    key: &str,
    tag: &str,
    progress: &mut dyn Progress,
) -> Result<(), crate::Error> {
    let engine = session.engine();
    let (kernel_ref, build_ref) = (refs.kernel_ref.as_str(), refs.build_ref.as_str());
    progress.step(&format!("checking kernel image {kernel_ref}"));
    let image = session.scratch(kernel_ref)?;
    for file in kernel::REQUIRED_FILES {
        if image.file_size(file)?.is_none() {
            return Err(KernelImageError::MissingFile {
                reference: kernel_ref.to_string(),
                file: file.to_string(),
            }
            .into());
        }
    }
    drop(image);

    progress.step(&format!("checking the toolchain of {build_ref}"));
    let toolchain_error = |source| BuildError::Toolchain {
        reference: build_ref.to_string(),
        source,
    };
    let found = engine
        .run(&session.request(build_ref, "probe", scripts::TOOLCHAIN))
        .map_err(|e| match e {
            EngineError::Command { detail, .. } => {
                toolchain_error(ToolchainError::ProbeFailed { detail }).into()
            }
            other => crate::Error::from(other),
        })?;
    let toolchain = Toolchain::from_probe(&found.stdout);
    let install = toolchain.install_step().map_err(toolchain_error)?;
    if install.is_some() {
        progress.step(&format!(
            "{build_ref} lacks {}: installing a toolchain (cached)",
            toolchain.missing().join(", ")
        ));
    }

    progress.step(&format!("preparing the build environment {tag}"));
    let context = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let dockerfile = context.path().join("Dockerfile");
    std::fs::write(
        &dockerfile,
        dockerfile::buildenv(
            build_ref,
            kernel_ref,
            key,
            install,
            engine.builder().is_buildkit(),
        ),
    )
    .map_err(BuildError::io("writing the Dockerfile"))?;
    std::fs::write(
        context.path().join("buildenv_unpack.sh"),
        scripts::BUILDENV_UNPACK,
    )
    .map_err(BuildError::io("writing the build context"))?;
    session.track_dangling(dockerfile::BUILDENV_LABEL, key);
    let done = engine.build(
        &BuildRequest {
            context: context.path().to_path_buf(),
            dockerfile,
            output: BuildOutput::Image(tag.to_string()),
            network: install.is_some(),
        },
        &mut |line| progress.log(line),
    )?;
    if !done.success() {
        return Err(BuildError::BuildEnvFailed {
            reference: build_ref.to_string(),
            log: done.last_lines(LOG_LINES),
        }
        .into());
    }
    Ok(())
}
