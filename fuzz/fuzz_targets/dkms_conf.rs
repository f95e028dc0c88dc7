//! Any text as the dkms.conf evaluation script's output, then the plan dkms
//! would make of it: an error or a plan, never a panic.
#![no_main]

use dmb::dkms::conf::DkmsConf;
use dmb::dkms::plan::{DkmsPlan, Target};
use dmb::kernel::KernelConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(conf) = DkmsConf::parse(&text) else {
        return;
    };
    // Clang and lld set, so the plan's make additions run too.
    let config = KernelConfig::parse("CONFIG_X86_64=y\nCONFIG_CC_IS_CLANG=y\nCONFIG_LD_IS_LLD=y\n");
    let target = Target {
        release: "6.1.0-57-amd64",
        arch: "x86_64",
        kernel_source_dir: "/usr/src/linux-headers-6.1.0-57-amd64",
        config: &config,
    };
    if let Ok(plan) = DkmsPlan::new(&conf, &target) {
        let _ = plan.files();
        for m in &plan.modules {
            // The plan refuses a DEST_MODULE_LOCATION that leaves the tree.
            let place = m.place();
            assert!(
                !place.starts_with('/') && !place.split('/').any(|c| c == ".."),
                "{place:?} leaves lib/modules"
            );
        }
    }
});
