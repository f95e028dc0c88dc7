//! Which images a build uses: KERNEL_REF and BUILD_REF as given, or, when
//! either is not given, as detection finds them; settled once, before
//! anything is built, into [`Refs`] with nothing left open.

use super::{check_reference, BuildError};
use crate::detect::{self, DetectOptions, Detection};
use crate::engine::{Base, Session};
use crate::kernel::KernelImageError;
use crate::progress::Progress;

/// What the user said about the images.
#[derive(Debug, Clone, Default)]
pub struct RefOptions {
    pub kernel_ref: Option<String>,
    pub build_ref: Option<String>,
    /// Which release of the kernel image, when it holds more than one.
    pub kver: Option<String>,
    /// How to detect the running kernel when a ref is missing; `None`:
    /// missing refs are an error.
    pub detect: Option<DetectOptions>,
    /// The detection the caller already made (it is not made again).
    pub detected: Option<Detection>,
}

/// The images of one build, all in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    pub kernel_ref: String,
    pub kernel_id: String,
    pub build_ref: String,
    pub build_id: String,
    /// The release to build for, when chosen (else the image's only one).
    pub kver: Option<String>,
}

impl Refs {
    /// Detects the running kernel when a ref is missing and detection is
    /// allowed, then settles the refs.
    pub fn resolve<E: ?Sized + Base>(
        session: &Session<E>,
        opts: &RefOptions,
        progress: &mut dyn Progress,
    ) -> Result<Refs, crate::Error> {
        let missing = opts.kernel_ref.is_none() || opts.build_ref.is_none();
        let found = match (&opts.detected, &opts.detect, missing) {
            (Some(d), _, _) => Some(d.clone()),
            (None, Some(detect), true) => {
                progress.step("detecting the running kernel");
                Some(detect::detect(session, detect)?)
            }
            _ => None,
        };
        Self::resolve_detected(session, opts, found.as_ref(), progress)
    }

    /// Settles the refs, taking what is missing from `found`.
    pub fn resolve_detected<E: ?Sized + Base>(
        session: &Session<E>,
        opts: &RefOptions,
        found: Option<&Detection>,
        progress: &mut dyn Progress,
    ) -> Result<Refs, crate::Error> {
        let mut kernel_ref = opts.kernel_ref.clone();
        let mut build_ref = opts.build_ref.clone();
        let mut kver = opts.kver.clone();
        if let (Some(found), true) = (found, kernel_ref.is_none() || build_ref.is_none()) {
            progress.step(&format!(
                "detected {} on {}",
                found.release, found.platform_name
            ));
            if kernel_ref.is_none() {
                if let Some(w) = &found.kernel_ref.warning {
                    progress.warn(w);
                }
                kernel_ref = found.kernel_ref.reference.clone();
                if let Some(k) = &kernel_ref {
                    progress.step(&format!(
                        "KERNEL_REF {k} (from {})",
                        found.kernel_ref.source
                    ));
                    // Build for the running kernel, should its image hold several.
                    kver.get_or_insert_with(|| found.release.to_string());
                }
            }
            if build_ref.is_none() {
                build_ref = found.build_ref.reference.clone();
                match &build_ref {
                    Some(b) => {
                        progress.step(&format!("BUILD_REF {b} ({})", found.build_ref.reason))
                    }
                    None => progress.warn(&format!(
                        "no builder image found: {}",
                        found.build_ref.reason
                    )),
                }
            }
        }
        let kernel_ref = kernel_ref.ok_or(KernelImageError::NotGiven)?;
        let build_ref = build_ref.ok_or(BuildError::BuildRefNotGiven)?;
        check_reference(&kernel_ref)?;
        check_reference(&build_ref)?;
        let engine = session.engine();
        let kernel_id =
            engine
                .image_id(&kernel_ref)?
                .ok_or_else(|| KernelImageError::NotFound {
                    reference: kernel_ref.clone(),
                })?;
        let build_id =
            engine
                .image_id(&build_ref)?
                .ok_or_else(|| BuildError::BuildRefNotFound {
                    reference: build_ref.clone(),
                })?;
        Ok(Refs {
            kernel_ref,
            kernel_id,
            build_ref,
            build_id,
            kver,
        })
    }
}
