//! `dmb cache` and `dmb cache prune`.

use std::io::Write;

use super::output::print_result;
use super::terminal::Terminal;
use super::{connect, Cli, Outcome};
use crate::cache::inventory::{human, Inventory, Pruning};
use crate::cache::keep::{self, PruneOutcome};
use crate::engine::BuilderPreference;

#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Option<CacheCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Remove what dmb makes again by itself (build environments, prepared
    /// trees, kept objects, facts of images that are gone); with --all,
    /// also synthesized kernel images and downloads.
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Also remove what takes long or the network to make again:
    /// synthesized kernel images, downloaded sources, every cached fact.
    #[arg(long)]
    pub all: bool,

    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &CacheArgs) -> Outcome {
    let engine = connect(cli, BuilderPreference::Legacy)?;
    match &args.command {
        None => {
            let inventory = keep::read(&engine)?;
            print_result(args.json, &inventory, write_inventory);
        }
        Some(CacheCommand::Prune(p)) => {
            let outcome = {
                let mut terminal = Terminal::for_cli(cli);
                keep::prune(&engine, p.all, p.dry_run, &mut terminal)?
            };
            print_result(p.json, &outcome, write_prune);
        }
    }
    Ok(0)
}

fn write_inventory(out: &mut impl Write, inv: &Inventory) -> std::io::Result<()> {
    if inv.entries.is_empty() {
        writeln!(out, "dmb keeps nothing here")?;
    } else {
        writeln!(
            out,
            "{:<27} {:>10} {:>10}  {:<13} NAME",
            "KIND", "SIZE", "SHARED", "REMOVED BY"
        )?;
    }
    for e in &inv.entries {
        let by = match (e.in_use, e.pruned_by) {
            (true, _) => "(in use)",
            (false, Pruning::Prune) => "prune",
            (false, Pruning::All) => "prune --all",
        };
        let shared = if e.shared_bytes > 0 {
            human(e.shared_bytes)
        } else {
            "-".into()
        };
        writeln!(
            out,
            "{:<27} {:>10} {:>10}  {:<13} {}",
            e.kind.label(),
            human(e.bytes),
            shared,
            by,
            e.name
        )?;
    }
    writeln!(
        out,
        "total: at least {} (SIZE: what each frees alone; SHARED: layers it shares with other images, freed with the last that holds them)",
        human(inv.total_bytes)
    )?;
    match &inv.cache_dir {
        Some(d) => writeln!(out, "cache directory: {}", d.display())?,
        None => writeln!(
            out,
            "cache directory: none (no HOME, XDG_CACHE_HOME or DMB_CACHE_DIR)"
        )?,
    }
    if inv.buildkit_cache_bytes > 0 {
        writeln!(
            out,
            "BuildKit's own cache (layers of every build of this engine, dmb's among them): {}; `docker builder prune` empties it",
            human(inv.buildkit_cache_bytes)
        )?;
    }
    let mut kinds: Vec<_> = inv.entries.iter().map(|e| e.kind).collect();
    kinds.sort();
    kinds.dedup();
    if !kinds.is_empty() {
        writeln!(out, "\nwhat each is for:")?;
    }
    for k in kinds {
        writeln!(out, "  {:<27} {}", k.label(), k.purpose())?;
    }
    Ok(())
}

fn write_prune(out: &mut impl Write, p: &PruneOutcome) -> std::io::Result<()> {
    let verb = if p.dry_run { "would remove" } else { "removed" };
    if p.removed.is_empty() {
        writeln!(out, "nothing to remove")?;
    }
    for e in &p.removed {
        writeln!(
            out,
            "{verb} {} {} ({})",
            e.kind.label(),
            e.name,
            human(e.bytes)
        )?;
    }
    for e in &p.in_use {
        writeln!(
            out,
            "kept {} {}: a container uses it",
            e.kind.label(),
            e.name
        )?;
    }
    for f in &p.failed {
        writeln!(out, "could not remove {}: {}", f.name, f.error)?;
    }
    writeln!(
        out,
        "dmb's caches: {} before, {} {}",
        human(p.bytes_before),
        human(p.bytes_after),
        if p.dry_run { "after" } else { "now" }
    )?;
    if !p.all {
        writeln!(
            out,
            "synthesized kernels, downloads and the facts of images still here stay: --all removes them too"
        )?;
    }
    Ok(())
}
