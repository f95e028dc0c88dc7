#!/bin/sh
# The lease of dmb's module lock (src/load/lock.rs): the container lives
# for $1 seconds at most, and its name is the lock.
exec sleep "$1"
