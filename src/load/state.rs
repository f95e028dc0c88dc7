//! What the running kernel has loaded, as any container sees it:
//! `/proc/modules` (size, users, state) and, per module, the identity of
//! the build that is loaded (`srcversion`, the build-ID note).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ko::Module;

/// The release, `/proc/modules`, and which build of each module is loaded.
/// Needs no privilege: `/proc` and `/sys/module` are the kernel's, in every
/// container.
pub const STATE_SCRIPT: &str = concat!(
    "echo \"@@dmb-release $(uname -r)\"\n",
    crate::module_state_lines!(),
    "exit 0"
);

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
pub struct KernelState {
    pub release: String,
    pub modules: BTreeMap<String, LoadedModule>,
}

/// How a module file compares with what is loaded under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sameness {
    Same,
    Different,
    /// Neither a srcversion nor a build ID on both sides.
    Unknown,
}

impl KernelState {
    pub fn parse(output: &str) -> Self {
        let mut state = KernelState::default();
        let mut idents = BTreeMap::new();
        for line in output.lines() {
            if let Some(r) = line.strip_prefix("@@dmb-release ") {
                state.release = r.trim().to_string();
            } else if let Some(rest) = line.strip_prefix("@@dmb-ident ") {
                let mut f = rest.split_whitespace();
                let (Some(name), Some(src), Some(note)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                let some = |v: &str| (v != "-" && !v.is_empty()).then(|| v.to_string());
                idents.insert(name.to_string(), (some(src), some(note)));
            } else if let Some(m) = parse_proc_modules_line(line) {
                state.modules.insert(m.name.clone(), m);
            }
        }
        for (name, (src, note)) in idents {
            if let Some(m) = state.modules.get_mut(&name) {
                m.srcversion = src;
                m.build_id_note = note;
            }
        }
        state
    }

    pub fn is_loaded(&self, name: &str) -> bool {
        self.modules.contains_key(name)
    }

    /// Whether the loaded module `module.name` is this build of it.
    pub fn sameness(&self, module: &Module) -> Sameness {
        let Some(loaded) = self.modules.get(&module.name) else {
            return Sameness::Different;
        };
        let note = module.build_id_note.as_deref().map(crate::ko::hex);
        if let (Some(a), Some(b)) = (&loaded.build_id_note, &note) {
            return if a == b {
                Sameness::Same
            } else {
                Sameness::Different
            };
        }
        if let (Some(a), Some(b)) = (&loaded.srcversion, module.info.get("srcversion")) {
            return if a == b {
                Sameness::Same
            } else {
                Sameness::Different
            };
        }
        Sameness::Unknown
    }
}

/// `name size refcount users state address [taints]`, users as `a,b,` or `-`.
fn parse_proc_modules_line(line: &str) -> Option<LoadedModule> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 5 || line.starts_with("@@") {
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

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "@@dmb-release 6.1.0-56-amd64
dmb_consumer 16384 0 - Live 0x0000000000000000 (OE)
dmb_provider 16384 1 dmb_consumer, Live 0x0000000000000000 (OE)
overlay 163840 0 - Live 0x0000000000000000
nf_conntrack 192512 2 xt_conntrack,nf_nat, Live 0x0000000000000000
@@dmb-ident dmb_consumer - 040000001400000003000000474e5500aabb
@@dmb-ident dmb_provider 0123ABC -
@@dmb-ident overlay - -
";

    #[test]
    fn proc_modules_and_identities_parse() {
        let s = KernelState::parse(OUTPUT);
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
        assert!(parse_proc_modules_line("@@dmb-ident a b c d e").is_none());
        assert!(parse_proc_modules_line("short line").is_none());
    }
}
