#!/usr/bin/env bash
# scripts/sim.sh — desktop-sim: a real kernel in a qemu VM with a Docker
# engine inside, standing in for Docker Desktop's VM in tests and demos.
#
#   scripts/sim.sh up        build the VM (cached), boot it, wait for its
#                            engine, preload the kit's images; prints
#                            DOCKER_HOST=tcp://127.0.0.1:PORT on stdout
#   scripts/sim.sh down      stop the VM this state dir started (pid file)
#   scripts/sim.sh restart   down, then up with the same disk (a reboot of the
#                            VM, like a Docker Desktop restart)
#   scripts/sim.sh status    whether it runs and where; exit 0 running and
#                            answering, 1 running but the engine does not
#                            answer, 3 not running
#   scripts/sim.sh prepare   only build what `up` needs (kit, busybox image,
#                            VM kernel + initramfs, seed disk), e.g. ahead of
#                            CI
#
# The VM boots the kit's Debian kernel (scripts/kit.sh) with
# `qemu-system-x86_64 -accel tcg` from an initramfs holding a debootstrapped
# bookworm with docker.io and the kernel's module tree, pruned of hardware
# drivers and of the in-tree modules tests build themselves (sctp, dm-crypt,
# openvswitch).  Its network is qemu's user network with restrict=on: the
# guest reaches nothing; the host reaches dockerd only through one forwarded
# loopback port.  /var/lib/docker is a disk image in the state dir, the only
# thing that survives `restart`.  A new disk starts as a copy of a cached
# "seed" disk that already holds the kit's images (loading them into a TCG
# VM takes minutes; copying the seed takes seconds).  See the README, "desktop-sim".
#
# Only stdout lines are DOCKER_HOST=... (up) and the status report; all
# progress goes to stderr.
#
# Environment:
#   DMB_SIM_STATE    state dir: pid file, DOCKER_HOST file, logs, disk
#                    (default: ${XDG_STATE_HOME:-$HOME/.local/state}/dmb-sim;
#                    not /run: the disk grows to GBs)
#   DMB_SIM_CACHE    cache dir: rootfs, kernel + initramfs, seed disk
#                    (default: ${XDG_CACHE_HOME:-$HOME/.cache}/dmb-sim)
#   DMB_SIM_MEMORY   VM memory in MiB (default 4096)
#   DMB_SIM_CPUS     VM vCPUs (default 2)
#   DMB_SIM_DISK     size of the /var/lib/docker disk when created (default 64G,
#                    sparse)
#   DMB_SIM_TIMEOUT  seconds `up` waits for the engine (default 300)
#   DMB_SIM_QEMU_CPU qemu -cpu model (default qemu64: TCG emulates AVX slowly,
#                    with "max" the boot and an image load take ~30% longer)
#   DMB_SIM_TCG_THREAD  single (default) or multi: whether the vCPUs take
#                    turns on one host thread or run on one each.  multi is
#                    ~15% faster but once hung the guest for good (see boot_vm)
#   DMB_SIM_MIRROR   debootstrap mirror (default: DMB_KIT_MIRROR, else the
#                    machine's apt source for bookworm)
#   DMB_DOCKER, DMB_KIT_CACHE   as for scripts/kit.sh
#
# Needs root the first time (debootstrap, chroot, mknod), qemu-system-x86_64,
# cpio, lz4, zstd, mkfs.ext4, python3, a Docker engine (the host's, used
# read-mostly: docker save / image inspect, and docker import of the busybox
# image).  Nothing here touches the host's kernel modules; every insmod
# happens inside the VM.
set -euo pipefail

# Everything not explicitly meant for the caller goes to stderr.
exec 3>&1 1>&2

