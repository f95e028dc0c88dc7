//! What building in a kernel's own source tree needs of a builder beyond
//! make and a compiler: kconfig's flex and bison, kbuild's bc and perl,
//! objtool's libelf, sign-file's OpenSSL headers, and, for a kernel with
//! BTF, pahole (and python3 for libbpf's generated headers). Which of them
//! a kernel needs depends on its configuration.

use super::{PackageManager, Toolchain};
use crate::kernel::KernelConfig;

/// One thing a kernel-tree build needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// As the toolchain probe reports it: a tool, or `header:<name>`.
    pub probe: &'static str,
    /// For people: `pahole (dwarves)`.
    pub what: &'static str,
    /// Why: `CONFIG_DEBUG_INFO_BTF=y`, or `every kernel build`.
    pub why: String,
}

/// What applying patches to a kernel source needs.
pub fn patch_need() -> Need {
    Need {
        probe: "patch",
        what: "patch",
        why: "the patches given".into(),
    }
}

/// What a build in the tree of a kernel with `config` needs.
pub fn needs(config: &KernelConfig) -> Vec<Need> {
    let always = |probe, what| Need {
        probe,
        what,
        why: "every kernel-tree build".into(),
    };
    let mut out = vec![
        always("make", "make"),
        always("gcc", "gcc"),
        always("flex", "flex (kconfig)"),
        always("bison", "bison (kconfig)"),
        always("bc", "bc"),
        always("perl", "perl"),
        always("xz", "xz (to unpack the source)"),
        always("tar", "tar"),
    ];
    let when = |option: &str, probe, what| {
        config.is_set(option).then(|| Need {
            probe,
            what,
            why: format!("CONFIG_{option}=y"),
        })
    };
    out.extend(
        [
            when("OBJTOOL", "header:libelf", "libelf headers (objtool)"),
            when(
                "STACK_VALIDATION",
                "header:libelf",
                "libelf headers (objtool)",
            ),
            when(
                "MODULE_SIG",
                "header:openssl",
                "OpenSSL headers (sign-file)",
            ),
            when(
                "SYSTEM_TRUSTED_KEYRING",
                "header:openssl",
                "OpenSSL headers (extract-cert)",
            ),
            when("DEBUG_INFO_BTF", "pahole", "pahole (dwarves)"),
            when("DEBUG_INFO_BTF", "python3", "python3 (libbpf's headers)"),
        ]
        .into_iter()
        .flatten(),
    );
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|n| seen.insert(n.probe));
    out
}

impl Toolchain {
    /// What of `needs` the builder lacks.
    pub fn lacks<'a>(&self, needs: &'a [Need]) -> Vec<&'a Need> {
        needs
            .iter()
            .filter(|n| !self.present.contains(n.probe))
            .collect()
    }
}

impl PackageManager {
    /// The shell command that installs what a kernel-tree build lacks.
    pub fn install_kernel_tools(self, lacking: &[&Need]) -> String {
        let mut packages: Vec<&str> = lacking
            .iter()
            .filter_map(|n| package(self, n.probe))
            .collect();
        packages.sort();
        packages.dedup();
        let list = packages.join(" ");
        match self {
            PackageManager::Apk => format!("apk add --no-cache {list}"),
            PackageManager::Apt => format!(
                "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {list} && rm -rf /var/lib/apt/lists/*"
            ),
            PackageManager::Dnf => format!("dnf install -y {list} && dnf clean all"),
            PackageManager::Microdnf => format!("microdnf install -y {list} && microdnf clean all"),
            PackageManager::Yum => format!("yum install -y {list} && yum clean all"),
        }
    }
}

/// The package that brings `probe` with `pm`.
fn package(pm: PackageManager, probe: &str) -> Option<&'static str> {
    use PackageManager::*;
    Some(match (probe, pm) {
        ("make", _) => "make",
        ("gcc", Apk) => "build-base",
        ("gcc", _) => "gcc",
        ("flex", _) => "flex",
        ("bison", _) => "bison",
        ("bc", _) => "bc",
        ("perl", _) => "perl",
        ("tar", _) => "tar",
        ("xz", Apt) => "xz-utils",
        ("xz", _) => "xz",
        ("header:libelf", Apk) => "elfutils-dev",
        ("header:libelf", Apt) => "libelf-dev",
        ("header:libelf", _) => "elfutils-libelf-devel",
        ("header:openssl", Apk) => "openssl-dev",
        ("header:openssl", Apt) => "libssl-dev",
        ("header:openssl", _) => "openssl-devel",
        ("pahole", Apk) => "pahole",
        ("pahole", _) => "dwarves",
        ("python3", _) => "python3",
        ("patch", _) => "patch",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_btf_kernel_needs_and_how_apt_brings_it() {
        let config =
            KernelConfig::parse("CONFIG_DEBUG_INFO_BTF=y\nCONFIG_OBJTOOL=y\nCONFIG_MODULE_SIG=y\n");
        let needs = needs(&config);
        let t = Toolchain::from_probe(
            "@@dmb:tool make\n@@dmb:tool gcc\n@@dmb:tool flex\n@@dmb:tool bison\n@@dmb:tool bc\n@@dmb:tool perl\n@@dmb:tool xz\n@@dmb:tool tar\n@@dmb:header libelf\n@@dmb:pm apt-get\n",
        );
        let lacking = t.lacks(&needs);
        let names: Vec<&str> = lacking.iter().map(|n| n.probe).collect();
        assert_eq!(names, ["header:openssl", "pahole", "python3"]);
        assert_eq!(lacking[1].why, "CONFIG_DEBUG_INFO_BTF=y");
        assert!(PackageManager::Apt
            .install_kernel_tools(&lacking)
            .contains("install -y --no-install-recommends dwarves libssl-dev python3"));
        assert_eq!(
            PackageManager::Apk.install_kernel_tools(&lacking),
            "apk add --no-cache openssl-dev pahole python3"
        );
        // A kernel without BTF needs no pahole.
        let plain = super::needs(&KernelConfig::parse("CONFIG_X86_64=y\n"));
        assert!(!plain.iter().any(|n| n.probe == "pahole"));
    }

    #[test]
    fn the_probe_reports_pahole_s_version() {
        let t = Toolchain::from_probe("@@dmb:tool pahole\n@@dmb:version pahole v1.24\n");
        assert_eq!(t.pahole_version.as_deref(), Some("v1.24"));
    }
}
