//! What dkms would do with a `dkms.conf` for one kernel, decided the way
//! dkms 3.0's `read_conf` and `prepare_build` decide it: the module records
//! with their defaults, the make command (`MAKE_MATCH`), the patches
//! (`PATCH_MATCH`), and whether a `BUILD_EXCLUSIVE_*` directive excludes the
//! kernel. Pure; dkms's own error words where it has them.

use std::cmp::Ordering;

use super::conf::DkmsConf;
use super::DkmsError;
use crate::kernel::KernelConfig;

/// Where dkms builds a package: `$dkms_tree/NAME/VERSION/build`.
pub const DKMS_TREE: &str = "/var/lib/dkms";

/// The kernel a package is built for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `$kernelver`.
    pub release: &'a str,
    /// `$arch`: what `uname -m` says on that kernel.
    pub arch: &'a str,
    /// `$kernel_source_dir`.
    pub kernel_source_dir: &'a str,
    pub config: &'a KernelConfig,
}

/// One `BUILT_MODULE_NAME[n]` record, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedModule {
    /// `BUILT_MODULE_LOCATION[n]`, relative to the build directory, ending
    /// in `/` (or empty).
    pub location: String,
    pub built_name: String,
    /// `DEST_MODULE_LOCATION[n]`: `/kernel…`, `/updates…` or `/extra…`.
    pub dest_location: String,
    pub dest_name: String,
    pub strip: bool,
}

impl PlannedModule {
    /// Where it goes in `lib/modules/<kver>/`.
    pub fn place(&self) -> String {
        let dir = self.dest_location.trim_matches('/');
        format!("{dir}/{}.ko", self.dest_name)
    }
}

/// What the build container does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkmsPlan {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The make command dkms chose, before it puts `-jN KERNELRELEASE=`
    /// after the leading `make` (the build script does, with the
    /// container's CPU count).
    pub make: String,
    pub clean: String,
    pub pre_build: String,
    pub post_build: String,
    pub patches: Vec<String>,
    pub modules: Vec<PlannedModule>,
}

