//! A second, empty Docker engine for the tests that need an engine with
//! nothing in it (no image to probe with) or one whose every image and
//! volume they may remove (`dmb cache prune`).
//!
//! It runs in a network namespace of its own: a dockerd started with
//! `--bridge none` in the machine's namespace deletes the machine's
//! `docker0` bridge, and with it the main engine's networking. In its own
//! namespace it has no network at all (so a pull fails at once), and its
//! data, exec root, containerd and socket are its own. It is stopped by its
//! pid, and its namespace and directories removed, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SpareEngine {
    netns: String,
    dir: tempfile::TempDir,
    exec_root: PathBuf,
    daemon: Child,
    pub host: String,
}

impl SpareEngine {
    pub fn start() -> SpareEngine {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let netns = format!("dmb-test-{id}");
        let dir = tempfile::tempdir().unwrap();
        // The exec root holds unix sockets: a short path.
        let exec_root = PathBuf::from(format!("/run/dmb-spare-{id}"));
        let socket = dir.path().join("docker.sock");
        let ok = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .expect("ip netns add (iproute2)");
        assert!(ok.success(), "ip netns add {netns} failed");
        let daemon = spawn_daemon(&netns, dir.path(), &exec_root, &socket);
        let mut engine = SpareEngine {
            netns,
            host: format!("unix://{}", socket.display()),
            dir,
            exec_root,
            daemon,
        };
        engine.wait_up();
        engine
    }

    /// Stops the daemon (by its pid, as `systemctl restart` would) and
    /// starts it again on the same data: what a restart of Docker's
    /// engine does to the runs using it.
    pub fn restart(&mut self) {
        stop(&mut self.daemon);
        let socket = self.dir.path().join("docker.sock");
        self.daemon = spawn_daemon(&self.netns, self.dir.path(), &self.exec_root, &socket);
        self.wait_up();
    }

    fn wait_up(&mut self) {
        let started = Instant::now();
        loop {
            let up = Command::new("docker")
                .args(["--host", &self.host, "info", "--format", "{{.ID}}"])
                .output()
                .unwrap();
            if up.status.success() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the spare dockerd did not answer within 60 s: {}",
                std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `docker` against this engine.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("--host")
            .arg(&self.host)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} (spare engine): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// An image of one file, made here with `docker import` (no registry),
    /// with these Dockerfile changes (`LABEL k=v`).
    pub fn import(&self, reference: &str, changes: &[&str]) {
        let tar = self.dir.path().join("layer.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        let mut h = tar::Header::new_gnu();
        let data = reference.as_bytes();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "what", data).unwrap();
        b.finish().unwrap();
        let mut args = vec!["import".to_string()];
        for c in changes {
            args.push("--change".into());
            args.push(c.to_string());
        }
        args.push(tar.display().to_string());
        args.push(reference.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.docker_ok(&args);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// dockerd in the namespace, on the spare engine's own data and sockets.
fn spawn_daemon(netns: &str, dir: &Path, exec_root: &Path, socket: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .unwrap();
    // nsenter joins the namespace only; `ip netns exec` would also
    // remount /sys, and dockerd finds no cgroups there.
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .arg("dockerd")
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(exec_root)
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args([
            "--bridge",
            "none",
            "--iptables=false",
            "--ip-masq=false",
            "--containerd-namespace",
            "dmb-spare",
            "--containerd-plugins-namespace",
            "dmb-spare-plugins",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("dockerd")
}

/// SIGTERM to the daemon (it stops its containerd and containers), then
/// SIGKILL after 30 s.
fn stop(daemon: &mut Child) {
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = daemon.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

impl Drop for SpareEngine {
    fn drop(&mut self) {
        stop(&mut self.daemon);
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .status();
        // Overlay mounts of the data root are gone with the daemon; what
        // is left is files.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("data"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.exec_root);
    }
}
