//! Kernel images for kernels whose headers nobody published, synthesized
//! from the running kernel's own facts (a [`Snapshot`]) and its public
//! source:
//!
//! ```text
//! Snapshot (release, /proc/version, config, harvested CRCs, export list, BTF)
//!   ── builder: the image whose gcc is the kernel's (existing selection)
//!   ── source image: the builder + kernel tools + the source unpacked and patched
//!        (dmb-synth-source:<key>; scripts/synth_source.sh)
//!   ── config_check: olddefconfig over the VM's configuration changes nothing (pure)
//!   ── prepared image: make KERNELRELEASE=<release> modules_prepare
//!        (dmb-synth-prepared:<key>; scripts/kernel_prepare.sh)
//!   ── CRCs: genksyms over the exporting files (scripts/kernel_crcs.sh), the
//!        most imported symbols first; symvers::cross_check against the
//!        harvest (pure) refuses any disagreement
//!   ── symvers::assemble (pure) ── Module.symvers
//!   ── the image: kernel-dev.tar, kernel.tar, linux.tar.xz (scripts/synth_pack.sh)
//!        tagged dmb-synth/kernel:<release>-<config hash>
//! ```

pub mod auto;
pub mod config_check;
mod dockerfile;
pub mod dry_run;
pub mod harvest;
pub mod patches;
pub mod snapshot;
pub mod source;
pub mod sources;
pub mod symvers;

use std::collections::BTreeSet;
use std::time::Instant;

use serde::Serialize;

use crate::detect::images::pick_build_ref;
use crate::engine::{Engine, Session};
use crate::kernel::{KernelConfig, KernelRelease};
use crate::module_build::buildenv::cache_key;
use crate::module_build::in_tree::crcs::Computed;
use crate::module_build::in_tree::{srcarch, tree};
use crate::module_build::{BuildError, LOG_LINES};
use crate::progress::Progress;
use crate::scripts;
use crate::toolchain::compiler::{parse_compiler, parse_proc_version, Compiler};
use crate::toolchain::kernel_tools;
pub use snapshot::Snapshot;
use source::{sha256_text, SourceArchive};
use symvers::{Coverage, Disagreement};

/// Bump when a recipe changes, so old images are not reused.
const SOURCE_RECIPE: &str = "1";
const PREPARED_RECIPE: &str = "1";
const IMAGE_RECIPE: &str = "2";

pub const KERNEL_REPOSITORY: &str = "dmb-synth/kernel";
const SOURCE_REPOSITORY: &str = "dmb-synth-source";
const PREPARED_REPOSITORY: &str = "dmb-synth-prepared";
/// On a synthesized image: the release it is for.
pub const SYNTHESIZED_LABEL: &str = "dmb.synthesized";
/// On a synthesized image: the key of everything it was made from.
pub const KEY_LABEL: &str = "dmb.synthesis.key";
pub const COVERAGE_LABEL: &str = "dmb.synthesis.coverage";
pub const SOURCE_LABEL: &str = "dmb.synthesis.source";
/// On a synthesized image: the builder whose compiler it was made with,
/// the one to build its modules with.
pub const BUILDER_LABEL: &str = "dmb.synthesis.builder";

/// The most imported symbols are cross-checked first, so that a source
/// that is not the kernel's is refused after a minute, not ten.
const FIRST_CHECK: usize = 400;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{path}: {reason}")]
    BadSnapshot { path: String, reason: String },
    #[error(
        "a snapshot needs the VM's installed modules, which only a container that enters the VM can read"
    )]
    SnapshotNeedsVmFiles,
    #[error(
        "the kernel {release} shows no configuration (/proc/config.gz, /boot/config-{release})"
    )]
    NoConfig { release: String },
    #[error(
        "no kernel image is known for {release}, and no source to synthesize one from was given"
    )]
    NoSource { release: String, suggestion: String },
    #[error("kernel source {given}: {reason}")]
    Source { given: String, reason: String },
    #[error("no builder image has the kernel's compiler ({compiler}): {reason}")]
    NoBuilder { compiler: String, reason: String },
    #[error("the source's configuration tool changes the kernel's configuration: {}", summary(.changes))]
    ConfigChanged { changes: Vec<String> },
    #[error("the source does not describe the running kernel: {} of {checked} CRCs computed from it differ from what the VM's modules recorded", .disagreements.len())]
    CrcsDisagree {
        disagreements: Vec<Disagreement>,
        checked: usize,
    },
    #[error("{step} failed")]
    StepFailed {
        step: &'static str,
        log: Vec<String>,
    },
    #[error("downloading the kernel source: {0}")]
    Download(#[from] crate::download::DownloadError),
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
}

