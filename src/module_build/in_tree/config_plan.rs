//! The configuration an in-tree build uses, pure: the running kernel's,
//! with the asked-for options set to `m` and what they depend on enabled
//! as modules too; and, once the kernel's own `olddefconfig` has settled
//! it, whether it still describes the running kernel. A module can only
//! join a kernel that was built as if its option were on: an option that
//! is built in (`=y`) must stay as it is, and a needed option that can only
//! be built in (`bool`) and is off cannot be had.

use std::collections::{BTreeMap, BTreeSet};

use super::InTreeError;
use crate::kernel::kconfig::{expr::Cmp, Expr, Kconfig, SymbolType, Tristate};
use crate::kernel::KernelConfig;

/// What the build enables, on top of the running configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPlan {
    /// Symbol → `m`: the asked-for options and their dependencies, where
    /// they were off.
    pub enable: BTreeMap<String, String>,
    /// The configuration to hand to `olddefconfig`.
    pub text: String,
}

impl ConfigPlan {
    /// Whether the build changes the configuration at all.
    pub fn is_unchanged(&self) -> bool {
        self.enable.is_empty()
    }
}

/// Sets `symbols` to `m` in `running`, with every dependency they need.
pub fn plan(
    kconfig: &Kconfig,
    running: &KernelConfig,
    symbols: &[String],
) -> Result<ConfigPlan, InTreeError> {
    let mut solver = Solver {
        kconfig,
        running,
        enable: BTreeMap::new(),
    };
    for symbol in symbols {
        solver.enable(symbol, None)?;
    }
    let text = running.with_changes(&solver.enable);
    Ok(ConfigPlan {
        enable: solver.enable,
        text,
    })
}

struct Solver<'a> {
    kconfig: &'a Kconfig,
    running: &'a KernelConfig,
    enable: BTreeMap<String, String>,
}

impl Solver<'_> {
    /// The configuration as planned so far.
    fn current(&self) -> KernelConfig {
        KernelConfig::parse(&self.running.with_changes(&self.enable))
    }

    fn value(&self, symbol: &str) -> Tristate {
        match self.enable.get(symbol) {
            Some(v) => Tristate::of(v),
            None => Tristate::of(self.running.get(symbol).unwrap_or("n")),
        }
    }

    /// `symbol` at `m` or more; `needed_by` for the messages.
    fn enable(&mut self, symbol: &str, needed_by: Option<&str>) -> Result<(), InTreeError> {
        if self.value(symbol) >= Tristate::M {
            return Ok(());
        }
        let Some(s) = self.kconfig.get(symbol) else {
            return Err(InTreeError::UnknownDependency {
                symbol: symbol.to_string(),
                needed_by: needed_by.unwrap_or(symbol).to_string(),
            });
        };
        if s.kind != SymbolType::Tristate {
            return Err(match needed_by {
                None => InTreeError::NotAModule {
                    symbol: symbol.to_string(),
                    kind: s.kind.name(),
                },
                Some(by) => InTreeError::NeedsBuiltIn {
                    symbol: by.to_string(),
                    dependency: symbol.to_string(),
                    kind: s.kind.name(),
                },
            });
        }
        // Set first: a dependency cycle through `symbol` is then satisfied.
        self.enable.insert(symbol.to_string(), "m".to_string());
        let depends = s.depends.clone();
        self.satisfy(&depends, symbol)?;
        if depends.eval(&self.current()) < Tristate::M {
            return Err(InTreeError::Unsatisfiable {
                symbol: symbol.to_string(),
                depends: depends.to_string(),
            });
        }
        Ok(())
    }

    /// Makes `expr` at least `m`, enabling off tristate options it names.
    fn satisfy(&mut self, expr: &Expr, owner: &str) -> Result<(), InTreeError> {
        if expr.eval(&self.current()) >= Tristate::M {
            return Ok(());
        }
        match expr {
            Expr::Sym(s) => self.enable(s, Some(owner)),
            Expr::And(a, b) => {
                self.satisfy(a, owner)?;
                self.satisfy(b, owner)
            }
            Expr::Or(a, b) => {
                // Either side will do: the first that can be had.
                let before = self.enable.clone();
                match self.satisfy(a, owner) {
                    Ok(()) => Ok(()),
                    Err(first) => {
                        self.enable = before;
                        self.satisfy(b, owner).map_err(|_| first)
                    }
                }
            }
            Expr::Compare(Cmp::Ne, a, b) if is_n(b) => self.satisfy(a, owner),
            Expr::Compare(Cmp::Eq, a, b) if matches!(&**b, Expr::Sym(v) if v == "m" || v == "y") => {
                self.satisfy(a, owner)
            }
            // A negation or a comparison that does not hold would need an
            // option of the running kernel changed: never.
            _ => Err(InTreeError::Unsatisfiable {
                symbol: owner.to_string(),
                depends: expr.to_string(),
            }),
        }
    }
}

