//! The command line: arguments, human output, exit codes.

mod detect;
mod exit;
mod load;
mod modules;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::build::{self, BuildOptions, Progress};
use crate::engine::{BuilderChoice, DockerCli, EngineError};

pub use exit::{exit_code, hint};

#[derive(Debug, Parser)]
#[command(
    name = "dmb",
    version,
    about = "Build Linux kernel modules for the kernel inside a container VM (Docker Desktop's LinuxKit VM, …)"
)]
pub struct Cli {
    /// Print every engine command before it runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// The docker CLI to drive.
    #[arg(long, global = true, env = "DMB_DOCKER", default_value = "docker")]
    pub docker: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the modules of MODULE_DIR for a kernel image, package them as an image.
    Build(BuildArgs),
    /// Show what kernel modules are made of (FILE: .ko[.gz|.xz|.zst] or a MODULE_REF image).
    Inspect(modules::InspectArgs),
    /// Tell whether modules will load into a kernel, and why not.
    Check(modules::CheckArgs),
    /// Find the kernel the engine runs, its platform, compiler, kernel and builder images.
    Detect(detect::DetectArgs),
    /// Load modules into the engine's kernel: checked first, in dependency order, optionally kept across restarts.
    Load(load::LoadArgs),
    /// Unload modules (users first), and with --persist stop reloading them.
    Unload(load::UnloadArgs),
    /// The modules dmb loaded, and its loader containers.
    Status(load::StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Directory with the module's Makefile and sources.
    #[arg(default_value = "module")]
    pub module_dir: PathBuf,

    /// Toolchain image; its compiler must be the one that built the kernel.
    #[arg(long, env = "BUILD_REF")]
    pub build_ref: Option<String>,

    /// Image with the kernel's headers, in the LinuxKit kernel layout.
    #[arg(long, env = "KERNEL_REF")]
    pub kernel_ref: Option<String>,

    /// Image to create with the built modules.
    #[arg(long, env = "MODULE_REF", default_value = "kernel-module")]
    pub module_ref: String,

    /// Kernel release to build for, when the kernel image holds more than one.
    #[arg(long)]
    pub kver: Option<String>,

    /// Also write the .ko files to this directory.
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    /// Image builder.
    #[arg(long, env = "DMB_BUILDER", value_enum, default_value_t = BuilderChoice::Auto)]
    pub builder: BuilderChoice,

    /// Let make reach the network (build steps have none by default).
    #[arg(long)]
    pub network: bool,

    /// Do not check that the built modules will load into the kernel.
    #[arg(long)]
    pub no_check: bool,

    /// Do not stream the build log (errors are still shown).
    #[arg(short, long)]
    pub quiet: bool,

    /// How to detect the kernel when no KERNEL_REF or BUILD_REF is given.
    #[command(flatten)]
    pub probe: detect::ProbeArgs,
}

/// Human output on stderr; the build log only when not quiet.
struct Terminal {
    quiet: bool,
}

impl Progress for Terminal {
    fn step(&mut self, message: &str) {
        if !self.quiet {
            eprintln!("dmb: {message}");
        }
    }

    fn log(&mut self, line: &str) {
        if !self.quiet {
            eprintln!("  {line}");
        }
    }
}

/// Parses the arguments, runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    if let Err(e) = crate::interrupt::install_handler() {
        eprintln!("dmb: warning: cannot catch Ctrl-C: {e}");
    }
    match &cli.command {
        Command::Build(args) => match run_build(&cli, args) {
            Ok(()) => 0,
            Err(e) => report(&e),
        },
        Command::Inspect(args) => modules::inspect(&cli, args),
        Command::Check(args) => modules::check(&cli, args),
        Command::Detect(args) => detect::detect(&cli, args),
        Command::Load(args) => load::load(&cli, args),
        Command::Unload(args) => load::unload(&cli, args),
        Command::Status(args) => load::status(&cli, args),
    }
}

