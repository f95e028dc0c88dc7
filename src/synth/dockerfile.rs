//! The Dockerfiles of a synthesis. Pure text.

use crate::module_build::dockerfile::BUILDENV_LABEL;

/// The builder with the source unpacked (and patched) at /usr/src/linux.
pub fn source(
    build_ref: &str,
    key: &str,
    release: &str,
    compiler: &str,
    srcarch: &str,
    install: Option<&str>,
) -> String {
    let mut s = format!(
        "# dmb synthesis: the source of {release} in {build_ref}\n\
         FROM {build_ref}\n\
         LABEL {BUILDENV_LABEL}=\"{key}\"\n"
    );
    if let Some(install) = install {
        s.push_str(&format!("RUN {install}\n"));
    }
    s.push_str(&format!(
        "COPY dmb/ /tmp/dmb/\n\
         ENV KVER=\"{release}\" KCC=\"{compiler}\" KARCH=\"{srcarch}\"\n\
         RUN [\"/bin/sh\", \"/tmp/dmb/synth_source.sh\"]\n"
    ));
    s
}

/// The kernel image: the prepared tree with its Module.symvers, packed in
/// the LinuxKit layout into an image of those files only.
pub fn image(prepared: &str, key: &str, release: &str, labels: &[(&str, String)]) -> String {
    let mut s = format!(
        "# dmb synthesized kernel image for {release}\n\
         FROM {prepared} AS tree\n\
         LABEL {BUILDENV_LABEL}=\"{key}\"\n\
         COPY dmb/ /tmp/dmb/\n\
         RUN cp /tmp/dmb/Module.symvers /usr/src/linux/Module.symvers && /bin/sh /tmp/dmb/synth_pack.sh\n\n\
         FROM scratch\n"
    );
    for (k, v) in labels {
        s.push_str(&format!("LABEL {k}=\"{}\"\n", v.replace('"', "'")));
    }
    s.push_str("COPY --from=tree /dmb-out/ /\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_the_packed_files_only() {
        let text = image(
            "dmb-synth-prepared:k",
            "k2",
            "6.1.0-57-amd64",
            &[("dmb.synthesized", "6.1.0-57-amd64".into())],
        );
        insta::assert_snapshot!(text);
        let text = source(
            "b:1",
            "k",
            "6.1.0-57-amd64",
            "gcc-12",
            "x86",
            Some("apt-get install -y pahole"),
        );
        insta::assert_snapshot!(text);
    }
}
