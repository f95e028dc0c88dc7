//! `dmb build`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::build_output::{print_human, print_json, BuildReport};
use super::detect::ProbeArgs;
use super::terminal::{Labelled, Terminal};
use super::{connect, Cli, Outcome};
use crate::detect;
use crate::dkms::{self, build::DkmsOptions, PackageTree};
use crate::engine::{BuilderPreference, Session};
use crate::module_build::context::MakeInputs;
use crate::module_build::in_tree::{self, InTreeOptions};
use crate::module_build::package::RELEASE_VARIABLE;
use crate::module_build::{self, BuildOptions, BuildOutcome, MakeIn, ModuleDir, RefOptions};
use crate::progress::{Progress, StepTimer, Timings};
use crate::synth::{self, auto::AutoSynthesis};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Directory with the module's Makefile and sources, a DKMS source
    /// tree (a directory with a dkms.conf), or a `*-dkms` `.deb`.
    #[arg(default_value = "module")]
    pub module_dir: PathBuf,

    /// Build the directory as a DKMS package (it must hold a dkms.conf).
    /// Without --dkms or --no-dkms, a dkms.conf decides.
    #[arg(long, conflicts_with_all = ["no_dkms", "in_tree"])]
    pub dkms: bool,

    /// Run the directory's Makefile (its default target) even when it holds
    /// a dkms.conf.
    #[arg(long, conflicts_with = "in_tree")]
    pub no_dkms: bool,

    /// Also build, from the kernel's own source, the modules a DKMS
    /// package's modules need and the kernel lacks (as --in-tree does).
    #[arg(long, conflicts_with = "in_tree")]
    pub with_deps: bool,

    /// Build modules of the kernel's own source instead: module names
    /// (`sctp`, `dm-crypt`) or Kconfig options (`CONFIG_IP_SCTP`), with every
    /// module they need that the kernel lacks.
    #[arg(long, value_name = "NAME", num_args = 1.., conflicts_with = "module_dir")]
    pub in_tree: Vec<String>,

    /// Toolchain image; its compiler must be the one that built the kernel.
    #[arg(long, env = "BUILD_REF")]
    pub build_ref: Option<String>,

    /// Image with the kernel's headers, in the LinuxKit kernel layout.
    /// Repeat it to build for several kernels in one run: each gets its own
    /// image, tagged with its release (see --module-ref).
    #[arg(long, env = "KERNEL_REF", value_name = "IMAGE")]
    pub kernel_ref: Vec<String>,

    /// Image to create with the built modules. `${KERNEL_FULL_VERSION}`
    /// in it (as in KMM) stands for the kernel release; with several
    /// --kernel-ref and no such variable, the release becomes the tag
    /// (`repo:<release>`, or `repo:<tag>-<release>`), and --output gets a
    /// directory per release.
    #[arg(long, env = "MODULE_REF", default_value = "kernel-module")]
    pub module_ref: String,

    /// Kernel release to build for, when the kernel image holds more than one.
    #[arg(long)]
    pub kver: Option<String>,

    /// Also write the .ko files to this directory.
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    /// Image builder: auto (BuildKit when the CLI has it, else legacy),
    /// buildkit, legacy, or the NAME of a buildx builder (`docker buildx
    /// create --name NAME`, any driver: a remote or Kubernetes BuildKit).
    #[arg(
        long,
        env = "DMB_BUILDER",
        value_name = "auto|buildkit|legacy|NAME",
        default_value = "auto"
    )]
    pub builder: BuilderArg,

    /// Let make reach the network (build steps have none by default).
    #[arg(long)]
    pub network: bool,

    /// Run make with this many jobs (default: the build container's CPU
    /// count, `nproc`): the module's make, a DKMS package's, and for
    /// --in-tree (or --with-deps) the kernel tree's preparation and builds.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,

    /// An argument for the module's make (`W=1`, `CONFIG_FOO=y`, a
    /// target), repeatable. Objects built with other arguments are never
    /// reused.
    #[arg(long = "make-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub make_args: Vec<String>,

    /// Build from scratch: remove the objects that earlier builds of this
    /// module for this build environment kept (a rebuild recompiles only
    /// the files whose content changed).
    #[arg(long)]
    pub fresh: bool,

    /// With several --kernel-ref: build for at most N kernels at once
    /// (each make still gets --jobs).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,

    /// Do not check that the built modules will load into the kernel.
    #[arg(long)]
    pub no_check: bool,

    /// Print what was built as JSON (one object; an array of them with
    /// several --kernel-ref).
    #[arg(long)]
    pub json: bool,

    /// Say what the build would use and make (kernel, builder, build
    /// environment, files, image) and create nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// How to detect the kernel when no KERNEL_REF or BUILD_REF is given.
    #[command(flatten)]
    pub probe: ProbeArgs,

    /// When the engine has no kernel image for its kernel.
    #[command(flatten)]
    pub synthesis: SynthesisArgs,
}

