//! Which modules an in-tree build makes: those asked for, and every module
//! they need (`depends`, `softdep: pre:`) that the running kernel has
//! neither loaded, built in nor on its disk; the built modules say what
//! they need, round by round, until nothing is missing.

use std::collections::{BTreeMap, BTreeSet};

use super::TargetKernel;
use crate::kernel::kbuild::{ModuleIndex, ModuleSite};
use crate::kernel::kconfig::expr::Tristate;
use crate::kernel::kconfig::Kconfig;
use crate::kernel::KernelConfig;
use crate::ko::Module;

/// The modules Kconfig says the asked-for options need, one step deep:
/// what each selects (where the `select` applies) or depends on, as far as
/// the configuration builds it as a module and the kernel lacks it. A
/// forecast, so that they build in the first round beside the asked-for
/// ones instead of in a round of their own: what the built modules import
/// decides which are kept ([`load_order`]), and later rounds add what the
/// forecast missed. (One step: further on, `select` names ever more that
/// no import needs, such as the crypto algorithms found by name at run
/// time.)
pub fn forecast(
    kconfig: &Kconfig,
    index: &ModuleIndex,
    config: &KernelConfig,
    symbols: &[String],
    target: &TargetKernel,
) -> Vec<ModuleSite> {
    let mut wanted = BTreeSet::new();
    for symbol in symbols {
        let Some(s) = kconfig.get(symbol) else {
            continue;
        };
        let selected = s
            .selects
            .iter()
            .filter(|(_, when)| when.eval(config) != Tristate::N)
            .map(|(name, _)| name.as_str());
        wanted.extend(selected.chain(s.depends.positive_symbols()));
    }
    let mut out: Vec<ModuleSite> = Vec::new();
    for symbol in wanted {
        if symbols.iter().any(|s| s == symbol) || config.get(symbol) != Some("m") {
            continue;
        }
        for site in index.by_symbol(symbol) {
            if !target.has(&site.name) && !out.contains(site) {
                out.push(site.clone());
            }
        }
    }
    out
}

/// The first round in levels: the forecast dependencies whose exports the
/// kernel's Module.symvers does not give (`known` says which it does) come
/// first, so that the modules after them see their exports; the others
/// build beside the asked-for ones.
pub fn first_round(
    asked: &[ModuleSite],
    forecast: Vec<ModuleSite>,
    known: impl Fn(&ModuleSite) -> bool,
) -> Vec<Vec<ModuleSite>> {
    let (beside, before): (Vec<ModuleSite>, Vec<ModuleSite>) =
        forecast.into_iter().partition(|s| known(s));
    let mut last = asked.to_vec();
    last.extend(beside.into_iter().filter(|s| !asked.contains(s)));
    [before, last]
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect()
}

/// The build script's groups: a `DIR OBJECT…` line per directory, and a
/// `-` line after each level. A level's groups are built at the same
/// time, so a directory inside another one of the level (one make would
/// write where the other reads) waits for a level of its own.
pub fn groups(levels: &[Vec<ModuleSite>]) -> String {
    let mut out = String::new();
    for level in levels {
        let mut by_dir: Vec<(String, Vec<String>)> = Vec::new();
        for s in level {
            match by_dir.iter_mut().find(|(d, _)| *d == s.dir) {
                Some((_, objects)) => {
                    if !objects.contains(&s.object) {
                        objects.push(s.object.clone())
                    }
                }
                None => by_dir.push((s.dir.clone(), vec![s.object.clone()])),
            }
        }
        let mut parts: Vec<Vec<(String, Vec<String>)>> = Vec::new();
        for group in by_dir {
            let nested = |other: &(String, Vec<String>)| {
                is_inside(&group.0, &other.0) || is_inside(&other.0, &group.0)
            };
            match parts.iter_mut().find(|p| !p.iter().any(nested)) {
                Some(part) => part.push(group),
                None => parts.push(vec![group]),
            }
        }
        for part in parts {
            for (dir, objects) in part {
                out.push_str(&format!("{dir} {}\n", objects.join(" ")));
            }
            out.push_str("-\n");
        }
    }
    out
}

