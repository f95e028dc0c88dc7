//! What the VM's installed modules tell about its kernel's CRCs: every
//! module records the CRC of each symbol it imports (`__versions`), and the
//! CRC of each of its own exports. Pure: modules in, tables out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ko::Module;

/// A symbol as the modules that import it recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    pub crc: u32,
    /// How many modules import it: the most imported are checked first.
    pub importers: u32,
}

/// A symbol a module of the VM exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleExport {
    pub crc: Option<u32>,
    /// As Module.symvers names it: the path under `kernel/`, no `.ko`
    /// (`net/sctp/sctp`).
    pub module: String,
    pub gpl_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Harvest {
    /// Module files read.
    pub modules: usize,
    pub imports: BTreeMap<String, Imported>,
    pub exports: BTreeMap<String, ModuleExport>,
    /// Symbols whose importers recorded different CRCs (the first is kept):
    /// modules of two builds side by side.
    pub disagreements: BTreeSet<String>,
}

impl Harvest {
    /// One module file, `path` under `/lib/modules/<release>/`.
    pub fn add(&mut self, path: &str, m: &Module) {
        self.modules += 1;
        for v in &m.versions {
            let entry = self.imports.entry(v.symbol.clone()).or_insert(Imported {
                crc: v.crc,
                importers: 0,
            });
            entry.importers += 1;
            if entry.crc != v.crc {
                self.disagreements.insert(v.symbol.clone());
            }
        }
        for e in &m.exports {
            self.exports.insert(
                e.symbol.clone(),
                ModuleExport {
                    crc: e.crc,
                    module: symvers_module(path),
                    gpl_only: e.gpl_only,
                },
            );
        }
    }

    /// What the modules import from the kernel itself (vmlinux): imports
    /// that no module of the VM exports, most imported first.
    pub fn vmlinux_imports(&self) -> Vec<(&str, Imported)> {
        let mut v: Vec<(&str, Imported)> = self
            .imports
            .iter()
            .filter(|(s, _)| !self.exports.contains_key(*s))
            .map(|(s, i)| (s.as_str(), *i))
            .collect();
        v.sort_by(|a, b| b.1.importers.cmp(&a.1.importers).then(a.0.cmp(b.0)));
        v
    }
}

/// `kernel/net/sctp/sctp.ko.xz` → `net/sctp/sctp`, as modpost names a
/// module in Module.symvers.
pub fn symvers_module(path: &str) -> String {
    let path = path.trim_start_matches("./");
    let path = path.strip_prefix("kernel/").unwrap_or(path);
    let base = [".ko.xz", ".ko.gz", ".ko.zst", ".ko"]
        .iter()
        .find_map(|s| path.strip_suffix(s))
        .unwrap_or(path);
    base.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ko::tests::Fixture;

    /// A real module file with these imports and exports, read back.
    fn module(versions: &[(&'static str, u32)], exports: &[(&'static str, u32, bool)]) -> Module {
        let mut f = Fixture::named("m", "", &[], 1);
        f.versions = versions.iter().map(|(s, c)| (u64::from(*c), *s)).collect();
        f.exports = exports.to_vec();
        Module::read("m.ko", f.elf()).unwrap()
    }

    #[test]
    fn imports_count_their_importers_and_module_exports_are_not_vmlinux() {
        let mut h = Harvest::default();
        h.add(
            "kernel/net/sctp/sctp.ko.xz",
            &module(
                &[("_printk", 1), ("kfree", 2)],
                &[("sctp_do_peeloff", 9, true)],
            ),
        );
        h.add(
            "kernel/net/sctp/sctp_diag.ko",
            &module(&[("_printk", 1), ("sctp_do_peeloff", 9)], &[]),
        );
        h.add("extra/x.ko", &module(&[("kfree", 3)], &[]));
        assert_eq!(h.modules, 3);
        assert_eq!(
            h.vmlinux_imports(),
            [
                (
                    "_printk",
                    Imported {
                        crc: 1,
                        importers: 2
                    }
                ),
                (
                    "kfree",
                    Imported {
                        crc: 2,
                        importers: 2
                    }
                )
            ]
        );
        assert_eq!(h.exports["sctp_do_peeloff"].module, "net/sctp/sctp");
        assert!(h.exports["sctp_do_peeloff"].gpl_only);
        assert_eq!(h.disagreements.iter().collect::<Vec<_>>(), ["kfree"]);
        assert_eq!(symvers_module("extra/x.ko"), "extra/x");
    }
}
