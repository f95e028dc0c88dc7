//! Whether the kernel's configuration survives the source's own
//! configuration tool unchanged. `olddefconfig` over the VM's configuration
//! must give it back: a symbol it changes means the source is not the
//! kernel's, or the builder's tools are not the kernel's (a builder
//! without `pahole` turns `DEBUG_INFO_BTF_MODULES` off, which changes
//! `struct module`, and the kernel then refuses every module). What only
//! describes the toolchain (`GCC_VERSION`, `CC_VERSION_TEXT`) is noted,
//! not refused: what it switches on or off shows as a change of its own.
//! Nor is what only the signing of modules and the build's metadata read
//! (distributions drop these from the configuration they install: Debian's
//! /boot/config lacks `BUILD_SALT`, `MODULE_SIG_KEY`, `MODULE_SIG_ALL` and
//! `SYSTEM_TRUSTED_KEYS`, which olddefconfig then sets to their defaults).
//! A change either way that reaches a structure is caught again by the
//! CRC cross-check. Pure.

use crate::kernel::KernelConfig;
use crate::module_build::in_tree::config_plan::{is_toolchain_symbol, Change};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigCheck {
    /// Changes that alter the kernel: refused.
    pub changed: Vec<Change>,
    /// Changes of what describes the toolchain only.
    pub toolchain: Vec<Change>,
    /// Changes of what only module signing and the build's metadata read.
    pub metadata: Vec<Change>,
}

/// Options no compiled code depends on: where signing keys are, whether
/// `modules_install` signs, the build-id salt.
const BUILD_METADATA: &[&str] = &[
    "BUILD_SALT",
    "MODULE_SIG_ALL",
    "MODULE_SIG_KEY",
    "SYSTEM_TRUSTED_KEYS",
    "SYSTEM_REVOCATION_KEYS",
    "SYSTEM_BLACKLIST_HASH_LIST",
];

pub fn compare(vm: &KernelConfig, settled: &KernelConfig) -> ConfigCheck {
    let mut check = ConfigCheck::default();
    let mut symbols: Vec<&str> = vm
        .values()
        .map(|(k, _)| k)
        .chain(settled.values().map(|(k, _)| k))
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    for symbol in symbols {
        let was = vm.get(symbol).unwrap_or("n");
        let now = settled.get(symbol).unwrap_or("n");
        if was == now {
            continue;
        }
        let change = Change {
            symbol: symbol.to_string(),
            running: was.to_string(),
            effective: now.to_string(),
        };
        if is_toolchain_symbol(symbol) {
            check.toolchain.push(change);
        } else if BUILD_METADATA.contains(&symbol) {
            check.metadata.push(change);
        } else {
            check.changed.push(change);
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_builder_without_pahole_changes_btf_and_that_is_refused() {
        let vm = KernelConfig::parse(
            "CONFIG_PAHOLE_VERSION=124\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\nCONFIG_GCC_VERSION=120200\nCONFIG_X=y\n",
        );
        let settled = KernelConfig::parse(
            "CONFIG_PAHOLE_VERSION=0\nCONFIG_GCC_VERSION=120200\nCONFIG_X=y\nCONFIG_BUILD_SALT=\"\"\nCONFIG_MODULE_SIG_ALL=y\n",
        );
        let c = compare(&vm, &settled);
        assert_eq!(
            c.changed.iter().map(|c| c.describe()).collect::<Vec<_>>(),
            [
                "CONFIG_DEBUG_INFO_BTF: y in the running kernel, n after olddefconfig",
                "CONFIG_DEBUG_INFO_BTF_MODULES: y in the running kernel, n after olddefconfig"
            ]
        );
        assert_eq!(c.toolchain.len(), 1);
        assert_eq!(c.metadata.len(), 2);
        assert_eq!(compare(&vm, &vm), ConfigCheck::default());
    }
}
