//! [`Engine`] over the `docker` CLI.

mod storage;

use std::io::Read;
use std::path::{Path, PathBuf};

use super::process::{self, Invocation, RunError, Streaming};
use super::{
    BuildOutput, BuildRequest, Builder, BuilderPreference, Builds, ContainerBuild, ContainerInfo,
    ContainerSpec, Containers, EngineError, Finished, Images, Lifecycle, RunRequest, StreamReader,
    SESSION_LABEL,
};

/// What a container needs, and gets, to enter the mount namespace of the
/// engine host's PID 1 (see `run_invocation`).
pub const HOST_MOUNT_NAMESPACE: [&str; 7] = [
    "--pid=host",
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "SYS_PTRACE",
    "--security-opt",
    "apparmor=unconfined",
];

/// The first docker CLI release that dropped the built-in BuildKit client in
/// favour of the buildx plugin.
const FIRST_BUILDX_ONLY_MAJOR: u32 = 23;

pub struct DockerCli {
    program: PathBuf,
    builder: Builder,
    /// The buildx builder to name (`--builder`), when one was chosen.
    buildx_builder: Option<String>,
    verbose: bool,
    /// Versions as `docker version` reported them, for `-v` and messages.
    pub client_version: String,
    pub server_version: String,
    /// The engine's API version and platform (`linux/amd64`).
    pub api_version: String,
    pub server_platform: String,
}

impl DockerCli {
    /// Finds the engine through `program` (the CLI honours `DOCKER_HOST` and
    /// contexts) and settles which builder to use.
    pub fn connect(
        program: impl Into<PathBuf>,
        choice: BuilderPreference,
        verbose: bool,
    ) -> Result<Self, EngineError> {
        let mut cli = DockerCli {
            program: program.into(),
            builder: Builder::Legacy,
            buildx_builder: None,
            verbose,
            client_version: String::new(),
            server_version: String::new(),
            api_version: String::new(),
            server_platform: String::new(),
        };
        let version = cli.invocation().args([
            "version",
            "--format",
            "{{.Client.Version}}|{{.Server.Version}}|{{.Server.APIVersion}}|{{.Server.Os}}/{{.Server.Arch}}",
        ]);
        cli.trace(&version);
        let done = match process::run(&version, true, &mut |_| {}) {
            Err(RunError::Spawn { .. }) => {
                return Err(EngineError::CliNotFound {
                    program: cli.program_name(),
                })
            }
            other => other.map_err(|e| run_error(&version, e))?,
        };
        let fields: Vec<&str> = done.stdout.trim().split('|').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or("").to_string();
        cli.client_version = field(0);
        cli.server_version = field(1);
        cli.api_version = field(2);
        cli.server_platform = field(3).trim_matches('/').to_string();
        if !done.success() || cli.server_version.is_empty() {
            return Err(EngineError::Unreachable {
                program: cli.program_name(),
                detail: failure_detail(&done),
            });
        }
        cli.builder = cli.choose_builder(&choice)?;
        if let BuilderPreference::Named(name) = choice {
            cli.buildx_builder = Some(name);
        }
        if verbose {
            eprintln!(
                "dmb: docker client {} (engine {}), {}{}",
                cli.client_version,
                cli.server_version,
                cli.builder.describe(),
                cli.buildx_builder
                    .as_ref()
                    .map(|b| format!(" builder {b}"))
                    .unwrap_or_default()
            );
        }
        Ok(cli)
    }

    fn choose_builder(&self, choice: &BuilderPreference) -> Result<Builder, EngineError> {
        if *choice == BuilderPreference::Legacy {
            return Ok(Builder::Legacy);
        }
        let buildx = self
            .run_quietly(&self.invocation().args(["buildx", "version"]))
            .map(|d| d.success())
            .unwrap_or(false);
        let builtin = major(&self.client_version).is_some_and(|m| m < FIRST_BUILDX_ONLY_MAJOR);
        match (buildx, builtin, choice) {
            (true, _, _) => Ok(Builder::Buildx),
            (false, true, _) => Ok(Builder::BuildKitEnv),
            // A named builder is a buildx builder: nothing else will do.
            (false, _, BuilderPreference::Named(_)) => Err(EngineError::NoBuildx),
            (false, false, BuilderPreference::BuildKit) => Err(EngineError::NoBuildKit),
            (false, false, _) => Ok(Builder::Legacy),
        }
    }

