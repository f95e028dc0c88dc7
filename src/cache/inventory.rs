//! Everything dmb keeps, as one list: the images and volumes it made in the
//! engine, BuildKit's cache mounts of its module builds, and the files of
//! its cache directory. Each entry says what it is for, its size, and
//! which prune removes it. Pure: built from what the engine and the
//! directory hold ([`super::keep`] reads both).
//!
//! `dmb cache prune` removes what dmb makes again by itself in seconds to
//! minutes, from images the engine still has (build environments, prepared
//! trees, kept objects) and what can never be used again (facts of images
//! that are gone). `--all` also removes what takes long or the network to
//! make again: synthesized kernel images and downloads.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::engine::storage::DiskUsage;

/// What kind of thing an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    BuildEnvironment,
    KernelTree,
    SynthesisTree,
    SynthesizedKernel,
    LeftoverLayers,
    ModuleObjects,
    ModuleObjectsBuildkit,
    KernelFacts,
    KernelKbuildFiles,
    BuildEnvironmentFacts,
    ProbeImageChecks,
    ProbeImageChoice,
    Downloads,
    Other,
}

impl Kind {
    /// What the user reads in `dmb cache`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::BuildEnvironment => "build environment",
            Kind::KernelTree => "kernel tree (--in-tree)",
            Kind::SynthesisTree => "kernel tree (synthesis)",
            Kind::SynthesizedKernel => "synthesized kernel",
            Kind::LeftoverLayers => "leftover layers",
            Kind::ModuleObjects => "module objects",
            Kind::ModuleObjectsBuildkit => "module objects (BuildKit)",
            Kind::KernelFacts => "kernel facts",
            Kind::KernelKbuildFiles => "kernel Kconfig files",
            Kind::BuildEnvironmentFacts => "build environment facts",
            Kind::ProbeImageChecks => "probe image checks",
            Kind::ProbeImageChoice => "probe image choice",
            Kind::Downloads => "downloads",
            Kind::Other => "other",
        }
    }

    /// What it is for.
    pub fn purpose(self) -> &'static str {
        match self {
            Kind::BuildEnvironment => "a builder with a kernel's headers: a build starts at make",
            Kind::KernelTree => "a kernel's source, configured and prepared for --in-tree builds",
            Kind::SynthesisTree => "the kernel tree a synthesis unpacked and prepared",
            Kind::SynthesizedKernel => {
                "a kernel image for a kernel whose headers nobody published (minutes to make again)"
            }
            Kind::LeftoverLayers => {
                "untagged layers of dmb's image builds (an interrupted or replaced build)"
            }
            Kind::ModuleObjects => {
                "a module's objects from its last build: a rebuild compiles only what changed"
            }
            Kind::ModuleObjectsBuildkit => "the same, kept by BuildKit (--builder buildkit)",
            Kind::KernelFacts => "a kernel image's .config, Module.symvers and release, read once",
            Kind::KernelKbuildFiles => {
                "a kernel image's Kconfig and Kbuild files (--in-tree, dmb detect NAME)"
            }
            Kind::BuildEnvironmentFacts => "the header trees and facts of a build environment",
            Kind::ProbeImageChecks => "which images have the probe's tools",
            Kind::ProbeImageChoice => "the probe image chosen last time",
            Kind::Downloads => "kernel sources and patches fetched for synthesis, by SHA-256",
            Kind::Other => "files dmb does not know (an older dmb's)",
        }
    }

    /// Whether `dmb cache prune` without `--all` removes it.
    fn cheap(self) -> bool {
        !matches!(
            self,
            Kind::SynthesizedKernel | Kind::Downloads | Kind::ProbeImageChoice | Kind::Other
        )
    }
}

/// Which prune removes an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Pruning {
    /// `dmb cache prune`
    #[serde(rename = "prune")]
    Prune,
    /// only `dmb cache prune --all`
    #[serde(rename = "prune --all")]
    All,
}

/// Where an entry lives, and what names it for removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "place", rename_all = "kebab-case")]
pub enum Place {
    /// An image of the engine; removed by its tag, or by ID when untagged.
    Image {
        id: String,
    },
    Volume,
    /// BuildKit cache records.
    BuildCache {
        ids: Vec<String>,
    },
    /// Files of the cache directory.
    Host {
        paths: Vec<PathBuf>,
    },
}

