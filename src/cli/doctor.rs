//! `dmb doctor`.

use std::io::Write;

use super::detect::ProbeArgs;
use super::output::print_result;
use super::terminal::Terminal;
use super::{Cli, Outcome};
use crate::doctor::{self, Blocks, Report, Status};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

pub fn run(cli: &Cli, args: &DoctorArgs) -> Outcome {
    let facts = {
        let mut terminal = Terminal::for_cli(cli);
        doctor::gather(
            &cli.docker,
            cli.verbose,
            &args.probe.options(),
            &mut terminal,
        )
    };
    let report = doctor::assess(&facts);
    print_result(args.json, &report, write_report);
    Ok(if report.blocks_build || report.blocks_load {
        crate::error::DOCTOR_FOUND_BLOCKER
    } else {
        crate::error::SUCCESS
    })
}

fn write_report(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let colour = console::colors_enabled();
    let mark = |s: Status| {
        let (text, style) = match s {
            Status::Ok => ("✔", console::Style::new().green()),
            Status::Warn => ("!", console::Style::new().yellow()),
            Status::Fail => ("✖", console::Style::new().red()),
            Status::Skipped => ("-", console::Style::new().dim()),
        };
        if colour {
            style.apply_to(text).to_string()
        } else {
            text.to_string()
        }
    };
    let pad = " ".repeat(18);
    for c in &r.checks {
        writeln!(out, "{} {:<15} {}", mark(c.status), c.check, c.summary)?;
        if let Some(d) = &c.detail {
            writeln!(out, "{pad}{d}")?;
        }
        if let Some(f) = &c.fix {
            writeln!(out, "{pad}fix: {f}")?;
        }
    }
    let blocked: Vec<&str> = [
        (
            r.blocks_build,
            "a build with dmb's defaults (no KERNEL_REF/BUILD_REF)",
        ),
        (r.blocks_load, "loading modules"),
    ]
    .iter()
    .filter(|(b, _)| *b)
    .map(|(_, what)| *what)
    .collect();
    if blocked.is_empty() {
        writeln!(out, "nothing blocks a build or a load")?;
    } else {
        let by: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail && !c.blocks.is_empty())
            .map(|c| c.check)
            .collect();
        writeln!(
            out,
            "blocked: {} (by {})",
            blocked.join("; "),
            by.join(", ")
        )?;
        if !r.blocks_build && r.checks.iter().any(|c| c.blocks.contains(&Blocks::Load)) {
            writeln!(out, "building works; load the modules on another engine")?;
        }
    }
    Ok(())
}