fn is_inside(dir: &str, other: &str) -> bool {
    dir.strip_prefix(other)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// What a built module needs that neither the build nor the kernel has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub needed_by: String,
    /// Named by `softdep` (a name or an alias), not by `depends`.
    pub soft: bool,
}

/// What the built modules need that neither they nor the kernel have, by
/// module name (or alias).
pub fn missing(built: &[Module], target: &TargetKernel) -> BTreeMap<String, Missing> {
    let names: BTreeSet<&str> = built.iter().map(|m| m.name.as_str()).collect();
    let aliases: BTreeSet<String> = built
        .iter()
        .flat_map(|m| m.info.aliases())
        .map(|a| crate::ko::module_name(&a))
        .collect();
    let mut out = BTreeMap::new();
    for m in built {
        let hard = m.info.depends().into_iter().map(|d| (d, false));
        let soft = m.info.softdeps_pre().into_iter().map(|d| (d, true));
        for (dep, soft) in hard.chain(soft) {
            let present =
                names.contains(dep.as_str()) || aliases.contains(&dep) || target.has(&dep);
            if !present {
                out.entry(dep).or_insert_with(|| Missing {
                    needed_by: m.name.clone(),
                    soft,
                });
            }
        }
    }
    out
}

/// A module's `depends` and the modules its `softdep` loads first.
fn needs(m: &Module) -> Vec<String> {
    let mut out = m.info.depends();
    out.extend(m.info.softdeps_pre());
    out
}

