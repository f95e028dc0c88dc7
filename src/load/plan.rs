//! The load plan, pure: which modules to insert, in which order (a module
//! after what it `depends` on), which are there already, and whether the
//! running kernel allows it at all. No I/O: the caller brings the modules,
//! the kernel's built-in and on-disk modules, and what is loaded.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use crate::detect::loaded::{BuildMatch, LoadedModules};
use crate::module_files::ModuleFile;

/// A module file to load: given, or pulled in as a dependency.
#[derive(Debug, Clone)]
pub struct ToLoad {
    /// Its `source` says where it came from, for people: `file ./x.ko`,
    /// `image kernel-module`, `the VM's /lib/modules/…`.
    pub file: ModuleFile,
    /// Pulled in because another module depends on it, not asked for.
    pub dependency: bool,
}

impl ToLoad {
    fn name(&self) -> &str {
        &self.file.module.name
    }
}

/// `--param MODULE.KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamArg {
    pub module: String,
    pub key: String,
    pub value: String,
}

impl ParamArg {
    /// `key=value` as the kernel parses it: a value with whitespace in
    /// double quotes, which the kernel removes (no shell ever sees it).
    pub fn kernel_form(&self) -> String {
        if self.value.contains(char::is_whitespace) {
            format!("{}=\"{}\"", self.key, self.value)
        } else {
            format!("{}={}", self.key, self.value)
        }
    }
}

impl std::str::FromStr for ParamArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("`{s}` is not MODULE.KEY=VALUE");
        let (target, value) = s.split_once('=').ok_or_else(err)?;
        let (module, key) = target.split_once('.').ok_or_else(err)?;
        if module.is_empty() || key.is_empty() {
            return Err(err());
        }
        if value.contains(['\n', '\t', '\0']) {
            return Err(format!(
                "`{s}`: a parameter value cannot hold a newline, tab or NUL"
            ));
        }
        // The kernel's parser (kernel/params.c, next_arg) splits the
        // parameter string at whitespace outside double quotes and drops
        // only a value's outer quotes: a `"` inside a value would open a
        // quote that swallows the parameters after it. dmb quotes a value
        // with spaces itself; one with a `"` cannot be said at all.
        if value.contains('"') {
            return Err(format!(
                "`{s}`: the kernel cannot take a parameter value with a double quote in it (give the value without quotes: dmb quotes one with spaces)"
            ));
        }
        Ok(ParamArg {
            module: crate::ko::module_name(module),
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// What the running kernel and its VM have, as planning sees them.
pub struct Kernel<'a> {
    pub release: &'a str,
    pub builtin: &'a HashSet<String>,
    /// Module name → its file in the VM (`/lib/modules/<kver>/…`).
    pub on_disk: &'a BTreeMap<String, String>,
    pub loaded: &'a LoadedModules,
    /// Alias → the modules on disk or built in that answer to it.
    pub aliases: &'a BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// insmod it.
    Insert,
    /// Already loaded: this build, or one that cannot be told apart.
    AlreadyLoaded { same_build_known: bool },
    /// A dependency the kernel has built in.
    BuiltIn,
    /// A dependency that is loaded already (the kernel's own, or one loaded earlier).
    LoadedDependency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub module: String,
    pub action: Action,
    /// The module's file, for the steps that have one.
    #[serde(skip)]
    pub file: Option<ModuleFile>,
    pub source: Option<String>,
    pub params: Vec<String>,
    pub dependency: bool,
}

/// The modules of one `dmb load`, in load order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadPlan {
    pub release: String,
    pub steps: Vec<Step>,
}

