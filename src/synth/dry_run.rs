//! `dmb kernel synthesize --dry-run`: what a synthesis would make, from
//! what and with which builder; nothing is downloaded, unpacked or built.
//! The facts are read as a synthesis reads them (the snapshot given, or
//! one taken from the VM: reading only).

use serde::Serialize;

use super::{builder, kernel_compiler, release_and_config, symvers, Snapshot, SynthOptions};
use crate::engine::{Engine, Session};

/// What a synthesis would do.
#[derive(Debug, Clone, Serialize)]
pub struct SynthPlan {
    pub release: String,
    /// The image it would make (or find, made from the same facts).
    pub reference: String,
    pub reference_exists: bool,
    /// The source: given, or the platform's (`source_defaulted`).
    pub source: String,
    pub source_defaulted: bool,
    pub patches: Vec<String>,
    pub build_ref: String,
    /// Why that builder, when dmb picked it.
    pub build_ref_note: Option<String>,
    /// Options set in the kernel's configuration.
    pub config_options: usize,
    /// Kernel exports whose CRCs genksyms would compute.
    pub crcs_to_compute: usize,
    /// Of those, the ones the VM's modules record (each one checked).
    pub crcs_checked: usize,
}

/// Plans a synthesis for `snapshot`; reads only.
pub fn plan<E: ?Sized + Engine>(
    session: &Session<E>,
    snapshot: &Snapshot,
    opts: &SynthOptions,
    source_defaulted: bool,
) -> Result<SynthPlan, crate::Error> {
    let (release, config) = release_and_config(snapshot)?;
    // A source that is not there is refused as a synthesis would.
    super::sources::present(&opts.source)?;
    let compiler = kernel_compiler(snapshot, &config);
    let (build_ref, build_ref_note) = builder(
        session,
        snapshot,
        opts.build_ref.as_deref(),
        compiler.as_ref(),
    )?;
    let reference = opts.reference(&release, snapshot);
    let reference_exists = session.engine().image_id(&reference)?.is_some();
    let wanted = symvers::to_compute(&snapshot.harvest, snapshot.vmlinux_exports.as_ref());
    let checked = snapshot
        .harvest
        .vmlinux_imports()
        .into_iter()
        .filter(|(s, _)| wanted.contains(*s))
        .count();
    Ok(SynthPlan {
        release: release.to_string(),
        reference,
        reference_exists,
        source: opts.source.clone(),
        source_defaulted,
        patches: opts.patches.clone(),
        build_ref,
        build_ref_note,
        config_options: config.len(),
        crcs_to_compute: wanted.len(),
        crcs_checked: checked,
    })
}

impl SynthPlan {
    /// The plan in words, one step a line.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "would synthesize {} for {} from {}{} with {}",
            self.reference,
            self.release,
            self.source,
            if self.source_defaulted {
                " (the platform's source, verified against its published SHA-256; --source overrides)"
            } else {
                ""
            },
            self.build_ref
        )];
        if let Some(note) = &self.build_ref_note {
            lines.push(note.clone());
        }
        if crate::download::is_url(&self.source) {
            lines.push("downloading the source first, unless an earlier run kept it".into());
        }
        lines.push(format!(
            "unpacking the source{} into a dmb-kernel-source image (once per source and builder)",
            if self.patches.is_empty() {
                String::new()
            } else {
                format!(" with {} patch set(s)", self.patches.len())
            }
        ));
        lines.push(format!(
            "checking the kernel's configuration ({} options) against the source (olddefconfig): any change is refused",
            self.config_options
        ));
        lines.push("preparing the tree (make modules_prepare; cached)".into());
        lines.push(format!(
            "computing the CRCs of {} kernel exports with genksyms, checking the {} the VM's modules record",
            self.crcs_to_compute, self.crcs_checked
        ));
        lines.push(if self.reference_exists {
            format!(
                "{} exists: reused when it was made from the same facts and source, else made again",
                self.reference
            )
        } else {
            format!("packing the image {}", self.reference)
        });
        lines
    }
}
