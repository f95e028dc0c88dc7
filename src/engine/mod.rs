//! The container engine, behind a trait: everything dmb asks of Docker.
//!
//! [`DockerCli`] drives the `docker` CLI (so `DOCKER_HOST` and contexts work
//! as the user configured them); tests of the planning substitute a fake.

mod docker;
pub mod process;
mod session;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use docker::DockerCli;
pub use process::Finished;
pub use session::{LazyEngine, Session};

/// Label that marks everything one dmb run creates, so that cleanup after a
/// failure or Ctrl-C removes exactly that and nothing of anyone else's.
pub const SESSION_LABEL: &str = "dmb.session";

/// Which image builder the CLI drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// The classic builder (`DOCKER_BUILDKIT=0`): every build is tagged and
    /// files are copied out of a container.
    Legacy,
    /// BuildKit through `docker buildx build`.
    Buildx,
    /// BuildKit built into pre-23 CLIs, switched on by `DOCKER_BUILDKIT=1`.
    BuildKitEnv,
}

impl Builder {
    pub fn is_buildkit(self) -> bool {
        !matches!(self, Builder::Legacy)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Builder::Legacy => "legacy builder",
            Builder::Buildx => "BuildKit (buildx)",
            Builder::BuildKitEnv => "BuildKit (DOCKER_BUILDKIT=1)",
        }
    }
}

/// The user's choice of builder (`--builder`, `DMB_BUILDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BuilderChoice {
    /// BuildKit when the CLI has it, else the legacy builder.
    #[default]
    Auto,
    Buildkit,
    Legacy,
}

/// Where a build's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutput {
    /// An image with this tag.
    Image(String),
    /// The final stage's filesystem, exported to a host directory (BuildKit).
    Directory(PathBuf),
}

/// One `docker build`.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub output: BuildOutput,
    /// Whether RUN steps may reach the network.
    pub network: bool,
}

/// One short-lived helper container whose output dmb reads.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub image: String,
    pub name: String,
    pub session: String,
    /// A fixed script of dmb's, run by `/bin/sh -c`. Never user input.
    pub script: &'static str,
    /// The script's positional parameters (`$1`…): data, never code.
    pub args: Vec<String>,
    /// Capabilities to add (`SYS_MODULE`, `SYSLOG`), nothing else.
    pub cap_add: Vec<&'static str>,
    /// Run the script in the mount namespace of the engine's PID 1 (the
    /// VM's own files): needs `--privileged --pid=host` and `nsenter` in the
    /// image. The value says why, for `-v`. Only for reading the target
    /// VM's files; never used to load.
    pub host_mount_namespace: Option<&'static str>,
}

impl RunRequest {
    /// An ordinary container running `script` with no arguments.
    pub fn new(image: &str, name: String, session: &str, script: &'static str) -> Self {
        RunRequest {
            image: image.to_string(),
            name,
            session: session.to_string(),
            script,
            args: Vec::new(),
            cap_add: Vec::new(),
            host_mount_namespace: None,
        }
    }
}

/// A container that dmb creates, fills with `docker cp` and starts later:
/// the module loader (one-shot, or kept with `--restart=always`).
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub image: String,
    pub name: String,
    /// Labels, beside the session label when `session` is set.
    pub labels: Vec<(String, String)>,
    /// Part of a run's session (removed at its end), or kept.
    pub session: Option<String>,
    pub cap_add: Vec<&'static str>,
    /// `--restart=always`: started again whenever the engine starts.
    pub restart_always: bool,
    pub script: &'static str,
    pub args: Vec<String>,
}

/// A container as listed by [`Engine::containers_with_label`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// `created`, `running`, `exited`, …
    pub status: String,
    pub restart_policy: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the docker CLI `{program}` was not found")]
    CliNotFound { program: String },
    #[error("the Docker engine is not reachable through `{program}`: {detail}")]
    Unreachable { program: String, detail: String },
    #[error("this docker CLI has no BuildKit (no buildx plugin, and it is too new to switch BuildKit on with DOCKER_BUILDKIT=1)")]
    NoBuildKit,
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("reading the output of `{command}` failed: {detail}")]
    Stream { command: String, detail: String },
    #[error("interrupted")]
    Interrupted,
}

