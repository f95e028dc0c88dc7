//! Will a module load into a kernel? The checks the kernel itself makes at
//! `init_module` time, made before anything is loaded: vermagic, symbol
//! CRCs, unknown symbols, architecture, signature; plus whether the
//! modules it depends on exist. Pure: the kernel's facts and the modules
//! come in, a [`Report`] goes out.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::kernel::KernelFacts;
use crate::ko::{machine, Module};

/// Why a module will not load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Misfit {
    /// The kernel refuses a module whose vermagic differs.
    Vermagic {
        expected: String,
        found: Option<String>,
    },
    /// Built against another version of a symbol.
    Crc {
        symbol: String,
        #[serde(serialize_with = "hex")]
        expected: u32,
        #[serde(serialize_with = "hex")]
        found: u32,
        /// Who exports it: `vmlinux`, a module path, or a module of the set.
        provider: String,
    },
    /// Needs a symbol that neither the kernel nor any given module exports.
    UnknownSymbol { symbol: String },
    /// A `depends` entry that is nowhere to be found.
    MissingDependency { module: String },
    /// Built for another architecture.
    Architecture { expected: String, found: String },
    /// The kernel enforces signatures (`CONFIG_MODULE_SIG_FORCE`).
    Unsigned,
}

fn hex<S: serde::Serializer>(crc: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{crc:08x}"))
}

impl Misfit {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Misfit::Vermagic { expected, found } => format!(
                "vermagic {:?} but the kernel wants {expected:?}",
                found.as_deref().unwrap_or("(none)")
            ),
            Misfit::Crc { symbol, expected, found, provider } => format!(
                "symbol {symbol}: built against CRC 0x{found:08x}, {provider} exports 0x{expected:08x}"
            ),
            Misfit::UnknownSymbol { symbol } => {
                format!("symbol {symbol} is exported by neither the kernel nor the given modules")
            }
            Misfit::MissingDependency { module } => format!(
                "depends on module {module}, which is neither given, nor the kernel's, nor built in"
            ),
            Misfit::Architecture { expected, found } => {
                format!("built for {found}, the kernel is {expected}")
            }
            Misfit::Unsigned => "unsigned, and the kernel enforces module signatures".to_string(),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Misfit::Vermagic { .. } | Misfit::Crc { .. } => {
                "built against other headers: rebuild with dmb build --kernel-ref <this kernel's image>"
            }
            Misfit::UnknownSymbol { .. } | Misfit::MissingDependency { .. } => {
                "the module that exports it must be loaded first: name it too, or give --modules-dir"
            }
            Misfit::Architecture { .. } => {
                "build with a builder and kernel image of the kernel's architecture"
            }
            Misfit::Unsigned => "sign the module with a key the kernel trusts (scripts/sign-file)",
        }
    }
}

/// The verdict on one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub file: String,
    pub module: String,
    pub fits: bool,
    pub misfits: Vec<Misfit>,
    /// Imported symbols whose CRC nothing known records (only when the
    /// kernel's CRCs come from its installed modules, not a Module.symvers):
    /// the kernel itself decides at load time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unverified: Vec<String>,
}

/// The verdict on a set of modules against one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub kernel_release: String,
    pub vermagic: String,
    pub modules: Vec<Verdict>,
}

impl Report {
    pub fn all_fit(&self) -> bool {
        self.modules.iter().all(|v| v.fits)
    }

    /// The modules that will not load, by name.
    pub fn misfit_names(&self) -> Vec<&str> {
        self.modules
            .iter()
            .filter(|v| !v.fits)
            .map(|v| v.module.as_str())
            .collect()
    }

    /// Each module that will not load, with why and what to do: the lines
    /// a person reads.
    pub fn misfit_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for v in self.modules.iter().filter(|v| !v.fits) {
            lines.push(format!(
                "{} ({}): will NOT load into {}",
                v.file, v.module, self.kernel_release
            ));
            lines.extend(v.misfits.iter().map(|m| format!("  - {}", m.describe())));
            if let Some(first) = v.misfits.first() {
                lines.push(format!("  hint: {}", first.hint()));
            }
        }
        lines
    }
}

/// Symbols the kernel links without an export (the module loader resolves
/// `__this_module` itself; `_GLOBAL_OFFSET_TABLE_` appears in some arches'
/// relocations, never as an export).
const LINKER_SYMBOLS: [&str; 2] = ["__this_module", "_GLOBAL_OFFSET_TABLE_"];

