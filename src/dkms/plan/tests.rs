use super::*;
use crate::dkms::conf::hex;

/// The evaluation script's output for these variables (scalars and array
/// elements as `NAME[i]`) and regex outcomes.
fn conf(vars: &[(&str, &str)], matches: &[(&str, usize, &str)]) -> DkmsConf {
    let mut out = String::new();
    for (name, value) in vars {
        let (name, index) = match name.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().unwrap()),
            None => (*name, 0),
        };
        out.push_str(&format!("@@dmb:var {name} {index} {}\n", hex(value)));
    }
    for (name, index, outcome) in matches {
        out.push_str(&format!("@@dmb:match {name} {index} {outcome}\n"));
    }
    DkmsConf::parse(&out).unwrap()
}

fn config(text: &str) -> KernelConfig {
    KernelConfig::parse(text)
}

fn target(config: &KernelConfig) -> Target<'_> {
    Target {
        release: "6.1.0-57-amd64",
        arch: "x86_64",
        kernel_source_dir: "/usr/src/linux-headers-6.1.0-57-amd64",
        config,
    }
}

const BASE: &[(&str, &str)] = &[("PACKAGE_NAME", "vpoll"), ("PACKAGE_VERSION", "0.1")];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    BASE.iter().copied().chain(extra.iter().copied()).collect()
}

#[test]
fn a_single_module_package_gets_dkms_defaults() {
    let cfg = config("CONFIG_X86_64=y\n");
    let c = conf(&with(&[("DEST_MODULE_LOCATION[0]", "/extra")]), &[]);
    let plan = DkmsPlan::new(&c, &target(&cfg)).unwrap();
    assert_eq!(
        plan.modules,
        vec![PlannedModule {
            location: String::new(),
            built_name: "vpoll".into(),
            dest_location: "/extra".into(),
            dest_name: "vpoll".into(),
            strip: true,
        }]
    );
    assert_eq!(
        plan.make,
        "make -C /usr/src/linux-headers-6.1.0-57-amd64 M=/var/lib/dkms/vpoll/0.1/build"
    );
    assert_eq!(plan.clean, format!("{} clean", plan.make));
    assert_eq!(plan.modules[0].place(), "extra/vpoll.ko");
}

#[test]
fn locations_get_their_slash_and_places_their_directories() {
    let cfg = config("");
    let c = conf(
        &with(&[
            ("BUILT_MODULE_NAME[0]", "jool_common"),
            ("BUILT_MODULE_LOCATION[0]", "src/mod/common"),
            ("DEST_MODULE_LOCATION[0]", "/kernel/drivers/net/"),
            ("BUILT_MODULE_NAME[1]", "jool"),
            ("DEST_MODULE_NAME[1]", "jool_nat64"),
            ("DEST_MODULE_LOCATION[1]", "/updates"),
            ("STRIP[1]", "no"),
        ]),
        &[],
    );
    let plan = DkmsPlan::new(&c, &target(&cfg)).unwrap();
    assert_eq!(plan.modules[0].location, "src/mod/common/");
    assert_eq!(plan.modules[0].place(), "kernel/drivers/net/jool_common.ko");
    assert_eq!(plan.modules[1].place(), "updates/jool_nat64.ko");
    assert!(plan.modules[0].strip);
    assert!(!plan.modules[1].strip);
}

#[test]
fn make_match_chooses_the_last_matching_make() {
    let cfg = config("");
    let c = conf(
        &with(&[
            ("DEST_MODULE_LOCATION[0]", "/extra"),
            ("MAKE[0]", "make old"),
            ("MAKE_MATCH[0]", "^5"),
            ("MAKE[1]", "make new"),
            ("MAKE_MATCH[1]", "^6"),
            ("MAKE[2]", "make newer"),
            ("MAKE_MATCH[2]", "^6\\.1"),
        ]),
        &[
            ("MAKE_MATCH", 0, "no"),
            ("MAKE_MATCH", 1, "yes"),
            ("MAKE_MATCH", 2, "yes"),
        ],
    );
    assert_eq!(DkmsPlan::new(&c, &target(&cfg)).unwrap().make, "make newer");
    // Without MAKE_MATCH[0], MAKE[0] is the default a later match replaces.
    let c = conf(
        &with(&[
            ("DEST_MODULE_LOCATION[0]", "/extra"),
            ("MAKE[0]", "make all KERNEL_DIR=/k"),
            ("MAKE[1]", "make other"),
            ("MAKE_MATCH[1]", "^4"),
        ]),
        &[("MAKE_MATCH", 1, "no")],
    );
    assert_eq!(
        DkmsPlan::new(&c, &target(&cfg)).unwrap().make,
        "make all KERNEL_DIR=/k"
    );
}