impl LoadPlan {
    pub fn inserts(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action == Action::Insert)
    }

    /// The steps with a module file of dmb's: what a kept loader loads.
    pub fn with_files(&self) -> impl Iterator<Item = (&Step, &ModuleFile)> {
        self.steps
            .iter()
            .filter_map(|s| s.file.as_ref().map(|f| (s, f)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{needed_by} depends on {module}, which is not loaded, not built in, not in the VM's /lib/modules/{release}, and not given")]
    MissingDependency {
        module: String,
        needed_by: String,
        release: String,
    },
    #[error("{module} is built into the running kernel; it cannot be loaded as a module")]
    BuiltIn { module: String },
    #[error("module {module} is given twice: {first} and {second}")]
    Duplicate {
        module: String,
        first: String,
        second: String,
    },
    #[error("the modules depend on each other in a cycle: {}", modules.join(" → "))]
    Cycle { modules: Vec<String> },
    #[error("another build of {module} is loaded already (it is not {file})")]
    Conflict { module: String, file: String },
    #[error("--param {module}.…: {module} is not among the modules to load")]
    ParamModule { module: String },
    #[error("--param {module}.{key}: {module} has no parameter {key} (it has: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    ParamUnknown {
        module: String,
        key: String,
        known: Vec<String>,
    },
    #[error("--param {module}.…: {module} is loaded already, its parameters cannot change")]
    ParamsForLoaded { module: String },
}

/// Dependencies that are not among `modules`: the first of `beside` (files
/// beside the given ones) that has it joins them as a dependency, over and
/// over until nothing new is needed. Returns the VM files still to fetch
/// (name → path in the VM); an error for a dependency found nowhere.
pub fn resolve_dependencies(
    modules: &mut Vec<ToLoad>,
    beside: &mut Vec<ModuleFile>,
    kernel: &Kernel,
) -> Result<BTreeMap<String, String>, PlanError> {
    let mut from_vm = BTreeMap::new();
    let mut i = 0;
    while i < modules.len() {
        let needed_by = modules[i].name().to_string();
        for (dep, soft) in needs(&modules[i].file.module) {
            let in_set = modules.iter().any(|c| answers_to(&c.file.module, &dep));
            if in_set || kernel.has(&dep) || from_vm.contains_key(&dep) {
                continue;
            }
            if let Some(at) = beside.iter().position(|f| answers_to(&f.module, &dep)) {
                modules.push(ToLoad {
                    file: beside.remove(at),
                    dependency: true,
                });
            } else if let Some((name, path)) = kernel.on_disk_provider(&dep) {
                if !from_vm.values().any(|p| p == &path) {
                    from_vm.insert(name, path);
                }
            } else if !soft {
                return Err(PlanError::MissingDependency {
                    module: dep,
                    needed_by,
                    release: kernel.release.to_string(),
                });
            }
            // A soft dependency nothing provides is soft: modprobe, too,
            // loads the module without it.
        }
        i += 1;
    }
    Ok(from_vm)
}

/// What a module needs loaded first: its `depends` (hard) and what its
/// `softdep: pre:` names (soft; a name may be an alias).
fn needs(m: &crate::ko::Module) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = m.info.depends().into_iter().map(|d| (d, false)).collect();
    out.extend(m.info.softdeps_pre().into_iter().map(|d| (d, true)));
    out
}

/// Whether a module is `name`, by its name or one of its aliases.
fn answers_to(m: &crate::ko::Module, name: &str) -> bool {
    m.name == name
        || m.info
            .aliases()
            .iter()
            .any(|a| crate::ko::module_name(a) == name)
}

impl Kernel<'_> {
    /// Whether the kernel has `name` loaded or built in, by name or alias.
    fn has(&self, name: &str) -> bool {
        let direct = |n: &str| self.loaded.is_loaded(n) || self.builtin.contains(n);
        direct(name)
            || self
                .aliases
                .get(name)
                .is_some_and(|providers| providers.iter().any(|p| direct(p)))
    }

    /// The module on the VM's disk that is `name`, by name or alias.
    fn on_disk_provider(&self, name: &str) -> Option<(String, String)> {
        if let Some(path) = self.on_disk.get(name) {
            return Some((name.to_string(), path.clone()));
        }
        self.aliases
            .get(name)?
            .iter()
            .find_map(|p| self.on_disk.get(p).map(|path| (p.clone(), path.clone())))
    }
}

