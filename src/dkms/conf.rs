//! A `dkms.conf` as the build container's bash left it: every variable dkms
//! reads, with the regex tests dkms makes with bash's `=~` already done
//! there (see `src/scripts/dkms_conf.sh`). Pure parsing.

use std::collections::BTreeMap;

use crate::scripts::{self, Record};

/// The variables a `dkms.conf` set, by name and index (a scalar is index 0,
/// as bash treats it), and the outcomes of its regex tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DkmsConf {
    vars: BTreeMap<String, BTreeMap<usize, String>>,
    /// `NAME` → index → whether the kernel release (the arch, for
    /// `BUILD_EXCLUSIVE_ARCH`) matches; `None` for a regex bash refused.
    matches: BTreeMap<String, BTreeMap<usize, Option<bool>>>,
}

/// Why a `dkms.conf` could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// bash has no bash.
    NoBash,
    /// `syntax` (bash -n) or `exited` (the fragment ended the shell), and
    /// what bash said.
    Failed { reason: String, messages: String },
}

impl DkmsConf {
    /// Reads the evaluation script's output.
    pub fn parse(output: &str) -> Result<Self, Unreadable> {
        let mut conf = DkmsConf::default();
        for r in scripts::records(output) {
            match r.verb {
                "no-bash" => return Err(Unreadable::NoBash),
                "conf-failed" => {
                    let messages = scripts::sections(output)
                        .remove("error")
                        .unwrap_or_default();
                    return Err(Unreadable::Failed {
                        reason: r.args.to_string(),
                        messages: messages.trim_end().to_string(),
                    });
                }
                "var" => {
                    if let Some((name, index, value)) = var(&r) {
                        conf.vars.entry(name).or_default().insert(index, value);
                    }
                }
                "match" => {
                    let (name, index) = (r.arg(0), r.arg(1).parse::<usize>());
                    if let (false, Ok(index)) = (name.is_empty(), index) {
                        let outcome = match r.arg(2) {
                            "yes" => Some(true),
                            "no" => Some(false),
                            _ => None,
                        };
                        conf.matches
                            .entry(name.to_string())
                            .or_default()
                            .insert(index, outcome);
                    }
                }
                _ => {}
            }
        }
        Ok(conf)
    }

    /// A scalar (index 0), when set and not empty.
    pub fn scalar(&self, name: &str) -> Option<&str> {
        self.get(name, 0)
    }

    /// One element, when set and not empty (bash's `[[ ${X[i]} ]]`).
    pub fn get(&self, name: &str, index: usize) -> Option<&str> {
        self.vars
            .get(name)
            .and_then(|v| v.get(&index))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `${#NAME[@]}`: how many elements are set.
    pub fn count(&self, name: &str) -> usize {
        self.vars.get(name).map_or(0, BTreeMap::len)
    }

    /// The set indices of an array, in order (bash arrays may be sparse).
    pub fn indices(&self, name: &str) -> Vec<usize> {
        self.vars
            .get(name)
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The outcome of `[[ subject =~ ${NAME[index]} ]]`: `None` when not
    /// tested (the regex empty), `Some(None)` when bash refused the regex.
    pub fn matched(&self, name: &str, index: usize) -> Option<Option<bool>> {
        self.matches.get(name).and_then(|m| m.get(&index)).copied()
    }
}

fn var(r: &Record) -> Option<(String, usize, String)> {
    let name = r.arg(0);
    let index = r.arg(1).parse().ok()?;
    let value = unhex(r.arg(2))?;
    (!name.is_empty()).then(|| (name.to_string(), index, value))
}

fn unhex(hex: &str) -> Option<String> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

#[cfg(test)]
pub(crate) fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_matches_are_read_back() {
        let out = format!(
            "noise\n@@dmb:var PACKAGE_NAME 0 {}\n@@dmb:var MAKE 2 {}\n@@dmb:var EMPTY 0 \n\
             @@dmb:match MAKE_MATCH 1 yes\n@@dmb:match BUILD_EXCLUSIVE_KERNEL 0 bad\n",
            hex("vpoll"),
            hex("make a\nmake b")
        );
        let conf = DkmsConf::parse(&out).unwrap();
        assert_eq!(conf.scalar("PACKAGE_NAME"), Some("vpoll"));
        assert_eq!(conf.get("MAKE", 2), Some("make a\nmake b"));
        assert_eq!(conf.get("MAKE", 0), None);
        assert_eq!(conf.count("MAKE"), 1);
        assert_eq!(conf.scalar("EMPTY"), None);
        assert_eq!(conf.matched("MAKE_MATCH", 1), Some(Some(true)));
        assert_eq!(conf.matched("BUILD_EXCLUSIVE_KERNEL", 0), Some(None));
        assert_eq!(conf.matched("MAKE_MATCH", 0), None);
    }

    #[test]
    fn failures_say_why() {
        assert_eq!(DkmsConf::parse("@@dmb:no-bash\n"), Err(Unreadable::NoBash));
        let out =
            "@@dmb:conf-failed syntax\n@@dmb:section error\n./dkms.conf: line 3: syntax error\n";
        assert_eq!(
            DkmsConf::parse(out),
            Err(Unreadable::Failed {
                reason: "syntax".into(),
                messages: "./dkms.conf: line 3: syntax error".into()
            })
        );
    }

    #[test]
    fn bad_hex_is_skipped_not_trusted() {
        let conf = DkmsConf::parse("@@dmb:var A 0 6\n@@dmb:var B x zz\n").unwrap();
        assert_eq!(conf.scalar("A"), None);
        assert_eq!(conf.count("B"), 0);
    }
}
