//! The container engine, behind narrow traits: everything dmb asks of Docker.
//!
//! [`Images`], [`Containers`], [`Builds`] and [`Lifecycle`] each cover one
//! kind of request, so that code asks for only what it uses (a build never
//! starts a kept container) and a test's fake implements only that.
//! [`DockerCli`] implements them all over the `docker` CLI, so `DOCKER_HOST`
//! and contexts work as the user configured them. A [`Session`] owns the
//! engine handle for one run and removes what the run created;
//! [`ScratchContainer`] is a container made only to read files out of.

mod docker;
pub mod process;
pub mod reap;
mod scratch;
mod session;
pub mod storage;

use std::path::{Path, PathBuf};

pub use docker::DockerCli;
pub use process::Finished;
pub use scratch::ScratchContainer;
pub use session::Session;
pub use storage::Storage;

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

/// Which builder a run may use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BuilderPreference {
    /// BuildKit when the CLI has it, else the legacy builder.
    #[default]
    Auto,
    /// BuildKit, or an error.
    BuildKit,
    Legacy,
    /// This buildx builder (`docker buildx build --builder NAME`): any
    /// BuildKit the CLI reaches, local or remote (a Kubernetes driver).
    Named(String),
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
    /// A fixed script of dmb's ([`crate::scripts`]), run by `/bin/sh -c`.
    /// Never user input.
    pub script: &'static str,
    /// The script's positional parameters (`$1`…): data, never code.
    pub args: Vec<String>,
    /// Capabilities to add (`SYS_MODULE`, `SYSLOG`), nothing else.
    pub cap_add: Vec<&'static str>,
    /// Share the host's PID namespace (`--pid=host`), unprivileged: to read
    /// what `/proc/1` says of the engine's host.
    pub pid_host: bool,
    /// Run the script in the mount namespace of the engine's PID 1 (the
    /// VM's own files): `--pid=host` with CAP_SYS_ADMIN and CAP_SYS_PTRACE
    /// (never `--privileged`: `docker::HOST_MOUNT_NAMESPACE`) and `nsenter` in the
    /// image. The value says why, for `-v`. Only for reading the target
    /// VM's files; never used to load.
    pub host_mount_namespace: Option<&'static str>,
}

/// A container that dmb creates and later reads, fills or starts. It has
/// no network.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub image: String,
    pub name: String,
    /// Its labels; a container of a run's session carries the session label.
    pub labels: Vec<(String, String)>,
    pub cap_add: Vec<&'static str>,
    /// `--restart=always`: started again whenever the engine starts.
    pub restart_always: bool,
    /// What it runs when started: a fixed script of dmb's and its
    /// parameters. `None` for a container that is only read from (images
    /// FROM scratch have no command, and `create` needs one).
    pub script: Option<(&'static str, Vec<String>)>,
}

/// A build run in a container instead of an image build: how the legacy
/// builder, which has no cache mounts, keeps a build directory between
/// builds (in a named volume). The container has no network.
#[derive(Debug, Clone)]
pub struct ContainerBuild {
    pub image: String,
    pub name: String,
    /// Its labels; it carries the session label, the volume does not.
    pub labels: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// A named volume, created with `volume_labels` on first use, mounted
    /// at `volume_dir`.
    pub volume: String,
    pub volume_dir: String,
    pub volume_labels: Vec<(String, String)>,
    /// A host directory whose contents are copied to `input_dir` first.
    pub input: PathBuf,
    pub input_dir: String,
    /// The shell script of `input_dir` that it runs (by `/bin/sh`).
    pub script: String,
    /// After a successful run, the regular files of these directories
    /// (relative to `output_dir` in the container) come to the same
    /// directories under `output` on the host, in one copy.
    pub output_dir: String,
    pub output_subdirs: Vec<String>,
    pub output: PathBuf,
}

/// A container as listed by [`Lifecycle::containers_with_label`].
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
    #[error("a named builder is a buildx builder, and this docker CLI has no buildx plugin")]
    NoBuildx,
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("reading the output of `{command}` failed: {detail}")]
    Stream { command: String, detail: String },
    #[error("{}", crate::interrupt::describe())]
    Interrupted,
}

impl EngineError {
    /// Whether a create failed because the name is taken (the engine's
    /// "Conflict. The container name … is already in use").
    pub fn is_name_conflict(&self) -> bool {
        matches!(self, EngineError::Command { detail, .. } if detail.contains("is already in use"))
    }
}

/// A reader of a stream that dmb gets from the engine. It returns `Ok(true)`
/// when it has all it needs: the rest is not read.
pub type StreamReader<'a> = dyn FnMut(&mut dyn std::io::Read) -> Result<bool, String> + 'a;

/// Images in the engine.
pub trait Images {
    /// The ID of a local image, or `None` when there is no such image.
    fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError>;

    /// The tags of a local image and the value of one of its labels.
    fn image_tags_and_label(
        &self,
        reference: &str,
        label: &str,
    ) -> Result<(usize, Option<String>), EngineError>;

