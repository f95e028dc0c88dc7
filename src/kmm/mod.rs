//! A Kubernetes Kernel Module Management (KMM) `Module` for dmb's images,
//! so that a fleet loads them with Kubernetes' own machinery: one kernel
//! mapping per image (its release, from its modules), the module that
//! modprobe loads (its dependencies in the image come with it, through the
//! image's `modules.dep`), and `dirName: /opt`, where dmb's images keep
//! the kmod tree (`/opt/lib/modules/<kver>/`), as KMM expects.
//!
//! Pure: the images' modules in, the manifest out. The schema is KMM's
//! `kmm.sigs.x-k8s.io/v1beta1` `Module`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ko::{machine, Module};

pub const API_VERSION: &str = "kmm.sigs.x-k8s.io/v1beta1";

/// One built image: its reference (as the cluster pulls it) and modules.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub reference: String,
    pub modules: Vec<Module>,
    /// Modules the image holds only because the others need them.
    pub dependencies: Vec<String>,
}

/// What the user chose.
#[derive(Debug, Clone, Default)]
pub struct KmmOptions {
    /// `metadata.name`; default: the module's name, as a Kubernetes name.
    pub name: Option<String>,
    pub namespace: String,
    /// The module modprobe loads; default: the one no other needs.
    pub module: Option<String>,
    /// Module parameters (`name=value`).
    pub parameters: Vec<String>,
    /// `spec.selector`; default: the nodes of the modules' architecture.
    pub selector: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KmmError {
    #[error("no image given")]
    NoImages,
    #[error("{reference} holds no kernel module")]
    Empty { reference: String },
    #[error("{reference}: its modules are built for more than one kernel ({releases})")]
    MixedReleases { reference: String, releases: String },
    #[error("{reference}: a module has no vermagic, so its kernel release is unknown")]
    NoRelease { reference: String },
    #[error("two images are for kernel {release}: {first} and {second}")]
    TwoImagesForOneKernel {
        release: String,
        first: String,
        second: String,
    },
    #[error("{reference} holds {found}, not the modules of {first} ({expected})")]
    DifferentModules {
        reference: String,
        found: String,
        first: String,
        expected: String,
    },
    #[error("the images hold several modules that nothing else needs ({candidates}): choose one with --module")]
    WhichModule { candidates: String },
    #[error("--module {name}: the images hold no such module ({found})")]
    NoSuchModule { name: String, found: String },
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub module_loader: ModuleLoader,
    pub selector: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ModuleLoader {
    pub container: Container,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub modprobe: Modprobe,
    pub kernel_mappings: Vec<KernelMapping>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Modprobe {
    pub module_name: String,
    pub dir_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KernelMapping {
    pub literal: String,
    pub container_image: String,
}

/// The `Module` that loads `images` (one per kernel).
pub fn manifest(images: &[BuiltImage], opts: &KmmOptions) -> Result<Manifest, KmmError> {
    let first = images.first().ok_or(KmmError::NoImages)?;
    let names =
        |i: &BuiltImage| -> BTreeSet<String> { i.modules.iter().map(|m| m.name.clone()).collect() };
    let expected = names(first);
    let mut mappings: Vec<KernelMapping> = Vec::new();
    for image in images {
        if image.modules.is_empty() {
            return Err(KmmError::Empty {
                reference: image.reference.clone(),
            });
        }
        let found = names(image);
        if found != expected {
            return Err(KmmError::DifferentModules {
                reference: image.reference.clone(),
                found: join(&found),
                first: first.reference.clone(),
                expected: join(&expected),
            });
        }
        let release = release_of(image)?;
        if let Some(m) = mappings.iter().find(|m| m.literal == release) {
            return Err(KmmError::TwoImagesForOneKernel {
                release,
                first: m.container_image.clone(),
                second: image.reference.clone(),
            });
        }
        mappings.push(KernelMapping {
            literal: release,
            container_image: image.reference.clone(),
        });
    }
    let module_name = top_module(first, opts.module.as_deref())?;
    let selector = if opts.selector.is_empty() {
        let arch = first
            .modules
            .first()
            .and_then(|m| kubernetes_arch(m.elf.machine));
        BTreeMap::from([(
            match arch {
                Some(_) => "kubernetes.io/arch".to_string(),
                None => "kubernetes.io/os".to_string(),
            },
            arch.unwrap_or("linux").to_string(),
        )])
    } else {
        opts.selector.iter().cloned().collect()
    };
    Ok(Manifest {
        api_version: API_VERSION.to_string(),
        kind: "Module".to_string(),
        metadata: Metadata {
            name: opts
                .name
                .clone()
                .unwrap_or_else(|| kubernetes_name(&module_name)),
            namespace: opts.namespace.clone(),
        },
        spec: Spec {
            module_loader: ModuleLoader {
                container: Container {
                    modprobe: Modprobe {
                        module_name,
                        dir_name: "/opt".to_string(),
                        parameters: opts.parameters.clone(),
                    },
                    kernel_mappings: mappings,
                },
            },
            selector,
        },
    })
}

/// The manifest as YAML.
pub fn to_yaml(manifest: &Manifest) -> String {
    serde_norway::to_string(manifest).expect("a manifest serializes")
}

/// The release every module of the image is for, from its vermagic.
fn release_of(image: &BuiltImage) -> Result<String, KmmError> {
    let mut releases = BTreeSet::new();
    for m in &image.modules {
        let release = m
            .info
            .vermagic()
            .and_then(|v| v.split_whitespace().next())
            .ok_or_else(|| KmmError::NoRelease {
                reference: image.reference.clone(),
            })?;
        releases.insert(release.to_string());
    }
    if releases.len() > 1 {
        return Err(KmmError::MixedReleases {
            reference: image.reference.clone(),
            releases: join(&releases),
        });
    }
    Ok(releases.into_iter().next().expect("a module"))
}

/// The module modprobe is to load: the one given, else the only one of the
/// image's own modules (not its dependencies) that no other module needs.
fn top_module(image: &BuiltImage, given: Option<&str>) -> Result<String, KmmError> {
    let all: BTreeSet<String> = image.modules.iter().map(|m| m.name.clone()).collect();
    if let Some(name) = given {
        let name = crate::ko::module_name(name);
        return if all.contains(&name) {
            Ok(name)
        } else {
            Err(KmmError::NoSuchModule {
                name,
                found: join(&all),
            })
        };
    }
    let needed: BTreeSet<String> = image
        .modules
        .iter()
        .flat_map(|m| m.info.depends())
        .map(|d| crate::ko::module_name(&d))
        .collect();
    let candidates: BTreeSet<String> = all
        .iter()
        .filter(|n| !needed.contains(*n) && !image.dependencies.contains(n))
        .cloned()
        .collect();
    match candidates.len() {
        1 => Ok(candidates.into_iter().next().expect("one")),
        _ => Err(KmmError::WhichModule {
            candidates: join(if candidates.is_empty() {
                &all
            } else {
                &candidates
            }),
        }),
    }
}

/// Kubernetes' name for an ELF machine (`kubernetes.io/arch`).
fn kubernetes_arch(m: u16) -> Option<&'static str> {
    match m {
        machine::X86_64 => Some("amd64"),
        machine::AARCH64 => Some("arm64"),
        machine::ARM => Some("arm"),
        machine::I386 => Some("386"),
        machine::S390 => Some("s390x"),
        machine::PPC64 => Some("ppc64le"),
        machine::RISCV => Some("riscv64"),
        _ => None,
    }
}

/// A module name as a Kubernetes object name (lower case, `-` for `_`).
fn kubernetes_name(module: &str) -> String {
    let name: String = module
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    name.trim_matches(|c| c == '-' || c == '.').to_string()
}

fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