    /// The regular files of `subdirs` of a container's `dir`, copied to the
    /// same subdirectories of `dest` in one `docker cp`.
    fn copy_subdirs_out(
        &self,
        container: &str,
        dir: &str,
        subdirs: &[String],
        dest: &Path,
    ) -> Result<(), EngineError> {
        self.read_dir_stream(container, dir, |stream| {
            extract_subdirs(stream, subdirs, dest)
        })
    }

    /// Streams a container's directory (`docker cp DIR/. -`, a tar) to
    /// `read`; a failing copy or reader is an error.
    fn read_dir_stream<T>(
        &self,
        container: &str,
        dir: &str,
        read: impl FnOnce(&mut dyn Read) -> Result<T, String>,
    ) -> Result<T, EngineError> {
        let source = format!("{container}:{}/.", dir.trim_end_matches('/'));
        let inv = self.invocation().args(["cp", "--", &source, "-"]);
        self.trace(&inv);
        let (stream, mut stdout) = Streaming::spawn(&inv).map_err(|e| run_error(&inv, e))?;
        let read = read(&mut stdout);
        drop(stdout);
        let (status, stderr) = stream.finish(false).map_err(|e| run_error(&inv, e))?;
        if !status.success() {
            return Err(EngineError::Command {
                command: inv.summary(),
                detail: stderr.trim().to_string(),
            });
        }
        read.map_err(|detail| EngineError::Stream {
            command: inv.summary(),
            detail,
        })
    }

    fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    fn invocation(&self) -> Invocation {
        Invocation::new(&self.program)
    }

    fn trace(&self, inv: &Invocation) {
        if self.verbose {
            eprintln!("+ {}", inv.display());
        }
    }

    /// Runs a short command, capturing its output; a start failure or Ctrl-C
    /// is an error, a non-zero exit is not.
    fn run_quietly(&self, inv: &Invocation) -> Result<Finished, EngineError> {
        self.trace(inv);
        process::run(inv, true, &mut |_| {}).map_err(|e| run_error(inv, e))
    }

    /// Like [`Self::run_quietly`], but a non-zero exit is an error too.
    fn run_checked(&self, inv: &Invocation) -> Result<Finished, EngineError> {
        let done = self.run_quietly(inv)?;
        if done.success() {
            Ok(done)
        } else {
            Err(EngineError::Command {
                command: inv.summary(),
                detail: failure_detail(&done),
            })
        }
    }

    /// Cleanup must finish even after Ctrl-C, so it is not interruptible.
    fn run_cleanup(&self, inv: &Invocation) -> Result<Finished, EngineError> {
        self.trace(inv);
        let done = process::run(inv, false, &mut |_| {}).map_err(|e| run_error(inv, e))?;
        if done.success() {
            Ok(done)
        } else {
            Err(EngineError::Command {
                command: inv.summary(),
                detail: failure_detail(&done),
            })
        }
    }

