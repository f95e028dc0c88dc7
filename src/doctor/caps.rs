//! Linux capabilities by number (`include/uapi/linux/capability.h`), and
//! what a bounding set says a container can be given.

/// The names the kernel gives capabilities 0…40.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const SYS_MODULE: u32 = 16;
pub const SYS_PTRACE: u32 = 19;
pub const SYS_ADMIN: u32 = 21;

/// The capabilities the engine's host can hand out: the bounding set of
/// its PID 1 (every process it starts, the engine among them, has at most
/// these), and the highest one its kernel knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HostCaps {
    pub bounding_set: u64,
    pub last: u32,
}

impl HostCaps {
    /// From `@@dmb:capbnd HEX` and `@@dmb:cap_last N` (`engine_caps.sh`).
    pub fn parse(output: &str) -> Option<HostCaps> {
        let mut bound = None;
        let mut last = None;
        for r in crate::scripts::records(output) {
            match r.verb {
                "capbnd" => bound = u64::from_str_radix(r.args, 16).ok(),
                "cap_last" => last = r.args.parse().ok(),
                _ => {}
            }
        }
        Some(HostCaps {
            bounding_set: bound?,
            last: last?,
        })
    }

    pub fn has(&self, cap: u32) -> bool {
        cap < 64 && self.bounding_set & (1 << cap) != 0
    }

    /// What the kernel knows and the host withholds. A privileged container
    /// asks for every capability the kernel knows, and the runtime fails to
    /// grant one outside the bounding set: so a privileged container can
    /// only start when this is empty.
    pub fn withheld(&self) -> Vec<String> {
        (0..=self.last.min(63))
            .filter(|&c| !self.has(c))
            .map(name)
            .collect()
    }
}

pub fn name(cap: u32) -> String {
    NAMES
        .get(cap as usize)
        .map_or_else(|| format!("capability {cap}"), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machines_host_withholds_sys_resource() {
        // Read off the machine dmb is developed on.
        let caps = HostCaps::parse("@@dmb:capbnd 000001fffeffffff\n@@dmb:cap_last 40\n").unwrap();
        assert_eq!(caps.withheld(), ["CAP_SYS_RESOURCE"]);
        assert!(caps.has(SYS_MODULE));
    }

    #[test]
    fn a_full_set_withholds_nothing() {
        let caps = HostCaps::parse("@@dmb:capbnd 000001ffffffffff\n@@dmb:cap_last 40\n").unwrap();
        assert!(caps.withheld().is_empty());
        let no_module = HostCaps {
            bounding_set: 0x1ff_ffff_ffff & !(1 << SYS_MODULE),
            last: 40,
        };
        assert_eq!(no_module.withheld(), ["CAP_SYS_MODULE"]);
        assert!(!no_module.has(SYS_MODULE));
    }

    #[test]
    fn what_is_not_a_record_is_nothing() {
        assert_eq!(HostCaps::parse("CapBnd: 01\n"), None);
        assert_eq!(
            HostCaps::parse("@@dmb:capbnd zz\n@@dmb:cap_last 40\n"),
            None
        );
    }
}
