//! `dmb load`, `dmb unload`, `dmb status`.

use std::io::Write;

use super::output::print_result;
use super::terminal::Terminal;
use super::{connect, detect::ProbeArgs, Cli, Outcome};
use crate::engine::BuilderPreference;
use crate::load::plan::{Action, ParamArg};
use crate::load::status::{self, Status};
use crate::load::unload::{self, UnloadOptions, UnloadOutcome};
use crate::load::{self, CrcSource, LoadOptions, LoadOutcome};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Modules to load: .ko files (modules beside them may serve as
    /// dependencies), directories of them, or MODULE_REF images.
    #[arg(required = true)]
    pub sources: Vec<String>,

    /// A module parameter, MODULE.KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "MODULE.KEY=VALUE")]
    pub params: Vec<ParamArg>,

    /// Keep a loader container (--restart=always) that loads the modules
    /// again each time the engine starts.
    #[arg(long)]
    pub persist: bool,

    /// Print the plan and run nothing (detection and reading still run).
    #[arg(long)]
    pub dry_run: bool,

    /// Where the running kernel's symbol CRCs come from.
    #[arg(long, value_enum, default_value_t = CrcsArg::Auto)]
    pub crcs: CrcsArg,

    /// The running kernel's image, for its Module.symvers (default: the one
    /// the VM's /etc/linuxkit.yml names).
    #[arg(long, env = "KERNEL_REF")]
    pub kernel_ref: Option<String>,

    /// Seconds to wait while another dmb load or unload is changing the
    /// VM's modules (the lock lives in the engine).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub wait: u64,

    /// Do not check the modules against the running kernel first.
    #[arg(long)]
    pub no_check: bool,

    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// `--crcs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrcsArg {
    /// The kernel image's Module.symvers when the image is in the engine,
    /// else the installed modules.
    Auto,
    /// The `Module.symvers` of the kernel image (KERNEL_REF, or the one
    /// `/etc/linuxkit.yml` names).
    KernelImage,
    /// What the VM's installed modules record in their `__versions`.
    InstalledModules,
}

