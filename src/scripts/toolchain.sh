#!/bin/sh
# The build tools and the package manager of a builder image:
# `@@dmb:tool NAME` and `@@dmb:pm NAME`, one per line.
for t in make gcc cc clang tar; do
  if command -v "$t" >/dev/null 2>&1; then echo "@@dmb:tool $t"; fi
done
for m in apk apt-get dnf microdnf yum; do
  if command -v "$m" >/dev/null 2>&1; then echo "@@dmb:pm $m"; fi
done
exit 0
