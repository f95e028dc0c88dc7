//! What `dmb build` prints: a line per module on stdout (`FILE<TAB>KVER<TAB>
//! VERMAGIC`, the seed recipe's contract) and a summary on stderr, or under
//! `--json` one [`BuildReport`] per kernel.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::module_build::BuildOutcome;
use crate::progress::Timings;

/// `dmb build --json`, for one kernel. Field names are a contract
/// (README, "`dmb build --json`").
#[derive(Debug, Serialize)]
pub struct BuildReport {
    pub release: String,
    pub kernel_ref: String,
    pub kernel_image_id: String,
    pub build_ref: String,
    pub builder_image_id: String,
    /// MODULE_REF as made, and its image ID.
    pub image: String,
    pub image_id: String,
    pub modules: Vec<BuiltModule>,
    /// The files `--output` wrote.
    pub files: Vec<PathBuf>,
    /// Whether the modules were checked against the kernel (`--no-check`).
    pub checked: bool,
    pub timings: Timings,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BuiltModule {
    pub name: String,
    pub file: String,
    pub vermagic: Option<String>,
    pub srcversion: Option<String>,
    pub version: Option<String>,
    pub depends: Vec<String>,
}

impl BuildReport {
    pub fn new(outcome: &BuildOutcome, timings: Timings) -> BuildReport {
        BuildReport {
            release: outcome.release.to_string(),
            kernel_ref: outcome.refs.kernel_ref.clone(),
            kernel_image_id: outcome.refs.kernel_id.clone(),
            build_ref: outcome.refs.build_ref.clone(),
            builder_image_id: outcome.refs.build_id.clone(),
            image: outcome.module_ref.clone(),
            image_id: outcome.image_id.clone(),
            modules: outcome
                .modules
                .iter()
                .map(|m| BuiltModule {
                    name: m.name.clone(),
                    file: m.file_name.clone(),
                    vermagic: m.info.vermagic().map(str::to_string),
                    srcversion: m.info.get("srcversion").map(str::to_string),
                    version: m.info.get("version").map(str::to_string),
                    depends: m.info.depends(),
                })
                .collect(),
            files: outcome.output_files.clone(),
            checked: outcome.checked,
            timings,
            notes: outcome.notes.clone(),
        }
    }
}

/// The human form: module lines on stdout; what was written and the
/// summary on stderr (not under `-q`), and the notes (always: they are
/// what a person should know, as a warning is).
pub fn print_human(outcome: &BuildOutcome, quiet: bool) {
    let mut out = std::io::stdout().lock();
    for m in &outcome.modules {
        let _ = writeln!(
            out,
            "{}\t{}\t{}",
            m.file_name,
            outcome.release,
            m.info.vermagic().unwrap_or("")
        );
    }
    for n in &outcome.notes {
        eprintln!("dmb: note: {n}");
    }
    if quiet {
        return;
    }
    for f in &outcome.output_files {
        eprintln!("dmb: wrote {}", f.display());
    }
    eprintln!(
        "dmb: built {} for {} into image {}{}",
        outcome
            .modules
            .iter()
            .map(|m| m.file_name.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        outcome.release,
        outcome.module_ref,
        if outcome.checked {
            " (checked: they will load)"
        } else {
            ""
        }
    );
}

/// Under `--json`: the report of one kernel, or an array of them (one per
/// `--kernel-ref`, in their order) when several were asked for.
pub fn print_json(reports: &[BuildReport], several: bool) {
    let text = if several {
        serde_json::to_string_pretty(reports)
    } else {
        serde_json::to_string_pretty(&reports[0])
    }
    .expect("serialisable");
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
