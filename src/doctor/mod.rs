//! `dmb doctor`: can dmb build and load here, and if not, what to do.
//!
//! [`gather`] asks the engine what it is and what it allows ([`Facts`]);
//! [`assess`] (pure) turns the facts into one [`Finding`] per question,
//! each with its status, what it means and how to fix it, and says what
//! the problems block: a build with dmb's defaults, a load.
//!
//! Whether the engine allows a privileged container, CAP_SYS_MODULE and
//! what reading the VM's files takes is read from the capability bounding
//! set of its host's PID 1 (an ordinary container with `--pid=host`), not
//! tried: doctor itself never asks for a privileged container nor for
//! CAP_SYS_MODULE. Detection reads the VM's files as `dmb detect` does,
//! unless `--no-vm-files`: then doctor says what it inferred.

pub mod caps;
mod gather;

use serde::Serialize;

pub use gather::gather;

use crate::cache::inventory::{human, Inventory};
use crate::detect::probe_image::Settled;
use crate::detect::Detection;
use crate::engine::Builder;
use crate::toolchain::pick::MatchQuality;
use caps::HostCaps;

/// What doctor found out, each fact or why it could not be had.
#[derive(Debug, Clone)]
pub struct Facts {
    pub engine: Result<EngineFacts, String>,
    pub probe: Option<Result<Settled, ProbeFailure>>,
    /// From an ordinary container in the host's PID namespace; the error
    /// is the engine's refusal of `--pid=host`.
    pub host_caps: Option<Result<HostCaps, String>>,
    /// Whether doctor let detection try a privileged container.
    pub vm_files_asked: bool,
    pub detection: Option<Result<Detection, String>>,
    /// Whether the engine has the builder image detection picked.
    pub build_ref_present: Option<bool>,
    pub headers: Option<Headers>,
    pub caches: Option<Result<Inventory, String>>,
}

#[derive(Debug, Clone)]
pub struct EngineFacts {
    pub cli: String,
    pub client_version: String,
    pub server_version: String,
    pub api_version: String,
    pub platform: String,
    pub builder: Builder,
    pub docker_host: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProbeFailure {
    pub message: String,
    pub hint: Option<String>,
}

/// Where a build with dmb's defaults would take the kernel's headers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Headers {
    /// A kernel image the engine has.
    Image { reference: String, source: String },
    /// One synthesized earlier for this kernel.
    Synthesized { reference: String },
    /// None is there: one would be synthesized from this source.
    Synthesis { source: String, missing: String },
    /// None, and no way to make one.
    Nothing { why: String, fix: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, with a limit worth knowing.
    Warn,
    /// Something is in the way.
    Fail,
    /// Not looked at (an earlier check failed, or the user said not to).
    Skipped,
}

/// What a failing check stands in the way of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Blocks {
    /// `dmb build` with its defaults (no KERNEL_REF / BUILD_REF).
    Build,
    Load,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable: `engine`, `builder`, `probe-image`, `pid-host`,
    /// `privileged`, `vm-files`, `module-loading`, `kernel`, `headers`,
    /// `builder-match`, `caches`.
    pub check: &'static str,
    pub status: Status,
    pub summary: String,
    /// What it means, when that is not plain.
    pub detail: Option<String>,
    pub fix: Option<String>,
    pub blocks: Vec<Blocks>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Finding>,
    pub blocks_build: bool,
    pub blocks_load: bool,
}

fn finding(check: &'static str, status: Status, summary: impl Into<String>) -> Finding {
    Finding {
        check,
        status,
        summary: summary.into(),
        detail: None,
        fix: None,
        blocks: Vec::new(),
    }
}

impl Finding {
    fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
    fn blocks(mut self, b: &[Blocks]) -> Self {
        self.blocks = b.to_vec();
        self
    }
}

fn skipped(check: &'static str, why: &str) -> Finding {
    finding(check, Status::Skipped, format!("not checked: {why}"))
}

