//! The check on synthetic modules and kernels; on real ones in
//! `tests/check.rs`.

use std::collections::BTreeMap;

use super::*;
use crate::ko::tests::Fixture;

const CONFIG: &str = "CONFIG_X86_64=y\nCONFIG_SMP=y\nCONFIG_PREEMPT_BUILD=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\n";
const SYMVERS: &str = "0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n0x92997ed8\t_printk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000001\t__fentry__\tvmlinux\tEXPORT_SYMBOL\t\n0x00000002\tcrc32c\tlib/libcrc32c\tEXPORT_SYMBOL\t\n";

fn kernel(config: &str) -> KernelFacts {
    let files: BTreeMap<String, Vec<u8>> = [
        (".config", config),
        ("Module.symvers", SYMVERS),
        (
            "include/generated/utsrelease.h",
            "#define UTS_RELEASE \"6.1.0-56-amd64\"\n",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    KernelFacts::from_files(&files).unwrap()
}

fn module(f: &Fixture) -> Module {
    Module::read("hello.ko", f.elf()).unwrap()
}

#[test]
fn a_module_built_for_the_kernel_fits() {
    let r = check(&kernel(CONFIG), &[module(&Fixture::hello())], &[]);
    assert!(r.all_fit(), "{r:?}");
}

#[test]
fn one_changed_crc_is_reported_with_both_values() {
    let mut f = Fixture::hello();
    f.versions[1].0 = 0xdeadbeef;
    let r = check(&kernel(CONFIG), &[module(&f)], &[]);
    assert_eq!(
        r.modules[0].misfits,
        [Misfit::Crc {
            symbol: "_printk".into(),
            expected: 0x92997ed8,
            found: 0xdeadbeef,
            provider: "vmlinux".into()
        }]
    );
    assert!(!r.all_fit());
}

#[test]
fn another_kernels_vermagic_is_reported() {
    let mut f = Fixture::hello();
    f.modinfo = b"vermagic=5.15.49-linuxkit SMP mod_unload \0name=hello\0".to_vec();
    let r = check(&kernel(CONFIG), &[module(&f)], &[]);
    assert_eq!(
        r.modules[0].misfits,
        [Misfit::Vermagic {
            expected: "6.1.0-56-amd64 SMP preempt mod_unload modversions ".into(),
            found: Some("5.15.49-linuxkit SMP mod_unload ".into())
        }]
    );
}

#[test]
fn symbols_and_dependencies_may_come_from_the_set() {
    let mut provider = Fixture::hello();
    provider.modinfo =
        b"vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0name=provider\0".to_vec();
    provider.exports = vec![("provider_answer", 0x77, true)];
    let mut consumer = Fixture::hello();
    consumer.modinfo =
        b"vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0name=consumer\0depends=provider,libcrc32c\0".to_vec();
    consumer.versions.push((0x77, "provider_answer"));
    consumer.undefined.push("provider_answer");
    consumer.exports.clear();
    let k = kernel(CONFIG);
    let alone = check(&k, &[module(&consumer)], &[]);
    assert_eq!(
        alone.modules[0].misfits,
        [
            Misfit::UnknownSymbol {
                symbol: "provider_answer".into()
            },
            Misfit::MissingDependency {
                module: "provider".into()
            }
        ]
    );
    let together = check(&k, &[module(&consumer)], &[module(&provider)]);
    assert!(together.all_fit(), "{together:?}");
    // A provider rebuilt with another CRC is caught too.
    provider.exports[0].1 = 0x78;
    let skewed = check(&k, &[module(&consumer), module(&provider)], &[]);
    assert!(
        matches!(&skewed.modules[0].misfits[..], [Misfit::Crc { provider, .. }] if provider == "provider")
    );
}

#[test]
fn unsigned_modules_on_a_kernel_that_forces_signatures() {
    let k = kernel(&format!("{CONFIG}CONFIG_MODULE_SIG_FORCE=y\n"));
    let r = check(&k, &[module(&Fixture::hello())], &[]);
    assert_eq!(r.modules[0].misfits, [Misfit::Unsigned]);
    let signed = crate::ko::signature_tests_sign(&Fixture::hello().elf());
    let r = check(&k, &[Module::read("hello.ko", signed).unwrap()], &[]);
    assert!(r.all_fit(), "{r:?}");
}

#[test]
fn another_architecture_is_reported() {
    let k = kernel("CONFIG_ARM64=y\nCONFIG_SMP=y\nCONFIG_PREEMPT_BUILD=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\n");
    let r = check(&k, &[module(&Fixture::hello())], &[]);
    assert!(r.modules[0].misfits.contains(&Misfit::Architecture {
        expected: "aarch64 (64-bit)".into(),
        found: "x86_64 (64-bit)".into()
    }));
}
