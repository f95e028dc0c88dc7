//! The MODULE_REF image layout: `.ko` files at `/` (the seed recipe's
//! contract) and the kmod layout `/opt/lib/modules/<kver>/extra/` with its
//! `modules.dep` (what Kubernetes' Kernel Module Management loads).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::ko::Module;

/// Label keys of a module image. They are a contract: see the README.
pub mod label {
    pub const KERNEL_RELEASE: &str = "dmb.kernel.release";
    pub const KERNEL_IMAGE: &str = "dmb.kernel.image";
    pub const KERNEL_IMAGE_ID: &str = "dmb.kernel.image.id";
    pub const BUILDER_IMAGE: &str = "dmb.builder.image";
    pub const BUILDER_IMAGE_ID: &str = "dmb.builder.image.id";
    pub const MODULES: &str = "dmb.modules";
    /// Modules of the image that are there because the others need them,
    /// for a kernel that lacks them: `dmb load` uses one only when the
    /// kernel has no module of that name.
    pub const DEPENDENCIES: &str = "dmb.dependencies";
    /// The Kconfig options an in-tree build was asked for.
    pub const IN_TREE: &str = "dmb.in-tree";
    pub const VERSION: &str = "dmb.version";
}

/// Where the kmod tree of a release lives in the image.
pub fn kmod_dir(release: &str) -> String {
    format!("opt/lib/modules/{release}")
}

/// Where an image came from, for its labels.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    pub release: &'a str,
    pub kernel_ref: &'a str,
    pub kernel_id: &'a str,
    pub build_ref: &'a str,
    pub build_id: &'a str,
}

pub fn labels(p: &Provenance, modules: &[Module]) -> Vec<(String, String)> {
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    [
        (label::KERNEL_RELEASE, p.release),
        (label::KERNEL_IMAGE, p.kernel_ref),
        (label::KERNEL_IMAGE_ID, p.kernel_id),
        (label::BUILDER_IMAGE, p.build_ref),
        (label::BUILDER_IMAGE_ID, p.build_id),
        (label::MODULES, &names.join(",")),
        (label::VERSION, env!("CARGO_PKG_VERSION")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Where a module goes in the kmod tree by default: `extra/<file>`.
pub fn default_place(file_name: &str) -> String {
    format!("extra/{file_name}")
}

/// `modules.dep` for the kmod tree, as depmod writes it: each module (at
/// its `place`, relative to `lib/modules/<kver>/`) with all the modules of
/// the set it needs, transitively, the ones to load last first (modprobe
/// loads the list from its end). Dependencies outside the set (the
/// kernel's own modules) are not part of this tree.
pub fn modules_dep(modules: &[Module], place: &dyn Fn(&Module) -> String) -> String {
    let by_name: BTreeMap<&str, &Module> = modules.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut out = String::new();
    let mut sorted: Vec<&Module> = modules.iter().collect();
    sorted.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    for m in sorted {
        let mut order = Vec::new();
        let mut seen = BTreeSet::from([m.name.as_str()]);
        for dep in m.info.depends() {
            visit(&dep, &by_name, &mut seen, &mut order);
        }
        order.reverse();
        out.push_str(&format!("{}:", place(m)));
        for dep in order {
            out.push_str(&format!(" {}", place(dep)));
        }
        out.push('\n');
    }
    out
}

/// Post-order walk: a module's dependencies before the module itself.
fn visit<'a>(
    name: &str,
    by_name: &BTreeMap<&str, &'a Module>,
    seen: &mut BTreeSet<&'a str>,
    order: &mut Vec<&'a Module>,
) {
    let Some(m) = by_name.get(name).copied() else {
        return;
    };
    if !seen.insert(m.name.as_str()) {
        return;
    }
    for dep in m.info.depends() {
        visit(&dep, by_name, seen, order);
    }
    order.push(m);
}

/// Writes the image's files into `context`: `ko/` (what goes at `/`), each
/// module at its `place` in `opt/lib/modules/<kver>/`, and the depmod
/// index (or a `modules.dep` of dmb's own when the builder had no depmod).
pub fn write_context(
    context: &Path,
    release: &str,
    ko_dir: &Path,
    modules: &[Module],
    place: &dyn Fn(&Module) -> String,
    depmod_dir: Option<&Path>,
) -> std::io::Result<()> {
    let top = context.join("ko");
    let kmod = context.join(kmod_dir(release));
    std::fs::create_dir_all(&top)?;
    for m in modules {
        let from = ko_dir.join(&m.file_name);
        let at = kmod.join(place(m));
        std::fs::create_dir_all(at.parent().unwrap_or(&kmod))?;
        std::fs::copy(&from, top.join(&m.file_name))?;
        std::fs::copy(&from, at)?;
    }
    match depmod_dir {
        Some(dir) => {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    std::fs::copy(entry.path(), kmod.join(entry.file_name()))?;
                }
            }
        }
        None => std::fs::write(kmod.join("modules.dep"), modules_dep(modules, place))?,
    }
    Ok(())
}