/// The findings, in the order a user would fix them.
pub fn assess(f: &Facts) -> Report {
    let mut checks = Vec::new();
    let engine = match &f.engine {
        Ok(e) => e,
        Err(message) => {
            checks.push(
                finding("engine", Status::Fail, format!("no engine answers: {message}"))
                    .fix("start Docker Desktop (or the engine); `docker info` must answer, through DOCKER_HOST or the docker context")
                    .blocks(&[Blocks::Build, Blocks::Load]),
            );
            for c in [
                "builder",
                "probe-image",
                "pid-host",
                "privileged",
                "vm-files",
                "module-loading",
                "kernel",
                "headers",
                "builder-match",
                "caches",
            ] {
                checks.push(skipped(c, "no engine"));
            }
            return report(checks);
        }
    };
    checks.push(finding(
        "engine",
        Status::Ok,
        format!(
            "Docker Engine {} (API {}, {}) through {} {}{}",
            engine.server_version,
            engine.api_version,
            engine.platform,
            engine.cli,
            engine.client_version,
            engine
                .docker_host
                .as_deref()
                .map(|h| format!(", DOCKER_HOST={h}"))
                .unwrap_or_default()
        ),
    ));
    checks.push(match engine.builder {
        Builder::Legacy => finding(
            "builder",
            Status::Warn,
            "the legacy builder (this CLI has no BuildKit)",
        )
        .detail("builds work; --builder buildkit and remote builders (--builder NAME) need BuildKit")
        .fix("install the docker buildx plugin (Docker Desktop ships it), or use a CLI older than 23 with DOCKER_BUILDKIT=1"),
        b => finding("builder", Status::Ok, b.describe()),
    });

    checks.push(match &f.probe {
        Some(Ok(s)) => finding(
            "probe-image",
            Status::Ok,
            s.why.clone().unwrap_or_else(|| format!("{} (named)", s.image)),
        ),
        Some(Err(e)) => {
            let mut x = finding("probe-image", Status::Fail, e.message.clone())
                .detail("detection and loading run in this image: without one, dmb can neither find the running kernel nor load")
                .blocks(&[Blocks::Build, Blocks::Load]);
            x.fix = e.hint.clone();
            x
        }
        None => skipped("probe-image", "no engine"),
    });

    let caps = f.host_caps.as_ref();
    checks.push(match caps {
        Some(Ok(_)) => finding(
            "pid-host",
            Status::Ok,
            "containers may share the VM's PID namespace (--pid=host)",
        ),
        Some(Err(e)) => finding("pid-host", Status::Fail, format!("the engine refuses --pid=host: {e}"))
            .detail("Docker Desktop's Enhanced Container Isolation refuses --pid=host and module loading: dmb cannot read the VM's files and cannot load modules into it")
            .fix("build here and load elsewhere, or have your administrator turn Enhanced Container Isolation off for this machine")
            .blocks(&[Blocks::Load]),
        None => skipped("pid-host", "no probe image"),
    });

    checks.push(privileged(f));
    checks.push(vm_files(f));
    checks.push(module_loading(caps));
    checks.push(kernel(f));
    checks.push(headers(f));
    checks.push(builder_match(f));
    checks.push(match &f.caches {
        Some(Ok(inv)) => finding(
            "caches",
            Status::Ok,
            format!(
                "{} kept, {} entries{} (`dmb cache` lists them, `dmb cache prune` frees them)",
                human(inv.total_bytes),
                inv.entries.len(),
                inv.cache_dir
                    .as_ref()
                    .map(|d| format!("; cache directory {}", d.display()))
                    .unwrap_or_default()
            ),
        ),
        Some(Err(e)) => finding("caches", Status::Warn, format!("could not list them: {e}")),
        None => skipped("caches", "no engine"),
    });
    report(checks)
}

fn report(checks: Vec<Finding>) -> Report {
    let blocks = |b: Blocks| {
        checks
            .iter()
            .any(|c| c.status == Status::Fail && c.blocks.contains(&b))
    };
    Report {
        blocks_build: blocks(Blocks::Build),
        blocks_load: blocks(Blocks::Load),
        checks,
    }
}

