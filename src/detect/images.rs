//! Which images a detected kernel needs: its kernel image (KERNEL_REF) and
//! the image with the compiler that built it (BUILD_REF).

use serde::Serialize;

use super::linuxkit;
use crate::engine::{Base, EngineError, Session};
use crate::kernel::KernelRelease;
use crate::toolchain::compiler::Compiler;
use crate::toolchain::pick::{self, BuilderPick, MatchQuality};

/// The label LinuxKit kernel images name their compiler image with.
pub const BUILDIMAGE_LABEL: &str = "org.mobyproject.linuxkit.kernel.buildimage";
/// The file that names it in older LinuxKit kernel images.
pub const KERNEL_BUILDER_FILE: &str = "/kernel-builder";

/// Where a kernel image reference came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelRefPick {
    pub reference: Option<String>,
    pub source: String,
    pub warning: Option<String>,
}

/// Where the build image comes from, and how well it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildRefPick {
    pub reference: Option<String>,
    pub quality: MatchQuality,
    pub source: String,
    pub reason: String,
}

/// KERNEL_REF: `kernel.image` of `/etc/linuxkit.yml`; else, for a LinuxKit
/// release, the matching `linuxkit/kernel` image (with a warning); else none.
pub fn pick_kernel_ref(
    release: &KernelRelease,
    yaml: Option<&str>,
    notes: &mut Vec<String>,
) -> KernelRefPick {
    if let Some(yaml) = yaml {
        match linuxkit::kernel_image(yaml) {
            Ok(Some(image)) => {
                return KernelRefPick {
                    reference: Some(image),
                    source: "/etc/linuxkit.yml kernel.image".into(),
                    warning: None,
                }
            }
            Ok(None) => notes.push("/etc/linuxkit.yml names no kernel.image".into()),
            Err(e) => notes.push(format!("/etc/linuxkit.yml cannot be read: {e}")),
        }
    }
    if let Some(version) = release.linuxkit_version() {
        let warning = (release.major() == Some(5)).then(|| {
            "Docker Desktop's 5.x kernels carry their own RANDSTRUCT seed: a plain linuxkit/kernel image of the same version may build modules that do not load".to_string()
        });
        return KernelRefPick {
            reference: Some(format!("linuxkit/kernel:{version}")),
            source: "the release (a LinuxKit kernel)".into(),
            warning,
        };
    }
    KernelRefPick {
        reference: None,
        source: "none".into(),
        warning: Some(format!(
            "no /etc/linuxkit.yml, and {release} is not a LinuxKit release: give --kernel-ref"
        )),
    }
}

/// BUILD_REF: what the kernel image names (label or `/kernel-builder`);
/// else a distribution image whose default gcc is the kernel's.
pub fn pick_build_ref<E: ?Sized + Base>(
    session: &Session<E>,
    kernel_ref: Option<&str>,
    compiler: Option<&Compiler>,
) -> Result<BuildRefPick, EngineError> {
    let engine = session.engine();
    if let Some(k) = kernel_ref {
        if engine.image_id(k)?.is_some() {
            if let (_, Some(builder)) = engine.image_tags_and_label(k, BUILDIMAGE_LABEL)? {
                return Ok(BuildRefPick {
                    reference: Some(builder),
                    quality: MatchQuality::Exact,
                    source: format!("label {BUILDIMAGE_LABEL} of {k}"),
                    reason: "the kernel image names the image its kernel was built with".into(),
                });
            }
            let named = session
                .scratch(k)?
                .read_small_file(KERNEL_BUILDER_FILE, 4096)?
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .filter(|n| !n.is_empty());
            if let Some(named) = named {
                return Ok(BuildRefPick {
                    reference: Some(named),
                    quality: MatchQuality::Exact,
                    source: format!("{KERNEL_BUILDER_FILE} of {k}"),
                    reason: "the kernel image names the image its kernel was built with".into(),
                });
            }
        }
    }
    Ok(match compiler {
        Some(c) => {
            let BuilderPick {
                reference,
                quality,
                reason,
            } = pick::for_compiler(c);
            BuildRefPick {
                reference,
                quality,
                source: "the compiler tables".into(),
                reason,
            }
        }
        None => BuildRefPick {
            reference: None,
            quality: MatchQuality::None,
            source: "none".into(),
            reason: "the kernel does not say which compiler built it".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::linuxkit::tests::DD_4_13;

    fn release(r: &str) -> KernelRelease {
        KernelRelease::parse(r).unwrap()
    }

    #[test]
    fn kernel_ref_candidates() {
        let mut notes = Vec::new();
        let p = pick_kernel_ref(&release("5.15.49-linuxkit-pr"), None, &mut notes);
        assert_eq!(p.reference.as_deref(), Some("linuxkit/kernel:5.15.49"));
        assert!(p.warning.unwrap().contains("RANDSTRUCT"));
        let p = pick_kernel_ref(&release("6.12.54-linuxkit"), None, &mut notes);
        assert_eq!(
            (p.reference.as_deref(), p.warning),
            (Some("linuxkit/kernel:6.12.54"), None)
        );
        let p = pick_kernel_ref(&release("6.8.0-31-generic"), None, &mut notes);
        assert_eq!(p.reference, None);
        let p = pick_kernel_ref(&release("5.15.49-linuxkit"), Some(DD_4_13), &mut notes);
        assert!(p
            .reference
            .unwrap()
            .starts_with("docker.io/docker/for-desktop-kernel:5.15.49-"));
    }
}
