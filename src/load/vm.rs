//! Reading the VM's own module files: dependencies that only the VM has,
//! and, when the kernel's `Module.symvers` is out of reach, the CRCs its
//! installed modules record.
//!
//! Both need the VM's mount namespace, so a container (CAP_SYS_ADMIN,
//! CAP_SYS_PTRACE, never privileged) with the
//! host's PID namespace (`nsenter -t 1 -m`) — for reading only. The
//! modules are then inserted from an unprivileged container.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use crate::engine::{Engine, EngineError, RunRequest, Session};
use crate::kernel::symvers::{SymverEntry, Symvers};
use crate::kernel::{KernelConfig, KernelFacts, KernelRelease};
use crate::ko::{Module, MAX_MODULE_BYTES};
use crate::scripts;
use crate::tarball::each_regular_file;

const WHY_VM_FILES: &str =
    "the VM's own modules (/lib/modules) are only visible in the mount namespace of its PID 1";

/// A container in the VM's mount namespace, for reading.
fn vm_request<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    what: &str,
    script: &'static str,
) -> RunRequest {
    let mut request = session.request(image, what, script);
    request.host_mount_namespace = Some(WHY_VM_FILES);
    request
}

/// Copies VM files (absolute paths) into `dest`, each under its base name.
/// Returns the paths written, in the order given.
pub fn fetch_files<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    paths: &[String],
    dest: &Path,
) -> Result<Vec<std::path::PathBuf>, EngineError> {
    let mut request = vm_request(session, image, "vm-files", scripts::VM_FILES);
    request.args = paths
        .iter()
        .map(|p| p.trim_start_matches('/').to_string())
        .collect();
    let mut written = HashMap::new();
    session.engine().run_reading(&request, &mut |stream| {
        each_regular_file(stream, |path, contents| {
            let Some(name) = path.file_name() else {
                return Ok(false);
            };
            let target = dest.join(name);
            let mut file = std::fs::File::create(&target).map_err(|e| e.to_string())?;
            std::io::copy(&mut contents.take(MAX_MODULE_BYTES), &mut file)
                .map_err(|e| e.to_string())?;
            written.insert(format!("/{}", path.display()), target);
            Ok(false)
        })
    })?;
    Ok(paths
        .iter()
        .filter_map(|p| {
            written
                .get(&format!("/{}", p.trim_start_matches('/')))
                .cloned()
        })
        .collect())
}

/// What the VM's installed modules say about their kernel.
#[derive(Debug, Clone, Default)]
pub struct InstalledModules {
    pub count: usize,
    /// The vermagic most of them carry.
    pub vermagic: Option<String>,
    /// Symbol → CRC: from the exports of the modules (authoritative), else
    /// from what the modules that import it recorded.
    pub crcs: HashMap<String, (u32, String)>,
    /// Symbols whose importers recorded different CRCs (the first is kept).
    pub disagreements: Vec<String>,
    pub names: HashSet<String>,
    pub unreadable: usize,
    /// Whether every module was read (else it stopped once it had the CRCs
    /// it was asked for).
    pub complete: bool,
}

impl InstalledModules {
    pub fn add(&mut self, path: &str, m: &Module) {
        self.count += 1;
        self.names.insert(m.name.clone());
        for e in &m.exports {
            if let Some(crc) = e.crc {
                self.crcs.insert(e.symbol.clone(), (crc, path.to_string()));
            }
        }
        for v in &m.versions {
            match self.crcs.get(&v.symbol) {
                None => {
                    self.crcs.insert(
                        v.symbol.clone(),
                        (v.crc, "the kernel's installed modules".to_string()),
                    );
                }
                Some((crc, _)) if *crc != v.crc => self.disagreements.push(v.symbol.clone()),
                Some(_) => {}
            }
        }
    }

    /// Facts to check against: the recorded vermagic (the configuration's
    /// otherwise) and the CRCs, marked incomplete.
    pub fn facts(&self, kernel: RunningSide) -> KernelFacts {
        let symbols = self
            .crcs
            .iter()
            .map(|(symbol, (crc, module))| {
                (
                    symbol.clone(),
                    SymverEntry {
                        crc: *crc,
                        module: module.clone(),
                        export: String::new(),
                        namespace: String::new(),
                    },
                )
            })
            .collect();
        KernelFacts {
            release: kernel.release,
            config: kernel.config,
            symvers: Symvers { symbols },
            randstruct_seed: None,
            builtin: kernel.builtin,
            recorded_vermagic: self.vermagic.clone(),
            symvers_complete: false,
            installed: self.names.union(&kernel.installed).cloned().collect(),
            loaded: kernel.loaded,
        }
    }
}

