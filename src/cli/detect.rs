//! `dmb detect`.

use std::io::Write;

use super::output::print_result;
use super::terminal::Terminal;
use super::{connect, Cli, Outcome};
use crate::detect::probe_image::ProbeImage;
use crate::detect::{self, DetectOptions, Detection};
use crate::engine::{BuilderPreference, Session};
use crate::module_build::in_tree;
use crate::progress::Progress;
use crate::synth::Snapshot;

#[derive(Debug, clap::Args, Clone)]
pub struct ProbeArgs {
    /// Small image (sh, nsenter, zcat, insmod) for the containers that read
    /// the kernel's facts and load modules. Default: `busybox` when the
    /// engine has it, else the first image of the engine that has those
    /// tools (the one chosen last time, BUILD_REF, another busybox, a build
    /// environment), else `busybox` pulled.
    #[arg(long, env = "DMB_PROBE_IMAGE", value_name = "IMAGE")]
    pub probe_image: Option<String>,

    /// Do not enter the VM's mount namespace (a container with --pid=host,
    /// CAP_SYS_ADMIN and CAP_SYS_PTRACE); read only what an
    /// ordinary container sees (no /etc/linuxkit.yml, no /boot, no /lib/modules).
    #[arg(long, env = "DMB_NO_VM_FILES", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_vm_files: bool,
}

impl ProbeArgs {
    pub fn options(&self) -> DetectOptions {
        DetectOptions {
            probe_image: self.probe_image(),
            vm_files: !self.no_vm_files,
        }
    }

    /// As named, or dmb's choice (BUILD_REF, when set, among the hints).
    pub fn probe_image(&self) -> ProbeImage {
        match &self.probe_image {
            Some(image) => ProbeImage::Named(image.clone()),
            None => ProbeImage::Auto {
                hints: std::env::var("BUILD_REF")
                    .ok()
                    .filter(|b| !b.is_empty())
                    .into_iter()
                    .collect(),
            },
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// Modules to look up: loaded, built in, or on disk in the VM.
    pub modules: Vec<String>,

    #[command(flatten)]
    pub probe: ProbeArgs,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    /// Also write a snapshot of the kernel to FILE (release, compiler,
    /// configuration, the CRCs its modules record, its export list and BTF),
    /// for `dmb kernel synthesize --snapshot FILE` on any engine.
    #[arg(long, value_name = "FILE")]
    pub save: Option<std::path::PathBuf>,
}

pub fn run(cli: &Cli, args: &DetectArgs) -> Outcome {
    let engine = connect(cli, BuilderPreference::Legacy)?;
    let session = Session::new(&engine);
    let mut terminal = Terminal::for_cli(cli);
    terminal.step("detecting the running kernel");
    let t = detect::detect(&session, &args.probe.options())?;
    if let Some(path) = &args.save {
        let snapshot = Snapshot::take(&session, &t, &t.probe_image, &mut terminal)?;
        snapshot.write(path)?;
        terminal.finish();
        eprintln!(
            "dmb: saved a snapshot of {} to {}: the CRCs {} modules record ({} symbols), {} exports listed, {}",
            snapshot.release,
            path.display(),
            snapshot.harvest.modules,
            snapshot.harvest.imports.len(),
            snapshot
                .vmlinux_exports
                .as_ref()
                .map_or_else(|| "no".to_string(), |e| e.len().to_string()),
            if snapshot.btf.is_some() { "BTF" } else { "no BTF" }
        );
    }
    terminal.finish();
    print_result(args.json, &t, write_human);
    // What is not loaded or built in: could it be built from the source?
    let absent: Vec<String> = args
        .modules
        .iter()
        .filter(|m| !matches!(t.modules.status_of(m), Some("loaded" | "built in")))
        .cloned()
        .collect();
    let buildable = if absent.is_empty() {
        Ok(Vec::new())
    } else {
        in_tree::can_build(&session, &t, &absent)
    };
    let mut out = std::io::stdout().lock();
    for m in &args.modules {
        let status = match t.modules.status_of(m) {
            Some(s) => s,
            None if t.vm_files => "not in this kernel",
            None => {
                "not loaded (built-in and on-disk modules unknown: the VM's files were not read)"
            }
        };
        let _ = writeln!(out, "module {m}: {status}");
        if let Some(at) = absent.iter().position(|a| a == m) {
            let verdict = match &buildable {
                Ok(v) => match &v[at] {
                    Ok(yes) => yes.clone(),
                    Err(no) => format!("no: {no}"),
                },
                Err(why) => format!("cannot tell: {why}"),
            };
            let _ = writeln!(out, "module {m}: can be built in-tree: {verdict}");
        }
    }
    Ok(0)
}

fn write_human(out: &mut impl Write, t: &Detection) -> std::io::Result<()> {
    let or_dash = |o: Option<&str>| o.unwrap_or("-").to_string();
    writeln!(out, "kernel:      {} ({})", t.release, t.arch)?;
    writeln!(out, "version:     {}", t.proc_version)?;
    writeln!(out, "build stamp: {}", t.stamp)?;
    writeln!(out, "platform:    {}", t.platform_name)?;
    match t.kernel_compiler() {
        Some(c) => writeln!(
            out,
            "compiler:    {} {}{}{}{}",
            c.command,
            c.version,
            c.vendor
                .as_ref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default(),
            t.linker
                .as_ref()
                .map(|l| format!(", {} {}", l.name, l.version))
                .unwrap_or_default(),
            if t.needs_llvm {
                ", modules need LLVM=1"
            } else {
                ""
            }
        )?,
        None => writeln!(out, "compiler:    unknown")?,
    }
    writeln!(out, "config:      {}", or_dash(t.config_source.as_deref()))?;
    writeln!(
        out,
        "KERNEL_REF:  {} (from {})",
        or_dash(t.kernel_ref.reference.as_deref()),
        t.kernel_ref.source
    )?;
    if let Some(w) = &t.kernel_ref.warning {
        writeln!(out, "             warning: {w}")?;
    }
    writeln!(
        out,
        "BUILD_REF:   {} ({}, from {}: {})",
        or_dash(t.build_ref.reference.as_deref()),
        serde_json::to_value(t.build_ref.quality)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        t.build_ref.source,
        t.build_ref.reason
    )?;
    writeln!(
        out,
        "modules:     {} loaded, {} built in, {} on disk{}",
        t.modules.loaded.len(),
        t.modules.builtin.len(),
        t.modules.on_disk.len(),
        if t.vm_files {
            ""
        } else {
            " (VM files not read)"
        }
    )?;
    for n in &t.notes {
        writeln!(out, "note:        {n}")?;
    }
    Ok(())
}