    /// Removes an image by tag or ID.
    fn remove_image(&self, reference: &str) -> Result<(), EngineError>;

    /// The tagged local images (`repository:tag`), those carrying `label`
    /// (`key` or `key=value`) when one is given, newest first.
    fn local_images(&self, label: Option<&str>) -> Result<Vec<String>, EngineError>;

    /// Pulls an image from its registry.
    fn pull(&self, reference: &str) -> Result<(), EngineError>;

    /// Removes dangling images carrying `label=value` (a failed or
    /// interrupted legacy build leaves its finished steps behind).
    fn prune_dangling(&self, label: &str, value: &str) -> Result<(), EngineError>;

    /// The IDs of dangling images carrying `label=value`, newest first.
    fn dangling_images(&self, _label: &str, _value: &str) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }

    /// The values of `label` on dangling images (what builds that were
    /// cut off left); none where the engine cannot say.
    fn dangling_label_values(&self, _label: &str) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }
}

/// Helper containers: run to their end, or created to read files out of.
pub trait Containers {
    /// Runs a helper container to its end (no network, removed afterwards);
    /// a non-zero exit is an error.
    fn run(&self, request: &RunRequest) -> Result<Finished, EngineError>;

    /// Creates (does not start) a container.
    fn create(&self, spec: &ContainerSpec) -> Result<(), EngineError>;

    /// Size of a regular file in a container, `None` when it is not there.
    fn file_size(&self, container: &str, path: &str) -> Result<Option<u64>, EngineError>;

    /// Streams a regular file out of a container to `read`; `Ok(false)` when
    /// the path is not there.
    fn read_file(
        &self,
        container: &str,
        path: &str,
        read: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<(), String>,
    ) -> Result<bool, EngineError>;

    /// Copies the regular files directly inside a container's directory to a
    /// host directory; returns their names.
    fn copy_files_out(
        &self,
        container: &str,
        dir: &str,
        dest: &Path,
    ) -> Result<Vec<String>, EngineError>;

    /// Removes a container by name or ID, by force.
    fn remove_container(&self, container: &str) -> Result<(), EngineError>;

    /// Removes (by force) every container carrying `label=value`.
    fn remove_labelled(&self, label: &str, value: &str) -> Result<(), EngineError>;
}

/// Image builds.
pub trait Builds {
    /// The builder that [`Builds::build`] uses.
    fn builder(&self) -> Builder;

    /// Runs a build; each log line goes to `on_line`. A build that fails is
    /// not an error here: the caller reads the status and the log.
    fn build(
        &self,
        request: &BuildRequest,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Finished, EngineError>;

    /// Runs a [`ContainerBuild`]: creates the container, copies its input
    /// in, starts it (each log line to `on_line`), copies its outputs out
    /// when it succeeded, and removes it. A failing script is not an error
    /// here, as with [`Builds::build`].
    fn build_in_container(
        &self,
        build: &ContainerBuild,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Finished, EngineError>;

    /// Makes `reference` an image of one layer, the tar file `layer`, with
    /// the Dockerfile instructions `changes` (`LABEL …`) applied (`docker
    /// import`); returns its ID. For an image that is only files and
    /// labels, an image build would add a build's solve and export.
    fn import(
        &self,
        layer: &Path,
        reference: &str,
        changes: &[String],
    ) -> Result<String, EngineError>;
}

/// Containers that dmb fills and starts (loaders), lists by label, or whose
/// output it reads as a stream.
pub trait Lifecycle {
    /// Like [`Containers::run`], but the container's stdout (binary: a tar
    /// stream) goes to `read`. When `read` has all it needs, the rest is
    /// not read and the container is left to the session's cleanup.
    fn run_reading(&self, request: &RunRequest, read: &mut StreamReader)
        -> Result<(), EngineError>;

    /// Copies the contents of a host directory into a container's directory.
    fn copy_into(&self, container: &str, source: &Path, dir: &str) -> Result<(), EngineError>;

    /// Starts a container and waits for it to end, with its output.
    fn start_attached(&self, container: &str) -> Result<Finished, EngineError>;

    /// Starts a container in the background.
    fn start(&self, container: &str) -> Result<(), EngineError>;

    /// Every container (running or not) that carries `label`.
    fn containers_with_label(&self, label: &str) -> Result<Vec<ContainerInfo>, EngineError>;
}

/// What a session needs: images and helper containers. Reading the
/// engine's kernel (detection, kernel images) needs no more.
pub trait Base: Images + Containers {}
impl<T: Images + Containers + ?Sized> Base for T {}

/// What `dmb build` needs.
pub trait BuildEngine: Base + Builds {}
impl<T: Base + Builds + ?Sized> BuildEngine for T {}

/// Everything: what loading needs.
pub trait Engine: BuildEngine + Lifecycle {}
impl<T: BuildEngine + Lifecycle + ?Sized> Engine for T {}
