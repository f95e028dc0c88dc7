#!/usr/bin/env bash
# scripts/kit.sh — dmb's local test kit.
#
# Builds (only when missing) two local Docker images from Debian packages:
#   dmb-kit/builder:bookworm   debootstrap'd bookworm rootfs with gcc/make/...
#   dmb-kit/kernel:<KVER>      a LinuxKit-layout kernel image (kernel,
#                              System.map, kernel.tar, kernel-dev.tar,
#                              linux.tar.xz, kernel-builder) made from one
#                              Debian kernel upload
# and prints exactly three lines on stdout:
#   KVER=<kernel release>
#   KERNEL_REF=dmb-kit/kernel:<KVER>
#   BUILD_REF=dmb-kit/builder:bookworm
# All progress goes to stderr.  Idempotent; a run with both images present
# does no apt queries and takes about a second.
#
# Other modes (run the plain kit first; each prints one line on stdout):
#   --other-headers  print the directory of the header tree of ANOTHER Debian
#                    kernel release of the kit's series than the kit's (the
#                    newest other ABI the archive offers, pinned on first use
#                    in $DMB_KIT_CACHE/other-headers); tests check against it
#   --other-kernel   build (only when missing) dmb-kit/kernel:<that release>,
#                    a LinuxKit-layout image of the same other release, good
#                    enough for `dmb build` (kernel-dev.tar, a kernel.tar with
#                    only lib/modules/<release>/build, kernel-builder naming
#                    the kit's builder; no kernel binary, no linux.tar.xz),
#                    and print KERNEL_REF=dmb-kit/kernel:<that release>
#   --source-tarball print the path of the kit kernel's own Debian source
#                    tarball (linux-source-<series>.tar.xz of the kit's
#                    upload), taken out of its cached .deb once; the source
#                    tests synthesize a kernel image from
#
# Environment:
#   DMB_DOCKER       docker CLI to use (default: docker)
#   DMB_KIT_CACHE    cache dir (default: ${XDG_CACHE_HOME:-$HOME/.cache}/dmb-kit)
#   DMB_KIT_SERIES   force the kernel series (e.g. 6.1) instead of detecting it
#   DMB_KIT_MIRROR   force the debootstrap mirror instead of reading apt sources
#   DMB_KIT_REFRESH  =1: forget the pinned kernel choice in kit.env and pick the
#                    newest one the archive offers now (not the other release)
#
# Needs root for debootstrap (first run only), apt-get/apt-cache, dpkg-deb,
# python3, xz, zstd.  Nothing here loads kernel modules or runs privileged
# containers.
set -euo pipefail

# Everything not explicitly meant for the caller goes to stderr.
exec 3>&1 1>&2