/// What the running kernel says of itself, beside its installed modules.
pub struct RunningSide {
    pub release: KernelRelease,
    pub config: KernelConfig,
    pub builtin: HashSet<String>,
    /// Loaded or on disk.
    pub installed: HashSet<String>,
    pub loaded: HashSet<String>,
}

/// Modules to read at least before stopping early: the vermagic is the
/// one most of them carry.
const ENOUGH_FOR_VERMAGIC: usize = 16;

/// Streams the module files of the running kernel out of the VM (nothing
/// is written to disk) and hands each one that parses to `each`, with its
/// path under `/lib/modules/<release>/` (`kernel/net/sctp/sctp.ko`); `each`
/// returns true to stop. Returns the number of files that did not parse,
/// and whether it was stopped.
pub fn each_installed_module<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    each: &mut dyn FnMut(&str, &Module) -> bool,
) -> Result<(usize, bool), EngineError> {
    let request = vm_request(session, image, "installed", scripts::INSTALLED_MODULES);
    let mut unreadable = 0;
    let mut stopped = false;
    session.engine().run_reading(&request, &mut |stream| {
        stopped = each_regular_file(stream, |path, contents| {
            let path = path.display().to_string();
            let mut bytes = Vec::new();
            contents
                .take(MAX_MODULE_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| e.to_string())?;
            Ok(match Module::read(&path, bytes) {
                Ok(m) => each(path.trim_start_matches("./"), &m),
                Err(_) => {
                    unreadable += 1;
                    false
                }
            })
        })?;
        Ok(stopped)
    })?;
    Ok((unreadable, stopped))
}

/// Keeps what [`InstalledModules`] holds of the VM's module files. It
/// stops as soon as every symbol of `wanted` has a CRC (and enough modules
/// were read to tell the vermagic); a symbol no module has makes it read all.
pub fn installed_modules<E: ?Sized + Engine>(
    session: &Session<E>,
    image: &str,
    wanted: &HashSet<String>,
) -> Result<InstalledModules, EngineError> {
    let mut found = InstalledModules::default();
    let mut vermagics: HashMap<String, usize> = HashMap::new();
    let (unreadable, stopped) = each_installed_module(session, image, &mut |path, m| {
        if let Some(v) = m.info.vermagic() {
            *vermagics.entry(v.to_string()).or_default() += 1;
        }
        found.add(path, m);
        found.count >= ENOUGH_FOR_VERMAGIC && wanted.iter().all(|w| found.crcs.contains_key(w))
    })?;
    found.unreadable = unreadable;
    found.complete = !stopped;
    found.vermagic = vermagics
        .into_iter()
        .max_by_key(|(v, n)| (*n, std::cmp::Reverse(v.clone())))
        .map(|(v, _)| v);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check;
    use crate::ko::tests::Fixture;

    #[test]
    fn crcs_from_installed_modules_decide_and_the_rest_is_unverified() {
        let mut installed = InstalledModules::default();
        // An installed module that imports _printk and exports crc_thing.
        let mut f = Fixture::named("installed", "", &[], 1);
        f.versions = vec![(0x92997ed8, "_printk")];
        f.exports = vec![("crc_thing", 0x11, false)];
        let m = Module::read("kernel/lib/installed.ko", f.elf()).unwrap();
        installed.add("kernel/lib/installed.ko", &m);
        installed.vermagic = Some("6.1.0-56-amd64 SMP preempt mod_unload modversions ".into());
        let facts = installed.facts(RunningSide {
            release: KernelRelease::parse("6.1.0-56-amd64").unwrap(),
            config: KernelConfig::parse(""),
            builtin: HashSet::new(),
            installed: HashSet::new(),
            loaded: HashSet::new(),
        });
        assert_eq!(
            facts.vermagic(),
            "6.1.0-56-amd64 SMP preempt mod_unload modversions "
        );

        // hello imports _printk (agreed) and phys_base (nobody imports it).
        let hello = Module::read("hello.ko", Fixture::hello().elf()).unwrap();
        let r = check(&facts, std::slice::from_ref(&hello), &[]);
        assert!(r.all_fit(), "{r:?}");
        assert!(r.modules[0].unverified.contains(&"phys_base".to_string()));
        assert!(!r.modules[0].unverified.contains(&"_printk".to_string()));

        // A CRC no installed module agrees on is a mismatch.
        let mut f = Fixture::hello();
        f.versions[1].0 = 0xdeadbeef;
        let bad = Module::read("hello.ko", f.elf()).unwrap();
        let r = check(&facts, &[bad], &[]);
        assert!(
            r.modules[0].misfits.iter().any(
                |m| matches!(m, crate::check::Misfit::Crc { symbol, .. } if symbol == "_printk")
            ),
            "{r:?}"
        );
    }
}