    fn run_invocation(&self, request: &RunRequest) -> Invocation {
        let label = format!("{SESSION_LABEL}={}", request.session);
        let mut inv = self.invocation().args([
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            &request.name,
            "--label",
            &label,
        ]);
        for cap in &request.cap_add {
            inv = inv.args(["--cap-add", cap]);
        }
        inv = if let Some(why) = request.host_mount_namespace {
            // The least that enters PID 1's mount namespace to read the
            // VM's own files (/etc/linuxkit.yml, /boot, /lib/modules), no
            // --privileged: the host's PID namespace; CAP_SYS_PTRACE to open
            // /proc/1/ns/mnt (PID 1 holds capabilities the container lacks);
            // CAP_SYS_ADMIN (with Docker's default CAP_SYS_CHROOT) for setns,
            // which Docker's default seccomp profile allows with it; and no
            // AppArmor profile, since docker-default lets a container trace
            // only its own peers. Measured in the desktop-sim: without
            // CAP_SYS_PTRACE, "can't open '/proc/1/ns/mnt': Permission denied".
            if self.verbose {
                eprintln!(
                    "dmb: a container in the VM's PID namespace with CAP_SYS_ADMIN and CAP_SYS_PTRACE (not privileged): {why}"
                );
            }
            inv.args(HOST_MOUNT_NAMESPACE)
                .args(["--entrypoint", "nsenter", "--"])
                .arg(&request.image)
                .args(["-t", "1", "-m", "--", "/bin/sh", "-c", request.script, "sh"])
        } else {
            if request.pid_host {
                inv = inv.arg("--pid=host");
            }
            inv.args(["--entrypoint", "/bin/sh", "--"])
                .arg(&request.image)
                .args(["-c", request.script, "sh"])
        };
        inv.args(&request.args)
    }

    fn build_invocation(&self, req: &BuildRequest) -> Invocation {
        let mut inv = self.invocation();
        inv = match self.builder {
            Builder::Legacy => inv
                .env("DOCKER_BUILDKIT", "0")
                .args(["build", "--force-rm"]),
            Builder::BuildKitEnv => inv
                .env("DOCKER_BUILDKIT", "1")
                .args(["build", "--progress=plain"]),
            Builder::Buildx => inv.args(["buildx", "build", "--progress=plain"]),
        };
        if let Some(name) = &self.buildx_builder {
            inv = inv.args(["--builder", name]);
        }
        inv = inv.arg("--file").arg(req.dockerfile.as_os_str());
        if !req.network {
            inv = inv.args(["--network", "none"]);
        }
        inv = match &req.output {
            BuildOutput::Image(tag) => {
                if self.builder == Builder::Buildx {
                    inv = inv.arg("--load");
                }
                inv.args(["--tag", tag])
            }
            BuildOutput::Directory(dir) => {
                let mut spec = std::ffi::OsString::from("type=local,dest=");
                spec.push(dir.as_os_str());
                inv.arg("--output").arg(spec)
            }
        };
        inv.arg(req.context.as_os_str())
    }
}

fn run_error(inv: &Invocation, e: RunError) -> EngineError {
    match e {
        RunError::Interrupted => EngineError::Interrupted,
        other => EngineError::Command {
            command: inv.summary(),
            detail: other.to_string(),
        },
    }
}

fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

/// The line of an error output that says what went wrong (docker ends with
/// usage hints such as "See 'docker --help'").
/// The engine's own words about a failed command; with none, how it ended
/// (an exit status, or the signal that ended it).
fn failure_detail(done: &Finished) -> String {
    let line = last_meaningful_line(&done.output_tail);
    if line == "no output" {
        format!("no output ({})", done.status)
    } else {
        line
    }
}

fn last_meaningful_line(lines: &[String]) -> String {
    lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !l.starts_with("See '") && !l.starts_with("Run '"))
        .unwrap_or("no output")
        .to_string()
}

fn mentions_absence(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("no such image")
        || t.contains("no such object")
        || t.contains("could not find the file")
        || t.contains("no such file or directory")
        || t.contains("no such container:path")
}

impl DockerCli {
    /// IDs of dangling images with this label filter (`key` or
    /// `key=value`), newest first. Listed as cleanup is (not cut short by
    /// Ctrl-C): it is short, and cleanup depends on it.
    fn dangling_ids(&self, label_filter: &str) -> Result<Vec<String>, EngineError> {
        let list = self.invocation().args([
            "image",
            "ls",
            "--quiet",
            "--no-trunc",
            "--filter",
            "dangling=true",
            "--filter",
            &format!("label={label_filter}"),
        ]);
        Ok(self
            .run_cleanup(&list)?
            .stdout
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }
}

impl Images for DockerCli {
    fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        let inv = self
            .invocation()
            .args(["image", "inspect", "--format", "{{.Id}}", "--", reference]);
        let done = self.run_quietly(&inv)?;
        if done.success() {
            return Ok(Some(done.stdout.trim().to_string()));
        }
        if mentions_absence(&done.tail_text()) {
            Ok(None)
        } else {
            Err(EngineError::Command {
                command: inv.summary(),
                detail: failure_detail(&done),
            })
        }
    }

