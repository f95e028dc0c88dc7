//! The synthesized kernel's `Module.symvers`, from what the VM's modules
//! recorded (harvested) and what genksyms computed from the source under
//! the VM's configuration, and the cross-check between the two: a symbol
//! known both ways whose CRCs differ means the source, its patches, the
//! configuration or the compiler is not what built the running kernel.
//! Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::harvest::Harvest;
use crate::module_build::in_tree::crcs::Computed;

/// A symbol whose computed CRC is not the one the VM's modules recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    pub symbol: String,
    pub harvested: u32,
    pub computed: u32,
    pub file: String,
    /// How many of the VM's modules import it.
    pub importers: u32,
}

impl Disagreement {
    pub fn describe(&self) -> String {
        format!(
            "{} ({}): 0x{:08x} recorded by {} of the VM's modules, 0x{:08x} computed from the source",
            self.symbol, self.file, self.harvested, self.importers, self.computed
        )
    }
}

/// How the kernel's exports are covered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// The kernel's exports `/proc/kallsyms` lists (none: not listed).
    pub listed: Option<usize>,
    /// Kernel (vmlinux) symbols whose CRC the VM's modules recorded.
    pub harvested: usize,
    /// Kernel symbols genksyms computed.
    pub computed: usize,
    /// Known both ways.
    pub both: usize,
    /// Known both ways, and equal.
    pub agreeing: usize,
    /// Exports of the VM's own modules (their CRCs as the modules carry them).
    pub module_exports: usize,
    /// Listed exports with no CRC either way (made by a macro dmb does not
    /// know, or in a file genksyms could not go through): left out of
    /// Module.symvers, so a module that imports one fails at modpost
    /// instead of loading unchecked.
    pub without_crc: usize,
    /// Which (not kept in the image's label).
    #[serde(default, skip_serializing)]
    pub missing: Vec<String>,
}

impl Coverage {
    pub fn describe(&self) -> String {
        format!(
            "{} kernel exports{}: {} harvested from the VM's modules, {} computed, {} known both ways ({} agree); {} module exports; {} without a CRC",
            self.listed.map_or_else(|| "?".to_string(), |n| n.to_string()),
            if self.listed.is_some() { " listed" } else { " (not listed: CONFIG_KALLSYMS_ALL off)" },
            self.harvested,
            self.computed,
            self.both,
            self.agreeing,
            self.module_exports,
            self.without_crc
        )
    }
}

/// Symbols known both ways whose CRCs differ, most imported first.
pub fn cross_check(harvest: &Harvest, computed: &Computed) -> Vec<Disagreement> {
    let mut v: Vec<Disagreement> = harvest
        .vmlinux_imports()
        .into_iter()
        .filter_map(|(symbol, imported)| {
            let (crc, file) = computed.crcs.get(symbol)?;
            (*crc != imported.crc).then(|| Disagreement {
                symbol: symbol.to_string(),
                harvested: imported.crc,
                computed: *crc,
                file: file.clone(),
                importers: imported.importers,
            })
        })
        .collect();
    v.sort_by(|a, b| b.importers.cmp(&a.importers).then(a.symbol.cmp(&b.symbol)));
    v
}

/// The kernel symbols whose CRCs should be computed: the listed exports,
/// else what the modules import from the kernel.
pub fn to_compute(harvest: &Harvest, listed: Option<&BTreeSet<String>>) -> BTreeSet<String> {
    let imports = harvest
        .vmlinux_imports()
        .into_iter()
        .map(|(s, _)| s.to_string());
    match listed {
        Some(listed) => listed
            .iter()
            .filter(|s| !harvest.exports.contains_key(*s))
            .cloned()
            .chain(imports)
            .collect(),
        None => imports.collect(),
    }
}

/// `Module.symvers` (crc, symbol, module, export macro, namespace; tab
/// separated, as modpost writes it) and its coverage. A kernel symbol's CRC
/// is the computed one when known (the cross-check has made sure both
/// agree), else the harvested one.
pub fn assemble(
    harvest: &Harvest,
    listed: Option<&BTreeSet<String>>,
    computed: &Computed,
) -> (String, Coverage) {
    let vmlinux: BTreeMap<&str, u32> = harvest
        .vmlinux_imports()
        .into_iter()
        .map(|(s, i)| (s, i.crc))
        .collect();
    let mut coverage = Coverage {
        listed: listed.map(BTreeSet::len),
        harvested: vmlinux.len(),
        computed: computed
            .crcs
            .keys()
            .filter(|s| !harvest.exports.contains_key(*s))
            .count(),
        module_exports: harvest.exports.len(),
        ..Coverage::default()
    };
    let mut symbols: BTreeSet<&str> = vmlinux.keys().copied().collect();
    symbols.extend(
        computed
            .crcs
            .keys()
            .map(String::as_str)
            .filter(|s| !harvest.exports.contains_key(*s)),
    );
    if let Some(listed) = listed {
        symbols.extend(
            listed
                .iter()
                .map(String::as_str)
                .filter(|s| !harvest.exports.contains_key(*s)),
        );
    }
    let mut text = String::new();
    for symbol in symbols {
        let harvested = vmlinux.get(symbol).copied();
        let computed_crc = computed.crcs.get(symbol).map(|(c, _)| *c);
        if let (Some(h), Some(c)) = (harvested, computed_crc) {
            coverage.both += 1;
            if h == c {
                coverage.agreeing += 1;
            }
        }
        let Some(crc) = computed_crc.or(harvested) else {
            coverage.missing.push(symbol.to_string());
            coverage.without_crc += 1;
            continue;
        };
        let kind = computed
            .kinds
            .get(symbol)
            .map_or("EXPORT_SYMBOL", |k| export_kind(k));
        let _ = writeln!(text, "0x{crc:08x}\t{symbol}\tvmlinux\t{kind}\t");
    }
    for (symbol, e) in &harvest.exports {
        let Some(crc) = e.crc else { continue };
        let kind = if e.gpl_only {
            "EXPORT_SYMBOL_GPL"
        } else {
            "EXPORT_SYMBOL"
        };
        let _ = writeln!(text, "0x{crc:08x}\t{symbol}\t{}\t{kind}\t", e.module);
    }
    (text, coverage)
}

