# Read after the module's own Makefile: its own targets run one at a time,
# as a plain `make` would run them, while a recursive make (kbuild's, for
# `M=`) still runs the -j jobs dmb asked for. A top-level Makefile that
# builds two directories, the second needing the first's Module.symvers,
# is not safe with -j, and it worked without it.
.NOTPARALLEL:
