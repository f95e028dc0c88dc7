//! Whether enabling options changed what the running kernel's own code
//! uses. A `make M=` build cannot tell: modpost copies the kernel's CRCs
//! *from* Module.symvers, so the built modules always agree with it. So
//! the CRCs of what the modules import from the kernel are computed again
//! under the new configuration (genksyms over the exporting files, as
//! kbuild runs it) and compared with the running kernel's: a structure
//! that gained a member (`CONFIG_NET_DSA` adds one to `struct
//! net_device`) shows as a different CRC, and the build is refused.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::config_plan::ConfigPlan;
use super::tree::Prepared;
use super::InTreeError;
use crate::engine::{Base, Session};
use crate::kernel::KernelFacts;
use crate::ko::Module;
use crate::progress::Progress;
use crate::scripts;

/// A symbol whose CRC differs under the new configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub symbol: String,
    pub running: u32,
    pub computed: u32,
    /// The file that exports it.
    pub file: String,
}

impl Difference {
    pub fn describe(&self) -> String {
        format!(
            "{} ({}): 0x{:08x} in the running kernel, 0x{:08x} with the new options",
            self.symbol, self.file, self.running, self.computed
        )
    }
}

/// What genksyms said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Computed {
    pub crcs: BTreeMap<String, (u32, String)>,
    /// The export macro of each symbol with a CRC (`EXPORT_SYMBOL_GPL`).
    pub kinds: BTreeMap<String, String>,
    /// Exported by no C file by name (assembly, macros): not recomputed.
    pub unfound: Vec<String>,
    /// Files kbuild could not run genksyms over.
    pub failed: Vec<String>,
}

impl Computed {
    pub fn parse(output: &str) -> Self {
        let mut c = Computed::default();
        for r in scripts::records(output) {
            match r.verb {
                "crc" => {
                    let crc = u32::from_str_radix(r.arg(1).trim_start_matches("0x"), 16);
                    if let Ok(crc) = crc {
                        if !r.arg(3).is_empty() {
                            c.kinds.insert(r.arg(0).to_string(), r.arg(3).to_string());
                        }
                        c.crcs
                            .insert(r.arg(0).to_string(), (crc, r.arg(2).to_string()));
                    }
                }
                "unfound" => c.unfound.push(r.arg(0).to_string()),
                "failed" => c.failed.push(r.arg(0).to_string()),
                _ => {}
            }
        }
        c
    }
}

/// The symbols the built modules import from the kernel (not from each
/// other): the ones whose CRCs the new configuration may have changed.
pub fn imported_from_kernel(modules: &[Module], facts: &KernelFacts) -> BTreeSet<String> {
    let own: BTreeSet<&str> = modules
        .iter()
        .flat_map(|m| m.exports.iter().map(|e| e.symbol.as_str()))
        .collect();
    let built: BTreeSet<String> = modules.iter().map(|m| m.name.clone()).collect();
    modules
        .iter()
        .flat_map(|m| m.versions.iter())
        .filter(|v| !own.contains(v.symbol.as_str()))
        .filter(|v| {
            facts.symvers.symbols.get(&v.symbol).is_some_and(|e| {
                e.module == "vmlinux" || !built.contains(&crate::ko::name_from_file(&e.module))
            })
        })
        .map(|v| v.symbol.clone())
        .collect()
}

/// Pure: the symbols whose computed CRC is not the running kernel's.
pub fn differences(computed: &Computed, facts: &KernelFacts) -> Vec<Difference> {
    computed
        .crcs
        .iter()
        .filter_map(|(symbol, (crc, file))| {
            let running = facts.symvers.symbols.get(symbol)?.crc;
            (running != *crc).then(|| Difference {
                symbol: symbol.clone(),
                running,
                computed: *crc,
                file: file.clone(),
            })
        })
        .collect()
}

/// Computes the CRCs of what the modules import under the prepared tree's
/// configuration and refuses the build when any differs.
pub fn compare<E: ?Sized + Base>(
    session: &Session<E>,
    prepared: &Prepared,
    plan: &ConfigPlan,
    asked: &BTreeSet<String>,
    modules: &[Module],
    facts: &KernelFacts,
    progress: &mut dyn Progress,
) -> Result<(), crate::Error> {
    let wanted = imported_from_kernel(modules, facts);
    if wanted.is_empty() {
        return Ok(());
    }
    progress.step(&format!(
        "computing the CRCs of the {} kernel symbols the modules import, under the new configuration (genksyms)",
        wanted.len()
    ));
    let mut request = session.request(&prepared.image, "crcs", scripts::KERNEL_CRCS);
    request.args = wanted.iter().cloned().collect();
    let done = session
        .engine()
        .run(&request)
        .map_err(|e| InTreeError::CrcsFailed {
            detail: e.to_string(),
        })?;
    let computed = Computed::parse(&done.stdout);
    if computed.crcs.is_empty() {
        return Err(InTreeError::CrcsFailed {
            detail: format!(
                "genksyms gave no CRC for any of {} symbols ({} in no C file, {} failed)",
                wanted.len(),
                computed.unfound.len(),
                computed.failed.len()
            ),
        }
        .into());
    }
    let differences = differences(&computed, facts);
    if !differences.is_empty() {
        return Err(InTreeError::KernelChanges {
            modules: modules
                .iter()
                .map(|m| m.name.clone())
                .filter(|n| asked.contains(n))
                .collect(),
            options: plan.enable.keys().cloned().collect(),
            differences,
        }
        .into());
    }
    progress.step(&format!(
        "the new options change nothing the modules use of the kernel: {} CRCs agree{}",
        computed.crcs.len(),
        if computed.unfound.is_empty() && computed.failed.is_empty() {
            String::new()
        } else {
            format!(
                " ({} symbols not recomputed: exported from assembly or by macro)",
                computed.unfound.len() + computed.failed.len()
            )
        }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genksyms_records_and_differences() {
        let out = "@@dmb:unfound memcpy\n@@dmb:crc register_netdevice 0x12345678 net/core/dev.c EXPORT_SYMBOL_GPL\n@@dmb:crc kfree 0x0000abcd mm/slab_common.c\n@@dmb:failed drivers/x.c\n";
        let c = Computed::parse(out);
        assert_eq!(c.crcs.len(), 2);
        assert_eq!(c.kinds["register_netdevice"], "EXPORT_SYMBOL_GPL");
        assert!(!c.kinds.contains_key("kfree"));
        assert_eq!(c.unfound, ["memcpy"]);
        assert_eq!(c.failed, ["drivers/x.c"]);
        let files: std::collections::BTreeMap<String, Vec<u8>> = [
            (".config", "CONFIG_X86_64=y\n"),
            (
                "Module.symvers",
                "0x0badf00d\tregister_netdevice\tvmlinux\tEXPORT_SYMBOL\t\n0x0000abcd\tkfree\tvmlinux\tEXPORT_SYMBOL\t\n",
            ),
            (
                "include/generated/utsrelease.h",
                "#define UTS_RELEASE \"6.1.0-57-amd64\"\n",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
        let facts = KernelFacts::from_files(&files).unwrap();
        let d = differences(&c, &facts);
        assert_eq!(
            d,
            [Difference {
                symbol: "register_netdevice".into(),
                running: 0x0badf00d,
                computed: 0x12345678,
                file: "net/core/dev.c".into()
            }]
        );
        assert_eq!(
            d[0].describe(),
            "register_netdevice (net/core/dev.c): 0x0badf00d in the running kernel, 0x12345678 with the new options"
        );
    }
}
