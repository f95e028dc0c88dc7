//! Every shell script dmb runs in a container, as a file of its own next to
//! this one (so that shellcheck reads them as scripts), and the one line
//! protocol they speak.
//!
//! The scripts are fixed: their input is data (files, positional
//! parameters), never code. What dmb reads back are *records*, lines of the
//! form `@@dmb:VERB ARGS…`; every other line is plain text, which belongs to
//! the last `@@dmb:section NAME` record when there is one. A record must
//! start its line in a container's own output; in a build log (where
//! BuildKit puts a step number and a time in front of each line) it may
//! stand anywhere in the line. The prefix appears in no Dockerfile, so a
//! build log that echoes instructions cannot fake one.

use std::collections::BTreeMap;

/// What every record starts with.
pub const RECORD: &str = "@@dmb:";

/// What the kernel and its VM say (`$1`: `all` or `loaded`); sections.
pub const PROBE: &str = include_str!("probe.sh");
/// Whether an image has the tools of the probe and the loader: `lacks`
/// records.
pub const PROBE_NEEDS: &str = include_str!("probe_needs.sh");
/// The capability bounding set of the engine host's PID 1 (`--pid=host`):
/// `capbnd`, `cap_last` records.
pub const ENGINE_CAPS: &str = include_str!("engine_caps.sh");
/// The header trees of a build environment: `tree`, `has` records.
pub const TREE_LISTING: &str = include_str!("tree_listing.sh");
/// The tools and package manager of a builder image: `tool`, `pm` records.
pub const TOOLCHAIN: &str = include_str!("toolchain.sh");
/// `uname` in a build container, reporting the target release.
pub const UNAME: &str = include_str!("uname.sh");
/// make in a build container, and gathering the `.ko` files.
pub const BUILD: &str = include_str!("build.sh");
/// Read after a module's Makefile: its own targets run one at a time,
/// recursive makes (kbuild) with -j.
pub const SERIAL_MK: &str = include_str!("serial.mk");
/// Unpacks `kernel-dev.tar` (`$1`) at / of a build environment.
pub const BUILDENV_UNPACK: &str = include_str!("buildenv_unpack.sh");
/// Brings a kept build directory up to date with the module's sources,
/// copying only what changed (`$1` from, `$2` to, `$3` manifest).
pub const SYNC_SOURCES: &str = include_str!("sync_sources.sh");
/// Inserts the modules of a loader's `/dmb` (`$1`: `once` or `boot`).
pub const LOAD: &str = include_str!("load.sh");
/// Holds dmb's module lock for `$1` seconds at most.
pub const LEASE: &str = include_str!("lease.sh");
/// Removes the modules named as parameters.
pub const UNLOAD: &str = include_str!("unload.sh");
/// The kernel's log.
pub const DMESG: &str = include_str!("dmesg.sh");
/// A tar stream of the VM's files named as parameters.
pub const VM_FILES: &str = include_str!("vm_files.sh");
/// A tar stream of the VM's installed modules.
pub const INSTALLED_MODULES: &str = include_str!("installed_modules.sh");
/// Unpacks a kernel image's source into a build environment.
pub const KERNEL_SOURCE: &str = include_str!("kernel_source.sh");
/// `olddefconfig` over a configuration: the `config` section.
pub const KERNEL_CONFIG: &str = include_str!("kernel_config.sh");
/// `modules_prepare` in the source tree, for the running kernel's release.
pub const KERNEL_PREPARE: &str = include_str!("kernel_prepare.sh");
/// `make M=` over groups of in-tree modules: the build script's records.
pub const IN_TREE_BUILD: &str = include_str!("in_tree_build.sh");
/// genksyms' CRCs of exported symbols: `crc`, `unfound`, `failed` records.
pub const KERNEL_CRCS: &str = include_str!("kernel_crcs.sh");
/// depmod's index of the modules in `/dmb/ko`.
pub const DEPMOD: &str = include_str!("depmod.sh");
/// The kernel's export list and BTF, for a snapshot.
pub const SNAPSHOT: &str = include_str!("snapshot.sh");
/// Unpacks (and patches) the source of a kernel to synthesize.
pub const SYNTH_SOURCE: &str = include_str!("synth_source.sh");
/// The LinuxKit layout of a synthesized kernel image.
pub const SYNTH_PACK: &str = include_str!("synth_pack.sh");
/// Starts reading a DKMS package's dkms.conf: `no-bash` when it cannot.
pub const DKMS_READ: &str = include_str!("dkms_read.sh");
/// Sources dkms.conf as dkms does: `var`, `match`, `conf-failed` records.
pub const DKMS_CONF: &str = include_str!("dkms_conf.sh");
/// Builds a DKMS package from dmb's plan: the build script's records and
/// `missing`, `patch-missing`, `patch-failed`.
pub const DKMS_BUILD: &str = include_str!("dkms_build.sh");