/// What dmb needs from a container engine.
pub trait Engine {
    /// The builder that [`Engine::build`] uses.
    fn builder(&self) -> Builder;

    /// The ID of a local image, or `None` when there is no such image.
    fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError>;

    /// The tags of a local image and the value of one of its labels.
    fn image_tags_and_label(
        &self,
        reference: &str,
        label: &str,
    ) -> Result<(usize, Option<String>), EngineError>;

    /// Runs a build; each log line goes to `on_line`. A build that fails is
    /// not an error here: the caller reads the status and the log.
    fn build(
        &self,
        request: &BuildRequest,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Finished, EngineError>;

    /// Runs a helper container to its end (no network, removed afterwards).
    fn run(&self, request: &RunRequest) -> Result<Finished, EngineError>;

    /// Creates (does not start) a container to copy files out of.
    fn create(&self, image: &str, name: &str, session: &str) -> Result<(), EngineError>;

    /// Size of a regular file in a container, `None` when it is not there.
    fn file_size(&self, container: &str, path: &str) -> Result<Option<u64>, EngineError>;

    /// Copies the regular files directly inside a container's directory to a
    /// host directory; returns their names.
    fn copy_files_out(
        &self,
        container: &str,
        dir: &str,
        dest: &std::path::Path,
    ) -> Result<Vec<String>, EngineError>;

    /// Streams a regular file out of a container to `read`; `Ok(false)` when
    /// the path is not there.
    fn with_file(
        &self,
        container: &str,
        path: &str,
        read: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<(), String>,
    ) -> Result<bool, EngineError>;

    /// Removes (by force) every container carrying this session's label.
    fn remove_session_containers(&self, session: &str) -> Result<(), EngineError>;

    /// Removes dangling images carrying `label=value` (a failed or
    /// interrupted legacy build leaves its finished steps behind).
    fn prune_dangling(&self, label: &str, value: &str) -> Result<(), EngineError>;

    /// Removes an image by tag or ID.
    fn remove_image(&self, reference: &str) -> Result<(), EngineError>;

    /// Like [`Engine::run`], but the container's stdout (binary: a tar
    /// stream) goes to `read`; a non-zero exit is an error. `read` returns
    /// `Ok(true)` when it has all it needs: the rest is not read, and the
    /// container is left to the session's cleanup.
    fn run_reading(
        &self,
        request: &RunRequest,
        read: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<bool, String>,
    ) -> Result<(), EngineError>;

    /// Creates a container to fill and start later.
    fn create_container(&self, spec: &ContainerSpec) -> Result<(), EngineError>;

    /// Copies the contents of a host directory into a container's directory.
    fn copy_into(
        &self,
        container: &str,
        source: &std::path::Path,
        dir: &str,
    ) -> Result<(), EngineError>;

    /// Starts a container and waits for it to end, with its output.
    fn start_attached(&self, container: &str) -> Result<Finished, EngineError>;

    /// Starts a container in the background.
    fn start(&self, container: &str) -> Result<(), EngineError>;

    /// Every container (running or not) that carries `label`.
    fn containers_with_label(&self, label: &str) -> Result<Vec<ContainerInfo>, EngineError>;

    /// Removes a container by name or ID, by force.
    fn remove_container(&self, container: &str) -> Result<(), EngineError>;
}

/// Calls `each` with the path and contents of every regular file of a tar
/// stream (what `docker cp … -` and the VM-reading scripts write), in stream
/// order; directories, links and devices are passed over. `each` returns
/// `Ok(true)` when it has seen enough, and so does this function then.
pub fn each_regular_file(
    stream: impl Read,
    mut each: impl FnMut(&Path, &mut dyn Read) -> Result<bool, String>,
) -> Result<bool, String> {
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if each(&path, &mut entry)? {
            return Ok(true);
        }
    }
    Ok(false)
}
