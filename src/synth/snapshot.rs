//! A snapshot of a target kernel: everything a module must agree with, read
//! from the running VM once (`dmb detect --save FILE`), so that a kernel
//! image can be synthesized for it on any engine (`dmb kernel synthesize
//! --snapshot FILE`). One file: a gzip'd tar holding `snapshot.json`, the
//! configuration verbatim (`config`), and the kernel's BTF when it has one
//! (`vmlinux.btf`).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::harvest::Harvest;
use super::SynthError;
use crate::detect::Detection;
use crate::engine::{Engine, Session};
use crate::kernel::KernelRelease;
use crate::progress::Progress;
use crate::scripts;
use crate::tarball::{append_file, each_regular_file};

/// Bump when the format changes incompatibly.
pub const FORMAT: u32 = 1;
/// No member of a snapshot is larger than this (a configuration is ~300 KB,
/// BTF ~6 MB, the JSON a few MB).
const MAX_MEMBER: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    /// `uname -r`.
    pub release: String,
    /// `/proc/version`: the compiler that built the kernel.
    pub proc_version: String,
    pub arch: String,
    pub platform: String,
    /// Where the configuration was read (`/proc/config.gz`).
    pub config_source: Option<String>,
    /// The builder detection picked on the engine the snapshot was taken
    /// on (the one the kernel image names, or the distribution's image).
    #[serde(default)]
    pub build_ref: Option<String>,
    #[serde(skip)]
    pub config: String,
    pub harvest: Harvest,
    /// The kernel's own exports, as `/proc/kallsyms` lists them
    /// (`__ksymtab_*`); none when it lists no data symbols
    /// (`CONFIG_KALLSYMS_ALL` off).
    pub vmlinux_exports: Option<BTreeSet<String>>,
    #[serde(skip)]
    pub btf: Option<Vec<u8>>,
}