/// Connects to the engine the way every command does.
fn connect(cli: &Cli, builder: BuilderChoice) -> Result<DockerCli, EngineError> {
    DockerCli::connect(&cli.docker, builder, cli.verbose)
}

fn run_build(cli: &Cli, args: &BuildArgs) -> Result<(), build::BuildError> {
    build::check_module_dir(&args.module_dir)?;
    let engine = connect(cli, args.builder)?;
    let opts = BuildOptions {
        module_dir: args.module_dir.clone(),
        build_ref: args.build_ref.clone(),
        kernel_ref: args.kernel_ref.clone(),
        module_ref: args.module_ref.clone(),
        kver: args.kver.clone(),
        output: args.output.clone(),
        network: args.network,
        check: !args.no_check,
    };
    let mut terminal = Terminal { quiet: args.quiet };
    let mut opts = opts;
    if opts.kernel_ref.is_none() || opts.build_ref.is_none() {
        fill_from_detection(&engine, &mut opts, &args.probe, &mut terminal)?;
    }
    let outcome = build::run(&engine, &opts, &mut terminal)?;
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
        if opts.check {
            " (checked: they will load)"
        } else {
            ""
        }
    );
    Ok(())
}

/// No KERNEL_REF or BUILD_REF: the engine's kernel says which.
fn fill_from_detection(
    engine: &DockerCli,
    opts: &mut BuildOptions,
    probe: &detect::ProbeArgs,
    progress: &mut Terminal,
) -> Result<(), build::BuildError> {
    let session = crate::engine::Session::new();
    let found = crate::target::detect(engine, &session, &probe.options());
    session.cleanup(engine, &mut |m| progress.step(m));
    let t = found?;
    progress.step(&format!("detected {} on {}", t.release, t.platform_name));
    if opts.kernel_ref.is_none() {
        if let Some(w) = &t.kernel_ref.warning {
            eprintln!("dmb: warning: {w}");
        }
        opts.kernel_ref = t.kernel_ref.reference.clone();
        if let Some(k) = &opts.kernel_ref {
            progress.step(&format!("KERNEL_REF {k} (from {})", t.kernel_ref.source));
            // Build for the running kernel, should its image hold several.
            opts.kver.get_or_insert_with(|| t.release.clone());
        }
    }
    if opts.build_ref.is_none() {
        opts.build_ref = t.build_ref.reference.clone();
        match &opts.build_ref {
            Some(b) => progress.step(&format!("BUILD_REF {b} ({})", t.build_ref.reason)),
            None => eprintln!("dmb: no builder image found: {}", t.build_ref.reason),
        }
    }
    Ok(())
}

/// Prints an error and the chain of its causes.
/// Writes a command's result to stdout: pretty JSON under `--json`, else
/// its human form. A write error (a closed pipe) is not worth an exit code.
fn print_result<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&mut std::io::StdoutLock<'static>, &T) -> std::io::Result<()>,
) {
    let mut out = std::io::stdout().lock();
    let _ = if json {
        let text = serde_json::to_string_pretty(value).expect("serialisable");
        writeln!(out, "{text}")
    } else {
        human(&mut out, value)
    };
}

fn print_error(e: &dyn std::error::Error) {
    eprintln!("dmb: error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
}

/// Prints an error with its details and hint; returns its exit code.
fn report(e: &build::BuildError) -> i32 {
    use build::BuildError::*;
    print_error(e);
    match e {
        MakeFailed { errors, .. } if !errors.is_empty() => {
            eprintln!("dmb: the compiler said:");
            for l in errors.iter().take(40) {
                eprintln!("  {l}");
            }
        }
        BuildEnvFailed { log, .. } | BuildFailed { log } => {
            eprintln!("dmb: the last lines of the build log:");
            for l in log {
                eprintln!("  {l}");
            }
        }
        WillNotLoad { report } => {
            let _ = modules::write_misfits(&mut std::io::stderr().lock(), report);
        }
        _ => {}
    }
    if let Some(h) = hint(e) {
        eprintln!("hint: {h}");
    }
    exit_code(e)
}
