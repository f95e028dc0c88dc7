//! Reading kernel modules (`.ko`): the `.modinfo` section, without external
//! tools.

use object::{Object, ObjectSection};

/// The `key=value` records of a module's `.modinfo` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModInfo {
    pub fields: Vec<(String, String)>,
}

impl ModInfo {
    /// Parses the raw section: NUL-separated `key=value` strings, with NUL
    /// padding between them.
    pub fn parse_section(data: &[u8]) -> Self {
        let fields = data
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let text = String::from_utf8_lossy(s);
                let (k, v) = text.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        ModInfo { fields }
    }

    /// The first value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn vermagic(&self) -> Option<&str> {
        self.get("vermagic")
    }

    /// The modules this one needs loaded first.
    pub fn depends(&self) -> Vec<String> {
        self.get("depends")
            .map(|d| {
                d.split(',')
                    .filter(|s| !s.is_empty())
                    .map(module_name)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A module's name as the kernel knows it: dashes become underscores.
pub fn module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The name a module file gives its module when `.modinfo` has no `name`.
pub fn name_from_file(file_name: &str) -> String {
    let stem = file_name.split(".ko").next().unwrap_or(file_name);
    module_name(stem)
}

#[derive(Debug, thiserror::Error)]
pub enum KoError {
    #[error("not an ELF object: {0}")]
    NotElf(String),
    #[error("no .modinfo section: not a kernel module")]
    NoModinfo,
    #[error("the .modinfo section cannot be read: {0}")]
    BadModinfo(String),
}

/// A built module: its file name, its kernel name and its `.modinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub file_name: String,
    pub name: String,
    pub info: ModInfo,
}

impl Module {
    /// Reads a module from the bytes of its file.
    pub fn read(file_name: &str, bytes: &[u8]) -> Result<Self, KoError> {
        let elf = object::File::parse(bytes).map_err(|e| KoError::NotElf(e.to_string()))?;
        let section = elf.section_by_name(".modinfo").ok_or(KoError::NoModinfo)?;
        let data = section
            .data()
            .map_err(|e| KoError::BadModinfo(e.to_string()))?;
        let info = ModInfo::parse_section(data);
        let name = info
            .get("name")
            .map(module_name)
            .unwrap_or_else(|| name_from_file(file_name));
        Ok(Module {
            file_name: file_name.to_string(),
            name,
            info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_records_split_on_nul_padding() {
        let raw = b"license=GPL\0\0\0depends=libcrc32c,udp_tunnel\0name=sctp\0vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0";
        let info = ModInfo::parse_section(raw);
        assert_eq!(info.get("license"), Some("GPL"));
        assert_eq!(info.depends(), ["libcrc32c", "udp_tunnel"]);
        assert_eq!(
            info.vermagic(),
            Some("6.1.0-56-amd64 SMP preempt mod_unload modversions ")
        );
    }

    #[test]
    fn empty_depends_is_no_dependency() {
        assert!(ModInfo::parse_section(b"depends=\0").depends().is_empty());
    }

    #[test]
    fn file_names_give_kernel_names() {
        assert_eq!(name_from_file("dm-crypt.ko"), "dm_crypt");
        assert_eq!(name_from_file("hello.ko.xz"), "hello");
    }

    #[test]
    fn garbage_is_not_a_module() {
        assert!(matches!(
            Module::read("x.ko", b"not an elf"),
            Err(KoError::NotElf(_))
        ));
    }
}