/// Checks `set` against `kernel`. Modules of `set` and `others` (an
/// installed tree) may provide each other's symbols and dependencies.
pub fn check(kernel: &KernelFacts, set: &[Module], others: &[Module]) -> Report {
    let vermagic = kernel.vermagic();
    // Exports of the given modules, by symbol: (crc, provider).
    let mut provided: HashMap<&str, (Option<u32>, &str)> = HashMap::new();
    for m in others.iter().chain(set) {
        for e in &m.exports {
            provided.insert(e.symbol.as_str(), (e.crc, m.name.as_str()));
        }
    }
    let set_names: HashSet<&str> = set.iter().map(|m| m.name.as_str()).collect();
    let symvers_modules = kernel.symvers.module_names();
    let known_modules: HashSet<String> = set
        .iter()
        .chain(others)
        .map(|m| m.name.clone())
        .chain(kernel.symvers.module_names())
        .chain(kernel.builtin.iter().cloned())
        .chain(kernel.installed.iter().cloned())
        .collect();
    let expected_machine = kernel.machine();

    let modules = set
        .iter()
        .map(|m| {
            let mut misfits = Vec::new();
            if m.info.vermagic() != Some(vermagic.as_str()) {
                misfits.push(Misfit::Vermagic {
                    expected: vermagic.clone(),
                    found: m.info.vermagic().map(str::to_string),
                });
            }
            if let Some((em, class)) = expected_machine {
                if (m.elf.machine, m.elf.class) != (em, class) {
                    misfits.push(Misfit::Architecture {
                        expected: format!("{} ({class}-bit)", machine::name(em)),
                        found: format!("{} ({}-bit)", machine::name(m.elf.machine), m.elf.class),
                    });
                }
            }
            // A module that depends on a loaded module the CRC source does
            // not know (see `KernelFacts::loaded`) imports what the check
            // cannot see: the kernel decides on those.
            let imports_unseen = !kernel.symvers_complete
                || m.info.depends().iter().any(|d| {
                    kernel.loaded.contains(d)
                        && !symvers_modules.contains(d)
                        && !set_names.contains(d.as_str())
                });
            let mut unverified = Vec::new();
            let mut versioned = HashSet::new();
            for v in &m.versions {
                versioned.insert(v.symbol.as_str());
                let (expected, provider) = match kernel.symvers.symbols.get(&v.symbol) {
                    Some(e) => (Some(e.crc), e.module.as_str()),
                    None => match provided.get(v.symbol.as_str()) {
                        Some((crc, who)) => (*crc, *who),
                        None if imports_unseen => {
                            unverified.push(v.symbol.clone());
                            continue;
                        }
                        None => {
                            misfits.push(Misfit::UnknownSymbol {
                                symbol: v.symbol.clone(),
                            });
                            continue;
                        }
                    },
                };
                if let Some(expected) = expected.filter(|e| *e != v.crc) {
                    misfits.push(Misfit::Crc {
                        symbol: v.symbol.clone(),
                        expected,
                        found: v.crc,
                        provider: provider.to_string(),
                    });
                }
            }
            for symbol in &m.undefined {
                let exported = versioned.contains(symbol.as_str())
                    || kernel.symvers.symbols.contains_key(symbol)
                    || provided.contains_key(symbol.as_str())
                    || LINKER_SYMBOLS.contains(&symbol.as_str());
                if !exported && imports_unseen {
                    unverified.push(symbol.clone());
                } else if !exported {
                    misfits.push(Misfit::UnknownSymbol {
                        symbol: symbol.clone(),
                    });
                }
            }
            for dep in m.info.depends() {
                if !known_modules.contains(&dep) {
                    misfits.push(Misfit::MissingDependency { module: dep });
                }
            }
            if kernel.requires_signatures() && m.signature.is_none() {
                misfits.push(Misfit::Unsigned);
            }
            Verdict {
                file: m.file_name.clone(),
                module: m.name.clone(),
                fits: misfits.is_empty(),
                misfits,
                unverified,
            }
        })
        .collect();
    Report {
        kernel_release: kernel.release.to_string(),
        vermagic,
        modules,
    }
}

#[cfg(test)]
mod tests;
