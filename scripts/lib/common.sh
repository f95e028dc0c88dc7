# shellcheck shell=bash
# Shared by kit.sh and sim.sh: logging, timing, and temporary paths that are
# removed when the script exits. The sourcing script sets LOG_PREFIX and
# calls remove_tmp_paths from its EXIT trap.

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { printf '%s: error: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

TMP_PATHS=()
# shellcheck disable=SC2317  # run by the EXIT trap
remove_tmp_paths() {
    local p m
    for p in "${TMP_PATHS[@]}"; do
        [[ -e $p || -L $p ]] || continue
        if [[ -d $p ]]; then
            # An interrupted debootstrap may leave proc/sys mounted inside.
            while read -r m; do
                umount -l "$m" 2>/dev/null || true
            done < <(awk -v p="$p/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
            rm -rf --one-file-system -- "$p" 2>/dev/null || rm -rf -- "$p" || true
        else
            rm -f -- "$p"
        fi
    done
}
mktemp_dir() {  # VAR PARENT NAME: VAR := new temp dir in PARENT (removed on exit)
    local _d; _d="$(mktemp -d "$2/.tmp.$3.XXXXXX")"
    TMP_PATHS+=("$_d"); printf -v "$1" "%s" "$_d"
}
tmp_for() {  # VAR FILE: VAR := temp name beside FILE for an atomic write (removed on exit if left)
    local _t; _t="$(dirname "$2")/.$(basename "$2").tmp.$$"
    TMP_PATHS+=("$_t"); printf -v "$1" "%s" "$_t"
}
