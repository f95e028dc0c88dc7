#!/bin/sh
# A tar stream of every module file the VM has for its running kernel.
# Run in the VM's mount namespace.
cd "/lib/modules/$(uname -r)" || exit 3
find . -type f -name '*.ko*' | tar -cf - -T -