impl DkmsPlan {
    pub fn new(conf: &DkmsConf, target: &Target) -> Result<Self, DkmsError> {
        let mut problems = Vec::new();
        let name = conf.scalar("PACKAGE_NAME").unwrap_or_default().to_string();
        let version = conf
            .scalar("PACKAGE_VERSION")
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            problems.push("No 'PACKAGE_NAME' directive specified.".to_string());
        } else if !is_file_name(&name) {
            problems.push(format!("PACKAGE_NAME \"{name}\" is not a file name."));
        }
        if version.is_empty() {
            problems.push("No 'PACKAGE_VERSION' directive specified.".to_string());
        } else if !is_file_name(&version) {
            problems.push(format!("PACKAGE_VERSION \"{version}\" is not a file name."));
        }
        let modules = modules(conf, &name, &mut problems);
        if modules.is_empty() && problems.is_empty() {
            problems.push("No 'DEST_MODULE_LOCATION' directive specified.".to_string());
        }
        for directive in [
            "MAKE_MATCH",
            "PATCH_MATCH",
            "BUILD_EXCLUSIVE_KERNEL",
            "BUILD_EXCLUSIVE_ARCH",
        ] {
            for i in conf.indices(directive) {
                if conf.matched(directive, i) == Some(None) {
                    problems.push(format!(
                        "{directive}{} \"{}\" is not a regular expression bash accepts.",
                        index_suffix(conf, directive, i),
                        conf.get(directive, i).unwrap_or_default()
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(DkmsError::Invalid { problems });
        }

        let excluded = exclusions(conf, target);
        if !excluded.is_empty() {
            return Err(DkmsError::Excluded {
                package: name,
                release: target.release.to_string(),
                conditions: excluded,
            });
        }

        let build_dir = format!("{DKMS_TREE}/{name}/{version}/build");
        let default_make = format!("make -C {} M={build_dir}", target.kernel_source_dir);
        let mut make = make_command(conf).unwrap_or(default_make.clone());
        if target.config.is_set("CC_IS_CLANG") {
            make.push_str(" CC=clang");
        }
        if target.config.is_set("LD_IS_LLD") {
            make.push_str(" LD=ld.lld");
        }
        let clean = conf
            .scalar("CLEAN")
            .map_or_else(|| format!("{default_make} clean"), str::to_string);
        let patches = (0..conf.count("PATCH"))
            .filter_map(|i| {
                let patch = conf.get("PATCH", i)?;
                let applies = conf.get("PATCH_MATCH", i).is_none()
                    || conf.matched("PATCH_MATCH", i) == Some(Some(true));
                applies.then(|| patch.to_string())
            })
            .collect();
        Ok(DkmsPlan {
            name,
            version,
            arch: target.arch.to_string(),
            make,
            clean,
            pre_build: conf.scalar("PRE_BUILD").unwrap_or_default().to_string(),
            post_build: conf.scalar("POST_BUILD").unwrap_or_default().to_string(),
            patches,
            modules,
        })
    }

    /// The plan files the build script reads (`/usr/local/dmb/dkms/`).
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let modules: String = self
            .modules
            .iter()
            .map(|m| {
                format!(
                    "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\n",
                    m.location,
                    m.built_name,
                    m.dest_location,
                    m.dest_name,
                    if m.strip { "yes" } else { "no" }
                )
            })
            .collect();
        let patches: String = self.patches.iter().map(|p| format!("{p}\n")).collect();
        vec![
            ("name", self.name.clone()),
            ("version", self.version.clone()),
            ("arch", self.arch.clone()),
            ("make", self.make.clone()),
            ("clean", self.clean.clone()),
            ("pre_build", self.pre_build.clone()),
            ("post_build", self.post_build.clone()),
            ("patches", patches),
            ("modules", modules),
        ]
    }
}

/// read_conf's module records: as many as the longest of the four arrays.
fn modules(conf: &DkmsConf, package: &str, problems: &mut Vec<String>) -> Vec<PlannedModule> {
    let size = [
        "BUILT_MODULE_NAME",
        "BUILT_MODULE_LOCATION",
        "DEST_MODULE_NAME",
        "DEST_MODULE_LOCATION",
    ]
    .iter()
    .map(|a| conf.count(a))
    .max()
    .unwrap_or(0);
    let strip_default = !matches!(
        conf.get("STRIP", 0).and_then(|s| s.chars().next()),
        Some('n' | 'N')
    );
    let mut out = Vec::new();
    for i in 0..size {
        let mut built_name = conf.get("BUILT_MODULE_NAME", i).map(str::to_string);
        if built_name.is_none() && conf.count("DEST_MODULE_LOCATION") == 1 {
            built_name = Some(package.to_string());
        }
        let Some(built_name) = built_name.filter(|n| !n.is_empty()) else {
            problems.push(format!(
                "No 'BUILT_MODULE_NAME' directive specified for record #{i}."
            ));
            continue;
        };
        let dest_name = conf
            .get("DEST_MODULE_NAME", i)
            .unwrap_or(&built_name)
            .to_string();
        for (directive, value) in [
            ("BUILT_MODULE_NAME", &built_name),
            ("DEST_MODULE_NAME", &dest_name),
        ] {
            if value.ends_with(".o") || value.ends_with(".ko") {
                problems.push(format!(
                    "'{directive}' directive ends in '.o' or '.ko' in record #{i}."
                ));
            } else if !is_file_name(value) {
                problems.push(format!("{directive}[{i}] \"{value}\" is not a file name."));
            }
        }
        let mut location = conf
            .get("BUILT_MODULE_LOCATION", i)
            .unwrap_or_default()
            .to_string();
        if !location.is_empty() && !location.ends_with('/') {
            location.push('/');
        }
        if location.chars().any(|c| c.is_control()) {
            problems.push(format!(
                "BUILT_MODULE_LOCATION[{i}] holds a control character."
            ));
        }
        let dest_location = conf
            .get("DEST_MODULE_LOCATION", i)
            .unwrap_or_default()
            .to_string();
        if dest_location.is_empty() {
            problems.push(format!(
                "No 'DEST_MODULE_LOCATION' directive specified for record #{i}."
            ));
        } else if !["/kernel", "/updates", "/extra"]
            .iter()
            .any(|p| dest_location.starts_with(p))
        {
            problems.push(format!(
                "Directive 'DEST_MODULE_LOCATION' does not begin with '/kernel', '/updates', or '/extra' in record #{i}."
            ));
        } else if dest_location.split('/').any(|c| c == "..")
            || dest_location.chars().any(|c| c.is_control())
        {
            problems.push(format!(
                "DEST_MODULE_LOCATION[{i}] \"{dest_location}\" leaves the module tree."
            ));
        }
        let strip = match conf.get("STRIP", i).and_then(|s| s.chars().next()) {
            Some('n' | 'N') => false,
            Some('y' | 'Y') => true,
            _ => strip_default,
        };
        out.push(PlannedModule {
            location,
            built_name,
            dest_location,
            dest_name,
            strip,
        });
    }
    out
}

/// dkms: MAKE[0] unless MAKE_MATCH[0] is set; then the last MAKE[n] whose
/// MAKE_MATCH[n] matches the kernel release.
fn make_command(conf: &DkmsConf) -> Option<String> {
    let mut chosen = match conf.get("MAKE_MATCH", 0) {
        None => conf.get("MAKE", 0).map(str::to_string),
        Some(_) => None,
    };
    for i in 0..conf.count("MAKE") {
        if let (Some(make), Some(_)) = (conf.get("MAKE", i), conf.get("MAKE_MATCH", i)) {
            if conf.matched("MAKE_MATCH", i) == Some(Some(true)) {
                chosen = Some(make.to_string());
            }
        }
    }
    chosen
}

/// Every `BUILD_EXCLUSIVE_*` condition the target fails, in dkms's terms.
fn exclusions(conf: &DkmsConf, target: &Target) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(regex) = conf.scalar("BUILD_EXCLUSIVE_KERNEL") {
        if conf.matched("BUILD_EXCLUSIVE_KERNEL", 0) == Some(Some(false)) {
            out.push(format!(
                "BUILD_EXCLUSIVE_KERNEL=\"{regex}\": kernel {} does not match",
                target.release
            ));
        }
    }
    if let Some(min) = conf.scalar("BUILD_EXCLUSIVE_KERNEL_MIN") {
        if compare_versions(target.release, min) == Ordering::Less {
            out.push(format!(
                "BUILD_EXCLUSIVE_KERNEL_MIN=\"{min}\": kernel {} is older",
                target.release
            ));
        }
    }
    if let Some(max) = conf.scalar("BUILD_EXCLUSIVE_KERNEL_MAX") {
        if compare_versions(target.release, max) == Ordering::Greater {
            out.push(format!(
                "BUILD_EXCLUSIVE_KERNEL_MAX=\"{max}\": kernel {} is newer",
                target.release
            ));
        }
    }
    if let Some(regex) = conf.scalar("BUILD_EXCLUSIVE_ARCH") {
        if conf.matched("BUILD_EXCLUSIVE_ARCH", 0) == Some(Some(false)) {
            out.push(format!(
                "BUILD_EXCLUSIVE_ARCH=\"{regex}\": arch {} does not match",
                target.arch
            ));
        }
    }
    if let Some(list) = conf.scalar("BUILD_EXCLUSIVE_CONFIG") {
        for word in list.split_whitespace() {
            let (negated, option) = match word.strip_prefix('!') {
                Some(o) => (true, o),
                None => (false, word),
            };
            let symbol = option.strip_prefix("CONFIG_").unwrap_or(option);
            let on = matches!(target.config.get(symbol), Some("y" | "m"));
            if on == negated {
                out.push(format!(
                    "BUILD_EXCLUSIVE_CONFIG=\"{list}\": {option} is {} in the kernel's configuration",
                    if on { "set" } else { "not set" }
                ));
            }
        }
    }
    out
}

/// `sort -V`'s order, as dkms compares kernel versions: digit runs by
/// value, everything else by character.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (na, ra) = digits(a);
                let (nb, rb) = digits(b);
                let by_value = na
                    .trim_start_matches('0')
                    .len()
                    .cmp(&nb.trim_start_matches('0').len())
                    .then_with(|| na.trim_start_matches('0').cmp(nb.trim_start_matches('0')));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                // A separator sorts before a letter, as in `6.1` < `6.1a`.
                let rank = |c: u8| (c.is_ascii_alphabetic(), c);
                match rank(*x).cmp(&rank(*y)) {
                    Ordering::Equal => (a, b) = (&a[1..], &b[1..]),
                    other => return other,
                }
            }
        }
    }
}

fn digits(s: &[u8]) -> (&str, &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    (std::str::from_utf8(&s[..n]).unwrap_or(""), &s[n..])
}

/// A name dmb writes into a path, a plan line and a Dockerfile's COPY:
/// the characters package names and versions use, nothing a shell or a
/// Dockerfile would read.
fn is_file_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+~-".contains(c))
}

fn index_suffix(conf: &DkmsConf, directive: &str, i: usize) -> String {
    if conf.count(directive) > 1 || i > 0 {
        format!("[{i}]")
    } else {
        String::new()
    }
}

/// `uname -m` on a kernel with this configuration, as dkms's `$arch`.
pub fn machine(config: &KernelConfig) -> &'static str {
    if config.is_set("X86_64") {
        "x86_64"
    } else if config.is_set("X86_32") || config.is_set("X86") {
        "i686"
    } else if config.is_set("ARM64") {
        "aarch64"
    } else if config.is_set("ARM") {
        "armv7l"
    } else if config.is_set("RISCV") {
        "riscv64"
    } else if config.is_set("PPC64") {
        "ppc64le"
    } else if config.is_set("S390") {
        "s390x"
    } else {
        "x86_64"
    }
}

#[cfg(test)]
mod tests;