/// The built modules the asked-for ones need, through the whole chain, in
/// the order to load them.
pub fn load_order(built: &[Module], asked: &BTreeSet<String>) -> Vec<String> {
    let by_name: BTreeMap<&str, &Module> = built.iter().map(|m| (m.name.as_str(), m)).collect();
    fn visit(
        name: &str,
        by_name: &BTreeMap<&str, &Module>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        let Some(m) = by_name.get(name) else {
            return;
        };
        if !seen.insert(name.to_string()) {
            return;
        }
        for dep in needs(m) {
            visit(&dep, by_name, seen, order);
        }
        order.push(name.to_string());
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in asked {
        visit(name, &by_name, &mut seen, &mut order);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelConfig;
    use crate::ko::tests::Fixture;

    fn target(available: &[&str]) -> TargetKernel {
        TargetKernel {
            release: crate::kernel::KernelRelease::parse("6.1.0-57-amd64").unwrap(),
            config: KernelConfig::parse(""),
            available: available.iter().map(|s| s.to_string()).collect(),
            knows_vm: true,
        }
    }

    fn module(name: &str, depends: &str) -> Module {
        Module::read(
            &format!("{name}.ko"),
            Fixture::named(name, depends, &[], 1).elf(),
        )
        .unwrap()
    }

    fn site(name: &str, dir: &str) -> ModuleSite {
        ModuleSite {
            name: name.replace('-', "_"),
            object: format!("{name}.o"),
            dir: dir.into(),
            symbol: "X".into(),
        }
    }

    #[test]
    fn one_group_per_directory_and_nested_directories_apart() {
        assert_eq!(
            groups(&[vec![
                site("sctp", "net/sctp"),
                site("dm-crypt", "drivers/md"),
                site("sctp_diag", "net/sctp"),
                site("dm-persistent-data", "drivers/md/persistent-data"),
                site("dm-mod", "drivers/md"),
            ]]),
            "net/sctp sctp.o sctp_diag.o\ndrivers/md dm-crypt.o dm-mod.o\n-\n\
             drivers/md/persistent-data dm-persistent-data.o\n-\n"
        );
        assert!(!is_inside("drivers/mdx", "drivers/md"));
    }

    #[test]
    fn forecast_dependencies_without_known_exports_come_first() {
        let asked = [site("sctp", "net/sctp")];
        let forecast = vec![site("libcrc32c", "lib"), site("udp_tunnel", "net/ipv4")];
        let levels = first_round(&asked, forecast.clone(), |s| s.name == "udp_tunnel");
        assert_eq!(
            groups(&levels),
            "lib libcrc32c.o\n-\nnet/sctp sctp.o\nnet/ipv4 udp_tunnel.o\n-\n"
        );
        assert_eq!(first_round(&asked, forecast, |_| true).len(), 1);
    }

    #[test]
    fn the_forecast_is_what_the_options_select_or_depend_on_that_the_kernel_lacks() {
        let kconfig = Kconfig::read(
            &|path| {
                (path == "Kconfig").then(|| {
                    "config IP_SCTP\n\ttristate \"sctp\"\n\tdepends on INET && (IPV6 || IPV6=n) && !HSR\n\
                     \tselect LIBCRC32C\n\tselect NET_UDP_TUNNEL\n\tselect CRYPTO_SHA1 if BRIDGE\n\
                     config LIBCRC32C\n\ttristate\nconfig NET_UDP_TUNNEL\n\ttristate\n\
                     config CRYPTO_SHA1\n\ttristate\nconfig INET\n\tbool\nconfig IPV6\n\ttristate\n\
                     config HSR\n\ttristate\n"
                        .to_string()
                })
            },
            "x86",
        );
        let index = ModuleIndex::read(
            [
                ("lib/Makefile", "obj-$(CONFIG_LIBCRC32C) += libcrc32c.o\n"),
                (
                    "net/ipv4/Makefile",
                    "obj-$(CONFIG_NET_UDP_TUNNEL) += udp_tunnel.o\nobj-$(CONFIG_IPV6) += ipv6.o\n",
                ),
                ("net/hsr/Makefile", "obj-$(CONFIG_HSR) += hsr.o\n"),
                (
                    "crypto/Makefile",
                    "obj-$(CONFIG_CRYPTO_SHA1) += sha1_generic.o\n",
                ),
            ],
            "x86",
        );
        let config = KernelConfig::parse(
            "CONFIG_IP_SCTP=m\nCONFIG_LIBCRC32C=m\nCONFIG_NET_UDP_TUNNEL=m\nCONFIG_CRYPTO_SHA1=m\n\
             CONFIG_INET=y\nCONFIG_IPV6=m\nCONFIG_HSR=m\n",
        );
        let names = |sites: Vec<ModuleSite>| sites.into_iter().map(|s| s.name).collect::<Vec<_>>();
        let symbols = ["IP_SCTP".to_string()];
        assert_eq!(
            names(forecast(&kconfig, &index, &config, &symbols, &target(&[]))),
            ["ipv6", "libcrc32c", "udp_tunnel"]
        );
        assert_eq!(
            names(forecast(
                &kconfig,
                &index,
                &config,
                &symbols,
                &target(&["ipv6", "libcrc32c"])
            )),
            ["udp_tunnel"]
        );
    }

    #[test]
    fn built_modules_say_what_is_still_missing_and_in_which_order() {
        let built = [
            module("sctp", "libcrc32c,udp_tunnel"),
            module("udp_tunnel", ""),
        ];
        let missing = missing(&built, &target(&["overlay"]));
        assert_eq!(
            missing.into_iter().collect::<Vec<_>>(),
            [(
                "libcrc32c".to_string(),
                Missing {
                    needed_by: "sctp".into(),
                    soft: false
                }
            )]
        );
        assert!(super::missing(&built, &target(&["libcrc32c"])).is_empty());
        let asked: BTreeSet<String> = ["sctp".to_string()].into();
        assert_eq!(load_order(&built, &asked), ["udp_tunnel", "sctp"]);
    }
}
