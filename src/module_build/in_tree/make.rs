//! `make M=` in the prepared tree, round by round: one image build per
//! round runs the in-tree build script over that round's modules (the
//! asked-for ones first, then what they turn out to need), and the `.ko`
//! files gather on the host; at the end depmod indexes them all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::closure;
use super::tree::Prepared;
use crate::engine::{Engine, Session};
use crate::kernel::kbuild::ModuleSite;
use crate::kernel::KernelRelease;
use crate::ko::Module;
use crate::module_build::make::BuiltFiles;
use crate::module_build::{dockerfile, BuildError};
use crate::progress::Progress;
use crate::scripts;

/// The modules built so far, gathered in one directory on the host.
pub struct Gathered {
    pub work: tempfile::TempDir,
    pub ko_dir: PathBuf,
    pub modules: Vec<Module>,
}

impl Gathered {
    pub fn new() -> Result<Self, BuildError> {
        let work = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
        let ko_dir = work.path().join("ko");
        std::fs::create_dir_all(&ko_dir)
            .map_err(BuildError::io("creating a temporary directory"))?;
        Ok(Gathered {
            work,
            ko_dir,
            modules: Vec::new(),
        })
    }

    /// Keeps only the modules the asked-for ones need, in load order.
    pub fn keep(self, asked: &BTreeSet<String>) -> (Self, Vec<String>) {
        let order = closure::load_order(&self.modules, asked);
        let Gathered {
            work,
            ko_dir,
            modules,
        } = self;
        let (kept, dropped): (Vec<Module>, Vec<Module>) =
            modules.into_iter().partition(|m| order.contains(&m.name));
        for m in &dropped {
            let _ = std::fs::remove_file(ko_dir.join(&m.file_name));
        }
        (
            Gathered {
                work,
                ko_dir,
                modules: kept,
            },
            order,
        )
    }
}

/// Builds one round, level after level (see [`closure::groups`]); its
/// modules join `gathered`.
pub fn build_round<E: ?Sized + Engine>(
    session: &Session<E>,
    prepared: &Prepared,
    release: &KernelRelease,
    levels: &[Vec<ModuleSite>],
    jobs: Option<u32>,
    gathered: &mut Gathered,
    progress: &mut dyn Progress,
) -> Result<(), crate::Error> {
    let round = tempfile::tempdir().map_err(BuildError::io("creating a temporary directory"))?;
    let files = build_once(
        session,
        prepared,
        release,
        &closure::groups(levels),
        jobs,
        round.path(),
        progress,
    )?;
    let modules = files.read_modules()?;
    for name in &files.ko {
        std::fs::copy(files.ko_dir.join(name), gathered.ko_dir.join(name))
            .map_err(BuildError::io(format!("keeping {name}")))?;
    }
    gathered.modules.extend(modules);
    Ok(())
}

/// depmod's index of the gathered modules (`modules.dep`, `.softdep`,
/// `.alias` and their `.bin` forms), made in a container of the prepared
/// tree, which has depmod when the builder has kmod.
pub fn index<E: ?Sized + Engine>(
    session: &Session<E>,
    prepared: &Prepared,
    gathered: &Gathered,
) -> Result<BuiltFiles, crate::Error> {
    let engine = session.engine();
    let depmod_dir = gathered.work.path().join("depmod");
    std::fs::create_dir_all(&depmod_dir)
        .map_err(BuildError::io("creating a temporary directory"))?;
    let spec = session.container(&prepared.image, "depmod", scripts::DEPMOD);
    engine.create(&spec)?;
    // `docker cp` makes /dmb, not /dmb/ko: the work directory holds ko/.
    engine.copy_into(&spec.name, gathered.work.path(), "/dmb")?;
    let done = engine.start_attached(&spec.name)?;
    let indexed = done.success() && scripts::records(&done.stdout).any(|r| r.verb == "depmod");
    if indexed {
        engine.copy_files_out(&spec.name, "/dmb/depmod", &depmod_dir)?;
    }
    let mut ko: Vec<String> = gathered
        .modules
        .iter()
        .map(|m| m.file_name.clone())
        .collect();
    ko.sort();
    Ok(BuiltFiles {
        ko_dir: gathered.ko_dir.clone(),
        ko,
        depmod_dir: indexed.then_some(depmod_dir),
        places: Default::default(),
    })
}

/// One image build over `groups`; the `.ko` files come to `work/out/ko`.
fn build_once<E: ?Sized + Engine>(
    session: &Session<E>,
    prepared: &Prepared,
    release: &KernelRelease,
    groups: &str,
    jobs: Option<u32>,
    work: &Path,
    progress: &mut dyn Progress,
) -> Result<BuiltFiles, crate::Error> {
    let context = work.join("build");
    let dmb = context.join("dmb");
    std::fs::create_dir_all(&dmb).map_err(BuildError::io("creating the build context"))?;
    std::fs::write(dmb.join("in_tree_build.sh"), scripts::IN_TREE_BUILD)
        .map_err(BuildError::io("writing the build context"))?;
    std::fs::write(dmb.join("groups"), groups)
        .map_err(BuildError::io("writing the build context"))?;
    let what = format!(
        "{} in the kernel's tree",
        groups
            .lines()
            .filter(|l| *l != "-")
            .collect::<Vec<_>>()
            .join("; ")
    );
    crate::module_build::make::run_build(
        session,
        &context,
        |export| {
            dockerfile::in_tree(
                &prepared.image,
                session.id(),
                release.as_str(),
                jobs,
                export,
            )
        },
        false,
        &what,
        work,
        progress,
    )
}
