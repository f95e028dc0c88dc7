#!/bin/sh
# Whether this image can run dmb's probe and loader scripts (probe.sh,
# load.sh, unload.sh, vm_files.sh, …): one `@@dmb:lacks NAME` line for each
# tool it lacks, nothing when it has them all. Always exits 0: an image
# without /bin/sh never gets here, and the caller tells the two apart.
for t in cat find grep tr od uname insmod rmmod sleep tar dmesg tail mkdir nsenter; do
  command -v "$t" >/dev/null 2>&1 || echo "@@dmb:lacks $t"
done
if ! command -v zcat >/dev/null 2>&1 && ! command -v gzip >/dev/null 2>&1; then
  echo "@@dmb:lacks zcat"
fi
exit 0
