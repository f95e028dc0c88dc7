#!/bin/sh
# Reads a DKMS package's dkms.conf (in /dmb/package) the way dkms does: it is
# a bash fragment, so bash sources it (dkms_conf.sh). Only the shell check
# is here: a builder without bash says so with `@@dmb:no-bash`.
# $1 kernelver, $2 kernel_source_dir, $3 arch.
if ! command -v bash >/dev/null 2>&1; then
  echo "@@dmb:no-bash"
  exit 3
fi
exec bash /dmb/dkms_conf.sh "$@"
