//! The compiler that built a kernel ([`compiler`]), which builder image
//! carries it ([`pick`]), what a builder image has, and how to complete it
//! when make or a C compiler is missing.

pub mod compiler;
pub mod kernel_tools;
pub mod pick;

use std::collections::BTreeSet;

use crate::scripts;

/// A package manager dmb knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apk,
    Apt,
    Dnf,
    Microdnf,
    Yum,
}

impl PackageManager {
    fn from_probe(name: &str) -> Option<Self> {
        Some(match name {
            "apk" => PackageManager::Apk,
            "apt-get" => PackageManager::Apt,
            "dnf" => PackageManager::Dnf,
            "microdnf" => PackageManager::Microdnf,
            "yum" => PackageManager::Yum,
            _ => return None,
        })
    }

    /// The shell command that installs what an out-of-tree module build
    /// needs (kbuild's host tools are prebuilt in the header tree, but its
    /// scripts still want perl, bc and a shell, and objtool wants libelf).
    pub fn install_command(self) -> &'static str {
        match self {
            PackageManager::Apk => {
                "apk add --no-cache build-base bc bison flex perl bash elfutils-dev openssl-dev findutils tar xz kmod"
            }
            PackageManager::Apt => {
                "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make gcc libc6-dev bc bison flex perl libelf-dev libssl-dev kmod xz-utils && rm -rf /var/lib/apt/lists/*"
            }
            PackageManager::Dnf => {
                "dnf install -y make gcc glibc-devel bc bison flex perl elfutils-libelf-devel openssl-devel kmod xz tar findutils && dnf clean all"
            }
            PackageManager::Microdnf => {
                "microdnf install -y make gcc glibc-devel bc bison flex perl elfutils-libelf-devel openssl-devel kmod xz tar findutils && microdnf clean all"
            }
            PackageManager::Yum => {
                "yum install -y make gcc glibc-devel bc bison flex perl elfutils-libelf-devel openssl-devel kmod xz tar findutils && yum clean all"
            }
        }
    }
}

/// What the probe found in a builder image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Toolchain {
    pub make: bool,
    pub compiler: bool,
    pub tar: bool,
    /// Every tool (`flex`) and development header (`header:libelf`) found.
    pub present: BTreeSet<String>,
    /// What `pahole --version` says (`v1.24`).
    pub pahole_version: Option<String>,
    pub package_manager: Option<PackageManager>,
}

impl Toolchain {
    /// Reads the output of [`scripts::TOOLCHAIN`].
    pub fn from_probe(output: &str) -> Self {
        let mut t = Toolchain::default();
        for r in scripts::records(output) {
            match (r.verb, r.args) {
                ("tool", name) => {
                    match name {
                        "make" => t.make = true,
                        "gcc" | "cc" | "clang" => t.compiler = true,
                        "tar" => t.tar = true,
                        _ => {}
                    }
                    t.present.insert(name.to_string());
                }
                ("header", name) => {
                    t.present.insert(format!("header:{name}"));
                }
                ("version", _) if r.arg(0) == "pahole" => {
                    t.pahole_version = Some(r.first_and_rest().1.to_string());
                }
                ("pm", name) if t.package_manager.is_none() => {
                    t.package_manager = PackageManager::from_probe(name)
                }
                _ => {}
            }
        }
        t
    }

    pub fn is_complete(&self) -> bool {
        self.make && self.compiler && self.tar
    }

    /// What is missing, for messages.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            (!self.make).then_some("make"),
            (!self.compiler).then_some("a C compiler"),
            (!self.tar).then_some("tar"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The install step needed before a build, if any.
    pub fn install_step(&self) -> Result<Option<&'static str>, ToolchainError> {
        if self.is_complete() {
            return Ok(None);
        }
        match self.package_manager {
            Some(pm) => Ok(Some(pm.install_command())),
            None => Err(ToolchainError::CannotInstall {
                missing: self.missing().join(", "),
            }),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ToolchainError {
    #[error("cannot run /bin/sh in it to see what it has: {detail}")]
    ProbeFailed { detail: String },
    #[error("the builder image lacks {missing} and has no package manager dmb knows (apk, apt-get, dnf, microdnf, yum)")]
    CannotInstall { missing: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_debian_builder_needs_nothing() {
        let t = Toolchain::from_probe(
            "@@dmb:tool make\n@@dmb:tool gcc\n@@dmb:tool cc\n@@dmb:tool tar\n@@dmb:pm apt-get\n",
        );
        assert!(t.is_complete());
        assert_eq!(t.install_step(), Ok(None));
    }

    #[test]
    fn bare_alpine_installs_with_apk() {
        let t = Toolchain::from_probe("@@dmb:tool tar\n@@dmb:pm apk\n");
        assert_eq!(t.missing(), ["make", "a C compiler"]);
        let step = t.install_step().unwrap().unwrap();
        assert!(step.starts_with("apk add --no-cache build-base"));
    }

    #[test]
    fn bare_debian_installs_with_apt() {
        let t = Toolchain::from_probe("@@dmb:tool tar\n@@dmb:pm apt-get\n");
        assert!(t
            .install_step()
            .unwrap()
            .unwrap()
            .contains("apt-get install"));
    }

    #[test]
    fn no_package_manager_is_an_error() {
        let t = Toolchain::from_probe("@@dmb:tool tar\n");
        assert_eq!(
            t.install_step(),
            Err(ToolchainError::CannotInstall {
                missing: "make, a C compiler".into()
            })
        );
    }
}
