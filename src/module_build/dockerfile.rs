//! Rendering the Dockerfiles of a build. Pure text; tested with golden files.

use crate::kernel::{headers_dir, KERNEL_DEV_TAR};

/// Label on the build-environment image and its layers.
pub const BUILDENV_LABEL: &str = "dmb.buildenv";
/// Where the module sources go, as in the seed recipe.
pub const MODULE_DIR_IN_CONTAINER: &str = "/usr/src/module";
/// PATH when the builder image sets none (Docker's own default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The cached build environment: the builder image, completed with a
/// toolchain when it lacks one, plus every header tree of `kernel-dev.tar`,
/// unpacked by `buildenv_unpack.sh` (in the context).
///
/// `kernel-dev.tar` comes straight from the kernel image (never through
/// the client, which may be far from the engine). BuildKit mounts it for
/// the one step that unpacks it, so the image does not carry the tarball
/// as well as its contents; the legacy builder, which has no mounts,
/// copies it in first.
pub fn buildenv(
    build_ref: &str,
    kernel_ref: &str,
    key: &str,
    install: Option<&str>,
    buildkit: bool,
) -> String {
    let mut s = format!(
        "# dmb build environment: {build_ref} with the kernel headers of {kernel_ref}\n\
         FROM {build_ref}\n\
         LABEL {BUILDENV_LABEL}=\"{key}\"\n"
    );
    if let Some(install) = install {
        s.push_str(&format!("RUN {install}\n"));
    }
    s.push_str("COPY buildenv_unpack.sh /usr/local/dmb/buildenv_unpack.sh\n");
    if buildkit {
        s.push_str(&format!(
            "RUN --mount=type=bind,from={kernel_ref},source={KERNEL_DEV_TAR},target=/tmp/dmb-kernel-dev.tar \\\n    \
             [\"/bin/sh\", \"/usr/local/dmb/buildenv_unpack.sh\", \"/tmp/dmb-kernel-dev.tar\"]\n"
        ));
    } else {
        s.push_str(&format!(
            "COPY --from={kernel_ref} {KERNEL_DEV_TAR} /tmp/dmb-kernel-dev.tar\n\
             RUN /bin/sh /usr/local/dmb/buildenv_unpack.sh /tmp/dmb-kernel-dev.tar && rm /tmp/dmb-kernel-dev.tar\n"
        ));
    }
    s
}

/// The per-build image of BuildKit: the build script runs over the
/// sources in `/usr/local/dmb`, with the build directory `/usr/src/module`
/// a cache mount kept between builds (`cache`: its id); `sharing=locked`
/// makes a second build of the same module wait for the first. A last
/// `FROM scratch` stage holds only what is exported.
///
/// The legacy builder has no cache mounts; it runs the same script in a
/// container with a volume instead ([`crate::engine::ContainerBuild`]).
pub fn build(buildenv_tag: &str, session: &str, release: &str, cache: &str) -> String {
    let kdir = headers_dir(release);
    format!(
        "# dmb module build for {release}\n\
         FROM {buildenv_tag}\n\
         LABEL {session_label}=\"{session}\"\n\
         COPY dmb/ /usr/local/dmb/\n\
         ENV KVER=\"{release}\" KDIR=\"{kdir}\"\n\
         RUN --mount=type=cache,id={cache},target={MODULE_DIR_IN_CONTAINER},sharing=locked \\\n    \
         [\"/bin/sh\", \"/usr/local/dmb/build.sh\"]\n\
         \n\
         FROM scratch\n\
         COPY --from=0 /dmb-out/ /\n",
        session_label = crate::engine::SESSION_LABEL,
    )
}

/// A DKMS package's build: its tree at `/usr/src/NAME-VERSION` (dkms's
/// `source_tree`), the plan and script in `/usr/local/dmb`, built by bash
/// as dkms would. With BuildKit a last `FROM scratch` stage holds only what
/// is exported.
pub fn dkms_build(
    buildenv_tag: &str,
    session: &str,
    release: &str,
    package_dir: &str,
    export_stage: bool,
) -> String {
    let kdir = headers_dir(release);
    let mut s = format!(
        "# dmb DKMS build of {package_dir} for {release}\n\
         FROM {buildenv_tag}\n\
         LABEL {session_label}=\"{session}\"\n\
         COPY dmb/ /usr/local/dmb/\n\
         ENV KVER=\"{release}\" KDIR=\"{kdir}\" PATH=\"/usr/local/dmb/bin:${{PATH:-{DEFAULT_PATH}}}\"\n\
         COPY package/ /usr/src/{package_dir}/\n\
         RUN [\"bash\", \"/usr/local/dmb/dkms_build.sh\"]\n",
        session_label = crate::engine::SESSION_LABEL,
    );
    if export_stage {
        s.push_str("\nFROM scratch\nCOPY --from=0 /dmb-out/ /\n");
    }
    s
}

/// The kernel's source, unpacked into the build environment (with what a
/// kernel-tree build lacks installed first). The archive comes straight
/// from the kernel image, never through the client.
pub fn kernel_source(
    buildenv_tag: &str,
    kernel_ref: &str,
    key: &str,
    release: &str,
    compiler: &str,
    srcarch: &str,
    install: Option<&str>,
) -> String {
    let mut s = format!(
        "# dmb kernel source: {kernel_ref} in {buildenv_tag}\n\
         FROM {buildenv_tag}\n\
         LABEL {BUILDENV_LABEL}=\"{key}\"\n"
    );
    if let Some(install) = install {
        s.push_str(&format!("RUN {install}\n"));
    }
    s.push_str(&format!(
        "COPY --from={kernel_ref} {SOURCE_TAR} /tmp/dmb/linux.tar.xz\n\
         COPY kernel_source.sh /usr/local/dmb/kernel_source.sh\n\
         ENV KVER=\"{release}\" KCC=\"{compiler}\" KARCH=\"{srcarch}\"\n\
         RUN [\"/bin/sh\", \"/usr/local/dmb/kernel_source.sh\"]\n",
        SOURCE_TAR = crate::kernel::source::SOURCE_TAR,
    ));
    s
}

