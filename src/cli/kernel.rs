//! `dmb kernel synthesize`.

use std::io::Write;
use std::path::PathBuf;

use super::detect::ProbeArgs;
use super::output::print_result;
use super::terminal::Terminal;
use super::{connect, Cli, Outcome};
use crate::detect;
use crate::engine::{BuilderPreference, Session};
use crate::synth::{self, Snapshot, SynthOptions, Synthesized};

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
    /// The kernel's source: a tarball (.tar, .tar.gz, .tar.xz, …), a
    /// directory, or an http(s) URL (downloaded once, kept by its hash).
    /// Default: for a LinuxKit kernel, kernel.org's linux-<version>.tar.xz.
    #[arg(long, value_name = "TARBALL|DIR|URL")]
    pub source: Option<String>,

    /// The source's SHA-256; a different one is refused. A URL needs one
    /// unless its publisher lists it (kernel.org does).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,

    /// Patches to apply to the source, in order (repeatable): a directory
    /// of *.patch files (its `series` gives the order, else their names), a
    /// .patch file, a tarball of patches, or an http(s) URL of either
    /// (verified: end it with #sha256=HEX).
    #[arg(long, value_name = "DIR|FILE|URL")]
    pub patches: Vec<String>,

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

    /// Say what it would make, from which source and with which builder,
    /// and create nothing (no download, no image); the VM's facts are read.
    #[arg(long)]
    pub dry_run: bool,
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
    let mut terminal = Terminal::for_cli(cli);
    let snapshot = match snapshot {
        Some(s) => s,
        None => {
            let detection = detect::detect(&session, &args.probe.options())?;
            Snapshot::take(&session, &detection, &detection.probe_image, &mut terminal)?
        }
    };
    let (source, defaulted) = source_for(&snapshot, args.source.as_deref(), &mut terminal)?;
    let opts = SynthOptions {
        source,
        sha256: args.sha256.clone(),
        patches: args.patches.clone(),
        build_ref: args.build_ref.clone(),
        tag: args.tag.clone(),
    };
    if args.dry_run {
        let plan = synth::dry_run::plan(&session, &snapshot, &opts, defaulted)?;
        terminal.finish();
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&plan).expect("a plan serialises")
            );
        } else {
            for line in plan.describe() {
                println!("{line}");
            }
        }
        return Ok(0);
    }
    let done = synth::synthesize(&session, &snapshot, &opts, &mut terminal)?;
    terminal.finish();
    for n in &done.notes {
        terminal_note(cli.quiet, n);
    }
    print_result(args.json, &done, write_human);
    Ok(0)
}

/// The source given, else the platform's own, said aloud (and whether it
/// is that default).
fn source_for(
    snapshot: &Snapshot,
    given: Option<&str>,
    progress: &mut dyn crate::progress::Progress,
) -> Result<(String, bool), crate::Error> {
    let release = snapshot.release()?;
    let (source, defaulted) =
        synth::sources::given_or_default(given, &release, &snapshot.proc_version)?;
    if defaulted {
        progress.step(&format!(
            "no --source given: the kernel's source for {release} is {source} (verified against the publisher's SHA-256 list); --source overrides"
        ));
    }
    Ok((source, defaulted))
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