const WITHOUT_VM_FILES: &str = "dmb reads only what an ordinary container sees: no /etc/linuxkit.yml (so no kernel image named by the VM), no /boot configuration, no installed modules (no --crcs installed-modules, no dmb detect --save, no synthesis)";

/// Whether a privileged container could start: dmb never asks for one,
/// but people ask whether the engine allows it. Inferred, never tried.
fn privileged(f: &Facts) -> Finding {
    match &f.host_caps {
        Some(Ok(c)) => match c.withheld() {
            w if w.is_empty() => finding(
                "privileged",
                Status::Ok,
                "dmb needs no privileged container (this engine would start one: its host withholds no capability)",
            ),
            w => finding(
                "privileged",
                Status::Ok,
                format!(
                    "dmb needs no privileged container; this engine would refuse one: its host withholds {} from every process, and --privileged asks for every capability",
                    w.join(", ")
                ),
            )
            .detail("so `docker run --privileged` fails here; dmb reads the VM's files with --pid=host, CAP_SYS_ADMIN and CAP_SYS_PTRACE only, and loads with CAP_SYS_MODULE only"),
        },
        Some(Err(_)) => finding(
            "privileged",
            Status::Ok,
            "dmb needs no privileged container (and an engine that refuses --pid=host refuses privileged ones too)",
        ),
        None => skipped("privileged", "no probe image"),
    }
}

/// The capabilities reading the VM's files takes (besides --pid=host).
const VM_FILES_CAPS: [u32; 2] = [caps::SYS_ADMIN, caps::SYS_PTRACE];

/// Whether dmb can read the VM's own files: tried by detection, unless
/// `--no-vm-files`, when it is inferred from the host's capabilities.
fn vm_files(f: &Facts) -> Finding {
    let withheld: Option<Vec<String>> = match &f.host_caps {
        Some(Ok(c)) => Some(
            VM_FILES_CAPS
                .iter()
                .filter(|&&cap| !c.has(cap))
                .map(|&cap| caps::name(cap))
                .collect(),
        ),
        _ => None,
    };
    if !f.vm_files_asked {
        return match withheld {
            Some(w) if w.is_empty() => finding(
                "vm-files",
                Status::Ok,
                "not tried (--no-vm-files); the engine allows what reading the VM's files takes (--pid=host, CAP_SYS_ADMIN, CAP_SYS_PTRACE)",
            ),
            Some(w) => finding(
                "vm-files",
                Status::Warn,
                format!(
                    "would be refused (inferred, not tried: --no-vm-files): the engine's host withholds {}",
                    w.join(", ")
                ),
            )
            .detail(WITHOUT_VM_FILES),
            None => skipped("vm-files", "--no-vm-files, and the host's capabilities are unknown"),
        };
    }
    match &f.detection {
        Some(Ok(d)) if d.vm_files => finding(
            "vm-files",
            Status::Ok,
            "dmb reads the VM's own files (/etc/linuxkit.yml, /boot, /lib/modules) from a container in its PID namespace with CAP_SYS_ADMIN and CAP_SYS_PTRACE",
        ),
        Some(Ok(d)) => {
            let said = d
                .notes
                .iter()
                .find(|n| n.contains("VM's files"))
                .cloned()
                .unwrap_or_else(|| "the container that reads them was refused".into());
            finding("vm-files", Status::Warn, format!("refused: {said}"))
                .detail(WITHOUT_VM_FILES)
                .fix("on Docker Desktop: turn Enhanced Container Isolation off; on other engines: let containers have --pid=host, CAP_SYS_ADMIN and CAP_SYS_PTRACE (not rootless, no user namespace remapping)")
        }
        _ => skipped("vm-files", "detection did not run"),
    }
}