impl From<CrcsArg> for CrcSource {
    fn from(a: CrcsArg) -> Self {
        match a {
            CrcsArg::Auto => CrcSource::Auto,
            CrcsArg::KernelImage => CrcSource::KernelImage,
            CrcsArg::InstalledModules => CrcSource::InstalledModules,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct UnloadArgs {
    /// Module names (as /proc/modules lists them; dashes are fine).
    #[arg(required = true)]
    pub names: Vec<String>,

    /// Also take them out of the loader containers that reload them when
    /// the engine starts.
    #[arg(long)]
    pub persist: bool,

    /// Print the plan and run nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait while another dmb load or unload is changing the
    /// VM's modules (the lock lives in the engine).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub wait: u64,

    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

pub fn load(cli: &Cli, args: &LoadArgs) -> Outcome {
    let engine = connect(cli, BuilderPreference::Legacy)?;
    let opts = LoadOptions {
        sources: args.sources.clone(),
        params: args.params.clone(),
        persist: args.persist,
        dry_run: args.dry_run,
        check: !args.no_check,
        crcs: args.crcs.into(),
        kernel_ref: args.kernel_ref.clone(),
        detect: args.probe.options(),
        wait: std::time::Duration::from_secs(args.wait),
    };
    let outcome = {
        let mut terminal = Terminal::for_cli(cli);
        load::load(&engine, &opts, &mut terminal)?
    };
    print_result(args.json, &outcome, write_load);
    finished_unless_signalled()
}

fn write_load(out: &mut impl Write, o: &LoadOutcome) -> std::io::Result<()> {
    writeln!(
        out,
        "{} into {}:",
        if o.dry_run { "would load" } else { "load" },
        o.plan.release
    )?;
    for (i, s) in o.plan.steps.iter().enumerate() {
        let what = match &s.action {
            Action::Insert if o.dry_run => "insert".to_string(),
            Action::Insert if o.inserted.contains(&s.module) => "inserted".to_string(),
            Action::Insert => "insert (not done)".to_string(),
            Action::AlreadyLoaded {
                same_build_known: true,
            } => "already loaded (this build)".to_string(),
            Action::AlreadyLoaded {
                same_build_known: false,
            } => "already loaded (neither srcversion nor build ID tells whether it is this build)"
                .to_string(),
            Action::BuiltIn => "built into the kernel".to_string(),
            Action::LoadedDependency => "loaded already".to_string(),
        };
        write!(out, "  {}. {:<20} {what}", i + 1, s.module)?;
        if let Some(src) = &s.source {
            write!(out, "  [{src}]")?;
        }
        if !s.params.is_empty() {
            write!(out, "  {}", s.params.join(" "))?;
        }
        if s.dependency {
            write!(out, "  (dependency)")?;
        }
        writeln!(out)?;
    }
    if let Some(source) = &o.crc_source {
        writeln!(out, "checked: vermagic and symbol CRCs against {source}")?;
    }
    if let Some(report) = &o.check {
        for v in report.modules.iter().filter(|v| !v.unverified.is_empty()) {
            writeln!(
                out,
                "unverified: {} imports {} with a CRC that nothing known records; the kernel decides",
                v.module,
                v.unverified.join(", ")
            )?;
        }
    }
    if let Some(l) = &o.loader {
        writeln!(
            out,
            "loader: {l}{}",
            if o.persistent {
                " (--restart=always: loads them again at each engine start)"
            } else {
                " (a record; not started)"
            }
        )?;
    } else if o.dry_run && o.persistent {
        writeln!(
            out,
            "loader: would keep a loader container with --restart=always"
        )?;
    }
    for r in &o.replaced {
        writeln!(out, "removed loader: {r}")?;
    }
    for n in &o.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

pub fn unload(cli: &Cli, args: &UnloadArgs) -> Outcome {
    let engine = connect(cli, BuilderPreference::Legacy)?;
    let opts = UnloadOptions {
        names: args.names.clone(),
        persist: args.persist,
        dry_run: args.dry_run,
        image: args.probe.probe_image(),
        wait: std::time::Duration::from_secs(args.wait),
    };
    let outcome = {
        let mut terminal = Terminal::for_cli(cli);
        unload::unload(&engine, &opts, &mut terminal)?
    };
    print_result(args.json, &outcome, write_unload);
    finished_unless_signalled()
}

fn write_unload(out: &mut impl Write, o: &UnloadOutcome) -> std::io::Result<()> {
    if o.dry_run {
        writeln!(out, "would unload, in this order: {}", o.order.join(", "))?;
    } else if !o.unloaded.is_empty() {
        writeln!(out, "unloaded: {}", o.unloaded.join(", "))?;
    }
    for l in &o.loaders_removed {
        writeln!(out, "removed loader: {l}")?;
    }
    for l in &o.loaders_changed {
        writeln!(out, "replaced loader: {l}")?;
    }
    for n in &o.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

pub fn status(cli: &Cli, args: &StatusArgs) -> Outcome {
    let engine = connect(cli, BuilderPreference::Legacy)?;
    let s = status::status(&engine, &args.probe.probe_image())?;
    print_result(args.json, &s, write_status);
    Ok(0)
}

fn write_status(out: &mut impl Write, s: &Status) -> std::io::Result<()> {
    writeln!(out, "kernel: {}", s.release)?;
    if s.modules.is_empty() {
        writeln!(out, "no modules loaded by dmb")?;
    }
    for m in &s.modules {
        let state = match (m.loaded, m.same_build) {
            (true, Some(false)) => "loaded (ANOTHER build)",
            (true, _) => "loaded",
            (false, _) => "not loaded",
        };
        writeln!(
            out,
            "{:<20} {:<12} {:<18} {}  [{}]{}{}",
            m.name,
            state,
            m.version
                .clone()
                .or_else(|| m.srcversion.clone())
                .or_else(|| m
                    .build_id
                    .as_deref()
                    .map(|b| format!("build {}", &b[..b.len().min(12)])))
                .unwrap_or_else(|| "-".into()),
            m.loader,
            m.source,
            if m.dependency { " (dependency)" } else { "" },
            if m.params.is_empty() {
                String::new()
            } else {
                format!(" {}", m.params.join(" "))
            }
        )?;
    }
    for l in &s.loaders {
        writeln!(
            out,
            "loader {}: {}, {} ({})",
            l.container,
            if l.persistent {
                "persistent (--restart=always)"
            } else {
                "record only"
            },
            l.status,
            l.modules.join(", ")
        )?;
    }
    for n in &s.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

/// A load or unload that a stop signal reached once it was changing the
/// VM's kernel finished first (its outcome is printed); the exit status
/// still says that it was asked to stop.
fn finished_unless_signalled() -> Outcome {
    if crate::interrupt::pending() {
        return Err(crate::engine::EngineError::Interrupted.into());
    }
    Ok(0)
}
