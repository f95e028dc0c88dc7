//! The running kernel: the one the engine in reach runs, found on every run
//! (Docker Desktop does not version its VM, so nothing is cached).
//!
//! One short-lived container runs the probe script, which prints what the
//! kernel and its VM say about themselves; the rest is parsing (the
//! release, [`platform`], [`linuxkit`]'s YAML, [`loaded`] modules, the
//! compiler) and choosing images ([`images`]).

pub mod images;
pub mod linuxkit;
pub mod loaded;
pub mod platform;
pub mod probe_image;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Base, EngineError, Session};
use crate::kernel::{BadRelease, KernelConfig, KernelRelease};
use crate::scripts;
use crate::toolchain::compiler::{self, Compiler, Linker};
pub use images::{BuildRefPick, KernelRefPick};
pub use loaded::{LoadedModule, LoadedModules};
pub use platform::Platform;

/// Which modules the kernel has, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Modules {
    pub loaded: Vec<String>,
    pub builtin: Vec<String>,
    pub on_disk: Vec<String>,
    /// Module name → its file in the VM (the first, should two share a name).
    #[serde(skip)]
    pub on_disk_paths: BTreeMap<String, String>,
}

impl Modules {
    /// What is known of one module: `loaded`, `built in`, `on disk`.
    pub fn status_of(&self, name: &str) -> Option<&'static str> {
        let name = crate::ko::module_name(name);
        if self.loaded.contains(&name) {
            Some("loaded")
        } else if self.builtin.contains(&name) {
            Some("built in")
        } else if self.on_disk.contains(&name) {
            Some("on disk")
        } else {
            None
        }
    }
}

/// Everything detection found about the engine's kernel and the images
/// that go with it.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub release: KernelRelease,
    pub proc_version: String,
    pub stamp: String,
    pub arch: String,
    pub boot_id: Option<String>,
    pub platform: Platform,
    pub platform_name: &'static str,
    pub compiler: Option<Compiler>,
    pub linker: Option<Linker>,
    /// `CONFIG_CC_VERSION_TEXT`, when a config was found.
    pub config_compiler: Option<Compiler>,
    pub needs_llvm: bool,
    /// `/proc/config.gz`, `/boot/config-<kver>`, `kernel image <ref>`, or none.
    pub config_source: Option<String>,
    pub kernel_ref: KernelRefPick,
    pub build_ref: BuildRefPick,
    pub modules: Modules,
    /// Whether the VM's own files were read (a container in
    /// PID 1's mount namespace), or only what any container sees.
    pub vm_files: bool,
    /// What is loaded, and which build of each.
    #[serde(skip)]
    pub loaded: LoadedModules,
    /// Other names of the modules on disk and built in (`crc32c` →
    /// `crc32c_generic`), from `modules.alias` and `modules.builtin.modinfo`.
    #[serde(skip)]
    pub aliases: BTreeMap<String, Vec<String>>,
    pub notes: Vec<String>,
    /// The image that ran the probe (the loader's image too, unless told
    /// otherwise).
    pub probe_image: String,
    #[serde(skip)]
    pub config: KernelConfig,
}