impl Snapshot {
    pub fn release(&self) -> Result<KernelRelease, SynthError> {
        KernelRelease::parse(&self.release).map_err(|e| SynthError::BadSnapshot {
            path: String::new(),
            reason: e.to_string(),
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), SynthError> {
        let io = |e: std::io::Error| SynthError::Io {
            what: format!("writing {}", path.display()),
            detail: e.to_string(),
        };
        let json = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        let file = std::fs::File::create(path).map_err(io)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        append_file(&mut tar, "snapshot.json", &json).map_err(io)?;
        append_file(&mut tar, "config", self.config.as_bytes()).map_err(io)?;
        if let Some(btf) = &self.btf {
            append_file(&mut tar, "vmlinux.btf", btf).map_err(io)?;
        }
        tar.into_inner().and_then(|gz| gz.finish()).map_err(io)?;
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Snapshot, SynthError> {
        let bad = |reason: String| SynthError::BadSnapshot {
            path: path.display().to_string(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut json = None;
        let mut config = None;
        let mut btf = None;
        each_regular_file(flate2::read::GzDecoder::new(file), |name, contents| {
            let mut data = Vec::new();
            contents
                .take(MAX_MEMBER)
                .read_to_end(&mut data)
                .map_err(|e| e.to_string())?;
            match name.to_str() {
                Some("snapshot.json") => json = Some(data),
                Some("config") => config = Some(String::from_utf8_lossy(&data).into_owned()),
                Some("vmlinux.btf") => btf = Some(data),
                _ => {}
            }
            Ok(false)
        })
        .map_err(|e| bad(format!("not a dmb snapshot (a gzip'd tar): {e}")))?;
        let json = json.ok_or_else(|| bad("it has no snapshot.json".into()))?;
        let mut snapshot: Snapshot =
            serde_json::from_slice(&json).map_err(|e| bad(format!("snapshot.json: {e}")))?;
        if snapshot.format != FORMAT {
            return Err(bad(format!(
                "format {} (this dmb reads format {FORMAT})",
                snapshot.format
            )));
        }
        snapshot.config = config.ok_or_else(|| bad("it has no config".into()))?;
        snapshot.btf = btf;
        snapshot.release().map_err(|e| bad(e.to_string()))?;
        Ok(snapshot)
    }

    /// Takes a snapshot of the kernel `detection` found: its installed
    /// modules (read in the VM's mount namespace), `/proc/kallsyms`' list of
    /// exports and `/sys/kernel/btf/vmlinux` (an ordinary container).
    pub fn take<E: ?Sized + Engine>(
        session: &Session<E>,
        detection: &Detection,
        probe_image: &str,
        progress: &mut dyn Progress,
    ) -> Result<Snapshot, crate::Error> {
        if !detection.vm_files {
            return Err(SynthError::SnapshotNeedsVmFiles.into());
        }
        if detection.config.is_empty() {
            return Err(SynthError::NoConfig {
                release: detection.release.to_string(),
            }
            .into());
        }
        progress.step("reading the CRCs every installed module of the VM records");
        let mut harvest = Harvest::default();
        crate::load::vm::each_installed_module(session, probe_image, &mut |path, m| {
            harvest.add(path, m);
            false
        })?;
        progress.step("reading the kernel's export list (/proc/kallsyms) and BTF");
        let request = session.request(probe_image, "snapshot", scripts::SNAPSHOT);
        let mut exports = None;
        let mut btf = None;
        session.engine().run_reading(&request, &mut |stream| {
            each_regular_file(stream, |name, contents| {
                let mut data = Vec::new();
                contents
                    .take(MAX_MEMBER)
                    .read_to_end(&mut data)
                    .map_err(|e| e.to_string())?;
                match name.to_str() {
                    Some("exports") => {
                        exports = Some(kallsyms_exports(&String::from_utf8_lossy(&data)))
                    }
                    Some("btf") if !data.is_empty() => btf = Some(data),
                    _ => {}
                }
                Ok(false)
            })
        })?;
        Ok(Snapshot {
            format: FORMAT,
            release: detection.release.to_string(),
            proc_version: detection.proc_version.clone(),
            arch: detection.arch.clone(),
            platform: detection.platform_name.to_string(),
            config_source: detection.config_source.clone(),
            build_ref: detection.build_ref.reference.clone(),
            config: detection.config.text().to_string(),
            harvest,
            vmlinux_exports: exports.filter(|e: &BTreeSet<String>| !e.is_empty()),
            btf,
        })
    }
}

/// The kernel's own exports in `/proc/kallsyms` lines: `__ksymtab_<name>`
/// with no `[module]` column.
pub fn kallsyms_exports(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let (_, _, name) = (cols.next()?, cols.next()?, cols.next()?);
            if cols.next().is_some() {
                return None;
            }
            name.strip_prefix("__ksymtab_")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_lists_the_kernels_exports_not_the_modules() {
        let text = "0000000000000000 r __ksymtab_kfree\n\
                    0000000000000000 T kfree\n\
                    0000000000000000 r __ksymtab_sctp_do_peeloff\t[sctp]\n\
                    0000000000000000 r __ksymtab_gpl_thing\n";
        let e = kallsyms_exports(text);
        assert_eq!(e.into_iter().collect::<Vec<_>>(), ["gpl_thing", "kfree"]);
    }

    #[test]
    fn a_snapshot_survives_its_file() {
        let harvest = Harvest {
            modules: 2,
            ..Harvest::default()
        };
        let s = Snapshot {
            format: FORMAT,
            release: "6.1.0-57-amd64".into(),
            proc_version: "Linux version 6.1.0-57-amd64 (gcc-12 (Debian 12.2.0-14) 12.2.0)".into(),
            arch: "x86_64".into(),
            platform: "linux".into(),
            config_source: Some("/proc/config.gz".into()),
            build_ref: Some("dmb-kit/builder:bookworm".into()),
            config: "CONFIG_MODVERSIONS=y\n".into(),
            harvest,
            vmlinux_exports: Some(["kfree".to_string()].into_iter().collect()),
            btf: Some(vec![0x9f, 0xeb, 1]),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.dmb");
        s.write(&path).unwrap();
        assert_eq!(Snapshot::read(&path).unwrap(), s);
        std::fs::write(&path, b"not a snapshot").unwrap();
        assert!(matches!(
            Snapshot::read(&path),
            Err(SynthError::BadSnapshot { .. })
        ));
    }
}
