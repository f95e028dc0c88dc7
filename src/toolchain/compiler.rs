//! The compiler and linker that built a kernel, as `/proc/version` and
//! `CONFIG_CC_VERSION_TEXT` record them (and the build stamp that follows).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompilerKind {
    Gcc,
    Clang,
}

/// A compiler as the kernel records it: `gcc-12 (Debian 12.2.0-14) 12.2.0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compiler {
    pub kind: CompilerKind,
    /// The command (`gcc`, `gcc-12`, `clang`).
    pub command: String,
    /// `12.2.0`.
    pub version: String,
    /// What the vendor put in parentheses: `Alpine 10.2.1_pre1`, `Debian
    /// 12.2.0-14+deb12u1`, `GCC`; or the prefix of `Ubuntu clang version …`.
    pub vendor: Option<String>,
    pub text: String,
}

impl Compiler {
    pub fn major(&self) -> Option<u32> {
        self.version.split('.').next()?.parse().ok()
    }

    /// A clang-built kernel wants `LLVM=1` for its modules (as dkms does).
    pub fn needs_llvm(&self) -> bool {
        self.kind == CompilerKind::Clang
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Linker {
    pub name: String,
    pub version: String,
}

/// What `/proc/version` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcVersion {
    pub release: String,
    pub compiler: Option<Compiler>,
    pub linker: Option<Linker>,
    /// `#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)`.
    pub stamp: String,
}

/// The parenthesised groups of a string at depth 0, with what follows the last.
fn top_groups(s: &str) -> (Vec<&str>, &str) {
    let groups = top_groups_at(s);
    let end = groups.last().map_or(0, |(_, end)| *end);
    (groups.into_iter().map(|(g, _)| g).collect(), &s[end..])
}

/// The parenthesised groups at depth 0, each with the offset just past it.
fn top_groups_at(s: &str) -> Vec<(&str, usize)> {
    let mut groups = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => {
                if depth == 0 {
                    start = i + 1;
                }
                depth += 1;
            }
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    groups.push((&s[start..i], i + 1));
                }
            }
            _ => {}
        }
    }
    groups
}

/// Splits at commas outside parentheses.
fn split_top_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim());
    parts
}

fn first_version(s: &str) -> Option<String> {
    s.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .map(|w| w.trim_end_matches(',').to_string())
}

/// Reads a compiler description (`/proc/version`'s or `CONFIG_CC_VERSION_TEXT`).
pub fn parse_compiler(text: &str) -> Option<Compiler> {
    let text = text.trim().trim_matches('"');
    if let Some(at) = text.find("clang version") {
        let vendor = text[..at].trim();
        let version = first_version(&text[at + "clang version".len()..])?;
        return Some(Compiler {
            kind: CompilerKind::Clang,
            command: "clang".into(),
            version,
            vendor: (!vendor.is_empty()).then(|| vendor.to_string()),
            text: text.to_string(),
        });
    }
    // Old form: `gcc version 8.3.0 (Alpine 8.3.0)`.
    if let Some(rest) = text.strip_prefix("gcc version ") {
        let (groups, _) = top_groups(rest);
        return Some(Compiler {
            kind: CompilerKind::Gcc,
            command: "gcc".into(),
            version: first_version(rest)?,
            vendor: groups.first().map(|g| g.to_string()),
            text: text.to_string(),
        });
    }
    // `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0`, `gcc (GCC) 11.2.0`.
    let command = text.split_whitespace().next()?;
    if !command.starts_with("gcc") && !command.contains("-gcc") {
        return None;
    }
    let (groups, after) = top_groups(text);
    Some(Compiler {
        kind: CompilerKind::Gcc,
        command: command.to_string(),
        version: first_version(after)?,
        vendor: groups.first().map(|g| g.to_string()),
        text: text.to_string(),
    })
}

fn parse_linker(text: &str) -> Option<Linker> {
    let text = text.trim();
    let (name, at) = if let Some(at) = text.find("GNU ld") {
        ("GNU ld", at)
    } else if let Some(at) = text.find("LLD") {
        ("LLD", at)
    } else {
        return None;
    };
    let (_, after) = top_groups(&text[at..]);
    let version = first_version(after).or_else(|| first_version(&text[at..]))?;
    Some(Linker {
        name: name.into(),
        version,
    })
}

