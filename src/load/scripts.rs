//! The fixed shell scripts dmb runs in containers to load and unload
//! modules. Their input is data (files in `/dmb`, positional parameters),
//! never code; their output is `@@dmb:` lines that [`Event::parse`] reads.

/// Where a loader container keeps its modules and their list.
pub const LOADER_DIR: &str = "/dmb";

/// Loads the modules `/dmb/load.list` names, in its order. Each line is
/// `NAME<TAB>FILE<TAB>NOTE<TAB>SRCVERSION` (`-` for what is unknown);
/// `/dmb/NAME.params` holds one parameter per line. A module that is
/// already loaded is left alone when it is the same build (build-ID note,
/// else srcversion) and a conflict otherwise. When one fails, those this
/// run loaded are unloaded again, last first.
///
/// `$1` is `once` (exit with the outcome) or `boot` (what a kept loader
/// runs at every engine start: first make sure the kernel is still the one
/// the modules were built for, then stay up so that `--restart=always` does
/// not run it again and again). Needs CAP_SYS_MODULE and nothing else.
pub const LOAD_SCRIPT: &str = r#"mode=$1
d=/dmb
tab=$(printf '\t')
say() { echo "@@dmb:$*"; }
stay() { trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done; }
if [ "$mode" = boot ]; then
  want=$(cat "$d/release"); have=$(uname -r)
  if [ "$have" != "$want" ]; then say wrong-kernel "$have" "$want"; stay; fi
fi
inserted=""
failed=""
while IFS="$tab" read -r name file note src; do
  [ -n "$name" ] || continue
  if [ -e "/sys/module/$name/initstate" ]; then
    have_note=$(od -An -v -tx1 "/sys/module/$name/notes/.note.gnu.build-id" 2>/dev/null | tr -d ' \n')
    have_src=$(cat "/sys/module/$name/srcversion" 2>/dev/null)
    if [ "$note" != - ] && [ -n "$have_note" ] && [ "$note" != "$have_note" ]; then
      say conflict "$name"; failed=$name; break
    elif [ "$note" = - ] && [ "$src" != - ] && [ -n "$have_src" ] && [ "$src" != "$have_src" ]; then
      say conflict "$name"; failed=$name; break
    fi
    say present "$name"
    continue
  fi
  set --
  if [ -f "$d/$name.params" ]; then
    while IFS= read -r p; do set -- "$@" "$p"; done < "$d/$name.params"
  fi
  if out=$(insmod "$d/$file" "$@" 2>&1); then
    inserted="$name $inserted"
    say loaded "$name"
  else
    say failed "$name" $out
    failed=$name
    break
  fi
done < "$d/load.list"
if [ -n "$failed" ]; then
  for m in $inserted; do
    if rmmod "$m" 2>/dev/null; then say unloaded "$m"; else say stuck "$m"; fi
  done
fi
if [ "$mode" = boot ]; then say done; stay; fi
[ -z "$failed" ]"#;

/// Unloads the modules named as positional parameters, in that order; stops
/// at the first the kernel refuses. Needs CAP_SYS_MODULE and nothing else.
pub const UNLOAD_SCRIPT: &str = r#"say() { echo "@@dmb:$*"; }
for m in "$@"; do
  if out=$(rmmod "$m" 2>&1); then say unloaded "$m"; else say failed "$m" $out; exit 1; fi
done"#;

/// The kernel's log, for its own words on a module that failed to load.
/// Needs CAP_SYSLOG (the default seccomp profile allows syslog(2) with it).
pub const DMESG_SCRIPT: &str = "dmesg | tail -n 400";

/// A tar stream of the VM's files named as positional parameters (paths
/// relative to /). Run in the VM's mount namespace.
pub const VM_FILES_SCRIPT: &str = r#"cd / && exec tar -cf - -- "$@""#;

/// A tar stream of every module file the VM has for its running kernel.
/// Run in the VM's mount namespace.
pub const INSTALLED_MODULES_SCRIPT: &str = r#"cd "/lib/modules/$(uname -r)" || exit 3
find . -type f -name '*.ko*' | tar -cf - -T -"#;

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
    pub fn parse(line: &str) -> Option<Event> {
        let rest = line.trim().strip_prefix("@@dmb:")?;
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let args = args.trim();
        let first = || args.split_whitespace().next().unwrap_or("").to_string();
        Some(match verb {
            "loaded" => Event::Loaded(first()),
            "present" => Event::Present(first()),
            "conflict" => Event::Conflict(first()),
            "unloaded" => Event::Unloaded(first()),
            "stuck" => Event::Stuck(first()),
            "done" => Event::Done,
            "failed" => {
                let (module, message) = args.split_once(' ').unwrap_or((args, ""));
                Event::Failed {
                    module: module.to_string(),
                    message: message.trim().to_string(),
                }
            }
            "wrong-kernel" => {
                let mut f = args.split_whitespace();
                Event::WrongKernel {
                    running: f.next().unwrap_or("").to_string(),
                    wanted: f.next().unwrap_or("").to_string(),
                }
            }
            _ => return None,
        })
    }

    pub fn parse_all(output: &str) -> Vec<Event> {
        output.lines().filter_map(Event::parse).collect()
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
        assert_eq!(Event::parse("@@dmb:unknown x"), None);
    }
}