/// The source tree configured and prepared for `make M=`.
pub fn kernel_prepared(source_tag: &str, key: &str, release: &str, jobs: Option<u32>) -> String {
    format!(
        "# dmb prepared kernel tree for {release}\n\
         FROM {source_tag}\n\
         LABEL {BUILDENV_LABEL}=\"{key}\"\n\
         COPY config /usr/src/linux/.config\n\
         COPY kernel_prepare.sh /usr/local/dmb/kernel_prepare.sh\n\
         ENV KVER=\"{release}\"\n\
         {jobs}\
         RUN [\"/bin/sh\", \"/usr/local/dmb/kernel_prepare.sh\"]\n",
        jobs = jobs_arg(jobs),
    )
}

/// make's `-j` for the next RUN, as an `ARG` (the scripts read
/// `$DMB_JOBS`, else `nproc`): an ARG is not kept in the image, so a
/// prepared tree made with `--jobs` is the same tree without it.
fn jobs_arg(jobs: Option<u32>) -> String {
    jobs.map(|n| format!("ARG DMB_JOBS={n}\n"))
        .unwrap_or_default()
}

/// An in-tree build: `make M=` in the prepared tree for each group of
/// `dmb/groups`, `.ko` files out. With BuildKit a last `FROM scratch`
/// stage holds only what is exported.
pub fn in_tree(
    prepared_tag: &str,
    session: &str,
    release: &str,
    jobs: Option<u32>,
    export_stage: bool,
) -> String {
    let mut s = format!(
        "# dmb in-tree module build for {release}\n\
         FROM {prepared_tag}\n\
         LABEL {session_label}=\"{session}\"\n\
         COPY dmb/ /usr/local/dmb/\n\
         ENV KVER=\"{release}\"\n\
         {jobs}\
         RUN [\"/bin/sh\", \"/usr/local/dmb/in_tree_build.sh\"]\n",
        session_label = crate::engine::SESSION_LABEL,
        jobs = jobs_arg(jobs),
    );
    if export_stage {
        s.push_str("\nFROM scratch\nCOPY --from=0 /dmb-out/ /\n");
    }
    s
}

/// The MODULE_REF image's labels (where its modules came from), as the
/// one Dockerfile instruction `docker import --change` applies to its
/// layer; `None` without labels.
pub fn module_image_labels(labels: &[(String, String)]) -> Option<String> {
    if labels.is_empty() {
        return None;
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}={}", quoted(k), quoted(v)))
        .collect();
    Some(format!("LABEL {}", pairs.join(" ")))
}

fn quoted(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$")
        .replace('\n', " ");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildenv_without_install() {
        insta::assert_snapshot!(buildenv(
            "dmb-kit/builder:bookworm",
            "dmb-kit/kernel:6.1.0-56-amd64",
            "0123456789abcdef",
            None,
            false
        ));
    }

    #[test]
    fn buildenv_with_install() {
        insta::assert_snapshot!(buildenv(
            "alpine:3.17",
            "linuxkit/kernel:6.6.13",
            "0123456789abcdef",
            Some("apk add --no-cache build-base"),
            true
        ));
    }

    #[test]
    fn build_for_buildkit_keeps_the_build_directory_and_exports_only_the_output() {
        insta::assert_snapshot!(build(
            "dmb-buildenv:0123456789abcdef",
            "s1",
            "6.1.0-56-amd64",
            "dmb-module-fedcba9876543210"
        ));
    }

    #[test]
    fn kernel_source_with_install() {
        insta::assert_snapshot!(kernel_source(
            "dmb-buildenv:0123456789abcdef",
            "dmb-kit/kernel:6.1.0-57-amd64",
            "fedcba9876543210",
            "6.1.0-57-amd64",
            "gcc-12",
            "x86",
            Some("apt-get install -y dwarves")
        ));
    }

    #[test]
    fn kernel_prepared_tree() {
        insta::assert_snapshot!(kernel_prepared(
            "dmb-kernel-source:fedcba9876543210",
            "0011223344556677",
            "6.1.0-57-amd64",
            None
        ));
    }

    #[test]
    fn kernel_prepared_tree_with_jobs() {
        let text = kernel_prepared("src:k", "k", "6.1.0-57-amd64", Some(3));
        // The ARG comes right before the RUN that reads it.
        assert!(
            text.contains(
                "ARG DMB_JOBS=3\nRUN [\"/bin/sh\", \"/usr/local/dmb/kernel_prepare.sh\"]"
            ),
            "{text}"
        );
        assert!(!text.contains("ENV DMB_JOBS"), "{text}");
    }

    #[test]
    fn in_tree_build_for_buildkit() {
        insta::assert_snapshot!(in_tree(
            "dmb-kernel-prepared:0011223344556677",
            "s1",
            "6.1.0-57-amd64",
            None,
            true
        ));
    }

    #[test]
    fn module_image_labels_are_quoted() {
        let labels = vec![
            (
                "dmb.kernel.release".to_string(),
                "6.1.0-56-amd64".to_string(),
            ),
            ("odd".to_string(), "a \"b\" $c\nd".to_string()),
        ];
        insta::assert_snapshot!(module_image_labels(&labels).unwrap());
        assert_eq!(module_image_labels(&[]), None);
    }
}
