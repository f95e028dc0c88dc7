//! The unload plan, pure: the given modules plus the dependencies dmb
//! loaded for them that would be left unused, users before what they use;
//! modules in use refused with what uses them.

use std::collections::BTreeSet;

use super::record::Loader;
use super::unload::UnloadError;
use crate::detect::LoadedModules;

/// Which modules to unload, in which order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadPlan {
    pub order: Vec<String>,
    /// Modules to take out of dmb's records (unloaded, or, with
    /// `--persist`, asked for though not loaded).
    pub gone: Vec<String>,
    pub notes: Vec<String>,
}

pub fn unload_plan(
    names: &[String],
    loaded: &LoadedModules,
    loaders: &[Loader],
    persist: bool,
) -> Result<UnloadPlan, UnloadError> {
    let mut notes = Vec::new();
    let mut set: Vec<String> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for n in names {
        let recorded = loaders.iter().any(|l| l.holds(n));
        if !loaded.is_loaded(n) {
            if persist && recorded {
                notes.push(format!("{n} is not loaded; removing it from the loaders"));
                gone.push(n.clone());
                continue;
            }
            return Err(UnloadError::NotLoaded {
                module: n.clone(),
                recorded,
            });
        }
        if !set.contains(n) {
            set.push(n.clone());
        }
    }
    for n in &set {
        let m = &loaded.modules[n];
        let users: Vec<String> = m
            .users
            .iter()
            .filter(|u| !set.contains(u))
            .cloned()
            .collect();
        if !users.is_empty() {
            return Err(UnloadError::InUse {
                module: n.clone(),
                by: users,
            });
        }
        let module_users = m.users.len() as u64;
        match m.refcount {
            Some(refs) if refs > module_users => {
                return Err(UnloadError::InUse {
                    module: n.clone(),
                    by: vec![format!(
                        "{} reference(s) that are not modules (open files, sockets, mounts or devices)",
                        refs - module_users
                    )],
                });
            }
            Some(_) => {}
            None => {
                return Err(UnloadError::InUse {
                    module: n.clone(),
                    by: vec![
                        "the kernel (it cannot unload modules: no CONFIG_MODULE_UNLOAD)".into(),
                    ],
                });
            }
        }
    }
    // Dependencies dmb loaded as such, unused once the set is gone.
    let recorded = || loaders.iter().flat_map(|l| &l.record.modules);
    let dependency = |name: &str| recorded().any(|m| m.name == name && m.dependency);
    loop {
        let extra: Vec<String> = set
            .iter()
            .flat_map(|n| {
                recorded()
                    .filter(move |m| &m.name == n)
                    .flat_map(|m| m.depends.clone())
            })
            .filter(|d| !set.contains(d) && dependency(d))
            .filter(|d| {
                loaded.modules.get(d).is_some_and(|m| {
                    m.users.iter().all(|u| set.contains(u))
                        && m.refcount == Some(m.users.len() as u64)
                })
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if extra.is_empty() {
            break;
        }
        set.extend(extra);
    }
    // Users first: a module goes once nothing in the set uses it.
    let mut order = Vec::new();
    let mut left = set.clone();
    while !left.is_empty() {
        let next = left
            .iter()
            .position(|n| {
                !left
                    .iter()
                    .any(|o| loaded.modules[n].users.iter().any(|u| u == o))
            })
            .unwrap_or(0);
        order.push(left.remove(next));
    }
    gone.extend(order.iter().cloned());
    Ok(UnloadPlan { order, gone, notes })
}
