//! The fixed scripts dmb puts into the build container, and the markers they
//! print so that dmb can tell a failing make from a make that built nothing.

/// Prefix of the lines the build script prints for dmb. It appears in no
/// Dockerfile, so a build log echoing instructions cannot fake one.
pub const MARKER: &str = "@@dmb:";

/// `/usr/local/dmb/bin/uname`: reports the TARGET kernel release, so that
/// Makefiles using `$(shell uname -r)` build for the target, not for the
/// engine's kernel. Everything else comes from the real uname.
pub const UNAME_WRAPPER: &str = r#"#!/bin/sh
# dmb: uname for a build container; the release is the target kernel's.
for real in /usr/bin/uname /bin/uname; do [ -x "$real" ] && break; done
if [ "$#" -eq 1 ] && { [ "$1" = "-r" ] || [ "$1" = "--kernel-release" ]; }; then
  printf '%s\n' "$KVER"
  exit 0
fi
out=$("$real" "$@") || exit $?
rel=$("$real" -r)
case $out in
  *"$rel"*) printf '%s\n' "${out%%"$rel"*}$KVER${out#*"$rel"}" ;;
  *) printf '%s\n' "$out" ;;
esac
"#;

/// `/usr/local/dmb/build.sh`: runs the module's default make target, then
/// gathers every `.ko` it left into `/dmb-out/ko` and, where the image has
/// depmod, its index for the kmod layout into `/dmb-out/depmod`.
pub const BUILD_SCRIPT: &str = r#"#!/bin/sh
set -u
mkdir -p "/lib/modules/$KVER"
ln -sfn "$KDIR" "/lib/modules/$KVER/build"
# Makefiles that say M=$(PWD) expect make to start in the module directory.
cd /usr/src/module && export PWD=/usr/src/module
echo "dmb: make -C /usr/src/module for $KVER"
make -C /usr/src/module
rc=$?
if [ "$rc" -ne 0 ]; then echo "@@dmb:make-failed:$rc"; exit "$rc"; fi
mkdir -p /dmb-out/ko /dmb-out/depmod /tmp/dmb-tree/lib/modules/"$KVER"/extra
find /usr/src/module -name '*.ko' -type f | sort > /tmp/dmb-ko-list
if [ ! -s /tmp/dmb-ko-list ]; then echo "@@dmb:no-ko"; exit 3; fi
while IFS= read -r f; do
  b=${f##*/}
  if [ -e "/dmb-out/ko/$b" ]; then echo "@@dmb:duplicate:$b"; exit 4; fi
  cp "$f" "/dmb-out/ko/$b"
  cp "$f" "/tmp/dmb-tree/lib/modules/$KVER/extra/$b"
  echo "@@dmb:ko:${f#/usr/src/module/}"
done < /tmp/dmb-ko-list
if command -v depmod >/dev/null 2>&1; then
  if depmod -b /tmp/dmb-tree "$KVER"; then
    for f in /tmp/dmb-tree/lib/modules/"$KVER"/modules.*; do
      [ -f "$f" ] && cp "$f" /dmb-out/depmod/
    done
    echo "@@dmb:depmod"
  fi
fi
exit 0
"#;

/// What the build script reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub make_failed: Option<i32>,
    pub no_ko: bool,
    pub duplicate: Option<String>,
    /// Module files, relative to the module directory.
    pub built: Vec<String>,
    pub depmod: bool,
}

impl Report {
    /// Reads the markers from a build log. BuildKit prefixes each line with
    /// a step number and time, so a marker may stand anywhere in a line.
    pub fn from_log<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut r = Report::default();
        for line in lines {
            let Some(at) = line.find(MARKER) else {
                continue;
            };
            let marker = &line[at + MARKER.len()..];
            let (kind, value) = marker.split_once(':').unwrap_or((marker, ""));
            match kind.trim() {
                "make-failed" => r.make_failed = value.trim().parse().ok().or(Some(1)),
                "no-ko" => r.no_ko = true,
                "duplicate" => r.duplicate = Some(value.trim().to_string()),
                "ko" => r.built.push(value.trim().to_string()),
                "depmod" => r.depmod = true,
                _ => {}
            }
        }
        r
    }
}

/// The lines of a failed build that say why: compiler and make errors,
/// without BuildKit's step prefixes.
pub fn error_lines(log: &[String]) -> Vec<String> {
    log.iter()
        .map(|l| strip_colours(l))
        .map(|l| strip_buildkit_prefix(&l).to_string())
        .filter(|l| {
            l.contains("error:")
                || l.contains("Error ")
                || l.contains("*** ")
                || l.contains("fatal error")
                || l.contains("undefined!")
        })
        .collect()
}

/// The legacy builder colours a step's stderr (`ESC[91m` … `ESC[0m`).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `#12 0.345 text` → `text`.
fn strip_buildkit_prefix(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('#') else {
        return line;
    };
    let mut parts = rest.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(step), Some(time), Some(text))
            if step.chars().all(|c| c.is_ascii_digit())
                && time.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            text
        }
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_both_builders_logs() {
        let legacy = [
            "Step 6/6 : RUN [\"/bin/sh\", \"/usr/local/dmb/build.sh\"]",
            "@@dmb:ko:hello.ko",
            "@@dmb:ko:sub/two.ko",
            "@@dmb:depmod",
        ];
        let r = Report::from_log(legacy);
        assert_eq!(r.built, ["hello.ko", "sub/two.ko"]);
        assert!(r.depmod);
        let buildkit = ["#9 3.217 @@dmb:make-failed:2"];
        assert_eq!(Report::from_log(buildkit).make_failed, Some(2));
        assert!(Report::from_log(["#9 1.0 @@dmb:no-ko"]).no_ko);
        assert_eq!(
            Report::from_log(["@@dmb:ko:a/x.ko", "@@dmb:duplicate:x.ko"]).duplicate,
            Some("x.ko".to_string())
        );
    }

    #[test]
    fn compiler_errors_are_picked_out() {
        let log = [
            "#9 0.512 make: Entering directory '/usr/src/module'",
            "#9 1.034 /usr/src/module/broken.c:4:1: error: unknown type name 'intt'",
            "\u{1b}[0m\u{1b}[91mmake[2]: *** [scripts/Makefile.build:250: broken.o] Error 1",
            "@@dmb:make-failed:2",
        ]
        .map(String::from);
        assert_eq!(
            error_lines(&log),
            [
                "/usr/src/module/broken.c:4:1: error: unknown type name 'intt'",
                "make[2]: *** [scripts/Makefile.build:250: broken.o] Error 1"
            ]
        );
    }
}
