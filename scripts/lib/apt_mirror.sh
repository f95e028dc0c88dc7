# shellcheck shell=bash
# Sourced by scripts/kit.sh and scripts/sim.sh: which mirror serves a Debian
# suite, read from this machine's own apt sources at run time, so that no
# mirror host is ever written into the repository.

# apt_mirror_for_suite SUITE: prints the URI (no trailing slash) of the first
# enabled "deb" source whose suites include plain SUITE (not SUITE-updates or
# SUITE-security); deb822 .sources files first, then one-line .list files.
# Returns 1 (printing nothing) when there is none.
apt_mirror_for_suite() {
    local suite=$1 f uri="" had_nullglob=0
    shopt -q nullglob && had_nullglob=1
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        uri="$(awk -v suite="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") &&
                    enabled != "no" && uris != "" && found == "") {
                    split(uris, u, " "); found = u[1]
                }
                types = ""; suites = ""; uris = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val); gsub(/[ \t]+/, " ", val)
                cur = key
                if (key == "types") types = val
                else if (key == "suites") suites = val
                else if (key == "uris") uris = val
                else if (key == "enabled") enabled = tolower(val)
                next
            }
            /^[ \t]/ {  # continuation line
                val = $0; gsub(/[ \t]+/, " ", val)
                if (cur == "suites") suites = suites val
                else if (cur == "uris") uris = uris val
                else if (cur == "types") types = types val
            }
            END { flush(); if (found != "") print found }' "$f")"
        [[ -n $uri ]] && break
    done
    if [[ -z $uri ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -f $f ]] || continue
            uri="$(awk -v suite="$suite" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit }
                }' "$f")"
            [[ -n $uri ]] && break
        done
    fi
    ((had_nullglob)) || shopt -u nullglob
    [[ -n $uri ]] || return 1
    printf '%s\n' "${uri%/}"
}
