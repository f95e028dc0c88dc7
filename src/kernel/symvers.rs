//! `Module.symvers`: the CRC of every symbol a kernel exports.
//!
//! Layouts: `crc symbol module export [namespace]` (5.8 and later; the
//! namespace column may be empty), `crc symbol namespace module export`
//! (5.4–5.7), `crc symbol module export` (older).

use std::collections::HashMap;

/// One exported symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymverEntry {
    pub crc: u32,
    /// `vmlinux`, or the module's path without `.ko` (`net/sctp/sctp`).
    pub module: String,
    pub export: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symvers {
    pub symbols: HashMap<String, SymverEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Module.symvers line {line}: {reason}")]
pub struct SymversError {
    pub line: usize,
    pub reason: String,
}

impl Symvers {
    pub fn parse(text: &str) -> Result<Self, SymversError> {
        let mut symbols = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |reason: &str| SymversError {
                line: i + 1,
                reason: reason.to_string(),
            };
            let cols: Vec<&str> = line.split('\t').collect();
            let (crc, symbol, module, export, namespace) = match cols.as_slice() {
                [c, s, m, e] => (c, s, m, e, ""),
                [c, s, m, e, n] if e.starts_with("EXPORT_") => (c, s, m, e, *n),
                [c, s, n, m, e] if e.starts_with("EXPORT_") => (c, s, m, e, *n),
                _ => return Err(err("expected 4 or 5 tab-separated columns")),
            };
            let hex = crc
                .strip_prefix("0x")
                .ok_or_else(|| err("the CRC has no 0x"))?;
            let crc = u32::from_str_radix(hex, 16)
                .or_else(|_| u64::from_str_radix(hex, 16).map(|v| v as u32))
                .map_err(|_| err("the CRC is not hexadecimal"))?;
            symbols.insert(
                symbol.to_string(),
                SymverEntry {
                    crc,
                    module: module.to_string(),
                    export: export.to_string(),
                    namespace: namespace.to_string(),
                },
            );
        }
        Ok(Symvers { symbols })
    }

    /// Names (as the kernel knows them) of the modules that export something.
    pub fn module_names(&self) -> std::collections::HashSet<String> {
        self.symbols
            .values()
            .filter(|e| e.module != "vmlinux")
            .map(|e| crate::ko::name_from_file(&e.module))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_layouts() {
        let new = Symvers::parse("0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n0x0000abcd\tsctp_x\tnet/sctp/sctp\tEXPORT_SYMBOL_GPL\tSCTP_NS\n").unwrap();
        assert_eq!(new.symbols["phys_base"].crc, 0x4c9d28b0);
        assert_eq!(new.symbols["sctp_x"].module, "net/sctp/sctp");
        assert_eq!(new.symbols["sctp_x"].namespace, "SCTP_NS");
        let mid = Symvers::parse("0x00000001\tfoo\tMY_NS\tdrivers/foo\tEXPORT_SYMBOL\n").unwrap();
        assert_eq!(mid.symbols["foo"].module, "drivers/foo");
        assert_eq!(mid.symbols["foo"].namespace, "MY_NS");
        let old = Symvers::parse("0x00000002\tbar\tvmlinux\tEXPORT_SYMBOL\n").unwrap();
        assert_eq!(old.symbols["bar"].export, "EXPORT_SYMBOL");
        assert_eq!(new.module_names(), ["sctp".to_string()].into());
    }

    #[test]
    fn broken_lines_name_their_number() {
        let e = Symvers::parse("0x1\ta\tvmlinux\tEXPORT_SYMBOL\nnonsense\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Symvers::parse("zz\ta\tvmlinux\tEXPORT_SYMBOL\n").is_err());
    }
}