/// One `@@dmb:VERB ARGS…` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub verb: &'a str,
    /// Everything after the verb, trimmed.
    pub args: &'a str,
}

impl<'a> Record<'a> {
    /// A record that starts `line` (a container's own output).
    pub fn parse(line: &'a str) -> Option<Self> {
        Self::after_prefix(line.trim().strip_prefix(RECORD)?)
    }

    /// A record anywhere in `line` (a build log's line, prefixed by BuildKit).
    pub fn find(line: &'a str) -> Option<Self> {
        let at = line.find(RECORD)?;
        Self::after_prefix(line[at + RECORD.len()..].trim())
    }

    fn after_prefix(rest: &'a str) -> Option<Self> {
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        (!verb.is_empty()).then(|| Record {
            verb,
            args: args.trim(),
        })
    }

    /// The `i`-th whitespace-separated argument, or "".
    pub fn arg(&self, i: usize) -> &'a str {
        self.args.split_whitespace().nth(i).unwrap_or("")
    }

    /// The first argument and the rest of the line after it (a message).
    pub fn first_and_rest(&self) -> (&'a str, &'a str) {
        let (first, rest) = self.args.split_once(' ').unwrap_or((self.args, ""));
        (first, rest.trim())
    }
}

/// The records of a container's output, in order.
pub fn records(output: &str) -> impl Iterator<Item = Record<'_>> {
    output.lines().filter_map(Record::parse)
}

/// The text of each `@@dmb:section NAME` of an output, by name; lines
/// before the first section belong to none.
pub fn sections(output: &str) -> BTreeMap<String, String> {
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<&mut String> = None;
    for line in output.lines() {
        match Record::parse(line) {
            Some(r) if r.verb == "section" => {
                current = Some(sections.entry(r.args.to_string()).or_default());
            }
            _ => {
                if let Some(text) = current.as_deref_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_start_a_line_in_output_and_stand_anywhere_in_logs() {
        assert_eq!(
            Record::parse("@@dmb:failed dmb_second insmod: can't insert: No such device"),
            Some(Record {
                verb: "failed",
                args: "dmb_second insmod: can't insert: No such device"
            })
        );
        let r = Record::parse(" @@dmb:failed m  words  here ").unwrap();
        assert_eq!(r.first_and_rest(), ("m", "words  here"));
        assert_eq!(Record::parse("@@dmb:done").unwrap().args, "");
        assert_eq!(Record::parse("text @@dmb:ko x.ko"), None);
        assert_eq!(Record::parse("@@dmb:"), None);
        let log = Record::find("#9 3.217 @@dmb:make-failed 2").unwrap();
        assert_eq!((log.verb, log.arg(0)), ("make-failed", "2"));
        assert_eq!(log.arg(5), "");
    }

    #[test]
    fn sections_split() {
        let s = sections("noise\n@@dmb:section release\n6.1.0-56-amd64\n@@dmb:section loaded\nsctp\noverlay\n@@dmb:section config:/boot/config-6.1.0-56-amd64\nCONFIG_SMP=y\n@@dmb:section empty\n");
        assert_eq!(s["release"], "6.1.0-56-amd64\n");
        assert_eq!(s["loaded"], "sctp\noverlay\n");
        assert_eq!(s["config:/boot/config-6.1.0-56-amd64"], "CONFIG_SMP=y\n");
        assert_eq!(s["empty"], "");
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn every_script_is_a_shell_script_that_speaks_the_protocol() {
        for script in [
            PROBE,
            TREE_LISTING,
            TOOLCHAIN,
            UNAME,
            BUILD,
            SYNC_SOURCES,
            BUILDENV_UNPACK,
            LOAD,
            UNLOAD,
            DMESG,
            VM_FILES,
            INSTALLED_MODULES,
            KERNEL_SOURCE,
            KERNEL_CONFIG,
            KERNEL_PREPARE,
            IN_TREE_BUILD,
            KERNEL_CRCS,
            DEPMOD,
            SNAPSHOT,
            SYNTH_SOURCE,
            SYNTH_PACK,
            PROBE_NEEDS,
        ] {
            assert!(script.starts_with("#!/bin/sh\n"), "{script}");
            // Only the one dialect: no record prefix other than RECORD.
            assert!(!script.contains("@@dmb-"), "{script}");
        }
    }
}