/// What `dmb build` synthesizes a kernel image from when detection finds
/// none in the engine (`dmb kernel synthesize` takes the same).
#[derive(Debug, clap::Args)]
pub struct SynthesisArgs {
    /// The kernel's source, should a kernel image have to be synthesized:
    /// a tarball, a directory, or an http(s) URL. Default: the platform's
    /// own (kernel.org's linux-<version>.tar.xz for a LinuxKit kernel).
    #[arg(long, value_name = "TARBALL|DIR|URL")]
    pub kernel_source: Option<String>,

    /// The kernel source's SHA-256 (a URL needs one unless its publisher
    /// lists it).
    #[arg(long, value_name = "HEX")]
    pub kernel_sha256: Option<String>,

    /// Patches to apply to the kernel source, in order (repeatable; as
    /// `dmb kernel synthesize --patches`).
    #[arg(long, value_name = "DIR|FILE|URL")]
    pub kernel_patches: Vec<String>,

    /// Never synthesize a kernel image: a missing one is an error.
    #[arg(long)]
    pub no_synthesize: bool,
}

/// `--builder`: `auto`, `buildkit`, `legacy`, or the name of a buildx
/// builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderArg(pub BuilderPreference);

impl std::str::FromStr for BuilderArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(BuilderArg(match s {
            "auto" => BuilderPreference::Auto,
            "buildkit" => BuilderPreference::BuildKit,
            "legacy" => BuilderPreference::Legacy,
            name if is_builder_name(name) => BuilderPreference::Named(name.to_string()),
            other => {
                return Err(format!(
                    "`{other}` is not auto, buildkit, legacy or a buildx builder's name"
                ))
            }
        }))
    }
}

impl std::fmt::Display for BuilderArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            BuilderPreference::Auto => f.write_str("auto"),
            BuilderPreference::BuildKit => f.write_str("buildkit"),
            BuilderPreference::Legacy => f.write_str("legacy"),
            BuilderPreference::Named(n) => f.write_str(n),
        }
    }
}

/// buildx's names: letters, digits, `-`, `_`, `.` (never an option).
fn is_builder_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// What `dmb build` builds.
pub(super) enum Source {
    Module(ModuleDir),
    Dkms(Arc<PackageTree>),
    InTree,
}

impl Source {
    /// Decided before any engine is reached: `--in-tree`, a `.deb`,
    /// `--dkms`/`--no-dkms`, else whether the directory has a dkms.conf.
    fn of(args: &BuildArgs) -> Result<Self, crate::Error> {
        let path = &args.module_dir;
        let source = if !args.in_tree.is_empty() {
            Source::InTree
        } else if dkms::deb::is_deb(path) {
            if args.no_dkms {
                return Err(crate::Error::Usage(format!(
                    "{} is a Debian package: only its DKMS tree can be built (drop --no-dkms)",
                    path.display()
                )));
            }
            Source::Dkms(Arc::new(PackageTree::from_deb(path)?))
        } else if args.dkms || (!args.no_dkms && path.is_dir() && dkms::has_conf(path)) {
            if !path.is_dir() {
                return Err(module_build::BuildError::ModuleDirMissing {
                    path: path.to_path_buf(),
                }
                .into());
            }
            Source::Dkms(Arc::new(PackageTree::from_dir(path)?))
        } else {
            Source::Module(ModuleDir::new(path)?)
        };
        if args.with_deps && !matches!(source, Source::Dkms(_)) {
            return Err(crate::Error::Usage(
                "--with-deps is for DKMS packages (an --in-tree build always builds what its modules need)".into(),
            ));
        }
        Ok(source)
    }
}

