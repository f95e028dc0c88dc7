//! Where a kernel's headers or source come from, by platform: the README's
//! table, as data. dmb does not download anything itself yet; it names
//! what to fetch, and `--source` takes it.

use crate::detect::platform::{classify, Platform};
use crate::kernel::KernelRelease;

/// One row: the platform, where its headers come from, and the source to
/// synthesize from (`{version}`, `{series}`, `{release}`, `{major}`, `{upstream}` filled in).
pub struct SourceRow {
    pub platform: Platform,
    pub headers: &'static str,
    pub source: &'static str,
    pub patches: Option<&'static str>,
}

pub const TABLE: &[SourceRow] = &[
    SourceRow {
        platform: Platform::DockerDesktop,
        headers: "a published linuxkit/kernel or docker/for-desktop-kernel image up to 5.15.49; none since: synthesis",
        source: "https://cdn.kernel.org/pub/linux/kernel/v{major}.x/linux-{version}.tar.xz",
        patches: Some("https://github.com/linuxkit/linuxkit/tree/master/kernel/patches-{series}.x"),
    },
    SourceRow {
        platform: Platform::Wsl2,
        headers: "none published: synthesis (its modules are on modules.vhd)",
        source: "https://github.com/microsoft/WSL2-Linux-Kernel/archive/refs/tags/linux-msft-wsl-{upstream}.tar.gz",
        patches: None,
    },
    SourceRow {
        platform: Platform::Debian,
        headers: "linux-headers-{release} (Debian's archive)",
        source: "linux-source-{series} (Debian's archive: apt-get download linux-source-{series}; the tarball is in /usr/src)",
        patches: None,
    },
    SourceRow {
        platform: Platform::Colima,
        headers: "linux-headers-{release} (Ubuntu's archive)",
        source: "linux-source-{version} (Ubuntu's archive)",
        patches: None,
    },
    SourceRow {
        platform: Platform::PodmanMachine,
        headers: "kernel-devel-{release} (Fedora's archive)",
        source: "the kernel source RPM of {release} (Fedora's archive)",
        patches: None,
    },
    SourceRow {
        platform: Platform::RancherDesktop,
        headers: "linux-virt-dev (Alpine's archive)",
        source: "https://cdn.kernel.org/pub/linux/kernel/v{major}.x/linux-{version}.tar.xz with Alpine's aports patches",
        patches: None,
    },
];

/// What to fetch for `release`, for people: the source and its patches.
pub fn suggestion(release: &KernelRelease, proc_version: &str) -> String {
    let platform = classify(release, proc_version, false);
    let Some(row) = TABLE.iter().find(|r| r.platform == platform) else {
        return "the source the kernel was built from (its vendor's source package or git tag)"
            .into();
    };
    let fill = |t: &str| {
        let (major, minor, patch) = release.version().unwrap_or((0, 0, 0));
        let version = if patch == 0 {
            format!("{major}.{minor}")
        } else {
            format!("{major}.{minor}.{patch}")
        };
        t.replace("{version}", &version)
            .replace("{series}", &format!("{major}.{minor}"))
            .replace("{major}", &major.to_string())
            .replace("{release}", release.as_str())
            .replace(
                "{upstream}",
                release.as_str().split('-').next().unwrap_or(""),
            )
    };
    match row.patches {
        Some(p) => format!("{} and the patches of {}", fill(row.source), fill(p)),
        None => fill(row.source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_to_fetch_follows_the_platform() {
        let r = |s: &str| KernelRelease::parse(s).unwrap();
        assert_eq!(
            suggestion(&r("6.12.72-linuxkit"), ""),
            "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.72.tar.xz and the patches of https://github.com/linuxkit/linuxkit/tree/master/kernel/patches-6.12.x"
        );
        assert!(suggestion(&r("6.6.87.2-microsoft-standard-WSL2"), "")
            .contains("linux-msft-wsl-6.6.87.2.tar.gz"));
        assert!(suggestion(&r("6.1.0-57-amd64"), "Debian").contains("linux-source-6.1"));
    }
}
