//! Which kind of VM a kernel belongs to, from its release and the VM's files.

use serde::Serialize;

use crate::kernel::KernelRelease;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    /// Docker Desktop's VM (LinuxKit): `-linuxkit`, or `/etc/linuxkit.yml`.
    DockerDesktop,
    /// WSL2: `-microsoft-standard-WSL2`.
    Wsl2,
    /// OrbStack: `-orbstack-`.
    OrbStack,
    /// Rancher Desktop's Alpine VM: `-N-virt`.
    RancherDesktop,
    /// Colima's Ubuntu VM: `-generic`.
    Colima,
    /// podman machine's Fedora CoreOS VM: `.fcNN.`.
    PodmanMachine,
    /// A Debian kernel: `Debian` in /proc/version, `-amd64`/`-arm64`.
    Debian,
    Unknown,
}

impl Platform {
    pub fn describe(self) -> &'static str {
        match self {
            Platform::DockerDesktop => "Docker Desktop (LinuxKit VM)",
            Platform::Wsl2 => "WSL2",
            Platform::OrbStack => "OrbStack",
            Platform::RancherDesktop => "Rancher Desktop (Alpine VM)",
            Platform::Colima => "Colima (Ubuntu VM)",
            Platform::PodmanMachine => "podman machine (Fedora VM)",
            Platform::Debian => "Debian",
            Platform::Unknown => "unknown",
        }
    }
}

/// Classifies; `has_linuxkit_yml` is whether the VM has `/etc/linuxkit.yml`.
pub fn classify(release: &KernelRelease, proc_version: &str, has_linuxkit_yml: bool) -> Platform {
    // The suffix after the version says who built the kernel.
    let r = release.local().to_ascii_lowercase();
    let dashed = |suffix: &str| {
        r.rsplit_once('-')
            .is_some_and(|(_, tail)| tail == suffix && release.version().is_some())
    };
    if r.contains("-linuxkit") || has_linuxkit_yml {
        Platform::DockerDesktop
    } else if r.contains("-microsoft-standard-wsl2") {
        Platform::Wsl2
    } else if r.contains("-orbstack-") {
        Platform::OrbStack
    } else if is_alpine_virt(&r) {
        Platform::RancherDesktop
    } else if dashed("generic") {
        Platform::Colima
    } else if is_fedora(&r) {
        Platform::PodmanMachine
    } else if proc_version.contains("Debian") || dashed("amd64") || dashed("arm64") {
        Platform::Debian
    } else {
        Platform::Unknown
    }
}

/// `6.6.119-0-virt`.
fn is_alpine_virt(r: &str) -> bool {
    let mut parts = r.rsplitn(3, '-');
    matches!(
        (parts.next(), parts.next()),
        (Some("virt"), Some(n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
    )
}

/// `6.12.7-200.fc41.aarch64`.
fn is_fedora(r: &str) -> bool {
    r.split('.').any(|p| {
        p.strip_prefix("fc")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_release() {
        for (release, expected) in [
            ("4.19.76-linuxkit", Platform::DockerDesktop),
            ("5.15.49-linuxkit-pr", Platform::DockerDesktop),
            ("7.0.12-linuxkit", Platform::DockerDesktop),
            ("6.6.87.2-microsoft-standard-WSL2", Platform::Wsl2),
            ("6.13.7-orbstack-00283-g9d1400e7e9c6", Platform::OrbStack),
            ("6.6.119-0-virt", Platform::RancherDesktop),
            ("6.8.0-31-generic", Platform::Colima),
            ("6.12.7-200.fc41.aarch64", Platform::PodmanMachine),
            ("6.1.0-50-amd64", Platform::Debian),
            ("6.18.44-fc-v669", Platform::Unknown),
        ] {
            let parsed = KernelRelease::parse(release).unwrap();
            assert_eq!(classify(&parsed, "", false), expected, "{release}");
        }
    }

    #[test]
    fn the_vm_files_and_proc_version_count() {
        let release = |r: &str| KernelRelease::parse(r).unwrap();
        assert_eq!(
            classify(&release("6.1.0-56-amd64"), "", true),
            Platform::DockerDesktop
        );
        assert_eq!(
            classify(
                &release("6.1.0-56-cloud"),
                "Linux version … Debian 6.1.192-2",
                false
            ),
            Platform::Debian
        );
    }
}
