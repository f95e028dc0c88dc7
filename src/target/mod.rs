//! The target kernel: the one the engine in reach runs, found on every run
//! (Docker Desktop does not version its VM, so nothing is cached).
//!
//! One short-lived container reads what the kernel and its VM say about
//! themselves; the rest is parsing ([`version`], [`platform`], the
//! LinuxKit YAML) and choosing images ([`crate::toolchain::pick`]).

pub mod platform;
pub mod version;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Engine, EngineError, RunRequest, Session};
use crate::kernel::config::KernelConfig;
use crate::toolchain::pick::{self, BuilderPick, MatchQuality};
pub use platform::Platform;
use version::{Compiler, Linker};

/// The label LinuxKit kernel images name their compiler image with.
pub const BUILDIMAGE_LABEL: &str = "org.mobyproject.linuxkit.kernel.buildimage";
/// The file that names it in older LinuxKit kernel images.
pub const KERNEL_BUILDER_FILE: &str = "/kernel-builder";

/// The shell lines that print `/proc/modules`, then one `@@dmb-ident NAME
/// SRCVERSION NOTE` line per loadable module (`-` for what it lacks): which
/// build of each module is loaded. Shared by [`PROBE_SCRIPT`] and
/// [`crate::load::state::STATE_SCRIPT`].
#[macro_export]
macro_rules! module_state_lines {
    () => {
        r#"cat /proc/modules
for d in /sys/module/*; do
  [ -e "$d/initstate" ] || continue
  v=$(cat "$d/srcversion" 2>/dev/null)
  b=$(od -An -v -tx1 "$d/notes/.note.gnu.build-id" 2>/dev/null | tr -d ' \n')
  echo "@@dmb-ident ${d##*/} ${v:--} ${b:--}"
done
"#
    };
}

/// Prints what the kernel and its VM say, one `@@dmb-section NAME` before
/// each part. Run in the VM's mount namespace where allowed, so that
/// `/etc/linuxkit.yml`, `/boot` and `/lib/modules` are the VM's.
pub const PROBE_SCRIPT: &str = concat!(
    r#"s() { echo "@@dmb-section $1"; }
r=$(uname -r)
s release; echo "$r"
s stamp; uname -v
s machine; uname -m
s proc_version; cat /proc/version
s boot_id; cat /proc/sys/kernel/random/boot_id 2>/dev/null
if [ -r /proc/config.gz ]; then s config:/proc/config.gz; zcat /proc/config.gz 2>/dev/null || gzip -dc /proc/config.gz
elif [ -r "/boot/config-$r" ]; then s "config:/boot/config-$r"; cat "/boot/config-$r"; fi
if [ -r /etc/linuxkit.yml ]; then s linuxkit_yml; cat /etc/linuxkit.yml; fi
s loaded; while read -r m rest; do echo "$m"; done < /proc/modules
if [ -r "/lib/modules/$r/modules.builtin" ]; then s builtin; cat "/lib/modules/$r/modules.builtin"; fi
if [ -d "/lib/modules/$r" ]; then s on_disk; find "/lib/modules/$r" -name '*.ko*' 2>/dev/null; fi
s module_state
"#,
    module_state_lines!(),
    "exit 0"
);

/// The probe's output, by section.
pub fn parse_sections(output: &str) -> BTreeMap<String, String> {
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("@@dmb-section ") {
            current = Some(name.trim().to_string());
            sections.entry(name.trim().to_string()).or_default();
        } else if let Some(name) = &current {
            let s = sections.get_mut(name).expect("inserted");
            s.push_str(line);
            s.push('\n');
        }
    }
    sections
}

/// `kernel.image` of Docker Desktop's `/etc/linuxkit.yml`. Other images
/// (`init:`, such as `for-desktop-kernel-grpcfuse`) are not the kernel.
pub fn linuxkit_kernel_image(yaml: &str) -> Result<Option<String>, String> {
    #[derive(serde::Deserialize)]
    struct Yml {
        kernel: Option<KernelSection>,
    }
    #[derive(serde::Deserialize)]
    struct KernelSection {
        image: Option<String>,
    }
    let y: Yml = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
    Ok(y.kernel.and_then(|k| k.image))
}

/// Where a kernel image reference came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelRefPick {
    pub reference: Option<String>,
    pub source: String,
    pub warning: Option<String>,
}

/// Where the build image comes from, and how well it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildRefPick {
    pub reference: Option<String>,
    pub quality: MatchQuality,
    pub source: String,
    pub reason: String,
}

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

/// Everything detection found.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub release: String,
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
    /// Whether the VM's own files were read (a privileged container in
    /// PID 1's mount namespace), or only what any container sees.
    pub vm_files: bool,
    /// `/proc/modules` and the loaded modules' identities, as
    /// [`crate::load::state::KernelState::parse`] reads them.
    #[serde(skip)]
    pub module_state: String,
    pub notes: Vec<String>,
    #[serde(skip)]
    pub config: KernelConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("the probe container printed no kernel release")]
    NoRelease,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// How to look.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// A small image with sh, nsenter, zcat (busybox).
    pub probe_image: String,
    /// Enter the VM's mount namespace with a privileged container. Off, only
    /// what an ordinary container sees is read (no linuxkit.yml, no /boot).
    pub vm_files: bool,
}