#[test]
fn a_clang_kernel_gets_clang() {
    let cfg = config("CONFIG_CC_IS_CLANG=y\nCONFIG_LD_IS_LLD=y\n");
    let c = conf(
        &with(&[("DEST_MODULE_LOCATION[0]", "/extra"), ("MAKE[0]", "make")]),
        &[],
    );
    assert_eq!(
        DkmsPlan::new(&c, &target(&cfg)).unwrap().make,
        "make CC=clang LD=ld.lld"
    );
}

#[test]
fn patches_follow_patch_match() {
    let cfg = config("");
    let c = conf(
        &with(&[
            ("DEST_MODULE_LOCATION[0]", "/extra"),
            ("PATCH[0]", "all.patch"),
            ("PATCH[1]", "old.patch"),
            ("PATCH_MATCH[1]", "^4"),
            ("PATCH[2]", "six.patch"),
            ("PATCH_MATCH[2]", "^6"),
        ]),
        &[("PATCH_MATCH", 1, "no"), ("PATCH_MATCH", 2, "yes")],
    );
    assert_eq!(
        DkmsPlan::new(&c, &target(&cfg)).unwrap().patches,
        vec!["all.patch", "six.patch"]
    );
}

#[test]
fn dkms_refuses_what_dkms_refuses_in_its_words() {
    let cfg = config("");
    let c = conf(
        &[
            ("PACKAGE_NAME", "x"),
            ("BUILT_MODULE_NAME[0]", "a.ko"),
            ("DEST_MODULE_LOCATION[0]", "/lib"),
            ("BUILT_MODULE_NAME[1]", "b"),
        ],
        &[],
    );
    let DkmsError::Invalid { problems } = DkmsPlan::new(&c, &target(&cfg)).unwrap_err() else {
        panic!()
    };
    assert_eq!(
        problems,
        vec![
            "No 'PACKAGE_VERSION' directive specified.",
            "'BUILT_MODULE_NAME' directive ends in '.o' or '.ko' in record #0.",
            "'DEST_MODULE_NAME' directive ends in '.o' or '.ko' in record #0.",
            "Directive 'DEST_MODULE_LOCATION' does not begin with '/kernel', '/updates', or '/extra' in record #0.",
            "No 'DEST_MODULE_LOCATION' directive specified for record #1.",
        ]
    );
    // No module at all.
    let c = conf(BASE, &[]);
    assert!(matches!(
        DkmsPlan::new(&c, &target(&cfg)),
        Err(DkmsError::Invalid { .. })
    ));
}

#[test]
fn names_that_would_leave_the_tree_are_refused() {
    let cfg = config("");
    for (k, v) in [
        ("PACKAGE_NAME", "../../etc"),
        ("PACKAGE_VERSION", "1 $(id)"),
        ("BUILT_MODULE_NAME[0]", "a/b"),
        ("DEST_MODULE_LOCATION[0]", "/extra/../../../etc"),
    ] {
        let mut vars = vec![
            ("PACKAGE_NAME", "p"),
            ("PACKAGE_VERSION", "1"),
            ("BUILT_MODULE_NAME[0]", "m"),
            ("DEST_MODULE_LOCATION[0]", "/extra"),
        ];
        vars.retain(|(name, _)| *name != k);
        vars.push((k, v));
        let c = conf(&vars, &[]);
        assert!(
            matches!(
                DkmsPlan::new(&c, &target(&cfg)),
                Err(DkmsError::Invalid { .. })
            ),
            "{k}={v}"
        );
    }
}

