//! A kernel's `.config`.

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: HashMap<String, String>,
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
        KernelConfig { values }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
