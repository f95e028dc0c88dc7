#!/usr/bin/env bash
# Sources a DKMS package's dkms.conf as dkms's read_conf does, with dkms's
# variables set for the target kernel, and prints what it set:
#   @@dmb:var NAME INDEX HEX     one element of a dkms.conf variable (INDEX
#                                of an array; a scalar is index 0), its
#                                value hex-encoded (values may hold newlines)
#   @@dmb:match NAME INDEX yes|no|bad   bash's own `=~` of the kernel release
#                                (the arch for BUILD_EXCLUSIVE_ARCH) against
#                                that regex, as dkms tests it
#   @@dmb:conf-failed REASON     syntax (bash -n) or exited (the fragment
#                                ended the shell); its messages follow in the
#                                `error` section
# The fragment's own output goes to stderr, so that it cannot forge records.
# $1 kernelver, $2 kernel_source_dir, $3 arch. The package is /dmb/package.
set -u
__dmb_dkms_vars="PACKAGE_NAME PACKAGE_VERSION MAKE MAKE_MATCH CLEAN
  BUILT_MODULE_NAME BUILT_MODULE_LOCATION DEST_MODULE_NAME DEST_MODULE_LOCATION
  STRIP PATCH PATCH_MATCH PRE_BUILD POST_BUILD PRE_INSTALL POST_INSTALL
  POST_ADD POST_REMOVE BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_KERNEL_MIN
  BUILD_EXCLUSIVE_KERNEL_MAX BUILD_EXCLUSIVE_ARCH BUILD_EXCLUSIVE_CONFIG
  AUTOINSTALL BUILD_DEPENDS OBSOLETE_BY REMAKE_INITRD MODULES_CONF
  NO_WEAK_MODULES"

__dmb_hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

__dmb_emit() {
  local name=$1 i
  declare -p "$name" >/dev/null 2>&1 || return 0
  local -n __dmb_ref=$name
  for i in "${!__dmb_ref[@]}"; do
    echo "@@dmb:var $name $i $(__dmb_hex "${__dmb_ref[$i]}")"
  done
}

__dmb_match() {
  local name=$1 subject=$2 i regex rc
  declare -p "$name" >/dev/null 2>&1 || return 0
  local -n __dmb_ref=$name
  for i in "${!__dmb_ref[@]}"; do
    regex=${__dmb_ref[$i]}
    [ -n "$regex" ] || continue
    [[ $subject =~ $regex ]]
    rc=$?
    case $rc in
      0) echo "@@dmb:match $name $i yes" ;;
      1) echo "@@dmb:match $name $i no" ;;
      *) echo "@@dmb:match $name $i bad" ;;
    esac
  done
}

cd /dmb/package || exit 3
if ! __dmb_err=$(bash -n ./dkms.conf 2>&1); then
  echo "@@dmb:conf-failed syntax"
  echo "@@dmb:section error"
  printf '%s\n' "$__dmb_err"
  exit 4
fi

# dkms's own variables, as dkms sets them before it reads dkms.conf.
# shellcheck disable=SC2034
{
  kernelver=$1
  kernel_source_dir=$2
  arch=$3
  dkms_tree=/var/lib/dkms
  source_tree=/usr/src
  install_tree=/lib/modules
}
for __dmb_v in $__dmb_dkms_vars; do unset "$__dmb_v"; done

# A subshell, as dkms's safe_source: whatever the fragment does stays there.
(
  # dkms runs without -u: fragments test unset CONFIG_ variables freely.
  set +u
  # shellcheck disable=SC1091
  . ./dkms.conf >&2
  echo "@@dmb:sourced"
  for __dmb_v in $__dmb_dkms_vars; do __dmb_emit "$__dmb_v"; done
  __dmb_match MAKE_MATCH "$kernelver"
  __dmb_match PATCH_MATCH "$kernelver"
  __dmb_match BUILD_EXCLUSIVE_KERNEL "$kernelver"
  __dmb_match BUILD_EXCLUSIVE_ARCH "$arch"
) > /tmp/dmb-conf.out 2> /tmp/dmb-conf.err
if ! grep -q '^@@dmb:sourced$' /tmp/dmb-conf.out; then
  echo "@@dmb:conf-failed exited"
  echo "@@dmb:section error"
  tail -n 20 /tmp/dmb-conf.err
  exit 4
fi
grep '^@@dmb:' /tmp/dmb-conf.out | grep -v '^@@dmb:sourced$'
exit 0