/// The Module.symvers column for an export macro: `EXPORT_SYMBOL_NS_GPL`
/// and `EXPORT_SYMBOL_GPL_NS` are both `EXPORT_SYMBOL_GPL` there.
fn export_kind(macro_name: &str) -> &'static str {
    if macro_name.contains("GPL") {
        "EXPORT_SYMBOL_GPL"
    } else {
        "EXPORT_SYMBOL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::symvers::Symvers;
    use crate::synth::harvest::{Imported, ModuleExport};

    fn harvest() -> Harvest {
        let mut h = Harvest::default();
        for (s, crc, n) in [("kfree", 1u32, 5u32), ("_printk", 2, 9), ("skb_put", 3, 2)] {
            h.imports.insert(s.into(), Imported { crc, importers: n });
        }
        h.imports.insert(
            "sctp_thing".into(),
            Imported {
                crc: 7,
                importers: 1,
            },
        );
        h.exports.insert(
            "sctp_thing".into(),
            ModuleExport {
                crc: Some(7),
                module: "net/sctp/sctp".into(),
                gpl_only: true,
            },
        );
        h
    }

    fn computed(crcs: &[(&str, u32, &str)]) -> Computed {
        let mut c = Computed::default();
        for (s, crc, kind) in crcs {
            c.crcs
                .insert(s.to_string(), (*crc, "mm/slab_common.c".into()));
            c.kinds.insert(s.to_string(), kind.to_string());
        }
        c
    }

    #[test]
    fn module_symvers_takes_computed_crcs_and_keeps_module_exports_with_their_modules() {
        let listed: BTreeSet<String> = ["kfree", "_printk", "skb_put", "vfree", "memcpy"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = computed(&[
            ("kfree", 1, "EXPORT_SYMBOL"),
            ("vfree", 4, "EXPORT_SYMBOL_NS_GPL"),
        ]);
        assert!(cross_check(&harvest(), &c).is_empty());
        let (text, coverage) = assemble(&harvest(), Some(&listed), &c);
        let symvers = Symvers::parse(&text).unwrap();
        assert_eq!(symvers.symbols["kfree"].crc, 1);
        assert_eq!(symvers.symbols["_printk"].crc, 2);
        assert_eq!(symvers.symbols["vfree"].export, "EXPORT_SYMBOL_GPL");
        assert_eq!(symvers.symbols["sctp_thing"].module, "net/sctp/sctp");
        assert_eq!(symvers.symbols["sctp_thing"].export, "EXPORT_SYMBOL_GPL");
        assert!(!symvers.symbols.contains_key("memcpy"));
        assert_eq!(
            coverage,
            Coverage {
                listed: Some(5),
                harvested: 3,
                computed: 2,
                both: 1,
                agreeing: 1,
                module_exports: 1,
                without_crc: 1,
                missing: vec!["memcpy".into()],
            }
        );
        assert_eq!(
            to_compute(&harvest(), Some(&listed))
                .into_iter()
                .collect::<Vec<_>>(),
            ["_printk", "kfree", "memcpy", "skb_put", "vfree"]
        );
    }

    #[test]
    fn a_changed_structure_shows_as_disagreements_most_imported_first() {
        let c = computed(&[
            ("kfree", 0x10, "EXPORT_SYMBOL"),
            ("_printk", 0x20, "EXPORT_SYMBOL"),
            ("skb_put", 3, "EXPORT_SYMBOL"),
        ]);
        let d = cross_check(&harvest(), &c);
        assert_eq!(
            d.iter().map(|d| d.symbol.as_str()).collect::<Vec<_>>(),
            ["_printk", "kfree"]
        );
        assert_eq!(
            d[0].describe(),
            "_printk (mm/slab_common.c): 0x00000002 recorded by 9 of the VM's modules, 0x00000020 computed from the source"
        );
    }
}