fn module_loading(caps: Option<&Result<HostCaps, String>>) -> Finding {
    match caps {
        Some(Ok(c)) if c.has(caps::SYS_MODULE) => finding(
            "module-loading",
            Status::Ok,
            "containers can be given CAP_SYS_MODULE: dmb load can insert modules (its loader has that capability alone)",
        ),
        Some(Ok(_)) => finding(
            "module-loading",
            Status::Fail,
            "the engine's host withholds CAP_SYS_MODULE: no container can load a module",
        )
        .fix("load from an engine whose host keeps CAP_SYS_MODULE (Docker Desktop's VM does, unless Enhanced Container Isolation is on)")
        .blocks(&[Blocks::Load]),
        Some(Err(_)) => finding(
            "module-loading",
            Status::Fail,
            "impossible: the engine refuses --pid=host, as Enhanced Container Isolation does, and refuses module loading with it",
        )
        .fix("have your administrator turn Enhanced Container Isolation off for this machine")
        .blocks(&[Blocks::Load]),
        None => skipped("module-loading", "no probe image"),
    }
}

fn kernel(f: &Facts) -> Finding {
    match &f.detection {
        Some(Ok(d)) => finding(
            "kernel",
            Status::Ok,
            format!(
                "{} ({}) on {}, built with {}",
                d.release,
                d.arch,
                d.platform_name,
                d.kernel_compiler()
                    .map(|c| c.text.clone())
                    .unwrap_or_else(|| "an unknown compiler".into())
            ),
        ),
        Some(Err(e)) => finding("kernel", Status::Fail, format!("detection failed: {e}"))
            .blocks(&[Blocks::Build, Blocks::Load]),
        None => skipped("kernel", "no probe image"),
    }
}

fn headers(f: &Facts) -> Finding {
    match &f.headers {
        Some(Headers::Image { reference, source }) => finding(
            "headers",
            Status::Ok,
            format!("kernel image {reference}, in the engine ({source})"),
        ),
        Some(Headers::Synthesized { reference }) => finding(
            "headers",
            Status::Ok,
            format!("{reference}, synthesized earlier for this kernel"),
        ),
        Some(Headers::Synthesis { source, missing }) => finding(
            "headers",
            Status::Ok,
            format!("{missing}: the first build synthesizes a kernel image from {source} (minutes, once)"),
        )
        .detail("dmb kernel synthesize does the same ahead of time; --kernel-source names another source"),
        Some(Headers::Nothing { why, fix }) => finding("headers", Status::Fail, why.clone())
            .fix(fix.clone())
            .blocks(&[Blocks::Build]),
        None => skipped("headers", "the kernel is unknown"),
    }
}

fn builder_match(f: &Facts) -> Finding {
    let Some(Ok(d)) = &f.detection else {
        return skipped("builder-match", "the kernel is unknown");
    };
    let b = &d.build_ref;
    let name = b.reference.as_deref().unwrap_or("none");
    if b.quality != MatchQuality::None && f.build_ref_present == Some(false) {
        return finding(
            "builder-match",
            Status::Warn,
            format!("{name} ({}), not in the engine: the first build pulls it", b.reason),
        )
        .fix(format!(
            "where no registry is in reach: `docker save {name}` on a machine that has it, `docker load` here"
        ));
    }
    match b.quality {
        MatchQuality::Exact => finding("builder-match", Status::Ok, format!("{name}: the kernel's own compiler ({})", b.reason)),
        MatchQuality::SameMajor => finding(
            "builder-match",
            Status::Warn,
            format!("{name}: same major compiler version only ({})", b.reason),
        )
        .detail("modules usually load, but a compiler other than the kernel's can differ in what it generates")
        .fix("name the kernel's own builder with --build-ref when you have it"),
        MatchQuality::None => finding(
            "builder-match",
            Status::Fail,
            format!("no builder image matches the kernel's compiler ({})", b.reason),
        )
        .fix("name one with --build-ref (BUILD_REF): an image whose compiler is the kernel's")
        .blocks(&[Blocks::Build]),
    }
}

#[cfg(test)]
mod tests;
