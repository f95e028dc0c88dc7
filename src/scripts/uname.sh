#!/bin/sh
# dmb: uname for a build container; the release is the target kernel's
# ($KVER), so that Makefiles using $(shell uname -r) build for the target,
# not for the engine's kernel. Everything else comes from the real uname.
for real in /usr/bin/uname /bin/uname; do [ -x "$real" ] && break; done
if [ "$#" -eq 1 ] && { [ "$1" = "-r" ] || [ "$1" = "--kernel-release" ]; }; then
  printf '%s\n' "$KVER"
  exit 0
fi
out=$("$real" "$@") || exit $?
rel=$("$real" -r)
case $out in
  *"$rel"*) printf '%s\n' "${out%%"$rel"*}$KVER${out#*"$rel"}" ;;
  *) printf '%s\n' "$out" ;;
esac