SUITE=bookworm
ARCH=amd64
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SIM_DIR="$HERE/sim"
STATE="${DMB_SIM_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/dmb-sim}"
CACHE="${DMB_SIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dmb-sim}"
KIT_CACHE="${DMB_KIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dmb-kit}"
MEMORY="${DMB_SIM_MEMORY:-4096}"
CPUS="${DMB_SIM_CPUS:-2}"
DISK_SIZE="${DMB_SIM_DISK:-64G}"
BOOT_TIMEOUT="${DMB_SIM_TIMEOUT:-300}"
QEMU_CPU="${DMB_SIM_QEMU_CPU:-qemu64}"
TCG_THREAD="${DMB_SIM_TCG_THREAD:-single}"
read -r -a DOCKER <<<"${DMB_DOCKER:-docker}"
[[ ${#DOCKER[@]} -gt 0 ]] || DOCKER=(docker)

# What the root filesystem holds besides minbase.  e2fsprogs (fsck of the
# disk) is "required" in bookworm, named anyway so a change there is seen.
ROOTFS_INCLUDE="docker.io,iproute2,kmod,e2fsprogs"
BUSYBOX_REF="dmb-kit/busybox:latest"
# Bump when the way the initramfs is assembled changes (the files in
# scripts/sim/ are hashed into the cache key anyway).
VM_FORMAT=1

# The files of one VM instance.  They live in $STATE, except while `up`
# boots a throw-away VM to make the seed disk (use_dir points them there).
use_dir() {
    VDIR=$1
    PIDFILE="$VDIR/qemu.pid"
    MONITOR="$VDIR/monitor.sock"
    CONSOLE="$VDIR/console.log"
    QEMU_LOG="$VDIR/qemu.log"
    HOST_FILE="$VDIR/docker-host"
    DISK="$VDIR/docker-disk.img"
    VM_FILE="$VDIR/vm"  # which cached VM (kernel + initramfs) it runs
}
use_dir "$STATE"

LOG_PREFIX=sim
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$HERE/lib/common.sh"

# ---------------------------------------------------------------- temp files
STOP_ON_FAILURE=()  # dirs whose VM this run started and must not leave
                    # running if it fails (or is interrupted)
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local rc=$? p
    if ((rc != 0)); then
        for p in "${STOP_ON_FAILURE[@]}"; do
            use_dir "$p"
            stop_vm || true
        done
    fi
    remove_tmp_paths
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
write_atomic() {  # FILE CONTENT
    local t; tmp_for t "$1"
    printf '%s\n' "$2" >"$t"
    mv -f "$t" "$1"
}

# -------------------------------------------------------------------- engines
# The host engine is whatever DMB_DOCKER / DOCKER_HOST say, except that a
# DOCKER_HOST pointing at a sim this state dir started (a user who ran
# `export $(scripts/sim.sh up)` and then `restart`) means the default engine.
if [[ -n ${DOCKER_HOST:-} && -f $STATE/hosts-seen ]] &&
    grep -qxF "$DOCKER_HOST" "$STATE/hosts-seen"; then
    log "ignoring DOCKER_HOST=$DOCKER_HOST (this sim's own engine) for the host engine"
    unset DOCKER_HOST
fi
host_docker() { "${DOCKER[@]}" "$@"; }
VM_HOST=""
vm_docker() { DOCKER_HOST="$VM_HOST" DOCKER_CONTEXT='' "${DOCKER[@]}" "$@"; }
vm_answers() {  # the VM engine's kernel release, if it answers within 10 s
    DOCKER_HOST="$VM_HOST" DOCKER_CONTEXT='' timeout 10 "${DOCKER[@]}" info \
        --format '{{.KernelVersion}}' 2>/dev/null
}

# ------------------------------------------------------------------------ kit
KVER="" KERNEL_REF="" BUILD_REF="" ABI="" DEBVER=""
load_kit() {
    local out k v
    out="$(bash "$HERE/kit.sh")" || die "scripts/kit.sh failed"
    while IFS='=' read -r k v; do
        case $k in KVER) KVER=$v ;; KERNEL_REF) KERNEL_REF=$v ;; BUILD_REF) BUILD_REF=$v ;; esac
    done <<<"$out"
    [[ -n $KVER && -n $KERNEL_REF && -n $BUILD_REF ]] || die "kit.sh printed no KVER/KERNEL_REF/BUILD_REF"
    # The Debian upload the kit's kernel came from, to find its linux-image.
    [[ -f $KIT_CACHE/kit.env ]] || die "no $KIT_CACHE/kit.env (is DMB_KIT_CACHE the kit's?)"
    while IFS='=' read -r k v; do
        case $k in ABI) ABI=$v ;; DEBVER) DEBVER=$v ;; KVER) [[ $v == "$KVER" ]] || die "kit.env is for $v, kit.sh says $KVER" ;; esac
    done <"$KIT_CACHE/kit.env"
    [[ -n $ABI && -n $DEBVER ]] || die "kit.env lacks ABI/DEBVER"
}

