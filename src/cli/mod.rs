//! The command line: the only place clap appears. Each command parses its
//! arguments into the library's options, calls the library, and prints;
//! every failure goes through [`report`].

mod build;
mod build_dry_run;
mod build_output;
mod cache;
mod detect;
mod docs;
mod doctor;
mod kernel;
mod kmm;
mod load;
mod modules;
mod output;
mod terminal;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::{BuilderPreference, DockerCli, EngineError};
use crate::Error;
use output::report;

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

    /// Print no progress and no build log: only results, warnings and
    /// errors (a failing make's compiler errors among them).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// The docker CLI to drive.
    #[arg(long, global = true, env = "DMB_DOCKER", default_value = "docker")]
    pub docker: PathBuf,

    /// Stop after this many seconds, as Ctrl-C would (a Makefile that never
    /// ends): what the run made is removed, and dmb exits with 124.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the modules of MODULE_DIR for a kernel image, package them as an image.
    Build(build::BuildArgs),
    /// Show what kernel modules are made of (FILE: .ko[.gz|.xz|.zst] or a MODULE_REF image).
    Inspect(modules::InspectArgs),
    /// Tell whether modules will load into a kernel, and why not.
    Check(modules::CheckArgs),
    /// Find the kernel the engine runs, its platform, compiler, kernel and builder images.
    Detect(detect::DetectArgs),
    /// Can dmb build and load here? Engine, builder, privileges, the kernel,
    /// where its headers come from, caches: each ✔ or ✖ with a fix.
    Doctor(doctor::DoctorArgs),
    /// Load modules into the engine's kernel: checked first, in dependency order, optionally kept across restarts.
    Load(load::LoadArgs),
    /// Unload modules (users first), and with --persist stop reloading them.
    Unload(load::UnloadArgs),
    /// The modules dmb loaded, and its loader containers.
    Status(load::StatusArgs),
    /// Kernel images: synthesize one for a kernel whose headers nobody published.
    Kernel(kernel::KernelArgs),
    /// What dmb keeps (build environments, prepared trees, kept objects,
    /// synthesized kernels, facts, downloads), with sizes; `prune` removes it.
    Cache(cache::CacheArgs),
    /// Print a Kubernetes KMM `Module` that loads built images (one per kernel) on a cluster's nodes.
    Kmm(kmm::KmmArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(docs::CompletionsArgs),
    /// Print dmb's man page (roff), or a command's: `dmb man build | man -l -`.
    Man(docs::ManArgs),
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
    if let Some(seconds) = cli.timeout {
        crate::interrupt::stop_after(std::time::Duration::from_secs(seconds));
    }
    let result = match &cli.command {
        Command::Build(args) => build::run(&cli, args),
        Command::Inspect(args) => modules::inspect(&cli, args),
        Command::Check(args) => modules::check(&cli, args),
        Command::Detect(args) => detect::run(&cli, args),
        Command::Doctor(args) => doctor::run(&cli, args),
        Command::Load(args) => load::load(&cli, args),
        Command::Unload(args) => load::unload(&cli, args),
        Command::Status(args) => load::status(&cli, args),
        Command::Kernel(args) => kernel::run(&cli, args),
        Command::Kmm(args) => kmm::run(&cli, args),
        Command::Cache(args) => cache::run(&cli, args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    };
    result.unwrap_or_else(|e| report(&e))
}

/// Connects to the engine the way every command does.
fn connect(cli: &Cli, builder: BuilderPreference) -> Result<DockerCli, EngineError> {
    let engine = DockerCli::connect(&cli.docker, builder, cli.verbose)?;
    // Commands that create things first remove what earlier runs of this
    // host left when they were killed or lost the engine.
    if matches!(
        cli.command,
        Command::Build(_) | Command::Load(_) | Command::Unload(_) | Command::Kernel(_)
    ) {
        match crate::engine::reap::dead_sessions(&engine) {
            Ok(dead) if !dead.is_empty() && !cli.quiet => eprintln!(
                "dmb: removed what {} earlier run(s) of this host left when they were cut off ({})",
                dead.len(),
                dead.join(", ")
            ),
            Ok(_) => {}
            Err(EngineError::Interrupted) => return Err(EngineError::Interrupted),
            Err(e) => eprintln!("dmb: warning: could not look for what earlier runs left: {e}"),
        }
    }
    Ok(engine)
}

/// What a command returns: its exit code, or the error to report.
type Outcome = Result<i32, Error>;