/// Reads the facts, from the VM when allowed, else from an ordinary
/// container (a privileged container is refused on some engines).
pub fn detect(
    engine: &dyn Engine,
    session: &Session,
    opts: &DetectOptions,
) -> Result<Target, DetectError> {
    let mut notes = Vec::new();
    let run = |host: bool| {
        let mut request = RunRequest::new(
            &opts.probe_image,
            session.name(if host { "detect-vm" } else { "detect" }),
            session.id(),
            PROBE_SCRIPT,
        );
        request.host_mount_namespace = host.then_some(
            "reading the VM's own files (/etc/linuxkit.yml, /boot, /lib/modules) needs the mount namespace of its PID 1",
        );
        engine.run(&request)
    };
    let (output, vm_files) = if opts.vm_files {
        match run(true) {
            Ok(done) => (done.stdout, true),
            Err(EngineError::Interrupted) => return Err(EngineError::Interrupted.into()),
            Err(e) => {
                notes.push(format!(
                    "could not read the VM's files with a privileged container ({e}); read what an ordinary container sees"
                ));
                (run(false)?.stdout, false)
            }
        }
    } else {
        (run(false)?.stdout, false)
    };
    let sections = parse_sections(&output);
    let text = |name: &str| sections.get(name).map(|s| s.trim().to_string());
    let release = text("release")
        .filter(|r| !r.is_empty())
        .ok_or(DetectError::NoRelease)?;
    let proc_version = text("proc_version").unwrap_or_default();
    let parsed = version::parse_proc_version(&proc_version);
    let yaml = text("linuxkit_yml");
    let platform = platform::classify(&release, &proc_version, yaml.is_some());

    let (config_source, config_text) = sections
        .iter()
        .find_map(|(k, v)| {
            k.strip_prefix("config:")
                .map(|src| (Some(src.to_string()), v.clone()))
        })
        .unwrap_or((None, String::new()));
    let mut config = KernelConfig::parse(&config_text);

    let kernel_ref = pick_kernel_ref(&release, yaml.as_deref(), &mut notes);
    // With no config from the VM, the kernel image's own .config will do.
    let mut config_source = config_source;
    if config.is_empty() {
        if let Some(r) = kernel_ref.reference.as_deref() {
            if let Ok(facts) =
                crate::kernel::image::facts_from_image(engine, session, r, Some(&release))
            {
                config = facts.config;
                config_source = Some(format!("kernel image {r}"));
            }
        }
    }
    let config_compiler = config
        .get("CC_VERSION_TEXT")
        .and_then(version::parse_compiler);
    let compiler = parsed.as_ref().and_then(|p| p.compiler.clone());
    let build_ref = pick_build_ref(
        engine,
        session,
        kernel_ref.reference.as_deref(),
        config_compiler.as_ref().or(compiler.as_ref()),
    )?;
    let lines = |name: &str| -> Vec<String> {
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
    Ok(Target {
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
            loaded: lines("loaded"),
            builtin: lines("builtin"),
            on_disk: lines("on_disk"),
            on_disk_paths: on_disk_paths(sections.get("on_disk").map_or("", |s| s)),
        },
        vm_files,
        module_state: sections.get("module_state").cloned().unwrap_or_default(),
        notes,
        config,
        proc_version,
        release,
    })
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

/// KERNEL_REF: `kernel.image` of `/etc/linuxkit.yml`; else, for a LinuxKit
/// release, the matching `linuxkit/kernel` image (with a warning); else none.
fn pick_kernel_ref(release: &str, yaml: Option<&str>, notes: &mut Vec<String>) -> KernelRefPick {
    if let Some(yaml) = yaml {
        match linuxkit_kernel_image(yaml) {
            Ok(Some(image)) => {
                return KernelRefPick {
                    reference: Some(image),
                    source: "/etc/linuxkit.yml kernel.image".into(),
                    warning: None,
                }
            }
            Ok(None) => notes.push("/etc/linuxkit.yml names no kernel.image".into()),
            Err(e) => notes.push(format!("/etc/linuxkit.yml cannot be read: {e}")),
        }
    }
    if let Some((version, _)) = release.split_once("-linuxkit") {
        let warning = version.starts_with("5.").then(|| {
            "Docker Desktop's 5.x kernels carry their own RANDSTRUCT seed: a plain linuxkit/kernel image of the same version may build modules that do not load".to_string()
        });
        return KernelRefPick {
            reference: Some(format!("linuxkit/kernel:{version}")),
            source: "the release (a LinuxKit kernel)".into(),
            warning,
        };
    }
    KernelRefPick {
        reference: None,
        source: "none".into(),
        warning: Some(format!(
            "no /etc/linuxkit.yml, and {release} is not a LinuxKit release: give --kernel-ref"
        )),
    }
}

/// BUILD_REF: what the kernel image names (label or `/kernel-builder`);
/// else a distribution image whose default gcc is the kernel's.
fn pick_build_ref(
    engine: &dyn Engine,
    session: &Session,
    kernel_ref: Option<&str>,
    compiler: Option<&Compiler>,
) -> Result<BuildRefPick, EngineError> {
    if let Some(k) = kernel_ref {
        if engine.image_id(k)?.is_some() {
            if let (_, Some(builder)) = engine.image_tags_and_label(k, BUILDIMAGE_LABEL)? {
                return Ok(BuildRefPick {
                    reference: Some(builder),
                    quality: MatchQuality::Exact,
                    source: format!("label {BUILDIMAGE_LABEL} of {k}"),
                    reason: "the kernel image names the image its kernel was built with".into(),
                });
            }
            let container = session.name("builder-file");
            engine.create(k, &container, session.id())?;
            let mut named = String::new();
            let found = engine.with_file(&container, KERNEL_BUILDER_FILE, &mut |r| {
                let mut limited = std::io::Read::take(r, 4096);
                std::io::Read::read_to_string(&mut limited, &mut named)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
            engine.remove_session_containers(session.id())?;
            if found? && !named.trim().is_empty() {
                return Ok(BuildRefPick {
                    reference: Some(named.trim().to_string()),
                    quality: MatchQuality::Exact,
                    source: format!("{KERNEL_BUILDER_FILE} of {k}"),
                    reason: "the kernel image names the image its kernel was built with".into(),
                });
            }
        }
    }
    Ok(match compiler {
        Some(c) => {
            let BuilderPick {
                reference,
                quality,
                reason,
            } = pick::for_compiler(c);
            BuildRefPick {
                reference,
                quality,
                source: "the compiler tables".into(),
                reason,
            }
        }
        None => BuildRefPick {
            reference: None,
            quality: MatchQuality::None,
            source: "none".into(),
            reason: "the kernel does not say which compiler built it".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DD_4_13: &str = "kernel:\n  image: docker.io/docker/for-desktop-kernel:5.15.49-13422a825f833d125942948cf8a8688cef721ead\n  cmdline: page_poison=1 vsyscall=emulate panic=1 nospec_store_bypass_disable noibrs noibpb no_stf_barrier mitigations=off\ninit:\n- docker.io/docker/for-desktop-kernel-grpcfuse:5.15.49-e0f6f06f948f53fae09ba665e91b0cca9cc5f3c5\nfiles:\n- path: /etc/linuxkit.yml\n  metadata: yaml\n- path: /etc/os-release\n  contents: PRETTY_NAME=\"Docker Desktop\"\n";

    #[test]
    fn docker_desktop_4_13_linuxkit_yml() {
        assert_eq!(
            linuxkit_kernel_image(DD_4_13).unwrap().as_deref(),
            Some("docker.io/docker/for-desktop-kernel:5.15.49-13422a825f833d125942948cf8a8688cef721ead")
        );
        assert_eq!(linuxkit_kernel_image("init:\n- x\n").unwrap(), None);
        assert!(linuxkit_kernel_image("kernel: [unclosed").is_err());
    }

    #[test]
    fn kernel_ref_candidates() {
        let mut notes = Vec::new();
        let p = pick_kernel_ref("5.15.49-linuxkit-pr", None, &mut notes);
        assert_eq!(p.reference.as_deref(), Some("linuxkit/kernel:5.15.49"));
        assert!(p.warning.unwrap().contains("RANDSTRUCT"));
        let p = pick_kernel_ref("6.12.54-linuxkit", None, &mut notes);
        assert_eq!(
            (p.reference.as_deref(), p.warning),
            (Some("linuxkit/kernel:6.12.54"), None)
        );
        let p = pick_kernel_ref("6.8.0-31-generic", None, &mut notes);
        assert_eq!(p.reference, None);
        let p = pick_kernel_ref("5.15.49-linuxkit", Some(DD_4_13), &mut notes);
        assert!(p
            .reference
            .unwrap()
            .starts_with("docker.io/docker/for-desktop-kernel:5.15.49-"));
    }

    #[test]
    fn sections_split() {
        let s = parse_sections("@@dmb-section release\n6.1.0-56-amd64\n@@dmb-section loaded\nsctp\noverlay\n@@dmb-section config:/boot/config-6.1.0-56-amd64\nCONFIG_SMP=y\n");
        assert_eq!(s["release"], "6.1.0-56-amd64\n");
        assert_eq!(s["loaded"], "sctp\noverlay\n");
        assert!(s.contains_key("config:/boot/config-6.1.0-56-amd64"));
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
