//! Which module is built where, and by which option: read from the kbuild
//! Makefiles of a kernel source (`obj-$(CONFIG_X) += name.o`).

use std::collections::BTreeMap;

/// One `obj-$(CONFIG_X) += name.o` of a Makefile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSite {
    /// The module's name as the kernel knows it (`dm_crypt`).
    pub name: String,
    /// The object as the Makefile names it (`dm-crypt.o`).
    pub object: String,
    /// The directory of the Makefile, relative to the source (`drivers/md`).
    pub dir: String,
    /// The option that builds it, without `CONFIG_`.
    pub symbol: String,
}

impl ModuleSite {
    /// The module as Module.symvers names it: `drivers/md/dm-crypt`.
    pub fn path(&self) -> String {
        let stem = self.object.strip_suffix(".o").unwrap_or(&self.object);
        if self.dir.is_empty() {
            stem.to_string()
        } else {
            format!("{}/{stem}", self.dir)
        }
    }
}

/// Every module a kernel source can build, by name and by option.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    sites: Vec<ModuleSite>,
}

impl ModuleIndex {
    /// From the kbuild files of a source: `(path, text)` of every
    /// `Makefile` and `Kbuild`. Modules under `arch/` of other
    /// architectures than `srcarch` are left out.
    pub fn read<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>, srcarch: &str) -> Self {
        let mut sites = Vec::new();
        for (path, text) in files {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            if let Some(arch) = dir.strip_prefix("arch/") {
                if arch.split('/').next() != Some(srcarch) {
                    continue;
                }
            }
            for line in logical_lines(text) {
                sites.extend(parse_obj_line(&line, dir));
            }
        }
        sites.sort_by(|a, b| (&a.name, &a.dir).cmp(&(&b.name, &b.dir)));
        sites.dedup();
        ModuleIndex { sites }
    }

    /// The places that build a module of this name (`-` and `_` alike).
    pub fn by_name(&self, name: &str) -> Vec<&ModuleSite> {
        let name = crate::ko::module_name(name);
        self.sites.iter().filter(|s| s.name == name).collect()
    }

    /// The modules an option builds.
    pub fn by_symbol(&self, symbol: &str) -> Vec<&ModuleSite> {
        self.sites.iter().filter(|s| s.symbol == symbol).collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sites.iter().map(|s| s.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}

/// `obj-$(CONFIG_X) += a.o b.o dir/` → the modules it names.
fn parse_obj_line(line: &str, dir: &str) -> Vec<ModuleSite> {
    let line = line.split('#').next().unwrap_or("").trim();
    let Some(rest) = line.strip_prefix("obj-$(CONFIG_") else {
        return Vec::new();
    };
    let Some((symbol, rest)) = rest.split_once(')') else {
        return Vec::new();
    };
    let rest = rest.trim_start();
    let Some(objects) = ["+=", ":=", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op))
    else {
        return Vec::new();
    };
    if !symbol
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Vec::new();
    }
    objects
        .split_whitespace()
        .filter_map(|o| o.strip_suffix(".o"))
        .filter(|o| !o.contains('$') && !o.contains('/'))
        .map(|o| ModuleSite {
            name: crate::ko::module_name(o),
            object: format!("{o}.o"),
            dir: dir.to_string(),
            symbol: symbol.to_string(),
        })
        .collect()
}

/// A Makefile's lines, joined where they end in `\`.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for raw in text.lines() {
        match raw.strip_suffix('\\') {
            Some(part) => {
                acc.push_str(part);
                acc.push(' ');
            }
            None => {
                acc.push_str(raw);
                out.push(std::mem::take(&mut acc));
            }
        }
    }
    if !acc.is_empty() {
        out.push(acc);
    }
    out
}

/// The names closest to `wanted` among `names` (by edit distance, then
/// containment), for "did you mean".
pub fn near_matches<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = wanted.to_ascii_lowercase().replace('-', "_");
    let mut scored: BTreeMap<(usize, String), ()> = BTreeMap::new();
    for name in names {
        let lower = name.to_ascii_lowercase();
        let d = edit_distance(&wanted, &lower);
        let close = d <= (wanted.len() / 3).max(2)
            || (wanted.len() >= 3 && lower.contains(&wanted) && lower.len() <= wanted.len() + 8);
        if close {
            scored.insert((d, name.to_string()), ());
        }
    }
    let mut out: Vec<String> = Vec::new();
    for ((_, name), ()) in scored {
        if !out.contains(&name) {
            out.push(name);
        }
        if out.len() == 5 {
            break;
        }
    }
    out
}

/// Edits between two names, a swap of neighbours counting as one (so that
/// `stcp` is one edit from `sctp`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_options_and_directories() {
        let md = "obj-$(CONFIG_BLK_DEV_DM)\t+= dm-mod.o\nobj-$(CONFIG_DM_CRYPT)\t\t+= dm-crypt.o # crypt\nobj-$(CONFIG_DM_SNAPSHOT) += dm-snapshot.o \\\n\tdm-bufio.o\ndm-mod-y += dm.o dm-table.o\nobj-$(CONFIG_BCACHE) += bcache/\nobj-y += md-cluster.o\n";
        let arm = "obj-$(CONFIG_CRYPTO_X) += x.o\n";
        let index = ModuleIndex::read(
            [
                ("drivers/md/Makefile", md),
                ("arch/arm64/crypto/Makefile", arm),
                (
                    "arch/x86/crypto/Makefile",
                    "obj-$(CONFIG_CRYPTO_CRC32C_INTEL) += crc32c-intel.o\n",
                ),
            ],
            "x86",
        );
        let crypt = index.by_name("dm-crypt");
        assert_eq!(
            crypt,
            [&ModuleSite {
                name: "dm_crypt".into(),
                object: "dm-crypt.o".into(),
                dir: "drivers/md".into(),
                symbol: "DM_CRYPT".into()
            }]
        );
        assert_eq!(index.by_symbol("DM_SNAPSHOT").len(), 2);
        assert!(index.by_name("x").is_empty());
        assert_eq!(index.by_name("crc32c_intel")[0].dir, "arch/x86/crypto");
        assert!(index.by_name("bcache").is_empty());
        assert!(index.by_name("md_cluster").is_empty());
        assert_eq!(index.len(), 5);
    }

    #[test]
    fn near_matches_suggest_what_was_meant() {
        let names = [
            "sctp",
            "sctp_diag",
            "dm_crypt",
            "dm_mod",
            "openvswitch",
            "vcan",
        ];
        assert_eq!(near_matches("stcp", names), ["sctp"]);
        assert_eq!(near_matches("dm-crypto", names), ["dm_crypt"]);
        assert_eq!(near_matches("openvswich", names), ["openvswitch"]);
        assert!(near_matches("zzzzzz", names).is_empty());
    }
}