    fn image_tags_and_label(
        &self,
        reference: &str,
        label: &str,
    ) -> Result<(usize, Option<String>), EngineError> {
        let format = format!("{{{{len .RepoTags}}}}|{{{{index .Config.Labels {label:?}}}}}");
        let inv = self
            .invocation()
            .args(["image", "inspect", "--format", &format, "--", reference]);
        let done = self.run_checked(&inv)?;
        let (tags, value) = done.stdout.trim().split_once('|').unwrap_or(("0", ""));
        let value = Some(value.to_string()).filter(|v| !v.is_empty() && v != "<no value>");
        Ok((tags.parse().unwrap_or(0), value))
    }

    fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        let inv = self.invocation().args(["image", "rm", "--", reference]);
        self.run_cleanup(&inv).map(|_| ())
    }

    fn local_images(&self, label: Option<&str>) -> Result<Vec<String>, EngineError> {
        let mut inv =
            self.invocation()
                .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
        if let Some(label) = label {
            inv = inv.args(["--filter", &format!("label={label}")]);
        }
        Ok(self
            .run_checked(&inv)?
            .stdout
            .lines()
            .map(str::trim)
            .filter(|r| !r.is_empty() && !r.contains("<none>"))
            .map(str::to_string)
            .collect())
    }

    fn pull(&self, reference: &str) -> Result<(), EngineError> {
        let inv = self.invocation().args(["pull", "--quiet", "--", reference]);
        self.run_checked(&inv).map(|_| ())
    }

    fn dangling_images(&self, label: &str, value: &str) -> Result<Vec<String>, EngineError> {
        self.dangling_ids(&format!("{label}={value}"))
    }

    fn dangling_label_values(&self, label: &str) -> Result<Vec<String>, EngineError> {
        let ids = self.dangling_ids(label)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let format = format!("{{{{index .Config.Labels {label:?}}}}}");
        let inspect = self
            .invocation()
            .args(["image", "inspect", "--format", &format, "--"])
            .args(&ids);
        let mut values: Vec<String> = self
            .run_checked(&inspect)?
            .stdout
            .lines()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn prune_dangling(&self, label: &str, value: &str) -> Result<(), EngineError> {
        // One by one, not `docker image prune`: the engine runs one prune
        // at a time and refuses a second ("a prune operation is already
        // running"), and runs at once must not fail each other's cleanup.
        // Listed in cleanup (not cut short by Ctrl-C); newest first, so a
        // legacy build's last step goes before the steps under it.
        let ids = self.dangling_ids(&format!("{label}={value}"))?;
        for id in &ids {
            let inv = self.invocation().args(["image", "rm", "--", id]);
            match self.run_cleanup(&inv) {
                Ok(_) => {}
                // Gone already (another run's cleanup, or with a child).
                Err(EngineError::Command { detail, .. })
                    if detail.contains("No such image") || detail.contains("image not known") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Containers for DockerCli {
    fn run(&self, request: &RunRequest) -> Result<Finished, EngineError> {
        let inv = self.run_invocation(request);
        self.run_checked(&inv)
    }

    fn create(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let mut inv = self
            .invocation()
            .args(["create", "--network", "none", "--name", &spec.name]);
        for (k, v) in &spec.labels {
            inv = inv.args(["--label", &format!("{k}={v}")]);
        }
        for cap in &spec.cap_add {
            inv = inv.args(["--cap-add", cap]);
        }
        if spec.restart_always {
            inv = inv.arg("--restart=always");
        }
        let inv = match &spec.script {
            Some((script, args)) => inv
                .args([
                    "--entrypoint",
                    "/bin/sh",
                    "--",
                    &spec.image,
                    "-c",
                    script,
                    "sh",
                ])
                .args(args),
            // The command is never run; images FROM scratch have none, and
            // `create` needs one.
            None => inv.args(["--entrypoint", "/dmb-never-run", "--", &spec.image]),
        };
        self.run_checked(&inv).map(|_| ())
    }

    fn file_size(&self, container: &str, path: &str) -> Result<Option<u64>, EngineError> {
        let source = format!("{container}:{path}");
        let inv = self.invocation().args(["cp", "--", &source, "-"]);
        self.trace(&inv);
        let (stream, stdout) = Streaming::spawn(&inv).map_err(|e| run_error(&inv, e))?;
        // The first tar header says what the path is; the rest of a large
        // file is not worth reading.
        let mut archive = tar::Archive::new(stdout);
        let first = archive
            .entries()
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(|entry| entry.ok())
            .map(|entry| {
                (
                    entry.header().entry_type(),
                    entry.header().size().unwrap_or(0),
                )
            });
        drop(archive);
        let (status, stderr) = stream
            .finish(first.is_some())
            .map_err(|e| run_error(&inv, e))?;
        match first {
            Some((kind, size)) if kind.is_file() => Ok(Some(size)),
            Some(_) => Ok(None),
            None if !status.success() && mentions_absence(&stderr) => Ok(None),
            None => Err(EngineError::Command {
                command: inv.summary(),
                detail: stderr.trim().to_string(),
            }),
        }
    }

    fn read_file(
        &self,
        container: &str,
        path: &str,
        read: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<bool, EngineError> {
        let source = format!("{container}:{path}");
        let inv = self.invocation().args(["cp", "--", &source, "-"]);
        self.trace(&inv);
        let (stream, stdout) = Streaming::spawn(&inv).map_err(|e| run_error(&inv, e))?;
        let mut archive = tar::Archive::new(stdout);
        let outcome = match archive.entries().ok().and_then(|mut e| e.next()) {
            Some(Ok(mut entry)) if entry.header().entry_type().is_file() => Some(read(&mut entry)),
            _ => None,
        };
        drop(archive);
        let (status, stderr) = stream.finish(false).map_err(|e| run_error(&inv, e))?;
        match outcome {
            Some(Ok(())) => Ok(true),
            Some(Err(detail)) => Err(EngineError::Stream {
                command: inv.summary(),
                detail,
            }),
            None if status.success() || mentions_absence(&stderr) => Ok(false),
            None => Err(EngineError::Command {
                command: inv.summary(),
                detail: stderr.trim().to_string(),
            }),
        }
    }

    fn copy_files_out(
        &self,
        container: &str,
        dir: &str,
        dest: &Path,
    ) -> Result<Vec<String>, EngineError> {
        self.read_dir_stream(container, dir, |stream| extract_regular_files(stream, dest))
    }

    fn remove_container(&self, container: &str) -> Result<(), EngineError> {
        let inv = self
            .invocation()
            .args(["rm", "--force", "--volumes", "--", container]);
        self.run_cleanup(&inv).map(|_| ())
    }

    fn remove_labelled(&self, label: &str, value: &str) -> Result<(), EngineError> {
        let filter = format!("label={label}={value}");
        let list = self
            .invocation()
            .args(["ps", "--all", "--quiet", "--filter", &filter]);
        self.trace(&list);
        let done = process::run(&list, false, &mut |_| {}).map_err(|e| run_error(&list, e))?;
        let ids: Vec<&str> = done.stdout.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rm = self
            .invocation()
            .args(["rm", "--force", "--volumes"])
            .args(ids);
        self.run_cleanup(&rm).map(|_| ())
    }
}

impl Builds for DockerCli {
    fn builder(&self) -> Builder {
        self.builder
    }

    fn build(
        &self,
        request: &BuildRequest,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Finished, EngineError> {
        let inv = self.build_invocation(request);
        self.trace(&inv);
        process::run(&inv, true, on_line).map_err(|e| run_error(&inv, e))
    }

    fn build_in_container(
        &self,
        build: &ContainerBuild,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Finished, EngineError> {
        let mut create =
            self.invocation()
                .args(["create", "--network", "none", "--name", &build.name]);
        for (k, v) in &build.labels {
            create = create.args(["--label", &format!("{k}={v}")]);
        }
        for (k, v) in &build.env {
            create = create.args(["--env", &format!("{k}={v}")]);
        }
        let mut mount = format!("type=volume,src={},dst={}", build.volume, build.volume_dir);
        for (k, v) in &build.volume_labels {
            mount.push_str(&format!(",volume-label={k}={v}"));
        }
        let create = create.args(["--mount", &mount]).args([
            "--entrypoint",
            "/bin/sh",
            "--",
            &build.image,
            &build.script,
        ]);
        self.run_checked(&create)?;
        let finished = (|| {
            self.copy_into(&build.name, &build.input, &build.input_dir)?;
            let start = self
                .invocation()
                .args(["start", "--attach", "--", &build.name]);
            self.trace(&start);
            let finished = process::run(&start, true, on_line).map_err(|e| run_error(&start, e))?;
            if finished.success() {
                self.copy_subdirs_out(
                    &build.name,
                    &build.output_dir,
                    &build.output_subdirs,
                    &build.output,
                )?;
            }
            Ok(finished)
        })();
        let removed = self.remove_container(&build.name);
        let finished = finished?;
        removed?;
        Ok(finished)
    }

    fn import(
        &self,
        layer: &Path,
        reference: &str,
        changes: &[String],
    ) -> Result<String, EngineError> {
        let mut inv = self.invocation().arg("import");
        for change in changes {
            inv = inv.args(["--change", change]);
        }
        let inv = inv.arg("--").arg(layer).arg(reference);
        Ok(self.run_checked(&inv)?.stdout.trim().to_string())
    }
}

impl Lifecycle for DockerCli {
    fn run_reading(
        &self,
        request: &RunRequest,
        read: &mut StreamReader,
    ) -> Result<(), EngineError> {
        let inv = self.run_invocation(request);
        self.trace(&inv);
        let (stream, mut stdout) = Streaming::spawn(&inv).map_err(|e| run_error(&inv, e))?;
        let outcome = read(&mut stdout);
        let abandon = matches!(outcome, Ok(true));
        if !abandon {
            // Whatever the reader left unread must not block the container.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        }
        drop(stdout);
        let (status, stderr) = stream.finish(abandon).map_err(|e| run_error(&inv, e))?;
        if !status.success() && !abandon {
            return Err(EngineError::Command {
                command: inv.summary(),
                detail: last_meaningful_line(
                    &stderr.lines().map(str::to_string).collect::<Vec<_>>(),
                ),
            });
        }
        outcome.map(|_| ()).map_err(|detail| EngineError::Stream {
            command: inv.summary(),
            detail,
        })
    }

    fn copy_into(&self, container: &str, source: &Path, dir: &str) -> Result<(), EngineError> {
        let mut from = source.as_os_str().to_owned();
        from.push("/.");
        let inv = self
            .invocation()
            .args(["cp", "--"])
            .arg(from)
            .arg(format!("{container}:{dir}"));
        self.run_checked(&inv).map(|_| ())
    }

    fn start_attached(&self, container: &str) -> Result<Finished, EngineError> {
        let inv = self
            .invocation()
            .args(["start", "--attach", "--", container]);
        self.run_quietly(&inv)
    }

    fn start(&self, container: &str) -> Result<(), EngineError> {
        let inv = self.invocation().args(["start", "--", container]);
        self.run_checked(&inv).map(|_| ())
    }

    fn containers_with_label(&self, label: &str) -> Result<Vec<ContainerInfo>, EngineError> {
        let filter = format!("label={label}");
        let list =
            self.invocation()
                .args(["ps", "--all", "--no-trunc", "--quiet", "--filter", &filter]);
        let ids: Vec<String> = self
            .run_checked(&list)?
            .stdout
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let inspect = self
            .invocation()
            .args([
                "container",
                "inspect",
                "--format",
                "{{json .Id}}\t{{json .Name}}\t{{json .State.Status}}\t{{json .HostConfig.RestartPolicy.Name}}\t{{json .Config.Labels}}",
                "--",
            ])
            .args(&ids);
        let done = self.run_checked(&inspect)?;
        done.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                parse_container_line(line).map_err(|detail| EngineError::Stream {
                    command: inspect.summary(),
                    detail,
                })
            })
            .collect()
    }
}

/// One line of `docker container inspect` in the format above: five JSON
/// values separated by tabs (JSON strings never hold a raw tab).
fn parse_container_line(line: &str) -> Result<ContainerInfo, String> {
    let parts: Vec<&str> = line.split('\t').collect();
    let [id, name, status, restart, labels] = parts.as_slice() else {
        return Err(format!("unexpected inspect line: {line}"));
    };
    let text = |v: &str| serde_json::from_str::<String>(v).map_err(|e| e.to_string());
    let labels: Option<std::collections::BTreeMap<String, String>> =
        serde_json::from_str(labels).map_err(|e| e.to_string())?;
    Ok(ContainerInfo {
        id: text(id)?,
        name: text(name)?.trim_start_matches('/').to_string(),
        status: text(status)?,
        restart_policy: text(restart)?,
        labels: labels.unwrap_or_default(),
    })
}

/// Writes the regular files at the top of a `docker cp … -` stream (which
/// wraps them in one directory entry) into `dest`.
fn extract_regular_files(stream: impl Read, dest: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    crate::tarball::each_regular_file(stream, |path, contents| {
        // Only the directory's own files: nothing may land outside `dest`.
        if path.components().count() > 2 {
            return Ok(false);
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Ok(false);
        };
        let mut file = std::fs::File::create(dest.join(name)).map_err(|e| e.to_string())?;
        std::io::copy(contents, &mut file).map_err(|e| e.to_string())?;
        names.push(name.to_string());
        Ok(false)
    })?;
    names.sort();
    Ok(names)
}

/// The regular files of a `docker cp DIR/. -` stream that are directly in
/// one of `subdirs`, written to `dest/<subdir>/`; nothing else is written,
/// and nothing outside `dest`.
fn extract_subdirs(stream: impl Read, subdirs: &[String], dest: &Path) -> Result<(), String> {
    for d in subdirs {
        std::fs::create_dir_all(dest.join(d)).map_err(|e| e.to_string())?;
    }
    crate::tarball::each_regular_file(stream, |path, contents| {
        let parts: Vec<&str> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(p) => p.to_str(),
                _ => None,
            })
            .collect();
        let clean = path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if let [subdir, name] = parts[..] {
            if clean && subdirs.iter().any(|d| d == subdir) {
                let mut file = std::fs::File::create(dest.join(subdir).join(name))
                    .map_err(|e| e.to_string())?;
                std::io::copy(contents, &mut file).map_err(|e| e.to_string())?;
            }
        }
        Ok(false)
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_stream_writes_nothing_outside_the_destination() {
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        let bytes = crate::tarball::hostile::tar(
            "ko/sparse.ko",
            &[
                ("ko/a.ko", b"A"),
                ("ko/../ko/b.ko", b"B"),
                ("../ko/c.ko", b"C"),
            ],
        );
        extract_subdirs(&bytes[..], &["ko".to_string()], &dest).unwrap();
        let names = extract_regular_files(&bytes[..], &dest).unwrap();
        // Only plain names, each in `dest`.
        assert!(names.iter().all(|n| !n.contains('/')), "{names:?}");
        let mut written: Vec<String> = Vec::new();
        for entry in walk(outer.path()) {
            written.push(
                entry
                    .strip_prefix(outer.path())
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
        written.sort();
        assert!(
            written.iter().all(|w| w.starts_with("dest/")),
            "{written:?}"
        );
        assert!(!outer.path().join("escape").exists());
        assert_eq!(std::fs::read(dest.join("ko/a.ko")).unwrap(), b"A");
        assert_eq!(std::fs::read_dir(dest.join("ko")).unwrap().count(), 1);
        assert!(!dest.join("ko/sparse.ko").exists());
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn subdirectory_extraction_keeps_to_the_named_ones() {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("./ko/a.ko", "a"),
            ("./depmod/modules.dep", "d"),
            ("./other/x", "x"),
            ("./ko/deeper/b.ko", "b"),
            ("./top", "t"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let dest = tempfile::tempdir().unwrap();
        extract_subdirs(
            bytes.as_slice(),
            &["ko".into(), "depmod".into()],
            dest.path(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("ko/a.ko")).unwrap(),
            "a"
        );
        assert!(dest.path().join("depmod/modules.dep").is_file());
        assert!(!dest.path().join("other").exists());
        assert!(!dest.path().join("ko/deeper").exists());
        assert!(!dest.path().join("top").exists());
    }

    fn cli(builder: Builder, named: Option<&str>) -> DockerCli {
        DockerCli {
            program: "docker".into(),
            builder,
            buildx_builder: named.map(str::to_string),
            verbose: false,
            client_version: "28.2.2".into(),
            server_version: "28.2.2".into(),
            api_version: "1.50".into(),
            server_platform: "linux/amd64".into(),
        }
    }

    #[test]
    fn a_named_builder_is_passed_to_buildx() {
        let request = BuildRequest {
            context: "/ctx".into(),
            dockerfile: "/ctx/Dockerfile".into(),
            output: BuildOutput::Directory("/out".into()),
            network: false,
        };
        let named = cli(Builder::Buildx, Some("kube")).build_invocation(&request);
        assert_eq!(
            named.display(),
            "docker buildx build --progress=plain --builder kube --file /ctx/Dockerfile --network none --output type=local,dest=/out /ctx"
        );
        let default = cli(Builder::Buildx, None).build_invocation(&request);
        assert!(!default.display().contains("--builder"));
        let image = BuildRequest {
            output: BuildOutput::Image("m:1".into()),
            ..request
        };
        let named = cli(Builder::Buildx, Some("kube")).build_invocation(&image);
        assert!(
            named
                .display()
                .contains("--builder kube --file /ctx/Dockerfile --network none --load --tag m:1"),
            "{}",
            named.display()
        );
    }

    #[test]
    fn inspect_lines_parse() {
        let line = "\"abc\"\t\"/dmb-loader-x\"\t\"running\"\t\"always\"\t{\"dmb.loader\":\"{\\\"a\\\":1}\"}";
        let c = parse_container_line(line).unwrap();
        assert_eq!(c.name, "dmb-loader-x");
        assert_eq!(c.restart_policy, "always");
        assert_eq!(c.labels["dmb.loader"], "{\"a\":1}");
        let none = "\"abc\"\t\"/n\"\t\"created\"\t\"no\"\tnull";
        assert!(parse_container_line(none).unwrap().labels.is_empty());
        assert!(parse_container_line("garbage").is_err());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(major("20.10.24+dfsg1"), Some(20));
        assert_eq!(major("28.2.2"), Some(28));
        assert_eq!(major(""), None);
    }

    #[test]
    fn the_meaningful_line_skips_docker_hints() {
        let lines = [
            "docker: unknown command: docker buildx".to_string(),
            String::new(),
            "Run 'docker --help' for more information".to_string(),
        ];
        assert_eq!(
            last_meaningful_line(&lines),
            "docker: unknown command: docker buildx"
        );
    }

    #[test]
    fn absence_is_recognised_in_both_clients_wordings() {
        assert!(mentions_absence("Error: No such image: x"));
        assert!(mentions_absence(
            "Error response from daemon: no such image: x: No such image: x:latest"
        ));
        assert!(mentions_absence(
            "Error response from daemon: Could not find the file /kernel.tar in container c"
        ));
        assert!(!mentions_absence("permission denied"));
    }

    #[test]
    fn extraction_keeps_only_top_level_regular_files() {
        let bytes =
            crate::tarball::of_files([("dmb-out/a.ko", &b"A"[..]), ("dmb-out/sub/b.ko", b"B")]);
        let dir = tempfile::tempdir().unwrap();
        let names = extract_regular_files(&bytes[..], dir.path()).unwrap();
        assert_eq!(names, ["a.ko"]);
        assert_eq!(std::fs::read(dir.path().join("a.ko")).unwrap(), b"A");
    }
}
