//! A kernel release as `uname -r` prints it, parsed once: the version, the
//! local suffix, and what the suffix says about who built the kernel.

use std::fmt;

use serde::{Serialize, Serializer};

/// `6.1.0-56-amd64`, `5.15.49-linuxkit-pr`, `6.6.87.2-microsoft-standard-WSL2`.
///
/// The text is what the kernel says; it ends up in paths, `ENV` lines and
/// labels, so only characters a release has are accepted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelRelease {
    text: String,
    /// The leading `X.Y[.Z…]`, when the release starts with one.
    version: Option<(u32, u32, u32)>,
    /// Where the numeric part ends (the local suffix starts).
    numeric_end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel release `{}` is empty, too long or has characters a release never has", shown(.0))]
pub struct BadRelease(pub String);

/// Text from outside (the VM, an image) as it may be shown on a terminal:
/// its control characters escaped, at most 80 characters of it.
pub fn shown(text: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX {
        out.push_str(&format!("… ({} bytes)", text.len()));
    }
    out
}

impl KernelRelease {
    pub fn parse(text: &str) -> Result<Self, BadRelease> {
        let ok = !text.is_empty()
            && text.len() <= 128
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+~-".contains(c));
        if !ok {
            return Err(BadRelease(text.to_string()));
        }
        let numeric_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let mut numbers = text[..numeric_end]
            .split('.')
            .map(|n| n.parse::<u32>().ok());
        let version = match (numbers.next(), numbers.next(), numbers.next()) {
            (Some(Some(a)), Some(Some(b)), c) => Some((a, b, c.flatten().unwrap_or(0))),
            _ => None,
        };
        Ok(KernelRelease {
            text: text.to_string(),
            version,
            numeric_end,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `(major, minor, patch)`, when the release starts with a version.
    pub fn version(&self) -> Option<(u32, u32, u32)> {
        self.version
    }

    pub fn major(&self) -> Option<u32> {
        self.version.map(|v| v.0)
    }

    /// What follows the version: `-56-amd64`, `-linuxkit`, `` for none.
    pub fn local(&self) -> &str {
        &self.text[self.numeric_end..]
    }

    /// For a LinuxKit kernel (`5.15.49-linuxkit`, `6.12.54-linuxkit-pr`),
    /// the upstream version LinuxKit tags its kernel images with.
    pub fn linuxkit_version(&self) -> Option<&str> {
        self.text
            .split_once("-linuxkit")
            .map(|(version, _)| version)
    }
}

impl std::str::FromStr for KernelRelease {
    type Err = BadRelease;
    fn from_str(s: &str) -> Result<Self, BadRelease> {
        KernelRelease::parse(s)
    }
}

impl fmt::Display for KernelRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for KernelRelease {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq<str> for KernelRelease {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for KernelRelease {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

/// JSON shows a release as the string the kernel prints.
impl Serialize for KernelRelease {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_that_are_empty_huge_or_hold_control_characters_are_refused_readably() {
        for bad in ["", &"6".repeat(64 * 1024), "6.1.0\x1b[2J\x07", "6.1\n0"] {
            let err = KernelRelease::parse(bad).unwrap_err().to_string();
            assert!(!err.chars().any(|c| c.is_control()), "{err:?}");
            assert!(err.len() < 200, "{}", err.len());
        }
    }

    #[test]
    fn releases_of_every_platform() {
        for (text, version, local) in [
            ("6.1.0-56-amd64", Some((6, 1, 0)), "-56-amd64"),
            ("5.15.49-linuxkit-pr", Some((5, 15, 49)), "-linuxkit-pr"),
            (
                "6.6.87.2-microsoft-standard-WSL2",
                Some((6, 6, 87)),
                "-microsoft-standard-WSL2",
            ),
            (
                "6.12.7-200.fc41.aarch64",
                Some((6, 12, 7)),
                "-200.fc41.aarch64",
            ),
            ("6.8", Some((6, 8, 0)), ""),
            ("custom", None, "custom"),
        ] {
            let r = KernelRelease::parse(text).unwrap();
            assert_eq!((r.version(), r.local()), (version, local), "{text}");
            assert_eq!(r.to_string(), text);
        }
        let lk = KernelRelease::parse("5.15.49-linuxkit-pr").unwrap();
        assert_eq!(lk.linuxkit_version(), Some("5.15.49"));
        assert_eq!(lk.major(), Some(5));
        assert_eq!(
            KernelRelease::parse("6.1.0-56-amd64")
                .unwrap()
                .linuxkit_version(),
            None
        );
    }

    #[test]
    fn odd_characters_are_refused() {
        assert!(KernelRelease::parse("6.1 \nRUN x").is_err());
        assert!(KernelRelease::parse("").is_err());
        assert!(KernelRelease::parse(&"9".repeat(200)).is_err());
        assert_eq!(
            serde_json::to_string(&KernelRelease::parse("6.1.0-56-amd64").unwrap()).unwrap(),
            "\"6.1.0-56-amd64\""
        );
    }
}
