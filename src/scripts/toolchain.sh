#!/bin/sh
# The build tools and the package manager of a builder image:
# `@@dmb:tool NAME`, `@@dmb:header NAME` (development headers a kernel
# build compiles against) and `@@dmb:pm NAME`, one per line, and
# `@@dmb:version pahole VERSION` (which decides what BTF a kernel gets).
for t in make gcc cc clang tar flex bison bc perl pahole python3 xz patch; do
  if command -v "$t" >/dev/null 2>&1; then echo "@@dmb:tool $t"; fi
done
for h in libelf:gelf.h openssl:openssl/opensslv.h; do
  for dir in /usr/include /usr/local/include; do
    if [ -e "$dir/${h#*:}" ]; then echo "@@dmb:header ${h%%:*}"; break; fi
  done
done
for m in apk apt-get dnf microdnf yum; do
  if command -v "$m" >/dev/null 2>&1; then echo "@@dmb:pm $m"; fi
done
if command -v pahole >/dev/null 2>&1; then
  echo "@@dmb:version pahole $(pahole --version 2>/dev/null)"
fi
exit 0
