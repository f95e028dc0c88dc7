//! Reading a module build's log: the records the build script prints
//! ([`crate::scripts::BUILD`]), which tell a failing make from a make that
//! built nothing, and the compiler's own error lines.

use crate::scripts::Record;

/// What the build script reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildMarkers {
    pub make_failed: Option<i32>,
    pub no_ko: bool,
    pub duplicate: Option<String>,
    /// Module files, relative to the module directory.
    pub built: Vec<String>,
    pub depmod: bool,
    /// DKMS: `BUILT_MODULE_NAME`s make did not leave, with their location.
    pub missing: Vec<(String, String)>,
    /// DKMS: a patch that is not there (`true`) or does not apply.
    pub patch: Option<(String, bool)>,
}

impl BuildMarkers {
    /// Reads the records from a build log. BuildKit prefixes each line with
    /// a step number and time, so a record may stand anywhere in a line.
    pub fn from_log<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut r = BuildMarkers::default();
        for record in lines.into_iter().filter_map(Record::find) {
            match record.verb {
                "make-failed" => r.make_failed = record.args.parse().ok().or(Some(1)),
                "no-ko" => r.no_ko = true,
                "duplicate" => r.duplicate = Some(record.args.to_string()),
                "ko" => r.built.push(record.args.to_string()),
                "depmod" => r.depmod = true,
                "missing" => r
                    .missing
                    .push((record.arg(0).to_string(), record.arg(1).to_string())),
                "patch-missing" => r.patch = Some((record.args.to_string(), true)),
                "patch-failed" => r.patch = Some((record.args.to_string(), false)),
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
                // A full disk fails whatever tool wrote last (dd, cc1, ld).
                || l.contains("No space left on device")
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
            "@@dmb:ko hello.ko",
            "@@dmb:ko sub/two.ko",
            "@@dmb:depmod",
        ];
        let r = BuildMarkers::from_log(legacy);
        assert_eq!(r.built, ["hello.ko", "sub/two.ko"]);
        assert!(r.depmod);
        let buildkit = ["#9 3.217 @@dmb:make-failed 2"];
        assert_eq!(BuildMarkers::from_log(buildkit).make_failed, Some(2));
        assert!(BuildMarkers::from_log(["#9 1.0 @@dmb:no-ko"]).no_ko);
        assert_eq!(
            BuildMarkers::from_log(["@@dmb:ko a/x.ko", "@@dmb:duplicate x.ko"]).duplicate,
            Some("x.ko".to_string())
        );
    }

    #[test]
    fn compiler_errors_are_picked_out() {
        let log = [
            "#9 0.512 make: Entering directory '/usr/src/module'",
            "dd: error writing '/usr/src/module/x': No space left on device",
            "#9 1.034 /usr/src/module/broken.c:4:1: error: unknown type name 'intt'",
            "\u{1b}[0m\u{1b}[91mmake[2]: *** [scripts/Makefile.build:250: broken.o] Error 1",
            "@@dmb:make-failed 2",
        ]
        .map(String::from);
        assert_eq!(
            error_lines(&log),
            [
                "dd: error writing '/usr/src/module/x': No space left on device",
                "/usr/src/module/broken.c:4:1: error: unknown type name 'intt'",
                "make[2]: *** [scripts/Makefile.build:250: broken.o] Error 1"
            ]
        );
    }
}