#[test]
fn build_exclusive_names_every_condition_that_excludes() {
    let cfg = config("CONFIG_ACPI=y\nCONFIG_MODULES=y\n");
    let c = conf(
        &with(&[
            ("DEST_MODULE_LOCATION[0]", "/extra"),
            ("BUILD_EXCLUSIVE_KERNEL", "^5\\."),
            ("BUILD_EXCLUSIVE_KERNEL_MIN", "6.2"),
            ("BUILD_EXCLUSIVE_KERNEL_MAX", "5.15"),
            ("BUILD_EXCLUSIVE_ARCH", "aarch64"),
            (
                "BUILD_EXCLUSIVE_CONFIG",
                "CONFIG_ACPI !CONFIG_MODULES CONFIG_VIDEO_DEV",
            ),
        ]),
        &[
            ("BUILD_EXCLUSIVE_KERNEL", 0, "no"),
            ("BUILD_EXCLUSIVE_ARCH", 0, "no"),
        ],
    );
    let DkmsError::Excluded {
        conditions,
        package,
        ..
    } = DkmsPlan::new(&c, &target(&cfg)).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(package, "vpoll");
    assert_eq!(conditions.len(), 6, "{conditions:?}");
    assert!(conditions[0]
        .contains("BUILD_EXCLUSIVE_KERNEL=\"^5\\.\": kernel 6.1.0-57-amd64 does not match"));
    assert!(conditions[1].contains("older"));
    assert!(conditions[2].contains("newer"));
    assert!(conditions[3].contains("arch x86_64"));
    assert!(conditions[4].contains("CONFIG_MODULES is set"));
    assert!(conditions[5].contains("CONFIG_VIDEO_DEV is not set"));
}

#[test]
fn build_exclusive_that_fits_builds() {
    let cfg = config("CONFIG_ACPI=y\n");
    let c = conf(
        &with(&[
            ("DEST_MODULE_LOCATION[0]", "/extra"),
            ("BUILD_EXCLUSIVE_KERNEL", "^6\\."),
            ("BUILD_EXCLUSIVE_KERNEL_MIN", "3.9"),
            ("BUILD_EXCLUSIVE_KERNEL_MAX", "6.1.0-57-amd64"),
            ("BUILD_EXCLUSIVE_CONFIG", "CONFIG_ACPI"),
        ]),
        &[("BUILD_EXCLUSIVE_KERNEL", 0, "yes")],
    );
    assert!(DkmsPlan::new(&c, &target(&cfg)).is_ok());
}

#[test]
fn a_regex_bash_refuses_is_an_invalid_conf() {
    let cfg = config("");
    let c = conf(
        &with(&[
            ("DEST_MODULE_LOCATION[0]", "/extra"),
            ("BUILD_EXCLUSIVE_KERNEL", "("),
        ]),
        &[("BUILD_EXCLUSIVE_KERNEL", 0, "bad")],
    );
    assert!(matches!(
        DkmsPlan::new(&c, &target(&cfg)),
        Err(DkmsError::Invalid { .. })
    ));
}

#[test]
fn versions_compare_as_sort_v() {
    use std::cmp::Ordering::*;
    assert_eq!(compare_versions("6.1.0-57-amd64", "3.9"), Greater);
    assert_eq!(compare_versions("6.1.0-57-amd64", "6.2"), Less);
    assert_eq!(compare_versions("6.10", "6.9"), Greater);
    assert_eq!(compare_versions("6.1", "6.1"), Equal);
    assert_eq!(compare_versions("6.1", "6.1.0"), Less);
    assert_eq!(compare_versions("5.18", "5.18.0-rc1"), Less);
    assert_eq!(compare_versions("6.01", "6.1"), Equal);
}

#[test]
fn the_plan_files_carry_every_field() {
    let cfg = config("");
    let c = conf(
        &with(&[
            ("DEST_MODULE_LOCATION[0]", "/extra"),
            ("PRE_BUILD", "configure --kver=6.1"),
            ("PATCH[0]", "a.patch"),
        ]),
        &[],
    );
    let files: std::collections::BTreeMap<_, _> = DkmsPlan::new(&c, &target(&cfg))
        .unwrap()
        .files()
        .into_iter()
        .collect();
    assert_eq!(
        files["modules"],
        "\u{1f}vpoll\u{1f}/extra\u{1f}vpoll\u{1f}yes\n"
    );
    assert_eq!(files["pre_build"], "configure --kver=6.1");
    assert_eq!(files["patches"], "a.patch\n");
    assert_eq!(files["arch"], "x86_64");
}

#[test]
fn the_machine_follows_the_configuration() {
    assert_eq!(
        machine(&config("CONFIG_X86_64=y\nCONFIG_X86=y\n")),
        "x86_64"
    );
    assert_eq!(machine(&config("CONFIG_ARM64=y\n")), "aarch64");
}