fn summary(changes: &[String]) -> String {
    let names: Vec<&str> = changes
        .iter()
        .map(|c| c.split(':').next().unwrap_or(c))
        .take(8)
        .collect();
    let more = changes.len().saturating_sub(names.len());
    format!(
        "{}{}",
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

impl SynthError {
    pub fn code(&self) -> i32 {
        use crate::error as e;
        match self {
            SynthError::BadSnapshot { .. }
            | SynthError::SnapshotNeedsVmFiles
            | SynthError::NoConfig { .. } => e::SYNTH_FACTS,
            SynthError::Source { .. } | SynthError::NoSource { .. } | SynthError::Download(_) => {
                e::SYNTH_SOURCE
            }
            SynthError::NoBuilder { .. } => e::BUILD_REF_NOT_GIVEN,
            SynthError::ConfigChanged { .. } => e::SYNTH_CONFIG,
            SynthError::CrcsDisagree { .. } => e::SYNTH_CRCS,
            SynthError::StepFailed { .. } => e::SYNTH_FAILED,
            SynthError::Io { .. } => e::UNEXPECTED,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SynthError::BadSnapshot { .. } => "make one with `dmb detect --save FILE` against the engine whose kernel it is for".into(),
            SynthError::SnapshotNeedsVmFiles => "let dmb enter the VM (no --no-vm-files: a container with --pid=host, CAP_SYS_ADMIN and CAP_SYS_PTRACE); the kernel's CRCs come from its modules".into(),
            SynthError::NoConfig { .. } => "a kernel without CONFIG_IKCONFIG_PROC and no /boot/config file cannot be synthesized: its configuration decides every structure".into(),
            SynthError::NoSource { suggestion, .. } => format!("give the kernel's source with --source: {suggestion} (a file, a directory, or an http(s) URL with --sha256)"),
            SynthError::Source { .. } => "give the kernel's source with --source: a tarball (linux-<version>.tar.xz, a distribution's source tarball) or a directory".into(),
            SynthError::NoBuilder { .. } => "give a builder whose gcc is the kernel's with --build-ref".into(),
            SynthError::ConfigChanged { changes } if changes.iter().any(|c| c.contains("BTF") || c.contains("PAHOLE")) => "the builder's pahole (dwarves) is missing or not the kernel's: BTF options follow it, and they change `struct module`; use a builder with the kernel's pahole".into(),
            SynthError::ConfigChanged { .. } => "the source is not the running kernel's, or the builder's compiler is not its compiler (`dmb detect` names it): give the right --source or --build-ref".into(),
            SynthError::CrcsDisagree { .. } => "modules built from this source would be refused by the kernel (or worse): give the exact source, patches and configuration the kernel was built from".into(),
            SynthError::StepFailed { .. } => "the log above says which tool or file the kernel's build wanted; `-v` shows every engine command".into(),
            SynthError::Download(d) => {
                use crate::download::DownloadError as D;
                match d {
                    D::NoChecksum { .. } => "give its SHA-256 with --sha256: dmb keeps no download it could not verify".into(),
                    D::Mismatch { .. } => "the file is not the one the hash names: check the URL and the hash (nothing was kept)".into(),
                    D::Failed { .. } => "check the URL and the network (a proxy is taken from HTTPS_PROXY); or fetch the file yourself and give it with --source".into(),
                    D::NoCache => "downloads are kept in dmb's cache directory".into(),
                }
            }
            SynthError::Io { .. } => return None,
        })
    }

    pub fn details(&self) -> Vec<String> {
        let indented = |header: &str, lines: &mut dyn Iterator<Item = String>| {
            std::iter::once(header.to_string())
                .chain(lines.map(|l| format!("  {l}")))
                .collect::<Vec<_>>()
        };
        match self {
            SynthError::ConfigChanged { changes } => {
                indented("dmb: olddefconfig changed:", &mut changes.iter().cloned())
            }
            SynthError::CrcsDisagree { disagreements, .. } => {
                let mut lines: Vec<String> = disagreements
                    .iter()
                    .take(30)
                    .map(|d| d.describe())
                    .collect();
                if disagreements.len() > 30 {
                    lines.push(format!("… and {} more", disagreements.len() - 30));
                }
                indented("dmb: symbols whose CRCs disagree:", &mut lines.into_iter())
            }
            SynthError::StepFailed { log, .. } => {
                indented("dmb: the last lines of its log:", &mut log.iter().cloned())
            }
            _ => Vec::new(),
        }
    }
}

/// What to synthesize from.
#[derive(Debug, Clone, Default)]
pub struct SynthOptions {
    /// The kernel's source: a tarball, a directory or an http(s) URL.
    pub source: String,
    /// Its SHA-256, when known.
    pub sha256: Option<String>,
    /// Patches to apply, in order: directories (`series`, else by name),
    /// files, tarballs, URLs (`#sha256=`).
    pub patches: Vec<String>,
    /// The builder; else the one detection picked where the snapshot was
    /// taken, when this engine has it; else the image whose gcc is the kernel's.
    pub build_ref: Option<String>,
    /// The image's tag; else `dmb-synth/kernel:<release>-<config hash>`.
    pub tag: Option<String>,
}

impl SynthOptions {
    /// The image's tag: the one given, else the default for the kernel.
    pub fn reference(&self, release: &KernelRelease, snapshot: &Snapshot) -> String {
        self.tag
            .clone()
            .unwrap_or_else(|| auto::reference_for(release, &snapshot.config))
    }
}

/// A synthesized kernel image.
#[derive(Debug, Clone, Serialize)]
pub struct Synthesized {
    pub reference: String,
    pub release: String,
    pub build_ref: String,
    pub source: String,
    pub coverage: Coverage,
    /// Made by an earlier run from the same facts and source.
    pub cached: bool,
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// The snapshot's release, and its configuration (a synthesis needs one).
fn release_and_config(snapshot: &Snapshot) -> Result<(KernelRelease, KernelConfig), SynthError> {
    let release = snapshot.release()?;
    let config = KernelConfig::parse(&snapshot.config);
    if config.is_empty() {
        return Err(SynthError::NoConfig {
            release: release.to_string(),
        });
    }
    Ok((release, config))
}

/// The compiler that built the kernel: its configuration says, else
/// `/proc/version`.
fn kernel_compiler(snapshot: &Snapshot, config: &KernelConfig) -> Option<Compiler> {
    config
        .get("CC_VERSION_TEXT")
        .and_then(parse_compiler)
        .or_else(|| parse_proc_version(&snapshot.proc_version).and_then(|p| p.compiler))
}

/// The builder, since the kernel's compiler decides options and code: the
/// one given; else the one detection picked where the snapshot was taken,
/// when this engine has it; else the image whose gcc is the kernel's (said
/// in the note).
fn builder<E: ?Sized + Engine>(
    session: &Session<E>,
    snapshot: &Snapshot,
    given: Option<&str>,
    compiler: Option<&Compiler>,
) -> Result<(String, Option<String>), crate::Error> {
    if let Some(r) = given {
        return Ok((r.to_string(), None));
    }
    if let Some(r) = &snapshot.build_ref {
        if session.engine().image_id(r)?.is_some() {
            return Ok((r.clone(), None));
        }
    }
    let pick = pick_build_ref(session, None, compiler)?;
    let reference = pick.reference.ok_or_else(|| SynthError::NoBuilder {
        compiler: compiler
            .map(|c| format!("{} {}", c.command, c.version))
            .unwrap_or_else(|| "unknown".into()),
        reason: pick.reason.clone(),
    })?;
    let note = format!("builder {reference}: {}", pick.reason);
    Ok((reference, Some(note)))
}

/// Synthesizes (or finds, made earlier from the same facts) the kernel
/// image for `snapshot`.
pub fn synthesize<E: ?Sized + Engine>(
    session: &Session<E>,
    snapshot: &Snapshot,
    opts: &SynthOptions,
    progress: &mut dyn Progress,
) -> Result<Synthesized, crate::Error> {
    let started = Instant::now();
    let engine = session.engine();
    let (release, config) = release_and_config(snapshot)?;
    let mut notes = Vec::new();

    let compiler = kernel_compiler(snapshot, &config);
    let (build_ref, note) = builder(
        session,
        snapshot,
        opts.build_ref.as_deref(),
        compiler.as_ref(),
    )?;
    notes.extend(note);
    let build_id = engine
        .image_id(&build_ref)?
        .ok_or_else(|| BuildError::BuildRefNotFound {
            reference: build_ref.clone(),
        })?;
    let command = compiler
        .as_ref()
        .map_or_else(|| "gcc".to_string(), |c| c.command.clone());
    let arch = srcarch(&config);

    // The source, unpacked and patched in the builder (with the tools a
    // kernel-tree build needs installed when the builder lacks them).
    let archive = SourceArchive::open(&opts.source, opts.sha256.as_deref(), progress)?;
    let patches = patches::collect(&opts.patches, progress)?;
    let patches_key = patches
        .iter()
        .map(|(name, data)| format!("{name}:{}", sha256_text(data)))
        .collect::<Vec<_>>()
        .join(",");
    let mut needs = kernel_tools::needs(&config);
    if !patches.is_empty() {
        needs.push(kernel_tools::patch_need());
    }
    let install = tree::tools_install(session, &build_ref, &build_ref, &needs, progress)?;
    let source_key = cache_key(&[
        SOURCE_RECIPE,
        &build_id,
        &archive.sha256,
        &patches_key,
        &command,
        arch,
        release.as_str(),
        install.as_deref().unwrap_or(""),
    ]);
    let source_tag = format!("{SOURCE_REPOSITORY}:{source_key}");
    if engine.image_id(&source_tag)?.is_none() {
        progress.step(&format!(
            "unpacking {} (sha256 {}) into {source_tag}{} (once per source and builder)",
            archive.name,
            &archive.sha256[..16],
            if !patches.is_empty() {
                ", with its patches"
            } else {
                ""
            }
        ));
        let context = tempdir()?;
        let dmb = context.path().join("dmb");
        write(
            &dmb.join("synth_source.sh"),
            scripts::SYNTH_SOURCE.as_bytes(),
        )?;
        archive
            .place(&dmb.join("source"))
            .map_err(io_error("placing the source in the build context"))?;
        for (name, data) in &patches {
            write(&dmb.join("patches").join(name), data)?;
        }
        let text = dockerfile::source(
            &build_ref,
            &source_key,
            release.as_str(),
            &command,
            arch,
            install.as_deref(),
        );
        tree::build_image(
            session,
            context.path(),
            &text,
            &source_tag,
            install.is_some(),
            &source_key,
            progress,
        )?
        .map_err(|log| SynthError::StepFailed {
            step: "unpacking the source",
            log,
        })?;
    }

    // The VM's configuration, which the source's own tool must leave as it is.
    progress.step("checking the kernel's configuration against the source (olddefconfig)");
    let settled = tree::olddefconfig(session, &source_tag, &snapshot.config)?;
    let check = config_check::compare(&config, &settled);
    if !check.changed.is_empty() {
        return Err(SynthError::ConfigChanged {
            changes: check.changed.iter().map(|c| c.describe()).collect(),
        }
        .into());
    }
    if !check.metadata.is_empty() {
        notes.push(format!(
            "olddefconfig set what the kernel's configuration left out and only module signing reads: {}",
            crate::kernel::config::option_list(check.metadata.iter().map(|c| &c.symbol))
        ));
    }
    if !check.toolchain.is_empty() {
        notes.push(format!(
            "the builder's tools differ from the kernel's, and change nothing else: {}",
            check
                .toolchain
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }

    // The tree, prepared for the exact release.
    let source_id = engine.image_id(&source_tag)?.unwrap_or_default();
    let prepared_key = cache_key(&[
        PREPARED_RECIPE,
        &source_id,
        release.as_str(),
        &snapshot.config,
    ]);
    let prepared_tag = format!("{PREPARED_REPOSITORY}:{prepared_key}");
    if engine.image_id(&prepared_tag)?.is_none() {
        progress.step(&format!(
            "preparing the tree for {release} as {prepared_tag} (make modules_prepare; cached)"
        ));
        let context = tempdir()?;
        write(&context.path().join("config"), snapshot.config.as_bytes())?;
        write(
            &context.path().join("kernel_prepare.sh"),
            scripts::KERNEL_PREPARE.as_bytes(),
        )?;
        let text = crate::module_build::dockerfile::kernel_prepared(
            &source_tag,
            &prepared_key,
            release.as_str(),
            None,
        );
        tree::build_image(
            session,
            context.path(),
            &text,
            &prepared_tag,
            false,
            &prepared_key,
            progress,
        )?
        .map_err(|log| SynthError::StepFailed {
            step: "make modules_prepare",
            log,
        })?;
    }

    // The image, unless an earlier run made it from the same things.
    let prepared_id = engine.image_id(&prepared_tag)?.unwrap_or_default();
    let facts_key = serde_json::to_vec(snapshot).unwrap_or_default();
    let key = cache_key(&[
        IMAGE_RECIPE,
        // The scripts that compute and pack it: a change makes a new image.
        &sha256_text(scripts::KERNEL_CRCS.as_bytes()),
        &sha256_text(scripts::SYNTH_PACK.as_bytes()),
        &prepared_id,
        &sha256_text(&facts_key),
        &snapshot.btf.as_deref().map(sha256_text).unwrap_or_default(),
    ]);
    let reference = opts.reference(&release, snapshot);
    let source_name = format!("{} sha256:{}", archive.name, archive.sha256);
    if label_of(engine, &reference, KEY_LABEL)?.as_deref() == Some(key.as_str()) {
        let coverage: Coverage = label_of(engine, &reference, COVERAGE_LABEL)?
            .and_then(|t| serde_json::from_str(&t.replace('\'', "\"")).ok())
            .unwrap_or_default();
        progress.step(&format!(
            "{reference} is cached (made from the same facts and source)"
        ));
        // The same coverage line as when it was made.
        progress.step(&format!("Module.symvers: {}", coverage.describe()));
        return Ok(Synthesized {
            reference,
            release: release.to_string(),
            build_ref,
            source: source_name,
            coverage,
            cached: true,
            notes,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    // CRCs: the most imported first, so a wrong source is refused early.
    let harvest = &snapshot.harvest;
    let listed = snapshot.vmlinux_exports.as_ref();
    let wanted = symvers::to_compute(harvest, listed);
    let first: BTreeSet<String> = harvest
        .vmlinux_imports()
        .into_iter()
        .map(|(s, _)| s.to_string())
        .filter(|s| wanted.contains(s))
        .take(FIRST_CHECK)
        .collect();
    let rest: BTreeSet<String> = wanted.difference(&first).cloned().collect();
    let mut computed = Computed::default();
    for (round, symbols) in [(1, first), (2, rest)] {
        if symbols.is_empty() {
            continue;
        }
        let t = Instant::now();
        progress.step(&format!(
            "computing the CRCs of {} {}kernel exports from the source (genksyms){}",
            symbols.len(),
            if round == 1 {
                "of the most imported "
            } else {
                "more "
            },
            if round == 1 {
                ", and checking them against what the VM's modules recorded"
            } else {
                ""
            }
        ));
        let more = compute_crcs(session, &prepared_tag, &symbols)?;
        computed.crcs.extend(more.crcs);
        computed.kinds.extend(more.kinds);
        computed.unfound.extend(more.unfound);
        computed.failed.extend(more.failed);
        let disagreements = symvers::cross_check(harvest, &computed);
        if !disagreements.is_empty() {
            return Err(SynthError::CrcsDisagree {
                checked: computed
                    .crcs
                    .keys()
                    .filter(|s| harvest.imports.contains_key(*s))
                    .count(),
                disagreements,
            }
            .into());
        }
        progress.step(&format!(
            "{} CRCs computed in {:.0} s; every one known to the VM's modules agrees",
            computed.crcs.len(),
            t.elapsed().as_secs_f64()
        ));
    }
    if computed.crcs.is_empty() && !wanted.is_empty() {
        return Err(SynthError::StepFailed {
            step: "computing CRCs with genksyms",
            log: vec![format!(
                "genksyms gave no CRC for any of {} symbols ({} in no C file, {} failed)",
                wanted.len(),
                computed.unfound.len(),
                computed.failed.len()
            )],
        }
        .into());
    }
    let (symvers_text, coverage) = symvers::assemble(harvest, listed, &computed);
    progress.step(&format!("Module.symvers: {}", coverage.describe()));
    if listed.is_none() {
        notes.push("/proc/kallsyms lists no exports (CONFIG_KALLSYMS_ALL off): Module.symvers holds what the VM's modules import, and a module importing anything else fails at modpost".into());
    }
    if snapshot.btf.is_some() && config.is_set("DEBUG_INFO_BTF_MODULES") {
        notes.push("modules built against this image carry no BTF (kbuild makes it only against a vmlinux); the kernel loads them all the same, and only BPF tools that read a module's types miss it".into());
    }

    // The image.
    progress.step(&format!(
        "packing {reference} (kernel-dev.tar, kernel.tar, linux.tar.xz)"
    ));
    let context = tempdir()?;
    let dmb = context.path().join("dmb");
    write(&dmb.join("Module.symvers"), symvers_text.as_bytes())?;
    write(&dmb.join("synth_pack.sh"), scripts::SYNTH_PACK.as_bytes())?;
    if let Some(btf) = &snapshot.btf {
        write(&dmb.join("vmlinux.btf"), btf)?;
    }
    // The label holds the counts (`missing` is not serialized).
    let coverage_label = serde_json::to_string(&coverage)
        .unwrap_or_default()
        .replace('"', "'");
    let labels = [
        (SYNTHESIZED_LABEL, release.to_string()),
        (KEY_LABEL, key.clone()),
        (COVERAGE_LABEL, coverage_label),
        (SOURCE_LABEL, source_name.clone()),
        (BUILDER_LABEL, build_ref.clone()),
        (
            "org.mobyproject.linuxkit.kernel.buildimage",
            build_ref.clone(),
        ),
    ];
    let text = dockerfile::image(&prepared_tag, &key, release.as_str(), &labels);
    let previous = engine.image_id(&reference)?;
    tree::build_image(
        session,
        context.path(),
        &text,
        &reference,
        false,
        &key,
        progress,
    )?
    .map_err(|log| SynthError::StepFailed {
        step: "packing the kernel image",
        log,
    })?;
    // The image this tag named before (other facts or source), untagged
    // now: not left dangling.
    if let Some(old) = previous {
        if engine.image_id(&reference)?.as_deref() != Some(old.as_str())
            && engine.image_tags_and_label(&old, SYNTHESIZED_LABEL)?.0 == 0
        {
            engine.remove_image(&old)?;
        }
    }
    Ok(Synthesized {
        reference,
        release: release.to_string(),
        build_ref,
        source: source_name,
        coverage,
        cached: false,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A label of a local image; none when there is no such image.
pub(crate) fn label_of<E: ?Sized + Engine>(
    engine: &E,
    reference: &str,
    label: &str,
) -> Result<Option<String>, crate::Error> {
    if engine.image_id(reference)?.is_none() {
        return Ok(None);
    }
    Ok(engine.image_tags_and_label(reference, label)?.1)
}

/// genksyms over the files that export `symbols`, in the prepared tree.
fn compute_crcs<E: ?Sized + Engine>(
    session: &Session<E>,
    prepared: &str,
    symbols: &BTreeSet<String>,
) -> Result<Computed, crate::Error> {
    let mut request = session.request(prepared, "crcs", scripts::KERNEL_CRCS);
    request.args = symbols.iter().cloned().collect();
    let done = session.engine().run(&request)?;
    if !done.success() {
        return Err(SynthError::StepFailed {
            step: "computing CRCs with genksyms",
            log: done.last_lines(LOG_LINES),
        }
        .into());
    }
    Ok(Computed::parse(&done.stdout))
}

fn tempdir() -> Result<tempfile::TempDir, crate::Error> {
    tempfile::tempdir().map_err(|e| io_error("creating a temporary directory")(e).into())
}

fn write(path: &std::path::Path, data: &[u8]) -> Result<(), crate::Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error("writing the build context"))?;
    }
    std::fs::write(path, data).map_err(|e| io_error("writing the build context")(e).into())
}

fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> SynthError {
    move |e| SynthError::Io {
        what: what.to_string(),
        detail: e.to_string(),
    }
}
