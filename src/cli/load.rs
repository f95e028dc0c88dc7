//! `dmb load`, `dmb unload`, `dmb status`.

use std::io::Write;

use crate::engine::BuilderChoice;
use crate::load::plan::{Action, ParamArg};
use crate::load::{
    self, CrcSource, LoadError, LoadOptions, LoadOutcome, Status, UnloadError, UnloadOptions,
    UnloadOutcome,
};

use super::{connect, detect::ProbeArgs, exit, Cli, Terminal};

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
    #[arg(long, value_enum, default_value_t = CrcSource::Auto)]
    pub crcs: CrcSource,

    /// The running kernel's image, for its Module.symvers (default: the one
    /// the VM's /etc/linuxkit.yml names).
    #[arg(long, env = "KERNEL_REF")]
    pub kernel_ref: Option<String>,

    /// Do not check the modules against the running kernel first.
    #[arg(long)]
    pub no_check: bool,

    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
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

pub fn load(cli: &Cli, args: &LoadArgs) -> i32 {
    let engine = match connect(cli, BuilderChoice::Legacy) {
        Ok(e) => e,
        Err(e) => return super::report(&e.into()),
    };
    let opts = LoadOptions {
        sources: args.sources.clone(),
        params: args.params.clone(),
        persist: args.persist,
        dry_run: args.dry_run,
        check: !args.no_check,
        crcs: args.crcs,
        kernel_ref: args.kernel_ref.clone(),
        detect: args.probe.options(),
    };
    let mut terminal = Terminal { quiet: args.json };
    match load::load(&engine, &opts, &mut terminal) {
        Ok(outcome) => {
            super::print_result(args.json, &outcome, write_load);
            0
        }
        Err(e) => load_error(&e),
    }
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

fn load_error(e: &LoadError) -> i32 {
    super::print_error(e);
    match e {
        LoadError::WillNotLoad { report } => {
            let _ = super::modules::write_misfits(&mut std::io::stderr().lock(), report);
            eprintln!("dmb: nothing was loaded");
        }
        LoadError::InsertFailed {
            kernel_log,
            rolled_back,
            stuck,
            ..
        } => {
            if kernel_log.is_empty() {
                eprintln!("dmb: the kernel log has nothing more (reading it needs CAP_SYSLOG)");
            } else {
                eprintln!("dmb: the kernel said:");
                for l in kernel_log {
                    eprintln!("  {l}");
                }
            }
            if !rolled_back.is_empty() {
                eprintln!(
                    "dmb: unloaded again what this run had loaded: {}",
                    rolled_back.join(", ")
                );
            }
            if !stuck.is_empty() {
                eprintln!("dmb: could not unload again: {}", stuck.join(", "));
            }
        }
        _ => {}
    }
    let (code, hint) = exit::load_code_and_hint(e);
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    code
}

pub fn unload(cli: &Cli, args: &UnloadArgs) -> i32 {
    let engine = match connect(cli, BuilderChoice::Legacy) {
        Ok(e) => e,
        Err(e) => return super::report(&e.into()),
    };
    let opts = UnloadOptions {
        names: args.names.clone(),
        persist: args.persist,
        dry_run: args.dry_run,
        image: args.probe.probe_image.clone(),
    };
    let mut terminal = Terminal { quiet: false };
    match load::unload(&engine, &opts, &mut terminal) {
        Ok(o) => {
            let _ = write_unload(&mut std::io::stdout().lock(), &o);
            0
        }
        Err(e) => {
            super::print_error(&e);
            if let UnloadError::RemoveFailed { unloaded, .. } = &e {
                if !unloaded.is_empty() {
                    eprintln!("dmb: unloaded before that: {}", unloaded.join(", "));
                }
            }
            let (code, hint) = exit::unload_code_and_hint(&e);
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            code
        }
    }
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

pub fn status(cli: &Cli, args: &StatusArgs) -> i32 {
    let engine = match connect(cli, BuilderChoice::Legacy) {
        Ok(e) => e,
        Err(e) => return super::report(&e.into()),
    };
    match load::status(&engine, &args.probe.probe_image) {
        Ok(s) => {
            super::print_result(args.json, &s, write_status);
            0
        }
        Err(e) => super::report(&e.into()),
    }
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
