//! What a module must agree with to load into a kernel: its release, its
//! configuration (and so its vermagic), the CRCs of its exports and its
//! built-in modules. Read from a header tree (a directory, or the files of
//! a kernel image's `kernel-dev.tar`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::config::KernelConfig;
use super::release::{BadRelease, KernelRelease};
use super::symvers::{Symvers, SymversError};
use crate::ko::machine;

/// Files of a header tree that [`KernelFacts`] reads, relative to the tree.
pub const FACT_FILES: [&str; 7] = [
    ".config",
    "Module.symvers",
    "include/generated/utsrelease.h",
    "include/config/kernel.release",
    "include/generated/randstruct_hash.h",
    "include/generated/randomize_layout_hash.h",
    "modules.builtin",
];

#[derive(Debug, Clone)]
pub struct KernelFacts {
    pub release: KernelRelease,
    pub config: KernelConfig,
    pub symvers: Symvers,
    /// `RANDSTRUCT_HASHED_SEED`, when the kernel randomises struct layout.
    pub randstruct_seed: Option<String>,
    /// Modules built into the kernel (from `modules.builtin`, when known).
    pub builtin: HashSet<String>,
    /// The vermagic the kernel's own modules carry, when it was read from
    /// them: it wins over the one computed from the configuration (which
    /// needs a RANDSTRUCT seed that only the header tree has).
    pub recorded_vermagic: Option<String>,
    /// Whether `symvers` lists every export (a `Module.symvers`), or only
    /// the CRCs the kernel's installed modules record: then a symbol found
    /// nowhere is unverified, not unknown.
    pub symvers_complete: bool,
    /// Modules the running system has besides the built-in ones (loaded,
    /// or on its disk), which `depends` may name.
    pub installed: HashSet<String>,
    /// Modules loaded into the running kernel. One whose exports `symvers`
    /// does not list (loaded earlier from elsewhere) provides symbols the
    /// check cannot see: a module depending on it imports them unverified,
    /// and the kernel checks them against the loaded module itself.
    pub loaded: HashSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FactsError {
    #[error("the kernel tree has no {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Symvers(#[from] SymversError),
    #[error("cannot read {path}: {detail}")]
    Io { path: String, detail: String },
    #[error(transparent)]
    BadRelease(#[from] BadRelease),
}

impl KernelFacts {
    /// From the files of a tree, as `relative path → contents`.
    pub fn from_files(files: &BTreeMap<String, Vec<u8>>) -> Result<Self, FactsError> {
        let text = |name: &str| {
            files
                .get(name)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let config = KernelConfig::parse(&text(".config").ok_or(FactsError::Missing(".config"))?);
        let symvers =
            Symvers::parse(&text("Module.symvers").ok_or(FactsError::Missing("Module.symvers"))?)?;
        // Debian's include/config/kernel.release holds the upstream version;
        // utsrelease.h holds what `uname -r` says.
        let release = text("include/generated/utsrelease.h")
            .and_then(|t| quoted_define(&t, "UTS_RELEASE"))
            .or_else(|| text("include/config/kernel.release").map(|t| t.trim().to_string()))
            .filter(|r| !r.is_empty())
            .ok_or(FactsError::Missing("include/generated/utsrelease.h"))?;
        let release = KernelRelease::parse(&release)?;
        let randstruct_seed = [
            "include/generated/randstruct_hash.h",
            "include/generated/randomize_layout_hash.h",
        ]
        .iter()
        .find_map(|f| text(f).and_then(|t| quoted_define(&t, "RANDSTRUCT_HASHED_SEED")));
        let builtin = text("modules.builtin")
            .map(|t| t.lines().map(crate::ko::name_from_file).collect())
            .unwrap_or_default();
        let facts = KernelFacts {
            release,
            config,
            symvers,
            randstruct_seed,
            builtin,
            recorded_vermagic: None,
            symvers_complete: true,
            installed: HashSet::new(),
            loaded: HashSet::new(),
        };
        if facts.randstruct() && facts.randstruct_seed.is_none() {
            return Err(FactsError::Missing("include/generated/randstruct_hash.h"));
        }
        Ok(facts)
    }

    /// From a header tree on disk (`/usr/src/linux-headers-<kver>`, a
    /// kernel build directory, or `/lib/modules/<kver>/build`).
    pub fn from_dir(dir: &Path) -> Result<Self, FactsError> {
        let mut files = BTreeMap::new();
        for name in FACT_FILES {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    files.insert(name.to_string(), bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(FactsError::Io {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    })
                }
            }
        }
        KernelFacts::from_files(&files)
    }

    fn randstruct(&self) -> bool {
        self.config.is_set("RANDSTRUCT") || self.config.is_set("GCC_PLUGIN_RANDSTRUCT")
    }

    /// The vermagic a module must carry, computed as `include/linux/vermagic.h`
    /// does from the release and the configuration.
    pub fn vermagic(&self) -> String {
        if let Some(v) = &self.recorded_vermagic {
            return v.clone();
        }
        let c = &self.config;
        let mut v = format!("{} ", self.release);
        if c.is_set("SMP") {
            v.push_str("SMP ");
        }
        // PREEMPT_BUILD (5.13 and later) covers preempt and dynamic
        // preemption; older kernels spell it PREEMPT. Either way it wins
        // over PREEMPT_RT, as in vermagic.h.
        if c.is_set("PREEMPT_BUILD") || c.is_set("PREEMPT") {
            v.push_str("preempt ");
        } else if c.is_set("PREEMPT_RT") {
            v.push_str("preempt_rt ");
        }
        if c.is_set("MODULE_UNLOAD") {
            v.push_str("mod_unload ");
        }
        if c.is_set("MODVERSIONS") {
            v.push_str("modversions ");
        }
        v.push_str(self.arch_vermagic());
        if let Some(seed) = &self.randstruct_seed {
            // 5.19 renamed the plugin-only option to RANDSTRUCT.
            if c.is_set("RANDSTRUCT") {
                v.push_str(&format!("RANDSTRUCT_{seed}"));
            } else if c.is_set("GCC_PLUGIN_RANDSTRUCT") {
                v.push_str(&format!("RANDSTRUCT_PLUGIN_{seed}"));
            }
        }
        v
    }

    /// `MODULE_ARCH_VERMAGIC` of the architectures dmb knows.
    fn arch_vermagic(&self) -> &'static str {
        let c = &self.config;
        if c.is_set("ARM64") {
            "aarch64"
        } else if c.is_set("RISCV") {
            "riscv"
        } else {
            ""
        }
    }

    /// The ELF machine and class of the kernel's modules, when known.
    pub fn machine(&self) -> Option<(u16, u8)> {
        let c = &self.config;
        Some(if c.is_set("X86_64") {
            (machine::X86_64, 64)
        } else if c.is_set("X86_32") || c.is_set("X86") {
            (machine::I386, 32)
        } else if c.is_set("ARM64") {
            (machine::AARCH64, 64)
        } else if c.is_set("ARM") {
            (machine::ARM, 32)
        } else if c.is_set("RISCV") {
            (machine::RISCV, if c.is_set("64BIT") { 64 } else { 32 })
        } else {
            return None;
        })
    }

    /// Whether the kernel refuses unsigned modules.
    pub fn requires_signatures(&self) -> bool {
        self.config.is_set("MODULE_SIG_FORCE")
    }
}

/// The string of `#define NAME "value"`.
fn quoted_define(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("#define")?.trim_start();
        let value = rest.strip_prefix(name)?.trim();
        Some(value.strip_prefix('"')?.strip_suffix('"')?.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(config: &str, extra: &[(&str, &str)]) -> Result<KernelFacts, FactsError> {
        let mut files: BTreeMap<String, Vec<u8>> = [
            (".config", config),
            (
                "Module.symvers",
                "0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n",
            ),
            (
                "include/generated/utsrelease.h",
                "#define UTS_RELEASE \"6.1.0-56-amd64\"\n",
            ),
            ("include/config/kernel.release", "6.1.192\n"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
        for (k, v) in extra {
            files.insert(k.to_string(), v.as_bytes().to_vec());
        }
        KernelFacts::from_files(&files)
    }

    #[test]
    fn debian_6_1_with_dynamic_preemption() {
        let f = facts(
            "CONFIG_X86_64=y\nCONFIG_SMP=y\nCONFIG_PREEMPT_BUILD=y\n# CONFIG_PREEMPT is not set\nCONFIG_PREEMPT_VOLUNTARY=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\nCONFIG_RANDSTRUCT_NONE=y\n",
            &[],
        )
        .unwrap();
        assert_eq!(f.release, "6.1.0-56-amd64");
        assert_eq!(
            f.vermagic(),
            "6.1.0-56-amd64 SMP preempt mod_unload modversions "
        );
        assert_eq!(f.machine(), Some((machine::X86_64, 64)));
    }

    #[test]
    fn linuxkit_5_10_with_the_randstruct_plugin() {
        let f = facts(
            "CONFIG_X86_64=y\nCONFIG_SMP=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_GCC_PLUGIN_RANDSTRUCT=y\n",
            &[
                ("include/generated/utsrelease.h", "#define UTS_RELEASE \"5.10.104-linuxkit\"\n"),
                ("include/generated/randomize_layout_hash.h", "#define RANDSTRUCT_HASHED_SEED \"8ea5aa4b\"\n"),
            ],
        )
        .unwrap();
        assert_eq!(
            f.vermagic(),
            "5.10.104-linuxkit SMP mod_unload RANDSTRUCT_PLUGIN_8ea5aa4b"
        );
    }

    #[test]
    fn newer_randstruct_arm64_and_rt() {
        let f = facts(
            "CONFIG_ARM64=y\nCONFIG_SMP=y\nCONFIG_PREEMPT_RT=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\nCONFIG_RANDSTRUCT=y\nCONFIG_GCC_PLUGIN_RANDSTRUCT=y\n",
            &[("include/generated/randstruct_hash.h", "#define RANDSTRUCT_HASHED_SEED \"c0ffee\"\n")],
        )
        .unwrap();
        assert_eq!(
            f.vermagic(),
            "6.1.0-56-amd64 SMP preempt_rt mod_unload modversions aarch64RANDSTRUCT_c0ffee"
        );
        assert_eq!(f.machine(), Some((machine::AARCH64, 64)));
    }

    #[test]
    fn older_kernels_spell_preempt_without_build() {
        let f = facts("CONFIG_X86_64=y\nCONFIG_PREEMPT=y\n", &[]).unwrap();
        assert_eq!(f.vermagic(), "6.1.0-56-amd64 preempt ");
    }

    #[test]
    fn a_randstruct_kernel_without_its_seed_is_incomplete() {
        let e = facts("CONFIG_RANDSTRUCT=y\n", &[]).unwrap_err();
        assert!(matches!(
            e,
            FactsError::Missing("include/generated/randstruct_hash.h")
        ));
    }

    #[test]
    fn release_falls_back_to_kernel_release() {
        let mut files = BTreeMap::new();
        files.insert(".config".to_string(), b"CONFIG_X86_64=y\n".to_vec());
        files.insert("Module.symvers".to_string(), Vec::new());
        files.insert(
            "include/config/kernel.release".to_string(),
            b"5.15.49-linuxkit\n".to_vec(),
        );
        assert_eq!(
            KernelFacts::from_files(&files).unwrap().release,
            "5.15.49-linuxkit"
        );
    }
}
