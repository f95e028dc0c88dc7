//! Which image runs the probe and the loader. Without `--probe-image`, the
//! first image of the engine that has what their scripts need: `busybox`,
//! the image a previous run settled on, BUILD_REF, another local busybox
//! (`mirror.example/library/busybox:1.36`), a build environment dmb made;
//! each checked (once per image ID: the verdict is cached on the host), never
//! assumed. A pull is the last resort, and is said. Registries are often
//! out of reach (corporate Docker Desktop installs, this project's CI), so a
//! fixed `busybox` that has to be pulled would make detection fail where
//! the engine already holds a fine image.

use crate::engine::{Base, EngineError, Session};
use crate::scripts;

/// The image a user names, or the choice left to dmb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeImage {
    /// `--probe-image`/`DMB_PROBE_IMAGE`: used as given.
    Named(String),
    /// The first usable image of the engine; `hints` (BUILD_REF) are tried
    /// after `busybox` and the previous choice.
    Auto { hints: Vec<String> },
}

/// The image to pull when the engine has none that will do.
pub const PULLED: &str = "busybox";

/// A settled probe image, and why it was chosen when dmb chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub image: String,
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no image in the engine can run dmb's probe (tried: {}), and pulling `{PULLED}` failed: {pull_error}", tried_list(.tried))]
pub struct NoProbeImage {
    /// Each image tried, with what it lacked.
    pub tried: Vec<(String, String)>,
    pub pull_error: String,
}

