//! `dmb inspect` and `dmb check`.

use std::io::Write;
use std::path::PathBuf;

use crate::check::sources::{self, KernelSource, SourceError};
use crate::check::{self, Misfit, Report};
use crate::engine::{BuilderChoice, Engine, LazyEngine, Session};
use crate::ko::Module;

use super::{connect, exit, Cli};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Module files (.ko, .ko.gz, .ko.xz, .ko.zst), directories of them, or MODULE_REF images.
    #[arg(required = true)]
    pub files: Vec<String>,

    /// Print JSON (an array, one object per module).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("kernel").required(true).args(["kernel_dir", "kernel_ref"])))]
pub struct CheckArgs {
    /// Modules to check: files, directories or MODULE_REF images. None: every
    /// module of --modules-dir.
    pub modules: Vec<String>,

    /// The kernel's header tree (.config, Module.symvers, include/generated/…).
    #[arg(long)]
    pub kernel_dir: Option<PathBuf>,

    /// A kernel image in the LinuxKit layout.
    #[arg(long)]
    pub kernel_ref: Option<String>,

    /// Kernel release, when the kernel image holds more than one.
    #[arg(long, requires = "kernel_ref")]
    pub kver: Option<String>,

    /// Installed modules that may provide symbols and dependencies.
    #[arg(long)]
    pub modules_dir: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn lazy_engine(cli: &Cli) -> LazyEngine<'_> {
    LazyEngine::new(move || {
        connect(cli, BuilderChoice::Legacy).map(|e| Box::new(e) as Box<dyn Engine>)
    })
}

/// Runs `f` with an engine session that is cleaned up afterwards.
fn with_session<T>(
    cli: &Cli,
    f: impl FnOnce(&LazyEngine, &Session, &std::path::Path) -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    let engine = lazy_engine(cli);
    let session = Session::new();
    let scratch = tempfile::tempdir().map_err(|e| SourceError::Io {
        what: "a temporary directory".into(),
        detail: e.to_string(),
    })?;
    let result = f(&engine, &session, scratch.path());
    if let Some(e) = engine.connected() {
        session.cleanup(e, &mut |m| eprintln!("dmb: {m}"));
    }
    result
}

pub fn inspect(cli: &Cli, args: &InspectArgs) -> i32 {
    let modules = match with_session(cli, |engine, session, scratch| {
        sources::modules_from_args(&args.files, engine, session, scratch)
    }) {
        Ok(m) => m,
        Err(e) => return source_error(&e),
    };
    let all: Vec<_> = modules.iter().map(Module::inspection).collect();
    super::print_result(args.json, &all, |out, _| {
        modules.iter().try_for_each(|m| write_inspection(out, m))
    });
    0
}

fn write_inspection(out: &mut impl Write, m: &Module) -> std::io::Result<()> {
    let i = m.inspection();
    let opt = |v: Option<&str>| v.unwrap_or("-").to_string();
    writeln!(out, "{}", i.file)?;
    writeln!(out, "  name:        {}", i.name)?;
    writeln!(out, "  vermagic:    {}", opt(i.vermagic))?;
    writeln!(out, "  depends:     {}", i.depends.join(","))?;
    writeln!(out, "  srcversion:  {}", opt(i.srcversion))?;
    writeln!(out, "  license:     {}", opt(i.license))?;
    writeln!(
        out,
        "  elf:         {}-bit {} {}",
        i.elf.class,
        crate::ko::machine::name(i.elf.machine),
        if i.elf.little_endian {
            "little-endian"
        } else {
            "big-endian"
        }
    )?;
    for p in &i.parameters {
        writeln!(
            out,
            "  parm:        {} ({}): {}",
            p.name,
            p.kind.as_deref().unwrap_or("?"),
            p.description.as_deref().unwrap_or("")
        )?;
    }
    for a in &i.aliases {
        writeln!(out, "  alias:       {a}")?;
    }
    match i.signature {
        Some(s) => writeln!(
            out,
            "  signature:   {} signer={} key={} hash={}",
            s.format,
            opt(s.signer.as_deref()),
            opt(s.key_id.as_deref()),
            opt(s.hash_algorithm.as_deref())
        )?,
        None => writeln!(out, "  signature:   none")?,
    }
    writeln!(out, "  exports:     {}", i.exports.len())?;
    for e in i.exports {
        let crc = e
            .crc
            .map(|c| format!("0x{c:08x}"))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "    {crc}  {}{}",
            e.symbol,
            if e.gpl_only { " (GPL)" } else { "" }
        )?;
    }
    writeln!(out, "  versions:    {}", i.versions.len())?;
    for v in i.versions {
        writeln!(out, "    0x{:08x}  {}", v.crc, v.symbol)?;
    }
    writeln!(out, "  undefined:   {}", i.undefined.join(" "))
}

