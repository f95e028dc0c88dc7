//! What `--in-tree NAME` names: a module (`sctp`, `dm-crypt`), a Kconfig
//! symbol (`CONFIG_IP_SCTP`, `IP_SCTP`), or a friendly name of the catalog
//! (`wireguard`, `socketcan`); resolved against the source's own Makefiles
//! and Kconfig.

use std::collections::BTreeMap;

use super::InTreeError;
use crate::kernel::kbuild::{near_matches, ModuleIndex, ModuleSite};
use crate::kernel::kconfig::{Kconfig, SymbolType};

/// Friendly names for options whose modules are named otherwise: data,
/// one `name: SYMBOL…` a line.
const CATALOG: &str = include_str!("catalog.txt");

/// The options asked for, and the modules they build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Kconfig symbols without `CONFIG_`, in the order asked.
    pub symbols: Vec<String>,
    /// The modules asked for: by name, or every module a named option
    /// builds.
    pub modules: Vec<ModuleSite>,
}

fn catalog() -> BTreeMap<&'static str, Vec<&'static str>> {
    CATALOG
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (name, symbols) = l.split_once(':')?;
            Some((name.trim(), symbols.split_whitespace().collect()))
        })
        .collect()
}

/// Resolves every name; the first that names nothing is an error with the
/// nearest matches.
pub fn resolve(
    names: &[String],
    kconfig: &Kconfig,
    index: &ModuleIndex,
) -> Result<Request, InTreeError> {
    let catalog = catalog();
    let mut symbols: Vec<String> = Vec::new();
    let mut modules: Vec<ModuleSite> = Vec::new();
    let add_symbol = |symbol: &str, symbols: &mut Vec<String>, modules: &mut Vec<ModuleSite>| {
        if !symbols.iter().any(|s| s == symbol) {
            symbols.push(symbol.to_string());
        }
        for site in index.by_symbol(symbol) {
            if !modules.contains(site) {
                modules.push(site.clone());
            }
        }
    };
    for name in names {
        let bare = name.strip_prefix("CONFIG_").unwrap_or(name);
        let sites = index.by_name(name);
        if !sites.is_empty() {
            // One module, though several directories may build a module of
            // that name for different options: the first whose option exists.
            let site = sites
                .iter()
                .find(|s| kconfig.get(&s.symbol).is_some())
                .unwrap_or(&sites[0]);
            if !symbols.contains(&site.symbol) {
                symbols.push(site.symbol.clone());
            }
            if !modules.contains(site) {
                modules.push((*site).clone());
            }
        } else if kconfig.get(bare).is_some() {
            add_symbol(bare, &mut symbols, &mut modules);
        } else if let Some(aliased) = catalog.get(name.to_ascii_lowercase().as_str()) {
            for symbol in aliased {
                add_symbol(symbol, &mut symbols, &mut modules);
            }
        } else {
            let candidates = index
                .names()
                .map(str::to_string)
                .chain(kconfig.symbols.keys().map(|s| format!("CONFIG_{s}")))
                .chain(catalog.keys().map(|s| s.to_string()))
                .collect::<Vec<_>>();
            let wanted = if name.starts_with("CONFIG_") {
                name.clone()
            } else {
                crate::ko::module_name(name)
            };
            return Err(InTreeError::UnknownName {
                name: name.clone(),
                suggestions: near_matches(&wanted, candidates.iter().map(String::as_str)),
            });
        }
    }
    for symbol in &symbols {
        let s = kconfig.get(symbol).expect("resolved above");
        if s.kind != SymbolType::Tristate {
            return Err(InTreeError::NotAModule {
                symbol: symbol.clone(),
                kind: s.kind.name(),
            });
        }
    }
    if modules.is_empty() {
        return Err(InTreeError::BuildsNoModule {
            symbols: symbols.clone(),
        });
    }
    Ok(Request { symbols, modules })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (Kconfig, ModuleIndex) {
        let kconfig_text = "config IP_SCTP\n\ttristate \"SCTP\"\nconfig MCTP\n\tbool \"MCTP\"\nconfig DM_CRYPT\n\ttristate \"crypt\"\nconfig WIREGUARD\n\ttristate \"wg\"\nconfig INET_SCTP_DIAG\n\ttristate \"diag\"\n";
        let kconfig = Kconfig::read(
            &|p| (p == "Kconfig").then(|| kconfig_text.to_string()),
            "x86",
        );
        let index = ModuleIndex::read(
            [
                ("net/sctp/Makefile", "obj-$(CONFIG_IP_SCTP) += sctp.o\nobj-$(CONFIG_INET_SCTP_DIAG) += sctp_diag.o\n"),
                ("drivers/md/Makefile", "obj-$(CONFIG_DM_CRYPT) += dm-crypt.o\n"),
                ("drivers/net/wireguard/Makefile", "obj-$(CONFIG_WIREGUARD) := wireguard.o\n"),
            ],
            "x86",
        );
        (kconfig, index)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn modules_symbols_and_catalog_names() {
        let (k, i) = tree();
        let r = resolve(&names(&["sctp", "dm_crypt"]), &k, &i).unwrap();
        assert_eq!(r.symbols, ["IP_SCTP", "DM_CRYPT"]);
        assert_eq!(r.modules[1].dir, "drivers/md");
        let r = resolve(&names(&["CONFIG_IP_SCTP"]), &k, &i).unwrap();
        assert_eq!(r.modules[0].name, "sctp");
        let r = resolve(&names(&["dm-crypt"]), &k, &i).unwrap();
        assert_eq!(r.modules[0].object, "dm-crypt.o");
    }

    #[test]
    fn what_cannot_be_a_module_or_is_unknown() {
        let (k, i) = tree();
        assert_eq!(
            resolve(&names(&["CONFIG_MCTP"]), &k, &i),
            Err(InTreeError::NotAModule {
                symbol: "MCTP".into(),
                kind: "bool"
            })
        );
        match resolve(&names(&["stcp"]), &k, &i) {
            Err(InTreeError::UnknownName { suggestions, .. }) => {
                assert_eq!(suggestions, ["sctp"])
            }
            other => panic!("{other:?}"),
        }
        match resolve(&names(&["CONFIG_IP_SCPT"]), &k, &i) {
            Err(InTreeError::UnknownName { suggestions, .. }) => {
                assert_eq!(suggestions, ["CONFIG_IP_SCTP"])
            }
            other => panic!("{other:?}"),
        }
    }
}
