//! Where a kernel's headers or source come from, by platform: the README's
//! table, as data. Where the source is a URL whose publisher lists its
//! SHA-256 (kernel.org), synthesis fetches it when no `--source` is given;
//! otherwise it names what to fetch, and `--source` takes it.

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

fn row_for(release: &KernelRelease, proc_version: &str) -> Option<&'static SourceRow> {
    let platform = classify(release, proc_version, false);
    TABLE.iter().find(|r| r.platform == platform)
}

/// The source synthesis fetches by itself for `release`: a URL whose
/// SHA-256 its publisher lists, so the download can be verified.
pub fn default_source(release: &KernelRelease, proc_version: &str) -> Option<String> {
    let row = row_for(release, proc_version)?;
    let url = fill(row.source, release);
    (crate::download::is_url(&url) && crate::download::published_checksums(&url).is_some())
        .then_some(url)
}

/// A source that is a path must be there: said before minutes go into a
/// snapshot or a plan. URLs are checked when they are fetched.
pub fn present(source: &str) -> Result<(), super::SynthError> {
    if crate::download::is_url(source) {
        return Ok(());
    }
    std::fs::metadata(source)
        .map(|_| ())
        .map_err(|e| super::SynthError::Source {
            given: source.to_string(),
            reason: e.to_string(),
        })
}

/// The source given, else the platform's own (`None` with it: none given).
pub fn given_or_default(
    given: Option<&str>,
    release: &KernelRelease,
    proc_version: &str,
) -> Result<(String, bool), super::SynthError> {
    if let Some(g) = given {
        return Ok((g.to_string(), false));
    }
    default_source(release, proc_version)
        .map(|url| (url, true))
        .ok_or_else(|| super::SynthError::NoSource {
            release: release.to_string(),
            suggestion: suggestion(release, proc_version),
        })
}

/// What to fetch for `release`, for people: the source and its patches.
pub fn suggestion(release: &KernelRelease, proc_version: &str) -> String {
    let Some(row) = row_for(release, proc_version) else {
        return "the source the kernel was built from (its vendor's source package or git tag)"
            .into();
    };
    match row.patches {
        Some(p) => format!(
            "{} and the patches of {}",
            fill(row.source, release),
            fill(p, release)
        ),
        None => fill(row.source, release),
    }
}

/// A row's template for `release`.
fn fill(t: &str, release: &KernelRelease) -> String {
    {
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
        // Fetched by itself only where the publisher lists the hash.
        assert_eq!(
            default_source(&r("6.12.72-linuxkit"), "").as_deref(),
            Some("https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.72.tar.xz")
        );
        assert_eq!(
            default_source(&r("6.6.87.2-microsoft-standard-WSL2"), ""),
            None
        );
        assert_eq!(default_source(&r("6.1.0-57-amd64"), "Debian"), None);
        // Given wins; else the default; else an error that names what to fetch.
        let linuxkit = given_or_default(None, &r("6.12.72-linuxkit"), "").unwrap();
        assert_eq!(
            linuxkit,
            (
                "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.72.tar.xz".to_string(),
                true
            )
        );
        assert_eq!(
            given_or_default(Some("/src.tar"), &r("6.12.72-linuxkit"), "").unwrap(),
            ("/src.tar".to_string(), false)
        );
        let none = given_or_default(None, &r("6.1.0-57-amd64"), "Debian").unwrap_err();
        assert!(
            none.hint().unwrap().contains("linux-source-6.1"),
            "{:?}",
            none.hint()
        );
    }
}