pub fn check(cli: &Cli, args: &CheckArgs) -> i32 {
    let kernel = match (&args.kernel_dir, &args.kernel_ref) {
        (Some(dir), _) => KernelSource::Dir(dir),
        (None, Some(reference)) => KernelSource::Image {
            reference,
            kver: args.kver.as_deref(),
        },
        (None, None) => unreachable!("clap requires one of them"),
    };
    if args.modules.is_empty() && args.modules_dir.is_none() {
        eprintln!("dmb: error: name modules to check, or --modules-dir to check a whole tree");
        return 2;
    }
    let result = with_session(cli, |engine, session, scratch| {
        let mut facts = sources::kernel_facts(&kernel, engine, session)?;
        if let Some(dir) = &args.modules_dir {
            // An installed tree says which modules are built in.
            if let Ok(text) = std::fs::read_to_string(dir.join("modules.builtin")) {
                facts
                    .builtin
                    .extend(text.lines().map(crate::ko::name_from_file));
            }
        }
        let installed = match &args.modules_dir {
            Some(dir) => sources::read_modules(&sources::module_files(dir)?, Some(dir))?,
            None => Vec::new(),
        };
        Ok(if args.modules.is_empty() {
            check::check(&facts, &installed, &[])
        } else {
            let set = sources::modules_from_args(&args.modules, engine, session, scratch)?;
            check::check(&facts, &set, &installed)
        })
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => return source_error(&e),
    };
    super::print_result(args.json, &report, write_report);
    if report.all_fit() {
        0
    } else {
        exit::WILL_NOT_LOAD
    }
}

/// Fits on stdout, one line a module; what does not fit, with reasons.
fn write_report(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let misfits = report.modules.iter().filter(|v| !v.fits).count();
    if report.modules.len() <= 50 {
        for v in report.modules.iter().filter(|v| v.fits) {
            writeln!(out, "{}: fits {}", v.file, report.kernel_release)?;
        }
    }
    write_misfits(out, report)?;
    writeln!(
        out,
        "{} module(s) checked against {}: {}",
        report.modules.len(),
        report.kernel_release,
        if misfits == 0 {
            "all fit".to_string()
        } else {
            format!("{misfits} will not load")
        }
    )
}

/// Each module that will not load, with why and what to do.
pub(super) fn write_misfits(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for v in report.modules.iter().filter(|v| !v.fits) {
        writeln!(
            out,
            "{} ({}): will NOT load into {}",
            v.file, v.module, report.kernel_release
        )?;
        for m in &v.misfits {
            writeln!(out, "  - {}", m.describe())?;
        }
        if let Some(h) = misfit_hint(&v.misfits) {
            writeln!(out, "  hint: {h}")?;
        }
    }
    Ok(())
}

fn misfit_hint(misfits: &[Misfit]) -> Option<&'static str> {
    Some(match misfits.first()? {
        Misfit::Vermagic { .. } | Misfit::Crc { .. } => {
            "built against other headers: rebuild with dmb build --kernel-ref <this kernel's image>"
        }
        Misfit::UnknownSymbol { .. } | Misfit::MissingDependency { .. } => {
            "the module that exports it must be loaded first: name it too, or give --modules-dir"
        }
        Misfit::Architecture { .. } => {
            "build with a builder and kernel image of the kernel's architecture"
        }
        Misfit::Unsigned => "sign the module with a key the kernel trusts (scripts/sign-file)",
    })
}

fn source_error(e: &SourceError) -> i32 {
    super::print_error(e);
    let (code, hint) = exit::source_code_and_hint(e);
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    code
}
