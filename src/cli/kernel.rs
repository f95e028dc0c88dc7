//! `dmb kernel synthesize`.

use std::io::Write;
use std::path::PathBuf;

use super::detect::ProbeArgs;
use super::output::{print_result, Terminal};
use super::{connect, Cli, Outcome};
use crate::detect;
use crate::engine::{BuilderPreference, Session};
use crate::synth::{self, Snapshot, SynthError, SynthOptions, Synthesized};

#[derive(Debug, clap::Args)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub command: KernelCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KernelCommand {
    /// Make a kernel image (LinuxKit layout) for a kernel whose headers nobody
    /// published, from its own facts and its source; prints its reference.
    Synthesize(SynthesizeArgs),
}

#[derive(Debug, clap::Args)]
pub struct SynthesizeArgs {
    /// The kernel's source: a tarball (.tar, .tar.gz, .tar.xz, …) or a directory.
    #[arg(long, value_name = "TARBALL|DIR")]
    pub source: Option<PathBuf>,

    /// The source tarball's SHA-256; a different one is refused.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,

    /// Patches to apply to the source: a directory of *.patch files (its
    /// `series` file gives the order, else their names).
    #[arg(long, value_name = "DIR")]
    pub patches: Option<PathBuf>,

    /// The facts of the target kernel, from `dmb detect --save FILE`; without
    /// it, the kernel of the engine in reach.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,

    /// Builder image; else the one whose gcc is the kernel's.
    #[arg(long, env = "BUILD_REF")]
    pub build_ref: Option<String>,

    /// Tag for the image (default: dmb-synth/kernel:<release>-<config hash>).
    #[arg(long)]
    pub tag: Option<String>,

    #[command(flatten)]
    pub probe: ProbeArgs,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    /// Print only the result.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(cli: &Cli, args: &KernelArgs) -> Outcome {
    match &args.command {
        KernelCommand::Synthesize(a) => synthesize(cli, a),
    }
}

fn synthesize(cli: &Cli, args: &SynthesizeArgs) -> Outcome {
    let snapshot = args.snapshot.as_deref().map(Snapshot::read).transpose()?;
    let engine = connect(cli, BuilderPreference::Legacy)?;
    let session = Session::new(&engine);
    let mut terminal = Terminal { quiet: args.quiet };
    let snapshot = match snapshot {
        Some(s) => s,
        None => {
            let detection = detect::detect(&session, &args.probe.options())?;
            Snapshot::take(&session, &detection, &args.probe.probe_image, &mut terminal)?
        }
    };
    let Some(source) = args.source.clone() else {
        let release = snapshot.release()?;
        return Err(SynthError::NoSource {
            release: release.to_string(),
            suggestion: synth::sources::suggestion(&release, &snapshot.proc_version),
        }
        .into());
    };
    let opts = SynthOptions {
        source,
        sha256: args.sha256.clone(),
        patches: args.patches.clone(),
        build_ref: args.build_ref.clone(),
        tag: args.tag.clone(),
    };
    let done = synth::synthesize(&session, &snapshot, &opts, &mut terminal)?;
    for n in &done.notes {
        terminal_note(args.quiet, n);
    }
    print_result(args.json, &done, write_human);
    Ok(0)
}

fn terminal_note(quiet: bool, note: &str) {
    if !quiet {
        eprintln!("dmb: note: {note}");
    }
}

fn write_human(out: &mut impl Write, s: &Synthesized) -> std::io::Result<()> {
    eprintln!(
        "dmb: {} {} for {} from {} with {} in {:.0} s; {}",
        if s.cached { "found" } else { "synthesized" },
        s.reference,
        s.release,
        s.source,
        s.build_ref,
        s.seconds,
        s.coverage.describe()
    );
    writeln!(out, "{}", s.reference)
}
