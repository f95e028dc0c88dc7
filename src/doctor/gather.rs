//! What doctor asks the engine. Each question's failure is a fact too: it
//! is recorded, and the questions that need its answer are not asked.

use std::path::Path;

use super::caps::HostCaps;
use super::{EngineFacts, Facts, Headers, ProbeFailure};
use crate::detect::probe_image::ProbeImage;
use crate::detect::{self, DetectOptions, Detection};
use crate::engine::{BuilderPreference, Containers, DockerCli, Images, Session};
use crate::progress::Progress;
use crate::scripts;

/// Asks everything, in order; `detect` says how detection may look
/// (`vm_files`: whether it may try a privileged container).
pub fn gather(
    program: &Path,
    verbose: bool,
    detect: &DetectOptions,
    progress: &mut dyn Progress,
) -> Facts {
    let mut facts = Facts {
        engine: Err(String::new()),
        probe: None,
        host_caps: None,
        vm_files_asked: detect.vm_files,
        detection: None,
        build_ref_present: None,
        headers: None,
        caches: None,
    };
    progress.step("asking the engine what it is");
    let engine = match DockerCli::connect(program, BuilderPreference::Auto, verbose) {
        Ok(e) => e,
        Err(e) => {
            facts.engine = Err(e.to_string());
            return facts;
        }
    };
    facts.engine = Ok(EngineFacts {
        cli: program.display().to_string(),
        client_version: engine.client_version.clone(),
        server_version: engine.server_version.clone(),
        api_version: engine.api_version.clone(),
        platform: engine.server_platform.clone(),
        builder: crate::engine::Builds::builder(&engine),
        docker_host: std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
    });
    let session = Session::new(&engine);
    progress.step("finding an image to probe with");
    let settled = match detect.probe_image.settle(&session) {
        Ok(s) => s,
        Err(e) => {
            facts.probe = Some(Err(ProbeFailure {
                message: e.to_string(),
                hint: e.hint(),
            }));
            facts.caches = Some(crate::cache::keep::read(&engine).map_err(|e| e.to_string()));
            return facts;
        }
    };
    facts.probe = Some(Ok(settled.clone()));

    progress.step("reading what the engine's host allows (--pid=host, unprivileged)");
    let mut request = session.request(&settled.image, "doctor-caps", scripts::ENGINE_CAPS);
    request.pid_host = true;
    facts.host_caps = Some(match engine.run(&request) {
        Ok(done) => HostCaps::parse(&done.stdout)
            .ok_or_else(|| "the container printed no capability set".to_string()),
        Err(e) => Err(e.to_string()),
    });

    progress.step("detecting the running kernel");
    let options = DetectOptions {
        probe_image: ProbeImage::Named(settled.image.clone()),
        vm_files: detect.vm_files,
    };
    let detection = detect::detect(&session, &options).map_err(|e| e.to_string());
    if let Ok(d) = &detection {
        facts.headers = Some(headers(&session, d));
        facts.build_ref_present = d
            .build_ref
            .reference
            .as_deref()
            .map(|r| matches!(engine.image_id(r), Ok(Some(_))));
    }
    facts.detection = Some(detection);
    progress.step("listing dmb's caches");
    facts.caches = Some(crate::cache::keep::read(&engine).map_err(|e| e.to_string()));
    facts
}

/// Where `dmb build` with no KERNEL_REF would take the headers from (as
/// `synth::auto::kernel_ref` decides).
fn headers(session: &Session<DockerCli>, d: &Detection) -> Headers {
    let engine = session.engine();
    let named = d.kernel_ref.reference.as_deref();
    if let Some(r) = named {
        if matches!(engine.image_id(r), Ok(Some(_))) {
            return Headers::Image {
                reference: r.to_string(),
                source: d.kernel_ref.source.clone(),
            };
        }
    }
    if let Ok(Some(made)) = crate::synth::auto::synthesized_image(session, d) {
        return Headers::Synthesized { reference: made };
    }
    let missing = named.map_or_else(
        || format!("no kernel image is published for {}", d.release),
        |r| format!("the engine has no {r}"),
    );
    if !d.vm_files || d.config.is_empty() {
        return Headers::Nothing {
            why: format!(
                "{missing}, and synthesizing one needs the VM's files (its configuration and its modules' CRCs), which dmb could not read"
            ),
            fix: "name a kernel image with --kernel-ref (KERNEL_REF), or let dmb enter the VM (no --no-vm-files; see vm-files)".into(),
        };
    }
    match crate::synth::sources::given_or_default(None, &d.release, &d.proc_version) {
        Ok((source, _)) => Headers::Synthesis { source, missing },
        Err(e) => Headers::Nothing {
            why: format!("{missing}: {e}"),
            fix: format!(
                "name the kernel's source: `dmb build --kernel-source FILE|DIR|URL` (or `dmb kernel synthesize --source`); for this kernel, {}",
                crate::synth::sources::suggestion(&d.release, &d.proc_version)
            ),
        },
    }
}
