#!/bin/sh
# A tar stream of the VM's files named as positional parameters (paths
# relative to /). Run in the VM's mount namespace.
cd / && exec tar -cf - -- "$@"