fn is_n(e: &Expr) -> bool {
    matches!(e, Expr::Sym(v) if v == "n")
}

/// One difference between the running configuration and the effective one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub symbol: String,
    pub running: String,
    pub effective: String,
}

impl Change {
    pub fn describe(&self) -> String {
        format!(
            "CONFIG_{}: {} in the running kernel, {} after olddefconfig",
            self.symbol, self.running, self.effective
        )
    }
}

/// What the kernel's `olddefconfig` made of the plan, compared with the
/// running configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settled {
    /// Options that are modules now and were off: those asked for, their
    /// dependencies, and what those select, imply or default to.
    pub new_modules: Vec<String>,
    /// Options of the new modules' own (they were invisible before).
    pub new_options: Vec<String>,
    /// What the builder's tools decide (compiler and tool versions) and
    /// differs: worth a note, decided by the other changes.
    pub toolchain: Vec<Change>,
}

/// Compares the effective configuration with the running one. Refuses
/// every change to what the running kernel has built in: an option that
/// was `y` and is not, and a `bool` or value option that changed though
/// the running kernel could have had it (its dependencies held there).
pub fn settle(
    kconfig: &Kconfig,
    running: &KernelConfig,
    effective: &KernelConfig,
) -> Result<Settled, InTreeError> {
    let mut settled = Settled::default();
    let mut refused = Vec::new();
    let symbols: BTreeSet<&str> = running
        .values()
        .map(|(k, _)| k)
        .chain(effective.values().map(|(k, _)| k))
        .collect();
    for symbol in symbols {
        let was = running.get(symbol).unwrap_or("n");
        let now = effective.get(symbol).unwrap_or("n");
        if was == now {
            continue;
        }
        let change = Change {
            symbol: symbol.to_string(),
            running: was.to_string(),
            effective: now.to_string(),
        };
        if is_toolchain_symbol(symbol) {
            settled.toolchain.push(change);
            continue;
        }
        let kind = kconfig.get(symbol).map(|s| s.kind);
        let could_before = kconfig
            .get(symbol)
            .is_some_and(|s| s.depends.eval(running) > Tristate::N);
        match (was, now, kind) {
            // A module more, or an option that went with it.
            ("n", "m", _) => settled.new_modules.push(symbol.to_string()),
            // Built in before: must stay as it is.
            ("y", _, _) => refused.push(change),
            // Newly set, and only possible because of the new modules: part
            // of them (a bool option of a module goes into the module).
            (_, _, _) if !could_before => settled.new_options.push(symbol.to_string()),
            _ => refused.push(change),
        }
    }
    if refused.is_empty() {
        Ok(settled)
    } else {
        Err(InTreeError::ConfigChanges { changes: refused })
    }
}

