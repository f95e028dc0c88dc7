//! The container engine, behind a trait: everything dmb asks of Docker.
//!
//! [`DockerCli`] drives the `docker` CLI (so `DOCKER_HOST` and contexts work
//! as the user configured them); tests of the planning substitute a fake.

mod docker;
pub mod process;
mod session;

use std::path::PathBuf;

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
    /// Run the script in the mount namespace of the engine's PID 1 (the
    /// VM's own files): needs `--privileged --pid=host` and `nsenter` in the
    /// image. Only for reading the target VM's files; never used to load.
    pub host_mount_namespace: bool,
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
}