SUITE=bookworm
ARCH=amd64
BUILD_REF="dmb-kit/builder:${SUITE}"
KERNEL_REPO="dmb-kit/kernel"
# What out-of-tree builds need, plus what building in the kernel's own tree
# needs for Debian's config (pahole for BTF, python3 for libbpf's headers),
# and dmsetup for driving device-mapper from a container.
BUILDER_INCLUDE="gcc-12,gcc,make,libc6-dev,bc,flex,bison,libelf-dev,libssl-dev,kmod,xz-utils,perl,dwarves,python3,dmsetup"
BUILDER_PACKAGES_ID="$(printf '%s' "$BUILDER_INCLUDE" | sha256sum | cut -c1-12)"
# Bump when what goes into a kit kernel image changes (2: Kconfig and kbuild
# files in kernel-dev.tar).
KERNEL_RECIPE=2
CONTAINER_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KIT_TAR_PY="$HERE/lib/kit_tar.py"
CACHE="${DMB_KIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dmb-kit}"
read -r -a DOCKER <<<"${DMB_DOCKER:-docker}"
[[ ${#DOCKER[@]} -gt 0 ]] || DOCKER=(docker)

ROOTFS_TAR="$CACHE/builder-${SUITE}-${BUILDER_PACKAGES_ID}-rootfs.tar.zst"
KIT_ENV="$CACHE/kit.env"
DEB_DIR="$CACHE/debs"

LOG_PREFIX=kit
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$HERE/lib/common.sh"
trap remove_tmp_paths EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------- docker
docker_label() {  # image label -> value, or fail if the image is absent
    "${DOCKER[@]}" image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null
}
have_builder_image() {
    [[ "$(docker_label "$BUILD_REF" dmb.kit || true)" == builder ]] &&
        [[ "$(docker_label "$BUILD_REF" dmb.kit.packages || true)" == "$BUILDER_PACKAGES_ID" ]]
}
have_kernel_image() {  # $1=KVER $2=Debian version (optional)
    local ref="$KERNEL_REPO:$1"
    [[ "$(docker_label "$ref" dmb.kit || true)" == kernel ]] || return 1
    [[ "$(docker_label "$ref" dmb.kit.recipe || true)" == "$KERNEL_RECIPE" ]] || return 1
    [[ -z ${2:-} || "$(docker_label "$ref" dmb.kit.debian-version || true)" == "$2" ]]
}

# ------------------------------------------------------------------- kit.env
# KVER, ABI, SERIES, DEBVER of the pinned kernel choice.
KVER="" ABI="" SERIES="" DEBVER=""
load_env() {
    [[ -f $KIT_ENV ]] || return 1
    local k v
    while IFS='=' read -r k v; do
        case $k in
            KVER) KVER=$v ;; ABI) ABI=$v ;; SERIES) SERIES=$v ;; DEBVER) DEBVER=$v ;;
        esac
    done <"$KIT_ENV"
    [[ -n $KVER && -n $ABI && -n $SERIES && -n $DEBVER ]]
}
save_env() {
    local t; tmp_for t "$KIT_ENV"
    printf 'KVER=%s\nABI=%s\nSERIES=%s\nDEBVER=%s\nBUILD_REF=%s\n' \
        "$KVER" "$ABI" "$SERIES" "$DEBVER" "$BUILD_REF" >"$t"
    mv -f "$t" "$KIT_ENV"
}

# ------------------------------------------------------------------- mirror
# URI of the apt source that serves plain "$SUITE" (not -updates/-security).
# shellcheck source-path=SCRIPTDIR source=lib/apt_mirror.sh
source "$HERE/lib/apt_mirror.sh"
find_mirror() {
    if [[ -n ${DMB_KIT_MIRROR:-} ]]; then printf '%s\n' "$DMB_KIT_MIRROR"; return; fi
    apt_mirror_for_suite "$SUITE" \
        || die "no apt source for suite '$SUITE' in /etc/apt/sources.list{,.d/*} (set DMB_KIT_MIRROR)"
}

# ------------------------------------------------------------------ builder
make_rootfs_tar() {
    [[ $EUID -eq 0 ]] || die "debootstrap needs root (or provide $ROOTFS_TAR)"
    command -v debootstrap >/dev/null || die "debootstrap is not installed"
    local mirror dir t t0
    mirror="$(find_mirror)"
    mktemp_dir dir "$CACHE" rootfs
    log "debootstrap $SUITE from $mirror (takes a few minutes) ..."
    t0="$(now)"
    debootstrap --variant=minbase --arch="$ARCH" --include="$BUILDER_INCLUDE" \
        "$SUITE" "$dir/root" "$mirror" >&2 \
        || die "debootstrap failed (see $dir/root/debootstrap/debootstrap.log)"
    # Trim and de-host the tree; docker provides /dev, hostname, resolv.conf.
    rm -rf "$dir/root/var/cache/apt/archives/"*.deb "$dir/root/var/lib/apt/lists/"* \
           "$dir/root/var/log/"*.log "$dir/root/debootstrap"
    rm -f "$dir/root/etc/hostname"
    : >"$dir/root/etc/resolv.conf"
    log "debootstrap done in $(since "$t0"); packing rootfs"
    tmp_for t "$ROOTFS_TAR"
    tar -C "$dir/root" --numeric-owner --one-file-system --xattrs \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf - . | zstd -q -T0 -10 -o "$t"
    mv -f "$t" "$ROOTFS_TAR"
    rm -rf --one-file-system "$dir"
    log "rootfs cached: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
}