/// Reads `Linux version <release> (<who>) (<toolchain>) <stamp>`.
pub fn parse_proc_version(text: &str) -> Option<ProcVersion> {
    let rest = text.trim().strip_prefix("Linux version ")?;
    let (release, rest) = rest.split_once(' ')?;
    // The first group is the builder's user@host; the second the toolchain;
    // the stamp follows it (and may hold groups of its own: a date).
    let groups = top_groups_at(rest);
    let (toolchain, stamp) = match groups.as_slice() {
        [_, (g, end), ..] => (*g, &rest[*end..]),
        [(_, end)] => ("", &rest[*end..]),
        [] => ("", rest),
    };
    let parts = split_top_commas(toolchain);
    let compiler = parts.first().and_then(|p| parse_compiler(p));
    let linker = parts.get(1).and_then(|p| parse_linker(p));
    Some(ProcVersion {
        release: release.to_string(),
        compiler,
        linker,
        stamp: stamp.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(s: &str) -> ProcVersion {
        parse_proc_version(s).unwrap_or_else(|| panic!("no parse: {s}"))
    }

    #[test]
    fn linuxkit_4_19_old_gcc_form() {
        let v = pv("Linux version 4.19.76-linuxkit (root@d203b39a3d78) (gcc version 8.3.0 (Alpine 8.3.0)) #1 SMP Thu Oct 17 19:31:58 UTC 2019");
        assert_eq!(v.release, "4.19.76-linuxkit");
        let c = v.compiler.unwrap();
        assert_eq!(
            (c.kind, c.version.as_str(), c.vendor.as_deref()),
            (CompilerKind::Gcc, "8.3.0", Some("Alpine 8.3.0"))
        );
        assert_eq!(v.linker, None);
        assert_eq!(v.stamp, "#1 SMP Thu Oct 17 19:31:58 UTC 2019");
    }

    #[test]
    fn linuxkit_5_10_with_linker() {
        let v = pv("Linux version 5.10.104-linuxkit (root@buildkitsandbox) (gcc (Alpine 10.2.1_pre1) 10.2.1 20201203, GNU ld (GNU Binutils) 2.35.2) #1 SMP Thu Mar 17 17:08:06 UTC 2022");
        let c = v.compiler.unwrap();
        assert_eq!(
            (c.version.as_str(), c.vendor.as_deref()),
            ("10.2.1", Some("Alpine 10.2.1_pre1"))
        );
        assert_eq!(
            v.linker,
            Some(Linker {
                name: "GNU ld".into(),
                version: "2.35.2".into()
            })
        );
        assert_eq!(v.stamp, "#1 SMP Thu Mar 17 17:08:06 UTC 2022");
    }

    #[test]
    fn newer_linuxkit_kernels() {
        for (release, gcc, vendor, ld) in [
            (
                "6.5.11-linuxkit",
                "gcc (Alpine 12.2.1_git20220924-r10) 12.2.1 20220924",
                "Alpine 12.2.1_git20220924-r10",
                "2.40",
            ),
            (
                "6.6.22-linuxkit",
                "gcc (Alpine 13.2.1_git20231014) 13.2.1 20231014",
                "Alpine 13.2.1_git20231014",
                "2.41",
            ),
            (
                "6.12.54-linuxkit",
                "gcc (Alpine 13.2.1_git20240309) 13.2.1 20240309",
                "Alpine 13.2.1_git20240309",
                "2.42",
            ),
        ] {
            let v = pv(&format!("Linux version {release} (root@buildkitsandbox) ({gcc}, GNU ld (GNU Binutils) {ld}) #1 SMP PREEMPT_DYNAMIC Mon Jan  1 00:00:00 UTC 2024"));
            assert_eq!(v.release, release);
            assert_eq!(v.compiler.unwrap().vendor.as_deref(), Some(vendor));
            assert_eq!(v.linker.unwrap().version, ld);
        }
    }

    #[test]
    fn wsl2_and_debian() {
        let w = pv("Linux version 6.6.87.2-microsoft-standard-WSL2 (root@439a258ad544) (gcc (GCC) 11.2.0, GNU ld (GNU Binutils) 2.37) #1 SMP PREEMPT_DYNAMIC Thu Jun  5 18:30:46 UTC 2025");
        assert_eq!(w.compiler.as_ref().unwrap().version, "11.2.0");
        assert_eq!(w.compiler.unwrap().vendor.as_deref(), Some("GCC"));
        let d = pv("Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)");
        let c = d.compiler.unwrap();
        assert_eq!(
            (c.command.as_str(), c.version.as_str()),
            ("gcc-12", "12.2.0")
        );
        assert_eq!(c.vendor.as_deref(), Some("Debian 12.2.0-14+deb12u1"));
        assert_eq!(
            d.stamp,
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)"
        );
        assert_eq!(d.linker.unwrap().version, "2.40");
    }

    #[test]
    fn clang_kernels() {
        let v = pv("Linux version 6.8.0 (builder@host) (Ubuntu clang version 18.1.3 (1ubuntu1), Ubuntu LLD 18.1.3) #1 SMP");
        let c = v.compiler.unwrap();
        assert_eq!(
            (c.kind, c.version.as_str(), c.vendor.as_deref()),
            (CompilerKind::Clang, "18.1.3", Some("Ubuntu"))
        );
        assert!(c.needs_llvm());
        assert_eq!(
            v.linker.unwrap(),
            Linker {
                name: "LLD".into(),
                version: "18.1.3".into()
            }
        );
        assert_eq!(
            parse_compiler("\"clang version 17.0.6\"").unwrap().version,
            "17.0.6"
        );
    }

    #[test]
    fn config_cc_version_text() {
        let c = parse_compiler("\"gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\"").unwrap();
        assert_eq!(c.major(), Some(12));
        assert!(parse_compiler("something else").is_none());
    }
}
