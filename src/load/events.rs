//! What the load and unload scripts ([`crate::scripts::LOAD`],
//! [`crate::scripts::UNLOAD`]) report about each module.

use crate::scripts::{self, Record};

/// What a load or unload script reported about one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Loaded(String),
    /// Already loaded, the same build (or one that cannot be told apart).
    Present(String),
    /// Already loaded, another build.
    Conflict(String),
    /// The kernel refused it; the words of insmod/rmmod.
    Failed {
        module: String,
        message: String,
    },
    Unloaded(String),
    /// Rolled back, but the kernel would not unload it.
    Stuck(String),
    /// A kept loader found another kernel: (running, built for).
    WrongKernel {
        running: String,
        wanted: String,
    },
    Done,
}

impl Event {
    pub fn of(record: Record) -> Option<Event> {
        let first = || record.arg(0).to_string();
        Some(match record.verb {
            "loaded" => Event::Loaded(first()),
            "present" => Event::Present(first()),
            "conflict" => Event::Conflict(first()),
            "unloaded" => Event::Unloaded(first()),
            "stuck" => Event::Stuck(first()),
            "done" => Event::Done,
            "failed" => {
                let (module, message) = record.first_and_rest();
                Event::Failed {
                    module: module.to_string(),
                    message: message.to_string(),
                }
            }
            "wrong-kernel" => Event::WrongKernel {
                running: record.arg(0).to_string(),
                wanted: record.arg(1).to_string(),
            },
            _ => return None,
        })
    }

    pub fn parse_all(output: &str) -> Vec<Event> {
        scripts::records(output).filter_map(Event::of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        let out = "noise\n@@dmb:loaded dmb_provider\n@@dmb:failed dmb_second insmod: can't insert '/dmb/dmb_second.ko': No such device\n@@dmb:unloaded dmb_provider\n@@dmb:wrong-kernel 6.1.0-57-amd64 6.1.0-56-amd64\n@@dmb:done\n";
        assert_eq!(
            Event::parse_all(out),
            [
                Event::Loaded("dmb_provider".into()),
                Event::Failed {
                    module: "dmb_second".into(),
                    message: "insmod: can't insert '/dmb/dmb_second.ko': No such device".into()
                },
                Event::Unloaded("dmb_provider".into()),
                Event::WrongKernel {
                    running: "6.1.0-57-amd64".into(),
                    wanted: "6.1.0-56-amd64".into()
                },
                Event::Done,
            ]
        );
        assert_eq!(Event::parse_all("@@dmb:unknown x"), []);
    }
}
