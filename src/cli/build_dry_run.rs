//! `dmb build --dry-run`: the plan of a build (a module directory, a DKMS
//! package, in-tree modules), for each kernel; nothing is created. When the engine has no kernel image
//! for the running kernel, the plan stops at the synthesis a build would
//! start with (minutes, and it makes an image).

use std::io::Write;

use super::build::{BuildArgs, Source};
use super::terminal::Terminal;
use super::Outcome;
use crate::detect;
use crate::engine::{DockerCli, Images, Session};
use crate::module_build::plan::{self, BuildPlan};
use crate::module_build::RefOptions;
use crate::progress::Progress;

pub(super) fn run(
    engine: &DockerCli,
    args: &BuildArgs,
    source: &Source,
    terminal: &mut Terminal,
) -> Outcome {
    let kernels: Vec<Option<&String>> = if args.kernel_ref.is_empty() {
        vec![None]
    } else {
        args.kernel_ref.iter().map(Some).collect()
    };
    let mut plans = Vec::new();
    for kernel_ref in kernels {
        let mut refs = RefOptions {
            kernel_ref: kernel_ref.cloned(),
            build_ref: args.build_ref.clone(),
            kver: args.kver.clone(),
            detect: Some(args.probe.options()),
            detected: None,
        };
        if kernel_ref.is_none() {
            let session = Session::new(engine);
            terminal.step("detecting the running kernel");
            let found = detect::detect(&session, &args.probe.options())?;
            let named = found.kernel_ref.reference.clone();
            let present = match &named {
                Some(r) => engine.image_id(r)?.is_some(),
                None => false,
            };
            // As a build decides (synth::auto::kernel_ref): synthesis needs
            // the VM's configuration and files.
            let could_synthesize = !found.config.is_empty() && found.vm_files;
            if !present && !args.synthesis.no_synthesize && could_synthesize {
                match crate::synth::auto::synthesized_image(&session, &found)? {
                    Some(made) => {
                        let provided = crate::synth::auto::Provided::of(&session, made)?;
                        refs.kernel_ref = Some(provided.reference);
                        if refs.build_ref.is_none() {
                            refs.build_ref = provided.builder;
                        }
                    }
                    None => {
                        terminal.finish();
                        println!(
                            "would first synthesize a kernel image for {} (the engine has {}): minutes, and it makes an image; `dmb kernel synthesize` does that step alone, then `dmb build --dry-run` plans the rest",
                            found.release,
                            named.map_or("no image known for it".to_string(), |r| format!("no {r}"))
                        );
                        return Ok(0);
                    }
                }
            }
            refs.detected = Some(found);
        }
        let module_ref = if args.kernel_ref.len() > 1 {
            format!("{}:<release>", args.module_ref)
        } else {
            args.module_ref.clone()
        };
        let check = !args.no_check;
        plans.push(match source {
            Source::Module(dir) => {
                plan::plan(engine, dir.path(), &refs, &module_ref, check, terminal)?
            }
            Source::Dkms(tree) => crate::dkms::dry_run::plan(
                engine,
                tree,
                &refs,
                args.with_deps,
                &module_ref,
                check,
                terminal,
            )?,
            Source::InTree => crate::module_build::in_tree::plan::plan(
                engine,
                &refs,
                &args.in_tree,
                &module_ref,
                check,
                terminal,
            )?,
        });
    }
    terminal.finish();
    print(args.json, &plans);
    Ok(0)
}

fn print(json: bool, plans: &[BuildPlan]) {
    let mut out = std::io::stdout().lock();
    if json {
        let text = if plans.len() == 1 {
            serde_json::to_string_pretty(&plans[0])
        } else {
            serde_json::to_string_pretty(plans)
        };
        let _ = writeln!(out, "{}", text.expect("a plan serialises"));
        return;
    }
    for p in plans {
        for line in p.describe() {
            let _ = writeln!(out, "{line}");
        }
    }
}
