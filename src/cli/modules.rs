//! `dmb inspect` and `dmb check`.

use std::io::Write;
use std::path::PathBuf;

use super::output::print_result;
use super::{connect, Cli, Outcome};
use crate::check::{self, Report};
use crate::engine::{BuilderPreference, DockerCli, Session};
use crate::kernel::image::facts_from_image;
use crate::kernel::KernelFacts;
use crate::ko::Module;
use crate::module_files::{self, InstalledTree, ModuleArg};
use crate::Error;

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

/// Runs `f` with a session when some argument needs the engine (an image),
/// else without ever connecting: files need no engine.
pub(super) fn with_engine<T>(
    cli: &Cli,
    needed: bool,
    f: impl FnOnce(Option<&Session<DockerCli>>, &std::path::Path) -> Result<T, Error>,
) -> Result<T, Error> {
    let scratch = tempfile::tempdir().map_err(|e| module_files::SourceError::Io {
        what: "a temporary directory".into(),
        detail: e.to_string(),
    })?;
    if !needed {
        return f(None, scratch.path());
    }
    let engine = connect(cli, BuilderPreference::Legacy)?;
    let session = Session::new(&engine);
    f(Some(&session), scratch.path())
}

fn any_image(args: &[String]) -> bool {
    args.iter().any(|a| ModuleArg::of(a).is_image())
}

pub fn inspect(cli: &Cli, args: &InspectArgs) -> Outcome {
    let given = with_engine(cli, any_image(&args.files), |session, scratch| {
        module_files::read(&args.files, session, scratch)
    })?;
    let modules: Vec<Module> = given.all().map(|m| m.module).collect();
    let all: Vec<_> = modules.iter().map(Module::inspection).collect();
    print_result(args.json, &all, |out, _| {
        modules.iter().try_for_each(|m| write_inspection(out, m))
    });
    Ok(0)
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

pub fn check(cli: &Cli, args: &CheckArgs) -> Outcome {
    if args.modules.is_empty() && args.modules_dir.is_none() {
        return Err(Error::Usage(
            "name modules to check, or --modules-dir to check a whole tree".into(),
        ));
    }
    let installed = match &args.modules_dir {
        Some(dir) => Some(InstalledTree::read(dir)?),
        None => None,
    };
    let needed = args.kernel_ref.is_some() || any_image(&args.modules);
    let report = with_engine(cli, needed, |session, scratch| {
        let facts = match (&args.kernel_dir, &args.kernel_ref, session) {
            (Some(dir), _, _) => KernelFacts::from_dir(dir).map_err(|source| Error::KernelDir {
                dir: dir.display().to_string(),
                source,
            })?,
            (None, Some(reference), Some(session)) => {
                facts_from_image(session, reference, args.kver.as_deref())?
            }
            // clap asks for one of them, and a kernel image brings the engine.
            _ => return Err(Error::Usage("give --kernel-dir or --kernel-ref".into())),
        };
        // An installed tree says which modules are built in.
        let facts = match &installed {
            Some(tree) => KernelFacts {
                builtin: facts.builtin.union(&tree.builtin).cloned().collect(),
                ..facts
            },
            None => facts,
        };
        let others = installed.as_ref().map_or(&[][..], |t| &t.modules[..]);
        Ok(if args.modules.is_empty() {
            check::check(&facts, others, &[])
        } else {
            let given = module_files::read(&args.modules, session, scratch)?;
            let set: Vec<Module> = given.all().map(|m| m.module).collect();
            check::check(&facts, &set, others)
        })
    })?;
    print_result(args.json, &report, write_report);
    Ok(crate::error::check_code(&report))
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
fn write_misfits(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    report
        .misfit_lines()
        .iter()
        .try_for_each(|l| writeln!(out, "{l}"))
}
