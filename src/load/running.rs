//! The running kernel as the check before a load sees it: its release, its
//! configuration and built-in modules, what it has loaded and installed,
//! and the CRCs of its exports, from its kernel image's `Module.symvers` or
//! from what its installed modules record. Assembled once, from detection
//! and the modules to load; never patched afterwards.

use std::collections::HashSet;

use serde::Serialize;

use super::plan::ToLoad;
use super::vm;
use super::LoadError;
use crate::detect::Detection;
use crate::engine::{Engine, Session};
use crate::kernel::image::facts_from_image;
use crate::kernel::{KernelFacts, KernelImageError};
use crate::progress::Progress;

/// Where the CRCs of the running kernel's exports come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrcSource {
    /// The kernel image's Module.symvers when the image is in the engine,
    /// else the installed modules.
    #[default]
    Auto,
    /// The `Module.symvers` of the kernel image (KERNEL_REF, or the one
    /// `/etc/linuxkit.yml` names).
    KernelImage,
    /// What the VM's installed modules record in their `__versions`.
    InstalledModules,
}

/// What the modules to load are checked against.
#[derive(Debug, Clone)]
pub struct RunningKernel {
    pub facts: KernelFacts,
    /// Where the facts' CRCs came from, for people.
    pub crc_source: String,
}

impl RunningKernel {
    /// Vermagic from the running kernel's release and configuration, CRCs
    /// from its kernel image (`kernel_ref`, else the detected one) or its
    /// installed modules, as `crcs` says.
    pub fn read<E: ?Sized + Engine>(
        session: &Session<E>,
        detection: &Detection,
        crcs: CrcSource,
        kernel_ref: Option<&str>,
        probe_image: &str,
        modules: &[ToLoad],
        progress: &mut dyn Progress,
    ) -> Result<RunningKernel, crate::Error> {
        let reference = kernel_ref
            .map(str::to_string)
            .or_else(|| detection.kernel_ref.reference.clone());
        // Where nobody published the kernel's image, the one synthesized for
        // it (`dmb kernel synthesize`, or a `dmb build`) serves as well.
        let synthesized = || crate::synth::auto::synthesized_image(session, detection);
        let use_image =
            match (crcs, &reference) {
                (CrcSource::InstalledModules, _) => None,
                (CrcSource::KernelImage, None) => match synthesized()? {
                    Some(s) => Some(s),
                    None => return Err(LoadError::NoKernelFacts {
                        detail:
                            "no kernel image is known for the running kernel (give --kernel-ref)"
                                .into(),
                    }
                    .into()),
                },
                (CrcSource::KernelImage, Some(r)) => Some(r.clone()),
                (CrcSource::Auto, Some(r)) if session.engine().image_id(r)?.is_some() => {
                    Some(r.clone())
                }
                (CrcSource::Auto, _) if kernel_ref.is_none() => synthesized()?,
                (CrcSource::Auto, _) => None,
            };
        let release = &detection.release;
        let loaded: HashSet<String> = detection.loaded.modules.keys().cloned().collect();
        let installed: HashSet<String> = loaded
            .iter()
            .chain(&detection.modules.on_disk)
            .cloned()
            .collect();
        let builtin: HashSet<String> = detection.modules.builtin.iter().cloned().collect();
        if let Some(reference) = use_image {
            progress.step(&format!("reading Module.symvers of {reference}"));
            let image = facts_from_image(session, &reference, Some(release.as_str())).map_err(
                |e| match e {
                    crate::Error::KernelImage(KernelImageError::ReleaseNotInImage {
                        available,
                        ..
                    }) => LoadError::KernelImageRelease {
                        reference: reference.clone(),
                        image_release: available.join(", "),
                        running: release.to_string(),
                    }
                    .into(),
                    other => other,
                },
            )?;
            if image.release != *release {
                return Err(LoadError::KernelImageRelease {
                    reference,
                    image_release: image.release.to_string(),
                    running: release.to_string(),
                }
                .into());
            }
            let facts = KernelFacts {
                // The running kernel's own configuration, when the VM shows it.
                config: if detection.config.is_empty() {
                    image.config.clone()
                } else {
                    detection.config.clone()
                },
                builtin: image.builtin.union(&builtin).cloned().collect(),
                installed,
                loaded,
                ..image
            };
            return Ok(RunningKernel {
                facts,
                crc_source: format!("Module.symvers of kernel image {reference}"),
            });
        }
        if !detection.vm_files {
            return Err(LoadError::NoKernelFacts {
                detail: format!(
                    "no kernel image{} and the VM's installed modules cannot be read without entering the VM (--no-vm-files, or refused)",
                    reference.map(|r| format!(" ({r} is not in the engine)")).unwrap_or_default()
                ),
            }
            .into());
        }
        progress.step("reading the CRCs the VM's installed modules record");
        // The symbols the modules import from outside their own set.
        let exported: HashSet<&str> = modules
            .iter()
            .flat_map(|c| c.file.module.exports.iter().map(|e| e.symbol.as_str()))
            .collect();
        let wanted: HashSet<String> = modules
            .iter()
            .flat_map(|c| c.file.module.versions.iter().map(|v| v.symbol.clone()))
            .filter(|s| !exported.contains(s.as_str()))
            .collect();
        let found = vm::installed_modules(session, probe_image, &wanted)?;
        if found.count == 0 {
            return Err(LoadError::NoKernelFacts {
                detail: format!("the VM has no modules in /lib/modules/{release}"),
            }
            .into());
        }
        if found.vermagic.is_none() && detection.config.is_empty() {
            return Err(LoadError::NoKernelFacts {
                detail:
                    "neither the installed modules nor a kernel configuration give the vermagic"
                        .into(),
            }
            .into());
        }
        let crc_source = format!(
            "the __versions of {} of the VM's installed modules{}{}",
            found.count,
            if found.complete {
                " (all)"
            } else {
                " (enough to find every imported symbol)"
            },
            match (crcs, &reference) {
                (CrcSource::Auto, Some(r)) => format!(" (kernel image {r} is not in the engine)"),
                (CrcSource::Auto, None) => " (no kernel image is known)".to_string(),
                _ => String::new(),
            }
        );
        Ok(RunningKernel {
            facts: found.facts(vm::RunningSide {
                release: release.clone(),
                config: detection.config.clone(),
                builtin,
                installed,
                loaded,
            }),
            crc_source,
        })
    }
}