pub fn run(cli: &Cli, args: &BuildArgs) -> Outcome {
    let mut terminal = Terminal::for_cli(cli);
    // What needs no engine is checked before connecting to one.
    let source = Source::of(args)?;
    if let Some(twice) = args
        .kernel_ref
        .iter()
        .enumerate()
        .find_map(|(i, k)| args.kernel_ref[..i].contains(k).then_some(k))
    {
        return Err(crate::Error::Usage(format!(
            "--kernel-ref {twice} is given twice"
        )));
    }
    let engine = connect(cli, args.builder.0.clone())?;
    if args.dry_run {
        return super::build_dry_run::run(&engine, args, &source, &mut terminal);
    }
    if args.kernel_ref.len() <= 1 {
        let (outcome, timings) = build_for(
            &engine,
            args,
            &source,
            args.kernel_ref.first(),
            &args.module_ref,
            args.output.clone(),
            &mut terminal,
        )?;
        terminal.finish();
        if args.json {
            print_json(&[BuildReport::new(&outcome, timings)], false);
        } else {
            print_human(&outcome, cli.quiet);
        }
        return Ok(0);
    }
    // Several kernels: one build each (each checked against its own
    // kernel, each with its own kept objects), --parallel of them at once.
    let module_ref = per_release_ref(&args.module_ref);
    let output = args.output.as_ref().map(|o| o.join(RELEASE_VARIABLE));
    let at_once = (args.parallel as usize).min(args.kernel_ref.len());
    terminal.step(&format!(
        "building for {} kernels, {at_once} at a time",
        args.kernel_ref.len()
    ));
    // The builds' lines are labelled plain lines: no spinner under them.
    terminal.finish();
    let results = for_each_bounded(&args.kernel_ref, at_once, |kernel_ref| {
        let mut progress = Labelled {
            label: kernel_ref.clone(),
            quiet: cli.quiet,
        };
        build_for(
            &engine,
            args,
            &source,
            Some(kernel_ref),
            &module_ref,
            output.clone(),
            &mut progress,
        )
    });
    // Results in the order of the kernels; the first failure is the
    // outcome, the others are told.
    let mut first_error = None;
    let mut reports = Vec::new();
    for (kernel_ref, result) in args.kernel_ref.iter().zip(results) {
        match result {
            Some(Ok((outcome, timings))) if args.json => {
                reports.push(BuildReport::new(&outcome, timings))
            }
            Some(Ok((outcome, _))) => print_human(&outcome, cli.quiet),
            Some(Err(e)) if first_error.is_none() => first_error = Some((kernel_ref, e)),
            Some(Err(e)) => terminal.warn(&format!("the build for {kernel_ref} failed too: {e}")),
            None => terminal.warn(&format!(
                "not built for {kernel_ref}: an earlier build failed"
            )),
        }
    }
    match first_error {
        Some((kernel_ref, e)) => {
            terminal.warn(&format!("the build for {kernel_ref} failed"));
            Err(e)
        }
        None => {
            if args.json {
                print_json(&reports, true);
            }
            Ok(0)
        }
    }
}

