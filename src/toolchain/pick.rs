//! Which builder image carries the compiler that built a kernel.

use serde::Serialize;

use super::compiler::{Compiler, CompilerKind};

/// Alpine releases and the gcc each ships by default (3.11 moved from 9.2.0
/// to 9.3.0 during its life).
pub const ALPINE_GCC: &[(&str, &str)] = &[
    ("3.10", "8.3.0"),
    ("3.11", "9.2.0"),
    ("3.11", "9.3.0"),
    ("3.12", "9.3.0"),
    ("3.13", "10.2.1_pre1"),
    ("3.14", "10.3.1_git20210424"),
    ("3.15", "10.3.1_git20211027"),
    ("3.16", "11.2.1_git20220219"),
    ("3.17", "12.2.1_git20220924"),
    ("3.18", "12.2.1_git20220924-r10"),
    ("3.19", "13.2.1_git20231014"),
    ("3.20", "13.2.1_git20240309"),
    ("3.21", "14.2.0"),
    ("3.22", "14.2.0"),
    ("3.23", "15.2.0"),
];

/// Debian releases and their default gcc.
pub const DEBIAN_GCC: &[(&str, &str)] = &[
    ("buster", "8.3.0"),
    ("bullseye", "10.2.1"),
    ("bookworm", "12.2.0"),
    ("trixie", "14.2.0"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchQuality {
    /// The very compiler that built the kernel.
    Exact,
    /// The same major version: usually loads, but kbuild warns.
    SameMajor,
    None,
}

/// A builder image for a kernel, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuilderPick {
    pub reference: Option<String>,
    pub quality: MatchQuality,
    pub reason: String,
}

fn major(v: &str) -> Option<&str> {
    v.split(['.', '_', '-']).next()
}

/// The version a vendor string names: `Alpine 10.2.1_pre1` → `10.2.1_pre1`.
fn vendor_version<'a>(compiler: &'a Compiler, vendor: &str) -> Option<&'a str> {
    compiler
        .vendor
        .as_deref()?
        .strip_prefix(vendor)?
        .split_whitespace()
        .next()
}

/// Picks from a table: the exact version, else the newest release with
/// the same major.
fn pick(
    table: &[(&str, &str)],
    version: &str,
    image: &str,
) -> Option<(String, MatchQuality, String)> {
    if let Some((release, gcc)) = table.iter().rev().find(|(_, gcc)| *gcc == version) {
        return Some((
            format!("{image}:{release}"),
            MatchQuality::Exact,
            gcc.to_string(),
        ));
    }
    let m = major(version)?;
    table
        .iter()
        .rev()
        .find(|(_, gcc)| major(gcc) == Some(m))
        .map(|(release, gcc)| {
            (
                format!("{image}:{release}"),
                MatchQuality::SameMajor,
                gcc.to_string(),
            )
        })
}

/// A builder for a compiler, from the distribution tables.
pub fn for_compiler(compiler: &Compiler) -> BuilderPick {
    if compiler.kind == CompilerKind::Clang {
        return BuilderPick {
            reference: None,
            quality: MatchQuality::None,
            reason: format!(
                "the kernel was built by clang {}: give an LLVM toolchain image with --build-ref (modules are built with LLVM=1)",
                compiler.version
            ),
        };
    }
    let (table, image, version) = if let Some(v) = vendor_version(compiler, "Alpine ") {
        (ALPINE_GCC, "alpine", v)
    } else if let Some(v) = vendor_version(compiler, "Debian ") {
        // `Debian 12.2.0-14+deb12u1`: the table holds upstream versions.
        (DEBIAN_GCC, "debian", v.split('-').next().unwrap_or(v))
    } else {
        (ALPINE_GCC, "alpine", compiler.version.as_str())
    };
    match pick(table, version, image) {
        Some((reference, quality, gcc)) => BuilderPick {
            reason: match quality {
                MatchQuality::Exact => {
                    format!("{reference} ships gcc {gcc}, the kernel's compiler")
                }
                _ => format!(
                    "{reference} ships gcc {gcc}; the kernel was built by gcc {} (same major)",
                    compiler.version
                ),
            },
            reference: Some(reference),
            quality,
        },
        None => BuilderPick {
            reference: None,
            quality: MatchQuality::None,
            reason: format!("no {image} release ships gcc {}", compiler.version),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::compiler::{parse_compiler, parse_proc_version};

    fn pick_for(proc_version: &str) -> BuilderPick {
        for_compiler(&parse_proc_version(proc_version).unwrap().compiler.unwrap())
    }

    #[test]
    fn every_fixture_gets_its_builder() {
        let lk = |release: &str, gcc: &str| {
            format!("Linux version {release} (root@buildkitsandbox) ({gcc}, GNU ld (GNU Binutils) 2.40) #1 SMP")
        };
        let cases = [
            ("Linux version 4.19.76-linuxkit (root@d203b39a3d78) (gcc version 8.3.0 (Alpine 8.3.0)) #1 SMP Thu Oct 17 19:31:58 UTC 2019".to_string(), "alpine:3.10", MatchQuality::Exact),
            (lk("5.10.104-linuxkit", "gcc (Alpine 10.2.1_pre1) 10.2.1 20201203"), "alpine:3.13", MatchQuality::Exact),
            (lk("6.5.11-linuxkit", "gcc (Alpine 12.2.1_git20220924-r10) 12.2.1 20220924"), "alpine:3.18", MatchQuality::Exact),
            (lk("6.6.22-linuxkit", "gcc (Alpine 13.2.1_git20231014) 13.2.1 20231014"), "alpine:3.19", MatchQuality::Exact),
            (lk("6.12.54-linuxkit", "gcc (Alpine 13.2.1_git20240309) 13.2.1 20240309"), "alpine:3.20", MatchQuality::Exact),
            ("Linux version 6.6.87.2-microsoft-standard-WSL2 (root@439a258ad544) (gcc (GCC) 11.2.0, GNU ld (GNU Binutils) 2.37) #1 SMP PREEMPT_DYNAMIC".to_string(), "alpine:3.16", MatchQuality::SameMajor),
            ("Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)".to_string(), "debian:bookworm", MatchQuality::Exact),
        ];
        for (pv, image, quality) in cases {
            let p = pick_for(&pv);
            assert_eq!(
                (p.reference.as_deref(), p.quality),
                (Some(image), quality),
                "{pv}"
            );
        }
    }

    #[test]
    fn unknown_versions_and_clang_get_none() {
        let p = for_compiler(&parse_compiler("gcc (Alpine 4.9.2) 4.9.2").unwrap());
        assert_eq!(p.quality, MatchQuality::None);
        let c = for_compiler(&parse_compiler("Debian clang version 14.0.6").unwrap());
        assert_eq!((c.reference, c.quality), (None, MatchQuality::None));
        assert!(c.reason.contains("LLVM=1"));
    }
}
