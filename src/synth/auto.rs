//! A kernel image for a build that names none, when detection finds none
//! the engine has: the one synthesized earlier for this kernel (its tag
//! names the release and the configuration's hash), else one synthesized
//! now from the kernel's own facts and its source — the same synthesis as
//! `dmb kernel synthesize`, in the target engine.

use super::{sources, synthesize, Snapshot, SynthOptions, KERNEL_REPOSITORY};
use crate::detect::Detection;
use crate::engine::{Engine, Session};
use crate::kernel::KernelRelease;
use crate::progress::Progress;

/// What a build may synthesize from.
#[derive(Debug, Clone, Default)]
pub struct AutoSynthesis {
    /// Never synthesize: a missing kernel image is an error.
    pub off: bool,
    /// The kernel's source; else the platform's own (kernel.org for LinuxKit).
    pub source: Option<String>,
    pub sha256: Option<String>,
    pub patches: Vec<String>,
}

/// A synthesized kernel image to build against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provided {
    pub reference: String,
    /// The builder it was made with, when the engine has it: its compiler
    /// is the kernel's.
    pub builder: Option<String>,
}

impl Provided {
    pub(crate) fn of<E: ?Sized + Engine>(
        session: &Session<E>,
        reference: String,
    ) -> Result<Provided, crate::Error> {
        let engine = session.engine();
        let builder = match super::label_of(engine, &reference, super::BUILDER_LABEL)? {
            Some(b) if engine.image_id(&b)?.is_some() => Some(b),
            _ => None,
        };
        Ok(Provided { reference, builder })
    }
}

/// The tag a synthesized image of `release` with configuration `config`
/// gets by default.
pub fn reference_for(release: &KernelRelease, config: &str) -> String {
    format!(
        "{KERNEL_REPOSITORY}:{release}-{}",
        &super::source::sha256_text(config.as_bytes())[..12]
    )
}

/// The image synthesized earlier for the kernel `found`, when the engine has it.
pub fn synthesized_image<E: ?Sized + Engine>(
    session: &Session<E>,
    found: &Detection,
) -> Result<Option<String>, crate::Error> {
    if found.config.is_empty() {
        return Ok(None);
    }
    let reference = reference_for(&found.release, found.config.text());
    Ok(session.engine().image_id(&reference)?.map(|_| reference))
}

/// The kernel image to build against when none was named: `None` when
/// detection's own is in the engine (or synthesis is off); else the image
/// synthesized for this kernel, made now if need be.
pub fn kernel_ref<E: ?Sized + Engine>(
    session: &Session<E>,
    found: &Detection,
    build_ref: Option<&str>,
    auto: &AutoSynthesis,
    progress: &mut dyn Progress,
) -> Result<Option<Provided>, crate::Error> {
    let named = found.kernel_ref.reference.as_deref();
    if let Some(r) = named {
        if session.engine().image_id(r)?.is_some() {
            return Ok(None);
        }
    }
    // Synthesis needs the kernel's configuration and its modules' CRCs:
    // without them, the missing image is reported as it always was.
    if auto.off || found.config.is_empty() || !found.vm_files {
        return Ok(None);
    }
    let missing = named.map_or_else(
        || "no kernel image is known for it".to_string(),
        |r| format!("the engine has no {r}"),
    );
    if let Some(made) = synthesized_image(session, found)? {
        progress.step(&format!(
            "{missing}: using {made}, synthesized earlier from this kernel's own facts"
        ));
        return Provided::of(session, made).map(Some);
    }
    let (source, defaulted) =
        sources::given_or_default(auto.source.as_deref(), &found.release, &found.proc_version)?;
    progress.step(&format!(
        "{missing}: synthesizing one for {} from the kernel's own facts and {source}{}",
        found.release,
        if defaulted {
            " (the platform's source, verified against its published SHA-256; --kernel-source overrides)"
        } else {
            ""
        }
    ));
    // A source that is not there is said before minutes go into the snapshot.
    sources::present(&source)?;
    let snapshot = Snapshot::take(session, found, &found.probe_image, progress)?;
    let opts = SynthOptions {
        source,
        sha256: auto.sha256.clone(),
        patches: auto.patches.clone(),
        build_ref: build_ref.map(str::to_string),
        tag: None,
    };
    let done = synthesize(session, &snapshot, &opts, progress)?;
    for n in &done.notes {
        progress.step(&format!("note: {n}"));
    }
    progress.step(&format!(
        "synthesized {} in {:.0} s; {}",
        done.reference,
        done.seconds,
        done.coverage.describe()
    ));
    Provided::of(session, done.reference).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_the_release_and_the_configurations_hash() {
        let r = KernelRelease::parse("6.12.72-linuxkit").unwrap();
        let a = reference_for(&r, "CONFIG_A=y\n");
        assert!(a.starts_with("dmb-synth/kernel:6.12.72-linuxkit-"), "{a}");
        assert_eq!(a.len(), "dmb-synth/kernel:6.12.72-linuxkit-".len() + 12);
        assert_ne!(a, reference_for(&r, "CONFIG_A=m\n"));
    }
}
