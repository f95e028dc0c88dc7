//! What the running kernel has loaded, as any container sees it:
//! `/proc/modules` (size, users, state) and, per module, the identity of
//! the build that is loaded (`srcversion`, the build-ID note).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Base, EngineError, Session};
use crate::ko::Module;
use crate::scripts;

/// A module the kernel has loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedModule {
    pub name: String,
    pub size: u64,
    /// `None` when the kernel cannot unload it (no `MODULE_UNLOAD`, `-`).
    pub refcount: Option<u64>,
    /// Loaded modules that use this one.
    pub users: Vec<String>,
    /// `Live`, `Loading` or `Unloading`.
    pub state: String,
    pub srcversion: Option<String>,
    /// The `.note.gnu.build-id` bytes in hex, as `/sys/module/*/notes` has them.
    pub build_id_note: Option<String>,
}

/// The running kernel's modules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedModules {
    pub release: String,
    pub modules: BTreeMap<String, LoadedModule>,
}

/// Whether two builds of a module are the same build: by the build-ID note
/// when both have one, else by srcversion; `None` when neither tells. The
/// one rule dmb has for it (the load script applies the same in the VM).
pub fn same_build(
    notes: (Option<&str>, Option<&str>),
    srcversions: (Option<&str>, Option<&str>),
) -> Option<bool> {
    match (notes, srcversions) {
        ((Some(a), Some(b)), _) => Some(a == b),
        (_, (Some(a), Some(b))) => Some(a == b),
        _ => None,
    }
}

/// How a module file compares with what is loaded under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMatch {
    Same,
    Other,
    /// Neither a srcversion nor a build ID on both sides.
    Unknown,
}

impl LoadedModules {
    /// From the probe's `release`, `proc_modules` and `loaded_builds` sections.
    pub fn from_sections(sections: &BTreeMap<String, String>) -> Self {
        let text = |name: &str| sections.get(name).map_or("", String::as_str);
        let mut modules: BTreeMap<String, LoadedModule> = text("proc_modules")
            .lines()
            .filter_map(parse_proc_modules_line)
            .map(|m| (m.name.clone(), m))
            .collect();
        for line in text("loaded_builds").lines() {
            let mut f = line.split_whitespace();
            let (Some(name), Some(src), Some(note)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let some = |v: &str| (v != "-" && !v.is_empty()).then(|| v.to_string());
            if let Some(m) = modules.get_mut(name) {
                m.srcversion = some(src);
                m.build_id_note = some(note);
            }
        }
        LoadedModules {
            release: text("release").trim().to_string(),
            modules,
        }
    }

    /// From the probe's whole output.
    pub fn parse(output: &str) -> Self {
        Self::from_sections(&scripts::sections(output))
    }

    pub fn is_loaded(&self, name: &str) -> bool {
        self.modules.contains_key(name)
    }

    /// Whether the loaded module `module.name` is this build of it.
    pub fn build_match(&self, module: &Module) -> BuildMatch {
        let Some(loaded) = self.modules.get(&module.name) else {
            return BuildMatch::Other;
        };
        let note = module.build_id_note.as_deref().map(crate::ko::hex);
        match same_build(
            (loaded.build_id_note.as_deref(), note.as_deref()),
            (loaded.srcversion.as_deref(), module.info.get("srcversion")),
        ) {
            Some(true) => BuildMatch::Same,
            Some(false) => BuildMatch::Other,
            None => BuildMatch::Unknown,
        }
    }
}

/// The release and what is loaded, read by an ordinary container (no
/// privilege: `/proc` and `/sys/module` are the kernel's in every container).
pub fn loaded_modules<E: ?Sized + Base>(
    session: &Session<E>,
    image: &str,
) -> Result<LoadedModules, EngineError> {
    let mut request = session.request(image, "modules", scripts::PROBE);
    request.args = vec!["loaded".into()];
    let done = session.engine().run(&request)?;
    Ok(LoadedModules::parse(&done.stdout))
}

/// `name size refcount users state address [taints]`, users as `a,b,` or `-`.
fn parse_proc_modules_line(line: &str) -> Option<LoadedModule> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 5 {
        return None;
    }
    let users = if f[3] == "-" {
        Vec::new()
    } else {
        f[3].split(',')
            .filter(|u| !u.is_empty() && *u != "[permanent]")
            .map(str::to_string)
            .collect()
    };
    Some(LoadedModule {
        name: f[0].to_string(),
        size: f[1].parse().ok()?,
        refcount: f[2].parse().ok(),
        users,
        state: f[4].to_string(),
        srcversion: None,
        build_id_note: None,
    })
}

/// Test fixtures: what the probe prints for a kernel with these modules.
#[cfg(test)]
pub(crate) mod fixture {
    /// `release`, then `/proc/modules` lines, then `NAME SRCVERSION NOTE` lines.
    pub fn probe_output(release: &str, proc_modules: &str, builds: &str) -> String {
        format!(
            "@@dmb:section release\n{release}\n@@dmb:section proc_modules\n{proc_modules}@@dmb:section loaded_builds\n{builds}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_modules_and_identities_parse() {
        let s = LoadedModules::parse(&fixture::probe_output(
            "6.1.0-56-amd64",
            "dmb_consumer 16384 0 - Live 0x0000000000000000 (OE)
dmb_provider 16384 1 dmb_consumer, Live 0x0000000000000000 (OE)
overlay 163840 0 - Live 0x0000000000000000
nf_conntrack 192512 2 xt_conntrack,nf_nat, Live 0x0000000000000000
",
            "dmb_consumer - 040000001400000003000000474e5500aabb
dmb_provider 0123ABC -
overlay - -
",
        ));
        assert_eq!(s.release, "6.1.0-56-amd64");
        assert_eq!(s.modules.len(), 4);
        let p = &s.modules["dmb_provider"];
        assert_eq!(
            (p.size, p.refcount, p.users.clone()),
            (16384, Some(1), vec!["dmb_consumer".to_string()])
        );
        assert_eq!(p.srcversion.as_deref(), Some("0123ABC"));
        assert_eq!(p.build_id_note, None);
        assert_eq!(
            s.modules["dmb_consumer"].build_id_note.as_deref(),
            Some("040000001400000003000000474e5500aabb")
        );
        assert_eq!(s.modules["nf_conntrack"].users, ["xt_conntrack", "nf_nat"]);
        assert!(s.modules["overlay"].users.is_empty());
    }

    #[test]
    fn a_kernel_without_module_unload_has_no_refcount() {
        let m = parse_proc_modules_line("x 100 - - Live 0x0").unwrap();
        assert_eq!(m.refcount, None);
        assert!(parse_proc_modules_line("short line").is_none());
    }

    #[test]
    fn the_build_id_decides_before_the_srcversion() {
        assert_eq!(
            same_build((Some("a"), Some("a")), (Some("x"), Some("y"))),
            Some(true)
        );
        assert_eq!(
            same_build((Some("a"), Some("b")), (None, None)),
            Some(false)
        );
        assert_eq!(
            same_build((None, Some("b")), (Some("x"), Some("x"))),
            Some(true)
        );
        assert_eq!(same_build((Some("a"), None), (None, Some("x"))), None);
    }
}
