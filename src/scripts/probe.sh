#!/bin/sh
# What the kernel and its VM say about themselves. Run in the VM's mount
# namespace where allowed, so that /etc/linuxkit.yml, /boot and /lib/modules
# are the VM's; else in an ordinary container (then only /proc is the VM's).
#
# $1 is `all` (everything detection wants) or `loaded` (the release and the
# loaded modules only: all that unload and status need, and no privilege).
# Output: `@@dmb:section NAME` before each part, the part's lines after it.
section() { echo "@@dmb:section $1"; }
r=$(uname -r)
section release; echo "$r"
if [ "${1:-all}" = all ]; then
  section stamp; uname -v
  section machine; uname -m
  section proc_version; cat /proc/version
  section boot_id; cat /proc/sys/kernel/random/boot_id 2>/dev/null
  if [ -r /proc/config.gz ]; then
    section config:/proc/config.gz; zcat /proc/config.gz 2>/dev/null || gzip -dc /proc/config.gz
  elif [ -r "/boot/config-$r" ]; then
    section "config:/boot/config-$r"; cat "/boot/config-$r"
  fi
  if [ -r /etc/linuxkit.yml ]; then section linuxkit_yml; cat /etc/linuxkit.yml; fi
  if [ -r "/lib/modules/$r/modules.builtin" ]; then section builtin; cat "/lib/modules/$r/modules.builtin"; fi
  if [ -d "/lib/modules/$r" ]; then section on_disk; find "/lib/modules/$r" -name '*.ko*' 2>/dev/null; fi
  # What other names modules answer to (`alias crc32c crc32c_generic`),
  # for soft dependencies; device aliases (with `:` or `*`) are no use here.
  if [ -r "/lib/modules/$r/modules.alias" ]; then
    section aliases; grep -v -e ':' -e '[*]' "/lib/modules/$r/modules.alias"
  fi
  if [ -r "/lib/modules/$r/modules.builtin.modinfo" ]; then
    section builtin_aliases; tr '\000' '\n' < "/lib/modules/$r/modules.builtin.modinfo" | grep '[.]alias='
  fi
fi
# /proc/modules, then which build of each loadable module is loaded: its
# srcversion and its build-ID note (`-` for what it lacks).
section proc_modules; cat /proc/modules
section loaded_builds
for d in /sys/module/*; do
  [ -e "$d/initstate" ] || continue
  v=$(cat "$d/srcversion" 2>/dev/null)
  b=$(od -An -v -tx1 "$d/notes/.note.gnu.build-id" 2>/dev/null | tr -d ' \n')
  echo "${d##*/} ${v:--} ${b:--}"
done
exit 0
