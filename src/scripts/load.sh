#!/bin/sh
# Loads the modules /dmb/load.list names, in its order. Each line is
# NAME<TAB>FILE<TAB>NOTE<TAB>SRCVERSION (`-` for what is unknown);
# /dmb/NAME.params holds one parameter per line. A module that is already
# loaded is left alone when it is the same build (build-ID note, else
# srcversion: the rule of dmb's load::BuildMatch) and a conflict otherwise.
# When one fails, those this run loaded are unloaded again, last first.
#
# $1 is `once` (exit with the outcome) or `boot` (what a kept loader runs at
# every engine start: first make sure the kernel is still the one the
# modules were built for, then stay up so that --restart=always does not
# run it again and again). Needs CAP_SYS_MODULE and nothing else.
# Output: `@@dmb:` loaded|present|conflict|failed|unloaded|stuck NAME …,
# wrong-kernel RUNNING WANTED, done.
mode=$1
d=/dmb
tab=$(printf '\t')
say() { echo "@@dmb:$*"; }
stay() { trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done; }
if [ "$mode" = boot ]; then
  want=$(cat "$d/release"); have=$(uname -r)
  if [ "$have" != "$want" ]; then say wrong-kernel "$have" "$want"; stay; fi
fi
inserted=""
failed=""
while IFS="$tab" read -r name file note src; do
  [ -n "$name" ] || continue
  if [ -e "/sys/module/$name/initstate" ]; then
    have_note=$(od -An -v -tx1 "/sys/module/$name/notes/.note.gnu.build-id" 2>/dev/null | tr -d ' \n')
    have_src=$(cat "/sys/module/$name/srcversion" 2>/dev/null)
    if [ "$note" != - ] && [ -n "$have_note" ] && [ "$note" != "$have_note" ]; then
      say conflict "$name"; failed=$name; break
    elif [ "$note" = - ] && [ "$src" != - ] && [ -n "$have_src" ] && [ "$src" != "$have_src" ]; then
      say conflict "$name"; failed=$name; break
    fi
    say present "$name"
    continue
  fi
  set --
  if [ -f "$d/$name.params" ]; then
    while IFS= read -r p; do set -- "$@" "$p"; done < "$d/$name.params"
  fi
  if out=$(insmod "$d/$file" "$@" 2>&1); then
    inserted="$name $inserted"
    say loaded "$name"
  else
    # One line: the message's words, whatever lines insmod printed.
    # shellcheck disable=SC2086
    say failed "$name" $out
    failed=$name
    break
  fi
done < "$d/load.list"
if [ -n "$failed" ]; then
  for m in $inserted; do
    if rmmod "$m" 2>/dev/null; then say unloaded "$m"; else say stuck "$m"; fi
  done
fi
if [ "$mode" = boot ]; then say "done"; stay; fi
[ -z "$failed" ]