ensure_builder() {
    if have_builder_image; then log "image $BUILD_REF present"; return; fi
    [[ -s $ROOTFS_TAR ]] || make_rootfs_tar
    log "importing $BUILD_REF from $ROOTFS_TAR"
    zstd -q -dc "$ROOTFS_TAR" | "${DOCKER[@]}" import \
        --change "ENV PATH=$CONTAINER_PATH" \
        --change 'LABEL dmb.kit=builder' \
        --change "LABEL dmb.kit.suite=$SUITE" \
        --change "LABEL dmb.kit.packages=$BUILDER_PACKAGES_ID" \
        --message "dmb kit builder ($SUITE minbase)" \
        - "$BUILD_REF" >&2
    have_builder_image || die "import of $BUILD_REF did not produce a labelled image"
}

# -------------------------------------------------------------------- apt
ensure_apt_lists() {
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        log "apt package lists missing; running apt-get update"
        apt-get update >&2
    fi
}

# Versions of $1 the archive offers (one per line, newest first as apt orders them).
madison_versions() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' '$3 ~ /Packages/ { gsub(/ /, "", $2); print $2 }' | awk '!seen[$0]++'
}

# Sort Debian versions on stdin, newest first (dpkg ordering).
sort_debver_desc() {
    local v out=() i j
    while read -r v; do
        [[ -n $v ]] || continue
        i=${#out[@]}
        out+=("$v")
        while ((i > 0)) && dpkg --compare-versions "${out[i-1]}" lt "${out[i]}"; do
            j=${out[i-1]}; out[i-1]=${out[i]}; out[i]=$j; ((i--)) || true
        done
    done
    ((${#out[@]})) && printf '%s\n' "${out[@]}" | awk '!seen[$0]++'
    return 0
}

# The kernel series: the linux-source-<series> that the plain $SUITE suite
# itself ships (bookworm: 6.1; 6.12 only comes via security/backports).
detect_series() {
    if [[ -n ${DMB_KIT_SERIES:-} ]]; then printf '%s\n' "$DMB_KIT_SERIES"; return; fi
    local s all=() base=()
    mapfile -t all < <(apt-cache search --names-only '^linux-source-[0-9]+\.[0-9]+$' \
        | awk '{ sub(/^linux-source-/, "", $1); print $1 }' | sort -V -r)
    ((${#all[@]})) || die "the archive offers no linux-source-<series> package"
    for s in "${all[@]}"; do
        if apt-cache madison "linux-source-$s" | awk -F'|' -v s="$SUITE" \
            '{ split($3, a, " "); if (a[2] ~ ("^" s "/")) f = 1 } END { exit !f }'; then
            base+=("$s")
        fi
    done
    if ((${#base[@]})); then printf '%s\n' "${base[0]}"; else printf '%s\n' "${all[0]}"; fi
}

# The kernel ABIs (e.g. 6.1.0-56) of series $1 that have a
# linux-headers-<abi>-$ARCH package in the archive, newest first.
series_abis() {
    local sre="${1//./\\.}"
    apt-cache search --names-only "^linux-headers-${sre}\.[^-]+(-[0-9]+)?-${ARCH}\$" \
        | awk -v arch="$ARCH" '{ n = $1; sub(/^linux-headers-/, "", n); sub("-" arch "$", "", n); print n }' \
        | sort -V -r
}

# Pick SERIES, DEBVER, ABI, KVER: the newest Debian version V at which
# linux-source-S, linux-kbuild-S, linux-headers-<abi>-{amd64,common} and
# linux-image-<abi>-amd64-unsigned all exist.
resolve_kernel() {
    ensure_apt_lists
    SERIES="$(detect_series)"
    log "kernel series: $SERIES"
    local abis=() pkgs=() v a line
    declare -A have=()
    mapfile -t abis < <(series_abis "$SERIES")
    ((${#abis[@]})) || die "no linux-headers-${SERIES}*-${ARCH} packages in the archive"
    pkgs=("linux-source-$SERIES" "linux-kbuild-$SERIES")
    for a in "${abis[@]}"; do
        pkgs+=("linux-headers-$a-$ARCH" "linux-headers-$a-common" "linux-image-$a-$ARCH-unsigned")
    done
    while IFS= read -r line; do
        have[$line]=1
    done < <(apt-cache madison "${pkgs[@]}" 2>/dev/null \
        | awk -F'|' '$3 ~ /Packages/ { gsub(/ /, "", $1); gsub(/ /, "", $2); print $1 "=" $2 }')
    while read -r v; do
        [[ -n ${have[linux-kbuild-$SERIES=$v]:-} ]] || continue
        for a in "${abis[@]}"; do
            if [[ -n ${have[linux-headers-$a-$ARCH=$v]:-} && -n ${have[linux-headers-$a-common=$v]:-} &&
                  -n ${have[linux-image-$a-$ARCH-unsigned=$v]:-} ]]; then
                DEBVER=$v ABI=$a KVER="$a-$ARCH"
                log "kernel: $KVER from Debian $DEBVER"
                return 0
            fi
        done
    done < <(madison_versions "linux-source-$SERIES" | sort_debver_desc)
    die "no Debian version offers all of linux-{source,kbuild}-$SERIES, linux-headers-<abi>-{$ARCH,common}, linux-image-<abi>-$ARCH-unsigned"
}

kernel_pkgs() {
    printf '%s\n' "linux-headers-$ABI-$ARCH" "linux-headers-$ABI-common" "linux-kbuild-$SERIES" \
        "linux-image-$ABI-$ARCH-unsigned" "linux-source-$SERIES"
}
deb_path() {  # cached .deb of package $1 at version $2 (default $DEBVER), or fail
    local f v=${2:-$DEBVER}
    for f in "$DEB_DIR/${1}_${v//:/%3a}_"*.deb; do
        [[ -f $f ]] && { printf '%s\n' "$f"; return 0; }
    done
    return 1
}

# download_debs HINT PKG=VERSION...: make sure $DEB_DIR holds each package at
# its version; HINT is added to the error when apt-get download fails.
download_debs() {
    local hint=$1 spec missing=() dir f
    shift
    for spec in "$@"; do
        deb_path "${spec%%=*}" "${spec#*=}" >/dev/null || missing+=("$spec")
    done
    ((${#missing[@]})) || { log "debs cached in $DEB_DIR"; return 0; }
    mkdir -p "$DEB_DIR"
    mktemp_dir dir "$CACHE" debs
    # As root, apt's _apt sandbox user usually cannot write into $CACHE
    # (e.g. under /root) and apt warns; download as root straight away.
    local aptopt=()
    [[ $EUID -ne 0 ]] || aptopt=(-o APT::Sandbox::User=root)
    log "downloading ${missing[*]}"
    (cd "$dir" && apt-get "${aptopt[@]}" download "${missing[@]}" >&2) \
        || die "apt-get download failed ($hint)"
    for f in "$dir"/*.deb; do mv -f "$f" "$DEB_DIR/"; done
    rm -rf "$dir"
    for spec in "$@"; do
        deb_path "${spec%%=*}" "${spec#*=}" >/dev/null || die "download of $spec produced no .deb"
    done
}

# unpack_debs DIR PKG=VERSION...: extract the cached .debs into DIR.
unpack_debs() {
    local dir=$1 spec deb
    shift
    for spec in "$@"; do
        deb="$(deb_path "${spec%%=*}" "${spec#*=}")" || die "no cached .deb for $spec"
        log "unpacking $(basename "$deb")"
        dpkg-deb -x "$deb" "$dir"
    done
}

# ------------------------------------------------------------- kernel image
kernel_image_tar() { printf '%s\n' "$CACHE/kernel-image_${KVER}_${DEBVER//:/%3a}_r$KERNEL_RECIPE.tar"; }

# pack_kernel_dev X DEST KVER ABI SERIES: DEST/kernel-dev.tar from the
# linux-headers-<ABI>-{amd64,common} and linux-kbuild-<SERIES> debs unpacked
# in X: the headers dir of KVER plus everything it links into.
pack_kernel_dev() {
    local x=$1 dest=$2 kver=$3 abi=$4 series=$5 p kbuild_link kbuild_dir dev_dirs
    kbuild_link="$(readlink "$x/usr/src/linux-headers-$kver/scripts" || true)"
    kbuild_dir="usr/lib/linux-kbuild-$series"
    [[ $kbuild_link == "../../lib/linux-kbuild-$series/scripts" ]] \
        || log "warning: headers scripts link is '$kbuild_link' (expected ../../lib/linux-kbuild-$series/scripts)"
    dev_dirs=("usr/src/linux-headers-$kver" "usr/src/linux-headers-$abi-common" "$kbuild_dir")
    for p in "${dev_dirs[@]}"; do [[ -d $x/$p ]] || die "missing $p in the unpacked debs"; done
    for p in .config Module.symvers Makefile include scripts; do
        [[ -e $x/usr/src/linux-headers-$kver/$p ]] || die "headers dir lacks $p"
    done
    tar -C "$x" --sort=name --owner=0 --group=0 --numeric-owner -cf "$dest/kernel-dev.tar" "${dev_dirs[@]}"
    python3 "$KIT_TAR_PY" check "$dest/kernel-dev.tar" "${dev_dirs[@]/%//}" \
        || die "kernel-dev.tar has symlinks that do not resolve inside it"
}

# add_kbuild_files HEADERS SOURCE_DEB STAGE: copies the source's Kconfig*,
# Makefile and Kbuild files into the header tree HEADERS where it has none
# (LinuxKit's kernel-dev.tar carries them all; Debian's headers do not).
# The top-level Makefile and Kbuild, scripts/ (a link into linux-kbuild) and
# what no build reads stay as they are.
add_kbuild_files() {
    local headers=$1 deb=$2 meta="$3/kbuild-files" f n=0
    mkdir -p "$meta"
    dpkg-deb --fsys-tarfile "$deb" \
        | tar -xO --wildcards '*usr/src/linux-source-*.tar.xz' \
        | xz -dc -T0 \
        | tar -x -C "$meta" --strip-components=1 --wildcards '*Kconfig*' '*/Makefile' '*/Kbuild'
    while IFS= read -r f; do
        [[ -e $headers/$f ]] && continue
        mkdir -p "$headers/$(dirname "$f")"
        cp "$meta/$f" "$headers/$f"
        n=$((n + 1))
    done < <(cd "$meta" && find . -type f ! -path ./Makefile ! -path ./Kbuild \
        ! -path './scripts/*' ! -path './tools/*' ! -path './Documentation/*' \
        ! -path './samples/*' -printf '%P\n')
    rm -rf "$meta"
    log "kernel-dev.tar: $n Kconfig and kbuild files from the source"
}

assemble_kernel_image() {
    local stage x m out p deb t t0 t1 kdirs moddir img specs=()
    while read -r p; do specs+=("$p=$DEBVER"); done < <(kernel_pkgs)
    download_debs "DMB_KIT_REFRESH=1 re-picks the kernel if $DEBVER is gone" "${specs[@]}"
    mktemp_dir stage "$CACHE" kernel
    x="$stage/x" m="$stage/m" out="$stage/out"
    mkdir -p "$x" "$m/lib/modules" "$out"

    unpack_debs "$x" "linux-headers-$ABI-$ARCH=$DEBVER" "linux-headers-$ABI-common=$DEBVER" \
        "linux-kbuild-$SERIES=$DEBVER" "linux-image-$ABI-$ARCH-unsigned=$DEBVER"

    # KVER must be what the image package installs under lib/modules.
    moddir="$x/lib/modules"
    [[ -d $x/usr/lib/modules ]] && moddir="$x/usr/lib/modules"
    mapfile -t kdirs < <(find "$moddir" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')
    [[ ${#kdirs[@]} -eq 1 && ${kdirs[0]} == "$KVER" ]] \
        || die "linux-image-$ABI-$ARCH-unsigned installs lib/modules/{${kdirs[*]}}, expected $KVER"
    [[ -f $x/boot/vmlinuz-$KVER && -f $x/boot/System.map-$KVER ]] || die "no vmlinuz/System.map for $KVER"

    cp "$x/boot/vmlinuz-$KVER" "$out/kernel"
    cp "$x/boot/System.map-$KVER" "$out/System.map"
    printf '%s\n' "$BUILD_REF" >"$out/kernel-builder"

    # kernel.tar: lib/modules/$KVER with depmod output and build -> headers.
    mv "$moddir/$KVER" "$m/lib/modules/$KVER"
    rm -f "$m/lib/modules/$KVER/build" "$m/lib/modules/$KVER/source"
    ln -s "/usr/src/linux-headers-$KVER" "$m/lib/modules/$KVER/build"
    # The host may lack kmod; the builder has it.  (No -F: Debian's
    # System.map is a one-line stub, the real one is in the -dbg package.)
    log "depmod $KVER (in $BUILD_REF)"
    "${DOCKER[@]}" run --rm --network none --user "$(id -u):$(id -g)" \
        -v "$m:/kit/m" "$BUILD_REF" depmod -a -b /kit/m "$KVER" >&2
    [[ -s $m/lib/modules/$KVER/modules.dep ]] || die "depmod produced no modules.dep"
    tar -C "$m" --sort=name --owner=0 --group=0 --numeric-owner -cf "$out/kernel.tar" lib

    # kernel-dev.tar: the headers dir plus everything it links into, and,
    # as LinuxKit's has, every Kconfig and kbuild Makefile of the source.
    add_kbuild_files "$x/usr/src/linux-headers-$KVER" "$(deb_path "linux-source-$SERIES")" "$stage"
    pack_kernel_dev "$x" "$out" "$KVER" "$ABI" "$SERIES"

    # linux.tar.xz: linux-source-$SERIES.tar.xz re-rooted at linux/ (streamed).
    deb="$(deb_path "linux-source-$SERIES")"
    log "repacking linux-source-$SERIES.tar.xz -> linux.tar.xz (xz -T0 -3) ..."
    t0="$(now)"
    dpkg-deb --fsys-tarfile "$deb" \
        | tar -xO --wildcards '*usr/src/linux-source-*.tar.xz' \
        | xz -dc -T0 \
        | python3 "$KIT_TAR_PY" retop linux \
        | xz -T0 -3 -c >"$out/linux.tar.xz"
    t1="$(since "$t0")"
    log "linux.tar.xz done in $t1"

    log "sizes: kernel.tar $(du -h "$out/kernel.tar" | cut -f1)," \
        "kernel-dev.tar $(du -h "$out/kernel-dev.tar" | cut -f1)," \
        "linux.tar.xz $(du -h "$out/linux.tar.xz" | cut -f1)"

    img="$(kernel_image_tar)"
    tmp_for t "$img"
    tar -C "$out" --owner=0 --group=0 --numeric-owner -cf "$t" \
        kernel System.map kernel.tar kernel-dev.tar linux.tar.xz kernel-builder
    mv -f "$t" "$img"
    rm -rf "$stage"
    log "kernel image tarball cached: $img ($(du -h "$img" | cut -f1))"
}

# import_kernel_image TAR KVER DEBVER [NOTE]: docker import TAR as
# $KERNEL_REPO:KVER with the kit's kernel labels.
import_kernel_image() {
    local img=$1 kver=$2 debver=$3 note=${4:-} ref="$KERNEL_REPO:$2"
    log "importing $ref from $img"
    "${DOCKER[@]}" import \
        --change "LABEL org.mobyproject.linuxkit.kernel.buildimage=$BUILD_REF" \
        --change 'LABEL dmb.kit=kernel' \
        --change "LABEL dmb.kit.kver=$kver" \
        --change "LABEL dmb.kit.debian-version=$debver" \
        --change "LABEL dmb.kit.recipe=$KERNEL_RECIPE" \
        --message "dmb kit kernel $kver (Debian $debver)$note" \
        "$img" "$ref" >&2
    have_kernel_image "$kver" "$debver" || die "import of $ref did not produce a labelled image"
}

ensure_kernel() {
    local ref="$KERNEL_REPO:$KVER" img
    if have_kernel_image "$KVER" "$DEBVER"; then log "image $ref present"; return; fi
    img="$(kernel_image_tar)"
    [[ -s $img ]] || assemble_kernel_image
    # Drop older kernel tarballs of this kit (the .debs stay).
    find "$CACHE" -maxdepth 1 -name 'kernel-image_*.tar' ! -path "$img" -delete
    import_kernel_image "$img" "$KVER" "$DEBVER"
}

# ------------------------------------------------------------ other release
# ANOTHER Debian kernel release of the kit's series than the kit's, for tests
# that check a module against the wrong kernel.  Its arch headers package is
# unpacked in $OTHER_DIR; "release" there pins the choice for both modes.
OTHER_DIR="$CACHE/other-headers"
OTHER_KVER=""

# Sets OTHER_KVER: the pinned release, else (pinning it) the newest other ABI
# whose linux-headers-<abi>-amd64 downloads and has a Module.symvers.
pin_other_release() {
    local a v deb x
    if [[ -f $OTHER_DIR/release ]]; then
        OTHER_KVER="$(cat "$OTHER_DIR/release")"
        return 0
    fi
    load_env || die "run scripts/kit.sh first"
    ensure_apt_lists
    while read -r a; do
        [[ $a == "$ABI" ]] && continue
        v="$(madison_versions "linux-headers-$a-$ARCH" | head -n 1)"
        [[ -n $v ]] || continue
        mktemp_dir x "$CACHE" other
        (cd "$x" && apt-get download "linux-headers-$a-$ARCH=$v" >&2) || continue
        deb="$(ls "$x"/*.deb)"
        dpkg-deb -x "$deb" "$x/tree"
        [[ -f $x/tree/usr/src/linux-headers-$a-$ARCH/Module.symvers ]] || continue
        printf '%s\n' "$a-$ARCH" >"$x/tree/release"
        rm -rf "$OTHER_DIR"
        mv "$x/tree" "$OTHER_DIR"
        log "other headers: $a-$ARCH from Debian $v"
        OTHER_KVER="$a-$ARCH"
        return 0
    done < <(series_abis "$SERIES")
    die "no other linux-headers-${SERIES}*-${ARCH} in the archive"
}

# --other-headers: the header tree (.config, Module.symvers, include/...)
# of the other release. Prints its directory. Only the arch package is
# needed: the files a check reads are all in it.
other_headers() {
    pin_other_release
    printf '%s\n' "$OTHER_DIR/usr/src/linux-headers-$OTHER_KVER" >&3
}

# The Debian version of the pinned other release: the top entry of the
# changelog its headers package installed (no apt query), else the newest
# version the archive offers.
other_debver() {
    local cl="$OTHER_DIR/usr/share/doc/linux-headers-$OTHER_KVER/changelog.Debian.gz" v=""
    [[ -f $cl ]] && v="$(gzip -dc "$cl" | sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p')"
    if [[ ! $v =~ ^[0-9][A-Za-z0-9.+~:-]*$ ]]; then
        ensure_apt_lists
        v="$(madison_versions "linux-headers-$OTHER_KVER" | head -n 1)"
    fi
    [[ -n $v ]] || die "cannot tell the Debian version of linux-headers-$OTHER_KVER"
    printf '%s\n' "$v"
}

# kbuild_version SERIES V: the linux-kbuild-SERIES version to pair with
# Debian version V.  V itself when the archive offers it; else the newest
# offered one of the same upstream version: the archive keeps one
# linux-kbuild-<series> per suite, so an older upload's kbuild is gone while
# its ABI-named headers packages stay (bookworm-security: linux-headers-
# 6.1.0-55-* at 6.1.192-1, linux-kbuild-6.1 only at 6.1.192-2).  The kbuild
# tools (fixdep, modpost, ...) come from the same upstream source.
kbuild_version() {
    local series=$1 v=$2 w offered=()
    mapfile -t offered < <(madison_versions "linux-kbuild-$series" | sort_debver_desc)
    for w in "${offered[@]}"; do
        [[ $w == "$v" ]] && { printf '%s\n' "$v"; return 0; }
    done
    for w in "${offered[@]}"; do
        if [[ ${w%-*} == "${v%-*}" ]]; then
            log "linux-kbuild-$series=$v is not in the archive; using $w (same upstream version ${v%-*})"
            printf '%s\n' "$w"
            return 0
        fi
    done
    die "the archive offers no linux-kbuild-$series of upstream version ${v%-*} (it has: ${offered[*]:-none})"
}

# --other-kernel: $KERNEL_REPO:<other release>, the release --other-headers
# names, in the LinuxKit layout as far as `dmb build` reads it: kernel-dev.tar
# made exactly as the kit's, kernel-builder and the buildimage label naming
# the kit's builder, and a kernel.tar holding only lib/modules/<release>/build
# (dmb checks that kernel.tar exists, it reads nothing from it).  No
# linux-image or linux-source package is needed: nothing boots, depmods or
# unpacks the sources of this kernel, so the image has no kernel, System.map,
# modules or linux.tar.xz.  Prints KERNEL_REF=<image>.
other_kernel() {
    local ref debver abi series kbuild_ver stage x m out img specs
    pin_other_release
    ref="$KERNEL_REPO:$OTHER_KVER"
    debver="$(other_debver)"
    if have_kernel_image "$OTHER_KVER" "$debver"; then
        log "image $ref present"
        printf 'KERNEL_REF=%s\n' "$ref" >&3
        return 0
    fi
    abi=${OTHER_KVER%-"$ARCH"}
    [[ $abi =~ ^([0-9]+\.[0-9]+)\. ]] || die "cannot tell the kernel series of $OTHER_KVER"
    series=${BASH_REMATCH[1]}
    ensure_apt_lists
    kbuild_ver="$(kbuild_version "$series" "$debver")"
    log "other kernel: $OTHER_KVER from Debian $debver (linux-kbuild-$series $kbuild_ver)"
    specs=("linux-headers-$abi-$ARCH=$debver" "linux-headers-$abi-common=$debver"
           "linux-kbuild-$series=$kbuild_ver")
    download_debs "Debian $debver may be gone; remove $OTHER_DIR to re-pick the other release" "${specs[@]}"
    mktemp_dir stage "$CACHE" other-kernel
    x="$stage/x" m="$stage/m" out="$stage/out"
    mkdir -p "$x" "$m/lib/modules/$OTHER_KVER" "$out"
    unpack_debs "$x" "${specs[@]}"
    pack_kernel_dev "$x" "$out" "$OTHER_KVER" "$abi" "$series"
    ln -s "/usr/src/linux-headers-$OTHER_KVER" "$m/lib/modules/$OTHER_KVER/build"
    tar -C "$m" --sort=name --owner=0 --group=0 --numeric-owner -cf "$out/kernel.tar" lib
    printf '%s\n' "$BUILD_REF" >"$out/kernel-builder"
    img="$stage/image.tar"
    tar -C "$out" --owner=0 --group=0 --numeric-owner -cf "$img" kernel.tar kernel-dev.tar kernel-builder
    import_kernel_image "$img" "$OTHER_KVER" "$debver" \
        ", headers only, linux-kbuild-$series $kbuild_ver"
    rm -rf "$stage"
    printf 'KERNEL_REF=%s\n' "$ref" >&3
}

# ---------------------------------------------------------------------- main
lock_cache() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9 || die "cannot lock $CACHE/.lock"
}
check_docker() {
    "${DOCKER[@]}" version --format '{{.Server.Version}}' >/dev/null 2>&1 \
        || die "cannot talk to the docker engine with '${DOCKER[*]}'"
}

# --source-tarball: the kit's linux-source tarball, out of its .deb once.
source_tarball() {
    load_env || die "run scripts/kit.sh first: no kit is pinned in $KIT_ENV"
    local out="$CACHE/linux-source-${SERIES}_${DEBVER}.tar.xz" deb t
    if [[ ! -s $out ]]; then
        deb=$(find "$CACHE/debs" -maxdepth 1 -name "linux-source-${SERIES}_${DEBVER//:/%3a}_all.deb" | head -n 1)
        [[ -n $deb ]] || die "no linux-source-${SERIES} ${DEBVER} .deb in $CACHE/debs: run scripts/kit.sh"
        tmp_for t "$out"
        dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards '*usr/src/linux-source-*.tar.xz' >"$t"
        mv -f "$t" "$out"
        log "linux-source tarball: $out ($(du -h "$out" | cut -f1))"
    fi
    printf '%s\n' "$out" >&3
}

main() {
    local t0; t0="$(now)"
    case ${1:-} in
        --source-tarball)
            lock_cache
            source_tarball
            return 0 ;;
        --other-headers)
            lock_cache
            other_headers
            return 0 ;;
        --other-kernel)
            lock_cache
            check_docker
            other_kernel
            log "done in $(since "$t0")"
            return 0 ;;
    esac
    lock_cache
    check_docker

    if [[ ${DMB_KIT_REFRESH:-} == 1 ]] || ! load_env; then
        KVER="" ABI="" SERIES="" DEBVER=""
    fi
    if [[ -n $KVER ]] && have_builder_image && have_kernel_image "$KVER" "$DEBVER"; then
        log "both images present ($(since "$t0"))"
    else
        ensure_builder
        if [[ -z $KVER ]]; then resolve_kernel; save_env; fi
        ensure_kernel
        log "done in $(since "$t0")"
    fi
    printf 'KVER=%s\nKERNEL_REF=%s\nBUILD_REF=%s\n' "$KVER" "$KERNEL_REPO:$KVER" "$BUILD_REF" >&3
}

main "$@"