/// Symbols that record the toolchain rather than choose a feature.
pub(crate) fn is_toolchain_symbol(symbol: &str) -> bool {
    symbol.ends_with("_VERSION")
        || symbol == "CC_VERSION_TEXT"
        || symbol.starts_with("CC_IS_")
        || symbol.starts_with("LD_IS_")
        || symbol.starts_with("AS_IS_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KCONFIG: &str = r#"
config NET
	bool "net"
config INET
	bool "inet"
	depends on NET
config BRIDGE
	tristate "bridge"
config HSR
	tristate "hsr"
config MCTP
	bool "mctp"
config MCTP_SERIAL
	tristate "mctp serial"
	depends on MCTP
config NET_DSA
	tristate "dsa"
	depends on BRIDGE || BRIDGE=n
	depends on HSR || HSR=n
	depends on INET
config NET_DSA_TAG_X
	tristate "tag"
	depends on NET_DSA
config NET_DSA_DEBUG
	bool "debug"
	depends on NET_DSA
config CAN
	tristate "can"
config CAN_DEV
	tristate "can dev"
	depends on CAN
config CAN_VCAN
	tristate "vcan"
	depends on CAN_DEV
config FEATURE
	bool "a built-in feature"
config NO_IPV6
	tristate "needs no ipv6"
	depends on !IPV6
config IPV6
	tristate "ipv6"
config DEBUG_INFO_BTF_MODULES
	bool "btf modules"
config PAHOLE_VERSION
	int
"#;

    fn kconfig() -> Kconfig {
        Kconfig::read(&|p| (p == "Kconfig").then(|| KCONFIG.to_string()), "x86")
    }

    fn running() -> KernelConfig {
        KernelConfig::parse("CONFIG_NET=y\nCONFIG_INET=y\nCONFIG_BRIDGE=m\n# CONFIG_HSR is not set\n# CONFIG_MCTP is not set\n# CONFIG_CAN is not set\nCONFIG_IPV6=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\nCONFIG_PAHOLE_VERSION=124\n")
    }

    fn symbols(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dependencies_are_enabled_as_modules() {
        let p = plan(&kconfig(), &running(), &symbols(&["CAN_VCAN"])).unwrap();
        assert_eq!(
            p.enable.keys().collect::<Vec<_>>(),
            ["CAN", "CAN_DEV", "CAN_VCAN"]
        );
        assert!(p.text.contains("CONFIG_CAN=m\n"));
        assert!(!p.text.contains("# CONFIG_CAN is not set"));
        // BRIDGE=m limits NET_DSA to m, which is what is asked; HSR=n holds.
        let p = plan(&kconfig(), &running(), &symbols(&["NET_DSA"])).unwrap();
        assert_eq!(p.enable.keys().collect::<Vec<_>>(), ["NET_DSA"]);
        // Nothing to enable: the configuration stays.
        let p = plan(&kconfig(), &running(), &symbols(&["BRIDGE"])).unwrap();
        assert!(p.is_unchanged());
    }

    #[test]
    fn a_bool_dependency_that_is_off_cannot_be_had() {
        assert_eq!(
            plan(&kconfig(), &running(), &symbols(&["MCTP_SERIAL"])),
            Err(InTreeError::NeedsBuiltIn {
                symbol: "MCTP_SERIAL".into(),
                dependency: "MCTP".into(),
                kind: "bool"
            })
        );
        assert!(matches!(
            plan(&kconfig(), &running(), &symbols(&["NO_IPV6"])),
            Err(InTreeError::Unsatisfiable { .. })
        ));
    }

    #[test]
    fn settling_refuses_changes_to_what_is_built_in() {
        let k = kconfig();
        let effective = KernelConfig::parse("CONFIG_NET=y\nCONFIG_INET=y\nCONFIG_BRIDGE=m\nCONFIG_NET_DSA=m\nCONFIG_NET_DSA_TAG_X=m\nCONFIG_NET_DSA_DEBUG=y\nCONFIG_IPV6=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\nCONFIG_PAHOLE_VERSION=125\n");
        let s = settle(&k, &running(), &effective).unwrap();
        assert_eq!(s.new_modules, ["NET_DSA", "NET_DSA_TAG_X"]);
        assert_eq!(s.new_options, ["NET_DSA_DEBUG"]);
        assert_eq!(s.toolchain[0].symbol, "PAHOLE_VERSION");
        // No pahole in the builder: BTF for modules is dropped, and every
        // module would be refused by the running kernel.
        let no_btf = KernelConfig::parse("CONFIG_NET=y\nCONFIG_INET=y\nCONFIG_BRIDGE=m\nCONFIG_IPV6=y\nCONFIG_PAHOLE_VERSION=0\nCONFIG_FEATURE=y\n");
        match settle(&k, &running(), &no_btf) {
            Err(InTreeError::ConfigChanges { changes }) => {
                let names: Vec<&str> = changes.iter().map(|c| c.symbol.as_str()).collect();
                assert_eq!(names, ["DEBUG_INFO_BTF_MODULES", "FEATURE"]);
                assert_eq!(
                    changes[0].describe(),
                    "CONFIG_DEBUG_INFO_BTF_MODULES: y in the running kernel, n after olddefconfig"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