/// The image's one layer, from a context [`write_context`] wrote: `ko/*`
/// at the top, `opt/` as it is. Owner root, no timestamps
/// ([`tar::HeaderMode::Deterministic`]): the same modules make the same
/// layer.
pub fn write_layer(context: &Path, tar_path: &Path) -> std::io::Result<()> {
    let mut layer = tar::Builder::new(std::fs::File::create(tar_path)?);
    layer.mode(tar::HeaderMode::Deterministic);
    layer.follow_symlinks(false);
    for name in sorted_names(&context.join("ko"))? {
        layer.append_path_with_name(context.join("ko").join(&name), &name)?;
    }
    append_tree(&mut layer, &context.join("opt"), Path::new("opt"))?;
    layer.into_inner()?.sync_all()
}

/// `dir` at `name` in `layer`, each directory's entries in name order (a
/// directory listing's order is the file system's).
fn append_tree(
    layer: &mut tar::Builder<std::fs::File>,
    dir: &Path,
    name: &Path,
) -> std::io::Result<()> {
    layer.append_dir(name, dir)?;
    for entry in sorted_names(dir)? {
        let path = dir.join(&entry);
        if std::fs::symlink_metadata(&path)?.is_dir() {
            append_tree(layer, &path, &name.join(&entry))?;
        } else {
            layer.append_path_with_name(&path, name.join(&entry))?;
        }
    }
    Ok(())
}

fn sorted_names(dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ko::ModInfo;

    fn module(file: &str, depends: &str) -> Module {
        Module {
            file_name: file.to_string(),
            name: crate::ko::name_from_file(file),
            info: ModInfo {
                fields: vec![("depends".into(), depends.into())],
            },
            elf: crate::ko::ElfKind {
                class: 64,
                machine: crate::ko::machine::X86_64,
                little_endian: true,
            },
            versions: vec![],
            undefined: vec![],
            exports: vec![],
            build_id_note: None,
            signature: None,
        }
    }

    #[test]
    fn dependencies_are_transitive_and_deepest_last() {
        let set = [
            module("a.ko", "b,libcrc32c"),
            module("b.ko", "c"),
            module("c.ko", ""),
            module("d-x.ko", "a"),
        ];
        assert_eq!(
            modules_dep(&set, &|m| default_place(&m.file_name)),
            "extra/a.ko: extra/b.ko extra/c.ko\n\
             extra/b.ko: extra/c.ko\n\
             extra/c.ko:\n\
             extra/d-x.ko: extra/a.ko extra/b.ko extra/c.ko\n"
        );
    }

    #[test]
    fn modules_are_listed_at_their_places() {
        let set = [module("a.ko", "b"), module("b.ko", "")];
        let place = |m: &Module| match m.file_name.as_str() {
            "b.ko" => "kernel/drivers/md/b.ko".to_string(),
            f => format!("updates/{f}"),
        };
        assert_eq!(
            modules_dep(&set, &place),
            "updates/a.ko: kernel/drivers/md/b.ko\nkernel/drivers/md/b.ko:\n"
        );
    }

    #[test]
    fn a_dependency_cycle_terminates() {
        let set = [module("a.ko", "b"), module("b.ko", "a")];
        assert_eq!(
            modules_dep(&set, &|m| default_place(&m.file_name)),
            "extra/a.ko: extra/b.ko\nextra/b.ko: extra/a.ko\n"
        );
    }

    #[test]
    fn the_layer_holds_the_modules_at_the_top_and_in_opt_owned_by_root() {
        let work = tempfile::tempdir().unwrap();
        let ko_dir = work.path().join("built");
        std::fs::create_dir_all(&ko_dir).unwrap();
        std::fs::write(ko_dir.join("b.ko"), b"B").unwrap();
        std::fs::write(ko_dir.join("a.ko"), b"A").unwrap();
        let modules = [module("a.ko", "b"), module("b.ko", "")];
        let context = work.path().join("image");
        write_context(
            &context,
            "6.1.0-57-amd64",
            &ko_dir,
            &modules,
            &|m| format!("extra/{}", m.file_name),
            None,
        )
        .unwrap();
        let layer = work.path().join("layer.tar");
        write_layer(&context, &layer).unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(&layer).unwrap());
        let mut entries = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            entries.push(
                e.path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string(),
            );
        }
        assert_eq!(
            entries,
            [
                "a.ko",
                "b.ko",
                "opt",
                "opt/lib",
                "opt/lib/modules",
                "opt/lib/modules/6.1.0-57-amd64",
                "opt/lib/modules/6.1.0-57-amd64/extra",
                "opt/lib/modules/6.1.0-57-amd64/extra/a.ko",
                "opt/lib/modules/6.1.0-57-amd64/extra/b.ko",
                "opt/lib/modules/6.1.0-57-amd64/modules.dep",
            ]
        );
        // The same files, the same layer.
        let again = work.path().join("again.tar");
        write_layer(&context, &again).unwrap();
        assert_eq!(
            std::fs::read(&layer).unwrap(),
            std::fs::read(&again).unwrap()
        );
    }
}
