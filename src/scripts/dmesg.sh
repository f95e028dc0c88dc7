#!/bin/sh
# The kernel's log, for its own words on a module that failed to load.
# Needs CAP_SYSLOG (the default seccomp profile allows syslog(2) with it).
dmesg | tail -n 400