/// Orders the candidates (dependencies first, otherwise as given) and says
/// for each whether to insert it.
pub fn plan(
    modules: &[ToLoad],
    params: &[ParamArg],
    kernel: &Kernel,
) -> Result<LoadPlan, PlanError> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in modules.iter().enumerate() {
        if let Some(&first) = by_name.get(c.name()) {
            return Err(PlanError::Duplicate {
                module: c.name().to_string(),
                first: modules[first].file.source.clone(),
                second: c.file.source.clone(),
            });
        }
        if kernel.builtin.contains(c.name()) {
            return Err(PlanError::BuiltIn {
                module: c.name().to_string(),
            });
        }
        by_name.insert(c.name(), i);
    }
    for p in params {
        let Some(&i) = by_name.get(p.module.as_str()) else {
            return Err(PlanError::ParamModule {
                module: p.module.clone(),
            });
        };
        let known: Vec<String> = modules[i]
            .file
            .module
            .info
            .parameters()
            .into_iter()
            .map(|p| p.name)
            .collect();
        if !known.contains(&p.key) {
            return Err(PlanError::ParamUnknown {
                module: p.module.clone(),
                key: p.key.clone(),
                known,
            });
        }
    }

    let order = topological(modules, &by_name)?;
    let mut steps = Vec::new();
    let mut listed = BTreeSet::new();
    for i in order {
        let c = &modules[i];
        let m = &c.file.module;
        // Dependencies outside the set, shown where they are needed.
        for dep in m.info.depends() {
            if by_name.contains_key(dep.as_str()) || !listed.insert(dep.clone()) {
                continue;
            }
            let action = if kernel.builtin.contains(&dep) {
                Action::BuiltIn
            } else {
                Action::LoadedDependency
            };
            steps.push(Step {
                module: dep,
                action,
                file: None,
                source: None,
                params: Vec::new(),
                dependency: true,
            });
        }
        let my_params: Vec<String> = params
            .iter()
            .filter(|p| p.module == m.name)
            .map(ParamArg::kernel_form)
            .collect();
        let action = if kernel.loaded.is_loaded(&m.name) {
            let same = kernel.loaded.build_match(m);
            if same == BuildMatch::Other {
                return Err(PlanError::Conflict {
                    module: m.name.clone(),
                    file: c.file.source.clone(),
                });
            }
            if !my_params.is_empty() {
                return Err(PlanError::ParamsForLoaded {
                    module: m.name.clone(),
                });
            }
            Action::AlreadyLoaded {
                same_build_known: same == BuildMatch::Same,
            }
        } else {
            Action::Insert
        };
        listed.insert(m.name.clone());
        steps.push(Step {
            module: m.name.clone(),
            action,
            file: Some(c.file.clone()),
            source: Some(c.file.source.clone()),
            params: my_params,
            dependency: c.dependency,
        });
    }
    Ok(LoadPlan {
        release: kernel.release.to_string(),
        steps,
    })
}

