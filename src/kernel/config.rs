//! A kernel's `.config`.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: HashMap<String, String>,
    /// The file as read, so that a changed copy keeps its order and comments.
    text: String,
}

impl KernelConfig {
    /// Reads `CONFIG_X=value` lines; comments (`# CONFIG_X is not set`) and
    /// anything else are ignored.
    pub fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .filter_map(|l| l.strip_prefix("CONFIG_"))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        KernelConfig {
            values,
            text: text.to_string(),
        }
    }

    /// Every symbol that has a value (`n` ones are not set, so not here).
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The file as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The file with `changes` (symbol → `y`/`m`/`n`) made: their lines
    /// replaced where the file has them, appended where it does not.
    pub fn with_changes(&self, changes: &BTreeMap<String, String>) -> String {
        let line_for = |symbol: &str, value: &str| {
            if value == "n" {
                format!("# CONFIG_{symbol} is not set")
            } else {
                format!("CONFIG_{symbol}={value}")
            }
        };
        let mut done = std::collections::BTreeSet::new();
        let mut out = String::new();
        for line in self.text.lines() {
            let symbol = line
                .strip_prefix("CONFIG_")
                .and_then(|l| l.split_once('=').map(|(k, _)| k))
                .or_else(|| {
                    line.strip_prefix("# CONFIG_")
                        .and_then(|l| l.strip_suffix(" is not set"))
                });
            match symbol.and_then(|s| changes.get_key_value(s)) {
                Some((s, v)) => {
                    out.push_str(&line_for(s, v));
                    done.insert(s.as_str());
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
        for (s, v) in changes {
            if !done.contains(s.as_str()) {
                out.push_str(&line_for(s, v));
                out.push('\n');
            }
        }
        out
    }

    /// `CONFIG_<name>=y`.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| v == "y")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many options it sets.
    pub fn len(&self) -> usize {
        self.values.len()
    }
}

/// Option names as people write them, joined: `CONFIG_IP_SCTP, CONFIG_CAN`.
pub fn option_list<S: AsRef<str>>(symbols: impl IntoIterator<Item = S>) -> String {
    symbols
        .into_iter()
        .map(|s| format!("CONFIG_{}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_keep_the_rest_of_the_file() {
        let c = KernelConfig::parse("# top\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n");
        let changes: BTreeMap<String, String> = [("B", "m"), ("C", "n"), ("D", "m")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            c.with_changes(&changes),
            "# top\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=m\n"
        );
        assert_eq!(c.values().count(), 2);
    }

    #[test]
    fn values_and_comments() {
        let c = KernelConfig::parse(
            "# CONFIG_PREEMPT is not set\nCONFIG_SMP=y\nCONFIG_MODULE_SIG_HASH=\"sha256\"\nCONFIG_NR_CPUS=64\nCONFIG_FOO=m\n",
        );
        assert!(c.is_set("SMP"));
        assert!(!c.is_set("PREEMPT"));
        assert!(!c.is_set("FOO"));
        assert_eq!(c.get("MODULE_SIG_HASH"), Some("sha256"));
        assert_eq!(c.get("NR_CPUS"), Some("64"));
    }
}
