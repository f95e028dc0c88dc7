//! The `.modinfo` section: NUL-separated `key=value` records.

use serde::Serialize;

/// The `key=value` records of a module's `.modinfo` section, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct ModInfo {
    pub fields: Vec<(String, String)>,
}

/// One module parameter, from its `parm` and `parmtype` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub description: Option<String>,
}

impl ModInfo {
    /// Parses the raw section: NUL-separated `key=value` strings, with NUL
    /// padding between them. A record without `=` (or without its NUL, at the
    /// end of a damaged section) is kept as far as it goes.
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

    /// Every value of a key (aliases, parameters).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == key)
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

    /// What `softdep: pre:` names: modules (or aliases) to load before
    /// this one, as modprobe does. A field may hold `pre:` and `post:`.
    pub fn softdeps_pre(&self) -> Vec<String> {
        let mut out = Vec::new();
        for value in self.all("softdep") {
            let mut pre = false;
            for word in value.split_whitespace() {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    name if pre => out.push(module_name(name)),
                    _ => {}
                }
            }
        }
        out
    }

    /// What the module calls itself besides its name (`alias=`), for
    /// modprobe and for soft dependencies.
    pub fn aliases(&self) -> Vec<String> {
        self.all("alias").map(str::to_string).collect()
    }

    /// Parameters, in the order their `parm`/`parmtype` records first appear.
    pub fn parameters(&self) -> Vec<Parameter> {
        let mut params: Vec<Parameter> = Vec::new();
        for (key, value) in &self.fields {
            let is_type = match key.as_str() {
                "parm" => false,
                "parmtype" => true,
                _ => continue,
            };
            let (name, rest) = value.split_once(':').unwrap_or((value, ""));
            let index = match params.iter().position(|p| p.name == name) {
                Some(i) => i,
                None => {
                    params.push(Parameter {
                        name: name.to_string(),
                        kind: None,
                        description: None,
                    });
                    params.len() - 1
                }
            };
            let slot = if is_type {
                &mut params[index].kind
            } else {
                &mut params[index].description
            };
            *slot = Some(rest.to_string());
        }
        params
    }
}

/// A module's name as the kernel knows it: dashes become underscores.
pub fn module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The name a module file gives its module when `.modinfo` has no `name`.
pub fn name_from_file(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let stem = base.split(".ko").next().unwrap_or(base);
    module_name(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_dependencies_before_loading() {
        let info = ModInfo::parse_section(
            b"softdep=pre: crc32c\0softdep=post: x pre: a-b\0alias=crypto-y\0",
        );
        assert_eq!(info.softdeps_pre(), ["crc32c", "a_b"]);
        assert_eq!(info.aliases(), ["crypto-y"]);
    }

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
    fn a_section_without_nuls_is_read_as_far_as_it_goes() {
        let info = ModInfo::parse_section(b"license=GPL");
        assert_eq!(info.get("license"), Some("GPL"));
        assert!(ModInfo::parse_section(b"\xff\xfe garbage")
            .fields
            .is_empty());
    }

    #[test]
    fn empty_depends_is_no_dependency() {
        assert!(ModInfo::parse_section(b"depends=\0").depends().is_empty());
    }

    #[test]
    fn parameters_join_parm_and_parmtype() {
        let info = ModInfo::parse_section(
            b"parmtype=step:int\0parm=step:how much to add\0parmtype=quiet:bool\0",
        );
        assert_eq!(
            info.parameters(),
            [
                Parameter {
                    name: "step".into(),
                    kind: Some("int".into()),
                    description: Some("how much to add".into())
                },
                Parameter {
                    name: "quiet".into(),
                    kind: Some("bool".into()),
                    description: None
                },
            ]
        );
    }

    #[test]
    fn file_names_give_kernel_names() {
        assert_eq!(name_from_file("dm-crypt.ko"), "dm_crypt");
        assert_eq!(name_from_file("kernel/net/sctp/sctp.ko.xz"), "sctp");
    }
}
