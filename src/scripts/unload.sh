#!/bin/sh
# Unloads the modules named as positional parameters, in that order; stops
# at the first the kernel refuses. Needs CAP_SYS_MODULE and nothing else.
# Output: `@@dmb:unloaded NAME`, `@@dmb:failed NAME MESSAGE`.
say() { echo "@@dmb:$*"; }
for m in "$@"; do
  if out=$(rmmod "$m" 2>&1); then
    say unloaded "$m"
  else
    # shellcheck disable=SC2086
    say failed "$m" $out
    exit 1
  fi
done