/// One thing dmb keeps (a host entry: the files of one kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: Kind,
    /// An image reference, a volume's name, or a directory.
    pub name: String,
    #[serde(rename = "for")]
    pub purpose: &'static str,
    pub bytes: u64,
    /// An image's layers that other images share: freed only when those
    /// go too (a build environment's, under the kernel trees built on it).
    pub shared_bytes: u64,
    /// A container uses it: no prune removes it.
    pub in_use: bool,
    pub pruned_by: Pruning,
    /// For host entries: whether these files belong to images the engine
    /// no longer has.
    pub stale: bool,
    #[serde(flatten)]
    pub place: Place,
}

/// What dmb keeps, and the engine's BuildKit cache as a whole (shared with
/// every other build of the engine, so not dmb's to remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub cache_dir: Option<PathBuf>,
    pub entries: Vec<Entry>,
    pub total_bytes: u64,
    pub buildkit_cache_bytes: u64,
}

/// The images carrying dmb's labels (`dmb.buildenv` on what builds make,
/// `dmb.synthesized` on synthesized kernels).
#[derive(Debug, Clone, Default)]
pub struct Labelled {
    pub made: BTreeSet<String>,
    pub synthesized: BTreeSet<String>,
}

/// A file of the cache directory: its kind's directory (`kernel-facts`),
/// its name within that, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    pub top: String,
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Marks BuildKit's cache mounts of dmb's module builds: the build script
/// that mounts them runs from here.
const BUILD_SCRIPT_DIR: &str = "/usr/local/dmb/";

impl Inventory {
    pub fn new(
        usage: &DiskUsage,
        labelled: &Labelled,
        cache_dir: Option<PathBuf>,
        host: &[HostFile],
    ) -> Inventory {
        let mut entries = Vec::new();
        let mut seen = BTreeSet::new();
        for image in &usage.images {
            let ours =
                labelled.made.contains(&image.id) || labelled.synthesized.contains(&image.id);
            let kind = match image.reference.as_deref() {
                _ if !ours => continue,
                None => Kind::LeftoverLayers,
                Some(_) if labelled.synthesized.contains(&image.id) => Kind::SynthesizedKernel,
                Some(r) => match repository(r) {
                    "dmb-buildenv" => Kind::BuildEnvironment,
                    "dmb-kernel-source" | "dmb-kernel-prepared" => Kind::KernelTree,
                    "dmb-synth-source" | "dmb-synth-prepared" => Kind::SynthesisTree,
                    "dmb-synth/kernel" => Kind::SynthesizedKernel,
                    // An image built FROM one of dmb's inherits its label:
                    // it is someone else's.
                    _ => continue,
                },
            };
            // `system df` lists an untagged image once per layer chain; an
            // image with several tags once per tag, its size counted once.
            let first = seen.insert(image.id.clone());
            if kind == Kind::LeftoverLayers && !first {
                continue;
            }
            let mut e = entry(
                kind,
                image.reference.clone().unwrap_or_else(|| short(&image.id)),
                if first { image.unique_bytes } else { 0 },
                image.containers > 0,
                Place::Image {
                    id: image.id.clone(),
                },
            );
            e.shared_bytes = image.shared_bytes;
            entries.push(e);
        }
        for volume in &usage.volumes {
            if volume
                .labels
                .contains_key(crate::module_build::incremental::VOLUME_LABEL)
            {
                entries.push(entry(
                    Kind::ModuleObjects,
                    volume.name.clone(),
                    volume.bytes,
                    volume.links > 0,
                    Place::Volume,
                ));
            }
        }
        let mounts: Vec<_> = usage
            .build_cache
            .iter()
            .filter(|c| c.kind == "exec.cachemount" && c.description.contains(BUILD_SCRIPT_DIR))
            .collect();
        if !mounts.is_empty() {
            entries.push(entry(
                Kind::ModuleObjectsBuildkit,
                format!("{} BuildKit cache mounts", mounts.len()),
                mounts.iter().map(|m| m.bytes).sum(),
                mounts.iter().any(|m| m.in_use),
                Place::BuildCache {
                    ids: mounts
                        .iter()
                        .filter(|m| !m.in_use)
                        .map(|m| m.id.clone())
                        .collect(),
                },
            ));
        }
        // Host files are named by the image ID they hold facts of, or by a
        // build environment's key (its tag).
        let mut names: BTreeSet<&str> = usage
            .images
            .iter()
            .map(|i| i.id.rsplit(':').next().unwrap_or(&i.id))
            .collect();
        names.extend(
            usage
                .images
                .iter()
                .filter_map(|i| i.reference.as_deref()?.strip_prefix("dmb-buildenv:")),
        );
        entries.extend(host_entries(cache_dir.as_ref(), host, &names));
        let total_bytes = entries.iter().map(|e| e.bytes).sum();
        Inventory {
            cache_dir,
            entries,
            total_bytes,
            buildkit_cache_bytes: usage.build_cache.iter().map(|c| c.bytes).sum(),
        }
    }