fn tried_list(tried: &[(String, String)]) -> String {
    if tried.is_empty() {
        return "none: the engine has no image".into();
    }
    tried
        .iter()
        .map(|(image, why)| format!("{image}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The images to try, in order, each once: `busybox`, the previous choice,
/// the hints, then the local images whose name is busybox, then the build
/// environments (`local` and `buildenvs` as the engine lists them).
pub fn candidates(
    previous: Option<&str>,
    hints: &[String],
    local: &[String],
    buildenvs: &[String],
) -> Vec<String> {
    let named_busybox = |r: &&String| {
        let name = r.rsplit_once(':').map_or(r.as_str(), |(n, _)| n);
        name.rsplit('/').next() == Some("busybox")
    };
    let mut out: Vec<String> = Vec::new();
    let first = [PULLED.to_string()];
    let all = first
        .iter()
        .chain(previous.map(str::to_string).iter())
        .chain(hints)
        .chain(local.iter().filter(named_busybox))
        .chain(buildenvs)
        .cloned()
        .collect::<Vec<_>>();
    for c in all {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// What a candidate lacks, from `probe_needs.sh`'s output (empty: nothing).
pub fn lacks(output: &str) -> Vec<String> {
    scripts::records(output)
        .filter(|r| r.verb == "lacks")
        .map(|r| r.args.to_string())
        .collect()
}

impl ProbeImage {
    /// The image to run: as named, or the first usable one of the engine.
    pub fn settle<E: ?Sized + Base>(&self, session: &Session<E>) -> Result<Settled, crate::Error> {
        let hints = match self {
            ProbeImage::Named(image) => {
                return Ok(Settled {
                    image: image.clone(),
                    why: None,
                })
            }
            ProbeImage::Auto { hints } => hints,
        };
        let engine = session.engine();
        let remembered = remembered();
        let previous = crate::cache::read(remembered.as_deref())
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        // `busybox`, the previous choice and the hints first: the engine's
        // image list is read only when none of them will do.
        let mut tried = Vec::new();
        let early = candidates(previous.as_deref(), hints, &[], &[]);
        if let Some(image) = first_usable(session, &early, &mut tried)? {
            return Ok(chosen(image, remembered.as_deref()));
        }
        let local = engine.local_images(None)?;
        let buildenvs =
            engine.local_images(Some(crate::module_build::dockerfile::BUILDENV_LABEL))?;
        let rest: Vec<String> = candidates(previous.as_deref(), hints, &local, &buildenvs)
            .into_iter()
            .filter(|c| !early.contains(c))
            .collect();
        if let Some(image) = first_usable(session, &rest, &mut tried)? {
            return Ok(chosen(image, remembered.as_deref()));
        }
        // The last resort: a registry, when one is reachable.
        match engine.pull(PULLED) {
            Ok(()) => Ok(Settled {
                image: PULLED.to_string(),
                why: Some(format!(
                    "probe image {PULLED}: pulled, because no image of the engine has what the probe needs"
                )),
            }),
            Err(EngineError::Interrupted) => Err(EngineError::Interrupted.into()),
            Err(e) => Err(super::DetectError::NoProbeImage(NoProbeImage {
                tried,
                pull_error: match e {
                    EngineError::Command { detail, .. } => detail,
                    other => other.to_string(),
                },
            })
            .into()),
        }
    }
}

/// The first of `images` that the engine has and that has what the probe
/// needs; the others that the engine has join `tried`, with what they lack.
fn first_usable<E: ?Sized + Base>(
    session: &Session<E>,
    images: &[String],
    tried: &mut Vec<(String, String)>,
) -> Result<Option<String>, crate::Error> {
    for image in images {
        let Some(id) = session.engine().image_id(image)? else {
            continue;
        };
        match verdict(session, image, &id)? {
            None => return Ok(Some(image.clone())),
            Some(lack) => tried.push((image.clone(), lack)),
        }
    }
    Ok(None)
}

/// `image`, remembered for the next run, and why (unless it is `busybox`).
fn chosen(image: String, remembered: Option<&std::path::Path>) -> Settled {
    if let Some(path) = remembered {
        crate::cache::store(path, image.as_bytes());
    }
    let why = (image != PULLED).then(|| {
        format!(
            "probe image {image}: the engine has no `{PULLED}`, and {image} has what the probe needs (--probe-image names another)"
        )
    });
    Settled { image, why }
}

/// The file that remembers the last image settled on.
fn remembered() -> Option<std::path::PathBuf> {
    Some(crate::cache::dir()?.join("probe-image"))
}

/// `None` when `image` (of ID `id`) has what the probe needs, else what it
/// lacks; read from the host cache when this image ID was checked before.
fn verdict<E: ?Sized + Base>(
    session: &Session<E>,
    image: &str,
    id: &str,
) -> Result<Option<String>, crate::Error> {
    let cached = crate::cache::file_for_image("probe-image-check", id);
    if let Some(text) =
        crate::cache::read(cached.as_deref()).and_then(|b| String::from_utf8(b).ok())
    {
        return Ok((!text.is_empty()).then_some(text));
    }
    let request = session.request(image, "probe-check", scripts::PROBE_NEEDS);
    let lack = match session.engine().run(&request) {
        Ok(done) => {
            let missing = lacks(&done.stdout);
            (!missing.is_empty()).then(|| format!("no {}", missing.join(", ")))
        }
        Err(EngineError::Interrupted) => return Err(EngineError::Interrupted.into()),
        // No /bin/sh, or an image for another platform: not one to use.
        Err(EngineError::Command { detail, .. }) => Some(format!("cannot run /bin/sh ({detail})")),
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = cached {
        crate::cache::store(&path, lack.as_deref().unwrap_or("").as_bytes());
    }
    Ok(lack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn busybox_first_then_the_previous_the_hints_other_busyboxes_and_buildenvs() {
        let local = s(&[
            "debian:bookworm",
            "mirror.example/library/busybox:1.36",
            "dmb-kit/busybox:latest",
            "busybox-like:1",
            "dmb-buildenv:0011",
        ]);
        assert_eq!(
            candidates(
                Some("old/probe:1"),
                &s(&["dmb-kit/builder:bookworm"]),
                &local,
                &s(&["dmb-buildenv:0011", "dmb-buildenv:2233"])
            ),
            s(&[
                "busybox",
                "old/probe:1",
                "dmb-kit/builder:bookworm",
                "mirror.example/library/busybox:1.36",
                "dmb-kit/busybox:latest",
                "dmb-buildenv:0011",
                "dmb-buildenv:2233",
            ])
        );
    }

    #[test]
    fn each_candidate_once() {
        assert_eq!(
            candidates(
                Some("busybox"),
                &s(&["busybox"]),
                &s(&["busybox:latest"]),
                &[]
            ),
            s(&["busybox", "busybox:latest"])
        );
    }

    #[test]
    fn what_an_image_lacks() {
        assert_eq!(
            lacks("@@dmb:lacks nsenter\nnoise\n@@dmb:lacks insmod\n"),
            s(&["nsenter", "insmod"])
        );
        assert!(lacks("").is_empty());
    }

    #[test]
    fn the_error_is_one_line_naming_what_was_tried() {
        let e = NoProbeImage {
            tried: vec![("debian:bookworm".into(), "no nsenter".into())],
            pull_error: "dial tcp: lookup registry-1.docker.io: no such host".into(),
        };
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("debian:bookworm: no nsenter"), "{text}");
        let none = NoProbeImage {
            tried: vec![],
            pull_error: "x".into(),
        };
        assert!(none.to_string().contains("the engine has no image"));
    }
}