/// Runs `work` on each item, at most `at_once` at a time; once one fails
/// (or the user interrupts), no more start. The results come in the items'
/// order, `None` for those that never started.
fn for_each_bounded<T: Sync, R: Send, E: Send>(
    items: &[T],
    at_once: usize,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Vec<Option<Result<R, E>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R, E>>>> =
        Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..at_once.max(1) {
            scope.spawn(|| loop {
                if failed.load(Ordering::SeqCst) || crate::interrupt::requested() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// MODULE_REF for several kernels: the release variable in it, or the
/// release as (the end of) its tag.
fn per_release_ref(module_ref: &str) -> String {
    if module_ref.contains(RELEASE_VARIABLE) {
        return module_ref.to_string();
    }
    let name_end = module_ref.rfind('/').map_or(0, |i| i + 1);
    match module_ref[name_end..].find(':') {
        Some(_) => format!("{module_ref}-{RELEASE_VARIABLE}"),
        None => format!("{module_ref}:{RELEASE_VARIABLE}"),
    }
}

/// One build of `source` with `refs`.
/// One kernel's build: its refs settled (detected, synthesized), then
/// built; with the time each step took.
fn build_for(
    engine: &crate::engine::DockerCli,
    args: &BuildArgs,
    source: &Source,
    kernel_ref: Option<&String>,
    module_ref: &str,
    output: Option<PathBuf>,
    progress: &mut dyn Progress,
) -> Result<(BuildOutcome, Timings), crate::Error> {
    let mut timer = StepTimer::new(progress);
    let refs = settle_refs(engine, args, kernel_ref, &mut timer)?;
    let outcome = build_one(engine, args, source, refs, module_ref, output, &mut timer)?;
    Ok((outcome, timer.timings()))
}

fn build_one(
    engine: &crate::engine::DockerCli,
    args: &BuildArgs,
    source: &Source,
    refs: RefOptions,
    module_ref: &str,
    output: Option<PathBuf>,
    terminal: &mut dyn Progress,
) -> Result<BuildOutcome, crate::Error> {
    Ok(match source {
        Source::Module(module_dir) => {
            let opts = BuildOptions {
                module_dir: module_dir.clone(),
                refs,
                module_ref: module_ref.to_string(),
                output: output.clone(),
                network: args.network,
                check: !args.no_check,
                make: MakeInputs {
                    args: args.make_args.clone(),
                    jobs: args.jobs,
                    fresh: args.fresh,
                    fresh_marker: None,
                },
                make_in: match args.builder.0 {
                    BuilderPreference::BuildKit | BuilderPreference::Named(_) => MakeIn::Builder,
                    BuilderPreference::Auto | BuilderPreference::Legacy => MakeIn::Engine,
                },
            };
            module_build::run(engine, &opts, terminal)?
        }
        Source::Dkms(tree) => {
            let opts = DkmsOptions {
                tree: tree.clone(),
                refs,
                module_ref: module_ref.to_string(),
                output: output.clone(),
                network: args.network,
                check: !args.no_check,
                with_deps: args.with_deps,
                jobs: args.jobs,
            };
            dkms::build::run(engine, &opts, terminal)?
        }
        Source::InTree => {
            let opts = InTreeOptions {
                names: args.in_tree.clone(),
                refs,
                module_ref: module_ref.to_string(),
                output: output.clone(),
                check: !args.no_check,
                jobs: args.jobs,
            };
            in_tree::run(engine, &opts, terminal)?
        }
    })
}

/// The refs as given; with no KERNEL_REF, the kernel detected once and,
/// when the engine has no image for it, a synthesized one.
fn settle_refs(
    engine: &crate::engine::DockerCli,
    args: &BuildArgs,
    kernel_ref: Option<&String>,
    terminal: &mut dyn Progress,
) -> Result<RefOptions, crate::Error> {
    let mut kernel_ref = kernel_ref.cloned();
    let mut build_ref = args.build_ref.clone();
    let mut detected = None;
    if kernel_ref.is_none() {
        let session = Session::new(engine);
        terminal.step("detecting the running kernel");
        let found = detect::detect(&session, &args.probe.options())?;
        let auto = AutoSynthesis {
            off: args.synthesis.no_synthesize,
            source: args.synthesis.kernel_source.clone(),
            sha256: args.synthesis.kernel_sha256.clone(),
            patches: args.synthesis.kernel_patches.clone(),
        };
        if let Some(made) =
            synth::auto::kernel_ref(&session, &found, args.build_ref.as_deref(), &auto, terminal)?
        {
            kernel_ref = Some(made.reference);
            if build_ref.is_none() {
                if let Some(b) = made.builder {
                    terminal.step(&format!(
                        "BUILD_REF {b} (the builder the kernel image was synthesized with)"
                    ));
                    build_ref = Some(b);
                }
            }
        }
        detected = Some(found);
    }
    Ok(RefOptions {
        kernel_ref,
        build_ref,
        kver: args.kver.clone(),
        detect: Some(args.probe.options()),
        detected,
    })
}

#[cfg(test)]
mod tests {
    use super::for_each_bounded;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn at_most_n_run_at_once_and_results_keep_their_order() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u64> = (0..7).collect();
        let results = for_each_bounded(&items, 3, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20 + 10 * (i % 3)));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<u64, ()>(i * 10)
        });
        let got: Vec<u64> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(got, [0, 10, 20, 30, 40, 50, 60]);
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn after_a_failure_nothing_more_starts() {
        let items: Vec<u32> = (0..5).collect();
        // One at a time: item 1 fails, so 2, 3 and 4 never start.
        let results = for_each_bounded(&items, 1, |&i| if i == 1 { Err(i) } else { Ok(i) });
        assert!(matches!(results[0], Some(Ok(0))));
        assert!(matches!(results[1], Some(Err(1))));
        assert!(results[2..].iter().all(Option::is_none));
    }
}