# apt-get download PKG[=VER] into the kit's deb cache (shared with kit.sh).
apt_download() {
    local dir aptopt=()
    mkdir -p "$KIT_CACHE/debs"
    mktemp_dir dir "$KIT_CACHE" debs
    # As root, apt's _apt sandbox user usually cannot write here.
    [[ $EUID -ne 0 ]] || aptopt=(-o APT::Sandbox::User=root)
    log "downloading $1"
    (cd "$dir" && apt-get "${aptopt[@]}" download "$1" >&2) || die "apt-get download $1 failed"
    mv -f "$dir"/*.deb "$KIT_CACHE/debs/"
    rmdir "$dir"
}
linux_image_deb() {  # DEB := the kit's linux-image .deb, downloaded if gone
    local pkg="linux-image-$ABI-$ARCH-unsigned"
    DEB="$KIT_CACHE/debs/${pkg}_${DEBVER//:/%3a}_$ARCH.deb"
    [[ -f $DEB ]] || apt_download "$pkg=$DEBVER"
    [[ -f $DEB ]] || die "no $DEB after download"
}

# ----------------------------------------------------------- busybox image
# A tiny image from Debian's busybox-static: /bin/busybox plus a symlink per
# applet (sh, nsenter, cat, insmod, ...).  No registry involved.
have_busybox_image() {
    [[ "$(host_docker image inspect -f '{{ index .Config.Labels "dmb.kit" }}' "$BUSYBOX_REF" 2>/dev/null)" == busybox ]]
}
ensure_busybox_image() {
    if have_busybox_image; then return; fi
    local deb stage a ver old
    shopt -s nullglob
    local debs=("$KIT_CACHE"/debs/busybox-static_*_"$ARCH".deb)
    shopt -u nullglob
    if ((${#debs[@]} == 0)); then
        apt_download busybox-static
        debs=("$KIT_CACHE"/debs/busybox-static_*_"$ARCH".deb)
    fi
    deb="${debs[-1]}"
    ver="$(dpkg-deb -f "$deb" Version)"
    mktemp_dir stage "$KIT_CACHE" busybox
    dpkg-deb -x "$deb" "$stage/x"
    mkdir -p "$stage/root/bin" "$stage/root/sbin" "$stage/root/usr/bin" "$stage/root/usr/sbin" \
        "$stage/root/etc" "$stage/root/tmp" "$stage/root/root"
    cp "$stage/x/bin/busybox" "$stage/root/bin/busybox"
    # --list-full names each applet's usual path (bin/sh, usr/bin/nsenter...).
    while read -r a; do
        [[ $a == bin/busybox ]] && continue
        ln -s /bin/busybox "$stage/root/$a"
    done < <("$stage/root/bin/busybox" --list-full)
    [[ -L $stage/root/bin/sh && -L $stage/root/usr/bin/nsenter ]] || die "busybox $ver lacks sh or nsenter"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$stage/root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/root/etc/group"
    chmod 1777 "$stage/root/tmp"
    old="$(host_docker image inspect -f '{{.Id}}' "$BUSYBOX_REF" 2>/dev/null || true)"
    log "importing $BUSYBOX_REF from busybox-static $ver"
    tar -C "$stage/root" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - . \
        | host_docker import \
            --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["sh"]' \
            --change 'LABEL dmb.kit=busybox' \
            --change "LABEL dmb.kit.busybox-version=$ver" \
            --message "dmb kit busybox (busybox-static $ver)" \
            - "$BUSYBOX_REF" >&2
    have_busybox_image || die "import of $BUSYBOX_REF did not produce a labelled image"
    # An unlabelled image that held the name before would now dangle.
    [[ -z $old ]] || host_docker image rm "$old" >/dev/null 2>&1 || true
}

# ------------------------------------------------------------------- rootfs
rootfs_tar() {
    local key
    key="$(printf '%s|%s|%s|minbase' "$SUITE" "$ARCH" "$ROOTFS_INCLUDE" | sha256sum | cut -c1-12)"
    printf '%s\n' "$CACHE/rootfs-$SUITE-$key.tar.zst"
}
find_mirror() {
    if [[ -n ${DMB_SIM_MIRROR:-} ]]; then printf '%s\n' "$DMB_SIM_MIRROR"; return; fi
    if [[ -n ${DMB_KIT_MIRROR:-} ]]; then printf '%s\n' "$DMB_KIT_MIRROR"; return; fi
    # shellcheck source-path=SCRIPTDIR source=lib/apt_mirror.sh
    source "$HERE/lib/apt_mirror.sh"
    apt_mirror_for_suite "$SUITE" \
        || die "no apt source for suite '$SUITE' in /etc/apt/sources.list{,.d/*} (set DMB_SIM_MIRROR)"
}
make_rootfs_tar() {
    local out=$1 mirror dir t t0
    [[ $EUID -eq 0 ]] || die "debootstrap needs root"
    command -v debootstrap >/dev/null || die "debootstrap is not installed"
    mirror="$(find_mirror)"
    mktemp_dir dir "$CACHE" rootfs
    log "debootstrap $SUITE with $ROOTFS_INCLUDE from $mirror ..."
    t0="$(now)"
    debootstrap --variant=minbase --arch="$ARCH" --include="$ROOTFS_INCLUDE" \
        "$SUITE" "$dir/root" "$mirror" >&2 \
        || die "debootstrap failed (see $dir/root/debootstrap/debootstrap.log)"
    # Nothing in the VM reads docs, manuals, locales or apt's caches.
    rm -rf "$dir/root/var/cache/apt/"*.bin "$dir/root/var/cache/apt/archives/"*.deb \
        "$dir/root/var/lib/apt/lists/"* "$dir/root/var/log/"*.log "$dir/root/debootstrap" \
        "$dir/root/usr/share/doc/"* "$dir/root/usr/share/man/"* "$dir/root/usr/share/info/"* \
        "$dir/root/usr/share/locale/"*
    log "debootstrap done in $(since "$t0"); packing"
    tmp_for t "$out"
    tar -C "$dir/root" --numeric-owner --one-file-system --xattrs \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf - . | zstd -q -T0 -10 -o "$t"
    mv -f "$t" "$out"
    rm -rf --one-file-system "$dir"
    log "rootfs cached: $out ($(du -h "$out" | cut -f1))"
}

# ------------------------------------------------------- VM kernel/initramfs
# The cache key covers everything the initramfs is made of: the kit kernel
# (release and Debian upload), the rootfs, the files in scripts/sim/ and
# VM_FORMAT and the kernel command line (linuxkit.yml records it).  A changed
# kit kernel thus builds a new VM.
vm_dir() {
    local key
    key="$( { printf '%s|%s|%s|%s|%s|%s\n' "$KVER" "$DEBVER" "$KERNEL_REF" "$(basename "$(rootfs_tar)")" "$VM_FORMAT" "$(kernel_cmdline)"
              cat "$SIM_DIR/init" "$SIM_DIR/prune_modules.py"; } | sha256sum | cut -c1-12)"
    printf '%s\n' "$CACHE/vm-${KVER}_${DEBVER//:/%3a}-$key"
}

linuxkit_yml() {
    # Docker Desktop's VM describes itself in /etc/linuxkit.yml; dmb reads
    # kernel.image from it to find the matching kernel image.
    cat <<EOF
# dmb desktop-sim (scripts/sim.sh): the kit's kernel stands in for Docker
# Desktop's; only the kernel section is meaningful here.
kernel:
  image: $KERNEL_REF
  cmdline: "$(kernel_cmdline)"
EOF
}
# loglevel=5: warnings reach the console with their call traces (a soft
# lockup's "Call Trace:" lines are printed at the default level, 4), so a
# hung guest's console log says where its CPUs are stuck.
kernel_cmdline() { printf 'console=ttyS0 panic=-1 quiet loglevel=5\n'; }

build_vm() {
    local out=$1 rootfs deb stage root t0 m
    rootfs="$(rootfs_tar)"
    [[ -s $rootfs ]] || make_rootfs_tar "$rootfs"
    [[ $EUID -eq 0 ]] || die "assembling the initramfs needs root (chroot, mknod)"
    linux_image_deb
    deb=$DEB
    t0="$(now)"
    mktemp_dir stage "$CACHE" vm
    root="$stage/root"
    mkdir -p "$root" "$stage/x" "$stage/out"
    log "assembling the VM for $KVER"
    zstd -q -dc "$rootfs" | tar -C "$root" --numeric-owner --xattrs -xf -

    # The module tree and config of the kit's kernel.  bookworm's root is
    # merged-/usr (lib -> usr/lib): extract elsewhere and move the tree into
    # usr/lib/modules, so the lib symlink is not replaced by a directory.
    dpkg-deb -x "$deb" "$stage/x"
    m="$stage/x/lib/modules/$KVER"
    [[ -d $m ]] || m="$stage/x/usr/lib/modules/$KVER"
    [[ -d $m && -f $stage/x/boot/vmlinuz-$KVER && -f $stage/x/boot/config-$KVER ]] \
        || die "$(basename "$deb") lacks modules/vmlinuz/config for $KVER"
    mkdir -p "$root/usr/lib/modules" "$root/boot"
    mv "$m" "$root/usr/lib/modules/$KVER"
    cp "$stage/x/boot/config-$KVER" "$root/boot/config-$KVER"
    cp "$stage/x/boot/vmlinuz-$KVER" "$stage/out/vmlinuz"
    rm -rf "$stage/x"

    # depmod (the rootfs's own, via chroot: only that tree is touched) over
    # the whole tree, prune with its dependency graph, depmod again.
    chroot "$root" depmod -a "$KVER"
    python3 "$SIM_DIR/prune_modules.py" "$root/usr/lib/modules/$KVER" "$stage/out/removed-modules.txt"
    chroot "$root" depmod -a "$KVER"
    mkdir -p "$root/etc/dmb-sim"
    cp "$stage/out/removed-modules.txt" "$root/etc/dmb-sim/removed-modules.txt"

    install -m 0755 "$SIM_DIR/init" "$root/init"
    linuxkit_yml >"$root/etc/linuxkit.yml"
    echo dmb-sim >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tdmb-sim\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    # slirp's DNS address; with restrict=on it answers nothing, but
    # containers copy this file and expect a nameserver line.
    echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
    mkdir -p "$root/var/lib/docker" "$root/dev" "$root/proc" "$root/sys" "$root/run" "$root/tmp"
    # The kernel opens /dev/console for PID 1 before any devtmpfs exists.
    rm -f "$root/dev/console" "$root/dev/null"
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3

    log "packing the initramfs"
    # lz4 (legacy frame format, the one the kernel reads): under TCG the
    # kernel unpacks this ~450 MB initramfs in ~4 s from lz4, ~8 s from
    # zstd or gzip; uncompressed is as fast to unpack but 2.6x the size.
    (cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
        | cpio --null --create --format=newc --quiet --reproducible) \
        | lz4 -l -9 -q - "$stage/out/initramfs.img"
    printf 'KVER=%s\nDEBVER=%s\nKERNEL_REF=%s\nBUILD_REF=%s\n' "$KVER" "$DEBVER" "$KERNEL_REF" "$BUILD_REF" \
        >"$stage/out/vm.env"
    rm -rf --one-file-system "$root"
    mv "$stage/out" "$out"
    log "VM cached in $(since "$t0"): $out (initramfs $(du -h "$out/initramfs.img" | cut -f1))"
}

ensure_vm() {  # sets VM to the cached VM dir for the current kit
    VM="$(vm_dir)"
    [[ -f $VM/initramfs.img && -f $VM/vmlinuz ]] && return
    mkdir -p "$CACHE"
    exec 8>"$CACHE/.lock"
    flock 8 || die "cannot lock $CACHE/.lock"
    if [[ ! -f $VM/initramfs.img ]]; then
        build_vm "$VM"
        # Older VMs of this cache are no longer wanted (a running qemu has
        # read its files already).
        find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'vm-*' ! -path "$VM" \
            -exec rm -rf {} +
    fi
    exec 8>&-
}

# ------------------------------------------------------------------- the VM
qemu_pid() {  # pid of the qemu of $VDIR, if it still runs
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    # Guard against pid reuse: only a process whose command line names this
    # pid file is ours.
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$PIDFILE" || return 1
    printf '%s\n' "$pid"
}
current_host() {  # DOCKER_HOST of the running qemu $1 of $VDIR
    local h=""
    [[ -f $HOST_FILE ]] && h="$(sed -n 's/^DOCKER_HOST=//p' "$HOST_FILE")"
    # `up` writes the file once the engine answered; before that (or if
    # `up` was killed) the port is only in qemu's command line.
    [[ -n $h ]] || h="tcp://127.0.0.1:$(tr '\0' '\n' <"/proc/$1/cmdline" \
        | sed -n 's|.*hostfwd=tcp:127.0.0.1:\([0-9]*\)-.*|\1|p')"
    printf '%s\n' "$h"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
monitor() {  # send one command to the qemu human monitor of $VDIR
    python3 - "$MONITOR" "$1" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.5)
s.close()
EOF
}

new_disk() {  # FILE: a sparse, empty ext4 image
    local t
    tmp_for t "$1"
    truncate -s "$DISK_SIZE" "$t"
    # A sparse file reads as zeros: mke2fs can mark the inode tables zeroed
    # without writing them (so the guest's lazy init writes nothing either),
    # and zeroing the journal would only turn 0.5 GB of holes into data.
    mkfs.ext4 -q -F -L dmb-sim-docker -m 0 -i 32768 \
        -E lazy_itable_init=0,lazy_journal_init=1 "$t" >&2
    mv -f "$t" "$1"
}

start_qemu() {  # boots $VM with $DISK; sets VM_HOST
    local port tries=0 rc
    # Two VMs on one disk would wreck its ext4.
    ! qemu_pid >/dev/null || die "a VM of $VDIR runs already"
    [[ -f $CONSOLE ]] && mv -f "$CONSOLE" "$CONSOLE.1"
    rm -f "$PIDFILE" "$MONITOR" "$HOST_FILE"
    STOP_ON_FAILURE+=("$VDIR")
    while :; do
        port="$(free_port)"
        # -accel tcg: /dev/kvm exists here but a KVM guest hangs at boot.
        # thread=single: see boot_vm.
        # discard/detect-zeroes: what the guest frees or zeroes becomes a
        # hole again, so the sparse disk file stays as small as its content.
        # restrict=on: the guest reaches nothing; hostfwd is the only way in.
        # The daemonized qemu must not inherit our stdout (fd 3: a caller
        # reading it would never see EOF) nor the state/cache locks.
        rc=0
        qemu-system-x86_64 \
            -name dmb-sim -accel "tcg,thread=$TCG_THREAD" -machine pc -cpu "$QEMU_CPU" \
            -smp "$CPUS" -m "$MEMORY" \
            -kernel "$VM/vmlinuz" -initrd "$VM/initramfs.img" -append "$(kernel_cmdline)" \
            -drive "file=$DISK,format=raw,if=virtio,cache=writeback,discard=unmap,detect-zeroes=unmap" \
            -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:2375" \
            -device virtio-net-pci,netdev=net0,romfile= \
            -display none -vga none -serial "file:$CONSOLE" \
            -monitor "unix:$MONITOR,server,nowait" \
            -no-reboot -daemonize -pidfile "$PIDFILE" \
            </dev/null >>"$QEMU_LOG" 2>&1 3>&- 8>&- 9>&- || rc=$?
        ((rc == 0)) && break
        # Another process may have taken the port between free_port and
        # qemu's bind; try another, but not forever.
        if ((++tries >= 3)) || ! tail -5 "$QEMU_LOG" | grep -q 'hostfwd\|host forwarding'; then
            tail -20 "$QEMU_LOG" >&2
            die "qemu failed to start (log: $QEMU_LOG)"
        fi
    done
    VM_HOST="tcp://127.0.0.1:$port"
    printf '%s\n' "$VM" >"$VM_FILE"
    # Remember every address handed out, see "engines" above.
    printf '%s\n' "$VM_HOST" >>"$VDIR/hosts-seen"
    log "qemu started (pid $(cat "$PIDFILE")), engine will be at $VM_HOST"
}

wait_engine() {
    local t0 deadline kver
    t0="$(now)"
    deadline=$((SECONDS + BOOT_TIMEOUT))
    while :; do
        kver="$(vm_answers || true)"
        [[ -n $kver ]] && break
        if ! qemu_pid >/dev/null; then
            log "qemu exited during boot; console:"
            tail -40 "$CONSOLE" >&2 || true
            die "the VM did not come up (console log: $CONSOLE)"
        fi
        if ((SECONDS >= deadline)); then
            log "no engine answers at $VM_HOST after ${BOOT_TIMEOUT}s; console:"
            tail -40 "$CONSOLE" >&2 || true
            die "the VM's engine did not answer within ${BOOT_TIMEOUT}s (console log: $CONSOLE)"
        fi
        sleep 1
    done
    [[ $kver == "$KVER" ]] || log "warning: the VM runs kernel $kver, the kit's is $KVER"
    log "engine answers after $(since "$t0") (kernel $kver)"
}

# Loads into the VM engine those of the kit's images it lacks (or has in
# another version), from the host engine: docker save | docker load over the
# forwarded port, no registry.  They live on the VM's disk afterwards.
preload_images() {
    local ref hid vid missing=() old=() t0
    for ref in "$BUILD_REF" "$KERNEL_REF" "$BUSYBOX_REF"; do
        hid="$(host_docker image inspect -f '{{.Id}}' "$ref")" || die "the host engine has no $ref"
        vid="$(vm_docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)"
        [[ $hid == "$vid" ]] && continue
        missing+=("$ref")
        [[ -z $vid ]] || old+=("$vid")
    done
    ((${#missing[@]})) || { log "the VM engine has the kit's images"; return 0; }
    log "loading ${missing[*]} into the VM engine (minutes under TCG) ..."
    t0="$(now)"
    host_docker save "${missing[@]}" | vm_docker load -q >&2 \
        || die "docker save | docker load into the VM failed"
    log "images loaded in $(since "$t0")"
    # Older versions under the same names would dangle now.
    ((${#old[@]} == 0)) || vm_docker image rm "${old[@]}" >/dev/null 2>&1 || true
}

quit_qemu() {  # ends qemu $1 (the one of $VDIR's pid file) without the guest's help
    local i
    monitor quit 2>/dev/null || kill "$1" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

# The first container of a boot has the kernel patch its own running code:
# the first memory cgroup turns on kmem accounting, a static branch in
# kmem_cache_alloc among others.  Under multi-threaded TCG that moment twice
# locked up the guest for good, in about 45 boots: both vCPUs stuck at that
# very instruction, "soft lockup" for as long as anyone waited (CI and here,
# 2026-11-27).  Code changed by one vCPU while another runs it is what
# multi-threaded TCG must get right and here did not, so the default is
# single-threaded TCG (the vCPUs take turns on one host thread; ~15% slower).
# As a net for whatever else hangs a guest there, a VM counts as up only once
# a container has run in it, and one whose guest hangs there is booted again,
# once.  The hung boot's console log stays beside the new one as
# console.log.1.
FIRST_RUN_LIMIT=120
guest_hung() { grep -qE 'soft lockup|rcu: INFO: .*stall' "$CONSOLE" 2>/dev/null; }
boot_vm() {  # boots $VDIR's VM until a first container has run in it
    local attempt pid fresh=0 out t0
    [[ -f $DISK ]] || fresh=1
    for attempt in 1 2; do
        ensure_disk
        start_qemu
        wait_engine
        preload_images
        t0="$(now)"
        out="$(DOCKER_HOST="$VM_HOST" DOCKER_CONTEXT='' timeout -k 10 "$FIRST_RUN_LIMIT" \
            "${DOCKER[@]}" run --rm "$BUSYBOX_REF" true 2>&1)" && {
            log "a first container ran in $(since "$t0")"
            return 0
        }
        guest_hung || {
            log "the first container failed: $out; console:"
            tail -40 "$CONSOLE" >&2 || true
            die "no container runs in the VM (console log: $CONSOLE)"
        }
        log "the guest hung at the first container (attempt $attempt):"
        grep -m 3 -E 'soft lockup|rcu: INFO: .*stall' "$CONSOLE" >&2 || true
        pid="$(qemu_pid)" && quit_qemu "$pid"
        rm -f "$PIDFILE" "$HOST_FILE" "$MONITOR"
        # A disk made for this boot is made again: the hang may have left
        # the engine's state half-written.  An older one keeps what it holds
        # (fsck repairs the file system at the next boot).
        ((fresh)) && rm -f "$DISK"
    done
    die "the guest hung at its first container twice (console logs: $CONSOLE, $CONSOLE.1)"
}

stop_vm() {  # stops the VM of $VDIR, cleanly if it can; fails if not clean
    local pid i clean=1
    pid="$(qemu_pid)" || { rm -f "$PIDFILE" "$HOST_FILE" "$MONITOR"; return 0; }
    # Ctrl-Alt-Del makes the VM's init stop dockerd, unmount the disk and
    # power off; qemu then exits by itself.
    log "stopping the VM (pid $pid)"
    # A hung guest would only waste the minute it is given.
    if ! guest_hung && grep -q '^dmb-sim-init: .* Ctrl-Alt-Del powers off' "$CONSOLE" 2>/dev/null &&
        monitor 'sendkey ctrl-alt-delete' 2>/dev/null; then
        for ((i = 0; i < 600; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if kill -0 "$pid" 2>/dev/null; then
        log "no clean power-off (init not up yet, the guest hung, or it took over 60 s); quitting qemu"
        quit_qemu "$pid"
    fi
    if ! grep -q '^dmb-sim-init: .* /var/lib/docker unmounted' "$CONSOLE" 2>/dev/null; then
        log "warning: the disk was not unmounted cleanly (fsck repairs it at the next boot)"
        clean=0
    fi
    rm -f "$PIDFILE" "$HOST_FILE" "$MONITOR"
    log "stopped"
    ((clean))
}

# ----------------------------------------------------------------- seed disk
# A clean ext4 image whose /var/lib/docker already holds the kit's images, so
# a new state dir (a test run, a fresh start) need not load them (~2 min under
# TCG) but copies it (seconds).  Made by booting a throw-away VM, once per
# rootfs (dockerd's version decides the on-disk format), kit images and disk
# size; the kernel and init do not matter to it.
seed_path() {
    local ids
    ids="$(host_docker image inspect -f '{{.Id}}' "$BUILD_REF" "$KERNEL_REF" "$BUSYBOX_REF")" \
        || die "the host engine lacks a kit image"
    printf '%s\n' "$CACHE/seed-$(printf '%s\n%s\n%s\n' "$(basename "$(rootfs_tar)")" "$DISK_SIZE" "$ids" \
        | sha256sum | cut -c1-12).img"
}
ensure_seed() {  # sets SEED
    SEED="$(seed_path)"
    [[ -f $SEED ]] && return
    exec 8>"$CACHE/.lock"
    flock 8 || die "cannot lock $CACHE/.lock"
    if [[ ! -f $SEED ]]; then
        local dir t0
        t0="$(now)"
        mktemp_dir dir "$CACHE" seed
        log "making the seed disk (boot a VM, load the kit's images, power off)"
        use_dir "$dir"
        new_disk "$DISK"
        start_qemu
        wait_engine
        preload_images
        if ! stop_vm; then
            cp -f "$CONSOLE" "$CACHE/seed-console.log" || true
            die "the seed VM did not shut down cleanly (its console log: $CACHE/seed-console.log)"
        fi
        mv -f "$DISK" "$SEED"
        use_dir "$STATE"
        find "$CACHE" -mindepth 1 -maxdepth 1 -name 'seed-*.img' ! -path "$SEED" -delete
        log "seed disk cached in $(since "$t0"): $SEED"
    fi
    exec 8>&-
}
ensure_disk() {
    [[ -f $DISK ]] && return
    local t t0
    t0="$(now)"
    ensure_seed
    tmp_for t "$DISK"
    cp --sparse=always "$SEED" "$t"
    mv -f "$t" "$DISK"
    log "new /var/lib/docker disk from the seed in $(since "$t0")"
}

# ------------------------------------------------------------------ commands
lock_state() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock 9 || die "cannot lock $STATE/.lock"
}

check_tools() {
    local t
    for t in qemu-system-x86_64 cpio lz4 zstd mkfs.ext4 python3 dpkg-deb; do
        command -v "$t" >/dev/null || die "$t is not installed (scripts/setup.sh installs it)"
    done
}

cmd_up() {
    local t0 pid
    t0="$(now)"
    check_tools
    lock_state
    load_kit
    ensure_busybox_image
    ensure_vm
    if pid="$(qemu_pid)"; then
        VM_HOST="$(current_host "$pid")"
        log "already running (pid $pid) at $VM_HOST"
        [[ "$(cat "$VM_FILE" 2>/dev/null)" == "$VM" ]] \
            || log "warning: it runs an older VM build; 'restart' boots the current one"
        wait_engine
        preload_images
    else
        boot_vm
    fi
    write_atomic "$HOST_FILE" "DOCKER_HOST=$VM_HOST"
    STOP_ON_FAILURE=()
    log "up in $(since "$t0")"
    printf 'DOCKER_HOST=%s\n' "$VM_HOST" >&3
}

cmd_down() {
    lock_state
    stop_vm || true
}

cmd_status() {
    local pid kver
    if ! pid="$(qemu_pid)"; then
        echo "stopped (state: $STATE)" >&3
        return 3
    fi
    VM_HOST="$(current_host "$pid")"
    kver="$(vm_answers || true)"
    {
        if [[ -n $kver ]]; then
            echo "running (pid $pid), engine answers, kernel $kver"
        else
            echo "running (pid $pid), engine does not answer (yet?)"
        fi
        echo "DOCKER_HOST=$VM_HOST"
        echo "state: $STATE (console log: $CONSOLE)"
    } >&3
    [[ -n $kver ]] || return 1
}

cmd_prepare() {
    check_tools
    load_kit
    ensure_busybox_image
    ensure_vm
    ensure_seed
    log "ready: $VM, $SEED"
}

# busybox: only the small probe image (on the host engine); prints its name.
cmd_busybox() {
    check_tools
    load_kit
    ensure_busybox_image
    printf '%s\n' "$BUSYBOX_REF" >&3
}

usage() {
    cat >&2 <<'EOF'
usage: scripts/sim.sh up | down | restart | status | prepare | busybox

  up       boot the desktop-sim VM (building it first if needed) and print
           DOCKER_HOST=tcp://127.0.0.1:PORT for its engine
  down     stop it
  restart  stop it and boot it again with the same disk
  status   whether it runs and where (exit 0 running, 1 engine not
           answering, 3 stopped)
  prepare  build everything `up` needs without booting for use
  busybox  only make the small busybox image (dmb's probe image) on the
           host engine and print its name

State: ${DMB_SIM_STATE:-~/.local/state/dmb-sim}; see the README, "desktop-sim".
EOF
    exit 2
}

main() {
    case ${1:-} in
        up) cmd_up ;;
        down) cmd_down ;;
        restart) cmd_down; cmd_up ;;
        status) cmd_status ;;
        prepare) cmd_prepare ;;
        busybox) cmd_busybox ;;
        *) usage ;;
    esac
}
# One line, so bash has read all of it before it runs: `up` takes minutes,
# and bash would read whatever a checkout wrote here in the meantime.
main "$@"; exit