    /// The entries a prune removes (`all`: `--all`), those in use aside.
    pub fn to_prune(&self, all: bool) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !e.in_use && (all || e.pruned_by == Pruning::Prune))
            .collect();
        // Children before what they were built from: a tagged parent
        // frees nothing while a child holds its layers.
        v.sort_by_key(|e| std::cmp::Reverse(removal_rank(e.kind)));
        v
    }
}

fn removal_rank(kind: Kind) -> u8 {
    match kind {
        Kind::SynthesizedKernel => 5,
        Kind::KernelTree | Kind::SynthesisTree => 4,
        Kind::BuildEnvironment => 3,
        Kind::LeftoverLayers => 2,
        _ => 1,
    }
}

fn entry(kind: Kind, name: String, bytes: u64, in_use: bool, place: Place) -> Entry {
    Entry {
        kind,
        name,
        purpose: kind.purpose(),
        bytes,
        shared_bytes: 0,
        in_use,
        pruned_by: if kind.cheap() {
            Pruning::Prune
        } else {
            Pruning::All
        },
        stale: false,
        place,
    }
}

/// The files of the cache directory, one entry per kind (two where some
/// belong to images that are gone: those are removed by a plain prune).
/// `images`: the IDs (hex) of the engine's images and the keys of its
/// build environments.
fn host_entries(dir: Option<&PathBuf>, files: &[HostFile], images: &BTreeSet<&str>) -> Vec<Entry> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    let mut groups: std::collections::BTreeMap<(Kind, bool, String), (u64, Vec<PathBuf>)> =
        Default::default();
    for f in files {
        let (kind, image_keyed) = match f.top.as_str() {
            "kernel-facts" => (Kind::KernelFacts, true),
            "kernel-source" => (Kind::KernelKbuildFiles, true),
            // Named by the build environment's key.
            "buildenv-trees" => (Kind::BuildEnvironmentFacts, true),
            // Keyed by a hash of a build environment and a release: they
            // go with the build environments.
            "buildenv-facts" => (Kind::BuildEnvironmentFacts, false),
            "probe-image-check" => (Kind::ProbeImageChecks, true),
            "probe-image" => (Kind::ProbeImageChoice, false),
            "downloads" => (Kind::Downloads, false),
            _ => (Kind::Other, false),
        };
        let stale = image_keyed && {
            let id = f.name.strip_suffix(".tar").unwrap_or(&f.name);
            !images.contains(id)
        };
        let group = groups.entry((kind, stale, f.top.clone())).or_default();
        group.0 += f.bytes;
        group.1.push(f.path.clone());
    }
    groups
        .into_iter()
        .map(|((kind, stale, top), (bytes, paths))| {
            let mut e = entry(
                kind,
                format!(
                    "{} ({} file{}{})",
                    dir.join(&top).display(),
                    paths.len(),
                    if paths.len() == 1 { "" } else { "s" },
                    if stale {
                        ", of images no longer in the engine"
                    } else {
                        ""
                    }
                ),
                bytes,
                false,
                Place::Host { paths },
            );
            e.stale = stale;
            // Facts of images still there are tiny and still right: only
            // --all removes them; those of images gone, any prune.
            let cheap = kind.cheap()
                && (stale || kind == Kind::BuildEnvironmentFacts && top == "buildenv-facts");
            e.pruned_by = if cheap { Pruning::Prune } else { Pruning::All };
            e
        })
        .collect()
}

fn repository(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    }
}

fn short(id: &str) -> String {
    let hex = id.rsplit(':').next().unwrap_or(id);
    hex[..hex.len().min(12)].to_string()
}

/// Sizes as people read them (binary units).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests;