/// Kahn's algorithm, taking the earliest given module whenever several are
/// ready, so that independent modules load in the order given.
fn topological(
    candidates: &[ToLoad],
    by_name: &BTreeMap<&str, usize>,
) -> Result<Vec<usize>, PlanError> {
    let deps: Vec<Vec<usize>> = candidates
        .iter()
        .map(|c| {
            needs(&c.file.module)
                .iter()
                .filter_map(|(d, _)| {
                    by_name.get(d.as_str()).copied().or_else(|| {
                        candidates
                            .iter()
                            .position(|o| answers_to(&o.file.module, d))
                    })
                })
                .collect()
        })
        .collect();
    let mut done = vec![false; candidates.len()];
    let mut order = Vec::with_capacity(candidates.len());
    while order.len() < candidates.len() {
        let next = (0..candidates.len()).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let modules = (0..candidates.len())
                    .filter(|&i| !done[i])
                    .map(|i| candidates[i].name().to_string())
                    .collect();
                return Err(PlanError::Cycle { modules });
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::loaded::fixture::probe_output;
    use crate::ko::tests::Fixture;
    use crate::ko::Module;

    fn file(name: &str, depends: &str, params: &[&str]) -> ModuleFile {
        let f = Fixture::named(name, depends, params, name.len() as u8);
        ModuleFile {
            module: Module::read(&format!("{name}.ko"), f.elf()).unwrap(),
            path: format!("/tmp/{name}.ko").into(),
            source: format!("file {name}.ko"),
        }
    }

    fn candidate(name: &str, depends: &str, params: &[&str]) -> ToLoad {
        ToLoad {
            file: file(name, depends, params),
            dependency: false,
        }
    }

    struct TestKernel {
        builtin: HashSet<String>,
        on_disk: BTreeMap<String, String>,
        loaded: LoadedModules,
        aliases: BTreeMap<String, Vec<String>>,
    }

    impl TestKernel {
        /// `proc_modules` lines, then `NAME SRCVERSION NOTE` lines.
        fn new(proc_modules: &str, builds: &str) -> Self {
            TestKernel {
                builtin: ["crc32c_generic".to_string()].into(),
                on_disk: [(
                    "libcrc32c".to_string(),
                    "/lib/modules/6.1.0-56-amd64/kernel/lib/libcrc32c.ko".to_string(),
                )]
                .into(),
                loaded: LoadedModules::parse(&probe_output("6.1.0-56-amd64", proc_modules, builds)),
                aliases: [("crc32c".to_string(), vec!["crc32c_generic".to_string()])].into(),
            }
        }
        fn side(&self) -> Kernel<'_> {
            Kernel {
                release: "6.1.0-56-amd64",
                builtin: &self.builtin,
                on_disk: &self.on_disk,
                loaded: &self.loaded,
                aliases: &self.aliases,
            }
        }
    }

    fn names(p: &LoadPlan) -> Vec<(&str, &Action)> {
        p.steps
            .iter()
            .map(|s| (s.module.as_str(), &s.action))
            .collect()
    }

    #[test]
    fn dependencies_load_first_and_the_rest_keeps_the_given_order() {
        let k = TestKernel::new("overlay 1 0 - Live 0x0\n", "");
        let cands = vec![
            candidate("consumer", "provider,overlay", &[]),
            candidate("hello", "", &[]),
            candidate("provider", "crc32c_generic", &[]),
        ];
        let p = plan(&cands, &[], &k.side()).unwrap();
        assert_eq!(
            names(&p),
            [
                ("hello", &Action::Insert),
                ("crc32c_generic", &Action::BuiltIn),
                ("provider", &Action::Insert),
                ("overlay", &Action::LoadedDependency),
                ("consumer", &Action::Insert),
            ]
        );
    }

    #[test]
    fn a_dependency_comes_from_beside_the_given_file_or_from_the_vm() {
        let k = TestKernel::new("", "");
        let mut cands = vec![candidate("consumer", "provider", &[])];
        let mut pool = vec![
            file("unrelated", "", &[]),
            file("provider", "libcrc32c", &[]),
        ];
        let from_vm = resolve_dependencies(&mut cands, &mut pool, &k.side()).unwrap();
        assert_eq!(
            from_vm.keys().collect::<Vec<_>>(),
            ["libcrc32c"],
            "{from_vm:?}"
        );
        assert_eq!(cands.len(), 2);
        assert!(cands[1].dependency);
        assert_eq!(pool.len(), 1);

        let mut cands = vec![candidate("consumer", "nowhere", &[])];
        assert_eq!(
            resolve_dependencies(&mut cands, &mut Vec::new(), &k.side()),
            Err(PlanError::MissingDependency {
                module: "nowhere".into(),
                needed_by: "consumer".into(),
                release: "6.1.0-56-amd64".into()
            })
        );
    }

    #[test]
    fn soft_dependencies_are_found_by_alias_and_never_required() {
        let mut f = Fixture::named("libcrc32c", "", &[], 3);
        f.modinfo.extend(b"softdep=pre: crc32c\0");
        let lib = ToLoad {
            file: ModuleFile {
                module: Module::read("libcrc32c.ko", f.elf()).unwrap(),
                path: "/tmp/libcrc32c.ko".into(),
                source: "file libcrc32c.ko".into(),
            },
            dependency: false,
        };
        // crc32c is built in (as crc32c_generic, by alias): nothing to add.
        let k = TestKernel::new("", "");
        let mut cands = vec![lib.clone()];
        assert!(resolve_dependencies(&mut cands, &mut Vec::new(), &k.side())
            .unwrap()
            .is_empty());
        // Not built in, but on disk under its own name: fetched by alias.
        let mut k = TestKernel::new("", "");
        k.builtin.clear();
        k.on_disk.insert(
            "crc32c_generic".into(),
            "/lib/modules/r/kernel/crypto/crc32c_generic.ko".into(),
        );
        let from_vm = resolve_dependencies(&mut cands, &mut Vec::new(), &k.side()).unwrap();
        assert_eq!(from_vm.keys().collect::<Vec<_>>(), ["crc32c_generic"]);
        // Nowhere at all: soft, so the load goes on without it.
        k.on_disk.clear();
        assert!(resolve_dependencies(&mut cands, &mut Vec::new(), &k.side())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn loaded_modules_are_kept_when_the_same_build_and_refused_otherwise() {
        let c = candidate("hello", "", &[]);
        let note = crate::ko::hex(c.file.module.build_id_note.as_deref().unwrap());
        let same = TestKernel::new("hello 1 0 - Live 0x0\n", &format!("hello - {note}\n"));
        let p = plan(std::slice::from_ref(&c), &[], &same.side()).unwrap();
        assert_eq!(
            p.steps[0].action,
            Action::AlreadyLoaded {
                same_build_known: true
            }
        );
        assert_eq!(p.inserts().count(), 0);
        let other = TestKernel::new("hello 1 0 - Live 0x0\n", "hello - 0400000014\n");
        assert!(matches!(
            plan(std::slice::from_ref(&c), &[], &other.side()),
            Err(PlanError::Conflict { .. })
        ));
        let unknown = TestKernel::new("hello 1 0 - Live 0x0\n", "");
        assert_eq!(
            plan(&[c], &[], &unknown.side()).unwrap().steps[0].action,
            Action::AlreadyLoaded {
                same_build_known: false
            }
        );
    }

    #[test]
    fn parameters_are_checked_against_the_module() {
        let k = TestKernel::new("", "");
        let cands = vec![candidate("hello", "", &["answer:int"])];
        let p: ParamArg = "hello.answer=7".parse().unwrap();
        let plan_ok = plan(&cands, std::slice::from_ref(&p), &k.side()).unwrap();
        assert_eq!(plan_ok.steps[0].params, ["answer=7"]);
        let bad: ParamArg = "hello.question=7".parse().unwrap();
        assert_eq!(
            plan(&cands, &[bad], &k.side()),
            Err(PlanError::ParamUnknown {
                module: "hello".into(),
                key: "question".into(),
                known: vec!["answer".into()]
            })
        );
        let other: ParamArg = "other-mod.x=1".parse().unwrap();
        assert_eq!(other.module, "other_mod");
        assert!(matches!(
            plan(&cands, &[other], &k.side()),
            Err(PlanError::ParamModule { .. })
        ));
        assert!("hello=1".parse::<ParamArg>().is_err());
        assert!("hello.x=a\nb".parse::<ParamArg>().is_err());
        // Quotes are the kernel's: a value cannot hold one; one with
        // spaces is quoted for it.
        assert!("hello.msg=\"a b\"".parse::<ParamArg>().is_err());
        assert!("hello.msg=a\"b".parse::<ParamArg>().is_err());
        let spaced: ParamArg = "hello.msg=a $(touch /x) b;c".parse().unwrap();
        assert_eq!(spaced.value, "a $(touch /x) b;c");
        assert_eq!(spaced.kernel_form(), "msg=\"a $(touch /x) b;c\"");
        let plain: ParamArg = "hello.msg=a$b;c'd".parse().unwrap();
        assert_eq!(plain.kernel_form(), "msg=a$b;c'd");
    }

    #[test]
    fn built_in_duplicates_and_cycles_are_refused() {
        let k = TestKernel::new("", "");
        assert!(matches!(
            plan(&[candidate("crc32c_generic", "", &[])], &[], &k.side()),
            Err(PlanError::BuiltIn { .. })
        ));
        assert!(matches!(
            plan(
                &[candidate("a", "", &[]), candidate("a", "", &[])],
                &[],
                &k.side()
            ),
            Err(PlanError::Duplicate { .. })
        ));
        assert_eq!(
            plan(
                &[candidate("a", "b", &[]), candidate("b", "a", &[])],
                &[],
                &k.side()
            ),
            Err(PlanError::Cycle {
                modules: vec!["a".into(), "b".into()]
            })
        );
    }
}