impl Detection {
    /// The compiler that built the kernel: its configuration's word first.
    pub fn kernel_compiler(&self) -> Option<&Compiler> {
        self.config_compiler.as_ref().or(self.compiler.as_ref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("the probe container printed no kernel release")]
    NoRelease,
    #[error("the probe container printed a release dmb cannot use: {0}")]
    BadRelease(#[from] BadRelease),
    #[error(transparent)]
    NoProbeImage(#[from] probe_image::NoProbeImage),
}

/// How to look.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// The image with sh, nsenter, zcat, insmod… (busybox) that probes.
    pub probe_image: probe_image::ProbeImage,
    /// Enter the VM's mount namespace (`--pid=host`, CAP_SYS_ADMIN and
    /// CAP_SYS_PTRACE; never `--privileged`). Off, only
    /// what an ordinary container sees is read (no linuxkit.yml, no /boot).
    pub vm_files: bool,
}

/// The first line of what the VM says, without control characters and at
/// most 1 KiB: `/proc/version` is one line; a VM that says more is not
/// to be echoed whole.
fn first_line_plain(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(1024)
        .collect()
}

const WHY_PRIVILEGED: &str = "reading the VM's own files (/etc/linuxkit.yml, /boot, /lib/modules) needs the mount namespace of its PID 1";

/// Reads the facts, from the VM when allowed, else from an ordinary
/// container (entering the VM is refused on some engines).
pub fn detect<E: ?Sized + Base>(
    session: &Session<E>,
    opts: &DetectOptions,
) -> Result<Detection, crate::Error> {
    let mut notes = Vec::new();
    let probe = opts.probe_image.settle(session)?;
    notes.extend(probe.why.clone());
    let run = |vm: bool| {
        let mut request = session.request(
            &probe.image,
            if vm { "detect-vm" } else { "detect" },
            scripts::PROBE,
        );
        request.args = vec!["all".into()];
        request.host_mount_namespace = vm.then_some(WHY_PRIVILEGED);
        session.engine().run(&request)
    };
    let (output, vm_files) = if opts.vm_files {
        match run(true) {
            Ok(done) => (done.stdout, true),
            Err(EngineError::Interrupted) => return Err(EngineError::Interrupted.into()),
            Err(e) => {
                notes.push(format!(
                    "could not read the VM's files (a container in its PID namespace with CAP_SYS_ADMIN and CAP_SYS_PTRACE: {e}); read what an ordinary container sees"
                ));
                (run(false)?.stdout, false)
            }
        }
    } else {
        (run(false)?.stdout, false)
    };
    let sections = scripts::sections(&output);
    let text = |name: &str| sections.get(name).map(|s| s.trim().to_string());
    let release = text("release")
        .filter(|r| !r.is_empty())
        .ok_or(DetectError::NoRelease)?;
    let release = KernelRelease::parse(&release).map_err(DetectError::from)?;
    let proc_version = first_line_plain(&text("proc_version").unwrap_or_default());
    let parsed = compiler::parse_proc_version(&proc_version);
    let yaml = text("linuxkit_yml");
    let platform = platform::classify(&release, &proc_version, yaml.is_some());
    let kernel_ref = images::pick_kernel_ref(&release, yaml.as_deref(), &mut notes);

    // The VM's configuration; with none, the kernel image's own .config.
    let from_vm = sections.iter().find_map(|(k, v)| {
        let source = k.strip_prefix("config:")?;
        Some((source.to_string(), KernelConfig::parse(v)))
    });
    let (config_source, config) = match from_vm.filter(|(_, c)| !c.is_empty()) {
        Some((source, config)) => (Some(source), config),
        None => kernel_ref
            .reference
            .as_deref()
            .and_then(|r| {
                let facts =
                    crate::kernel::image::facts_from_image(session, r, Some(release.as_str()))
                        .ok()?;
                Some((Some(format!("kernel image {r}")), facts.config))
            })
            .unwrap_or_default(),
    };
    let config_compiler = config
        .get("CC_VERSION_TEXT")
        .and_then(compiler::parse_compiler);
    let compiler = parsed.as_ref().and_then(|p| p.compiler.clone());
    let build_ref = images::pick_build_ref(
        session,
        kernel_ref.reference.as_deref(),
        config_compiler.as_ref().or(compiler.as_ref()),
    )?;
    let loaded = LoadedModules::from_sections(&sections);
    let names = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = sections
            .get(name)
            .map(|s| {
                s.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(crate::ko::name_from_file)
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    };
    let needs_llvm = config_compiler
        .as_ref()
        .or(compiler.as_ref())
        .is_some_and(Compiler::needs_llvm);
    Ok(Detection {
        stamp: text("stamp").unwrap_or_default(),
        arch: text("machine").unwrap_or_default(),
        boot_id: text("boot_id").filter(|b| !b.is_empty()),
        platform,
        platform_name: platform.describe(),
        linker: parsed.as_ref().and_then(|p| p.linker.clone()),
        compiler,
        config_compiler,
        needs_llvm,
        config_source,
        kernel_ref,
        build_ref,
        modules: Modules {
            loaded: loaded.modules.keys().cloned().collect(),
            builtin: names("builtin"),
            on_disk: names("on_disk"),
            on_disk_paths: on_disk_paths(sections.get("on_disk").map_or("", |s| s)),
        },
        vm_files,
        loaded,
        aliases: aliases(
            sections.get("aliases").map_or("", |s| s),
            sections.get("builtin_aliases").map_or("", |s| s),
        ),
        notes,
        probe_image: probe.image,
        config,
        proc_version,
        release,
    })
}

/// `alias NAME MODULE` lines of `modules.alias`, and `MODULE.alias=NAME`
/// lines of `modules.builtin.modinfo`: alias → modules.
fn aliases(on_disk: &str, builtin: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let pairs = on_disk
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("alias")).then_some(())?;
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .chain(builtin.lines().filter_map(|l| {
            let (module, alias) = l.trim().split_once(".alias=")?;
            Some((alias.to_string(), module.to_string()))
        }));
    for (alias, module) in pairs {
        let entry = out.entry(crate::ko::module_name(&alias)).or_default();
        let module = crate::ko::module_name(&module);
        if !entry.contains(&module) {
            entry.push(module);
        }
    }
    out
}

fn on_disk_paths(listing: &str) -> BTreeMap<String, String> {
    let mut paths = BTreeMap::new();
    for path in listing
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
    {
        paths
            .entry(crate::ko::name_from_file(path))
            .or_insert_with(|| path.to_string());
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proc_version_that_is_long_or_holds_control_characters_is_cut_to_one_plain_line() {
        assert_eq!(first_line_plain(""), "");
        let long = format!("Linux version 6.1\x1b[2J{}\nsecond", "x".repeat(64 * 1024));
        let shown = first_line_plain(&long);
        assert_eq!(shown.chars().count(), 1024);
        assert!(shown.starts_with("Linux version 6.1[2Jxxx"));
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn aliases_of_modules_on_disk_and_built_in() {
        let a = aliases(
            "alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\nalias crc32c crc32c-intel\n",
            "crc32c_generic.alias=crc32c\n",
        );
        assert_eq!(a["crc32c"], ["crc32c_generic", "crc32c_intel"]);
        assert_eq!(a["crypto_crc32c"], ["crc32c_generic"]);
    }

    #[test]
    fn module_status() {
        let m = Modules {
            loaded: vec!["overlay".into()],
            builtin: vec!["sctp".into()],
            on_disk: vec!["dm_crypt".into()],
            on_disk_paths: on_disk_paths("/lib/modules/r/kernel/drivers/md/dm-crypt.ko.xz\n"),
        };
        assert_eq!(
            m.on_disk_paths["dm_crypt"],
            "/lib/modules/r/kernel/drivers/md/dm-crypt.ko.xz"
        );
        assert_eq!(m.status_of("sctp"), Some("built in"));
        assert_eq!(m.status_of("dm-crypt"), Some("on disk"));
        assert_eq!(m.status_of("overlay"), Some("loaded"));
        assert_eq!(m.status_of("wireguard"), None);
    }
}
