//! Any text as what a VM says of its kernel: /proc/version, a compiler
//! string, /etc/linuxkit.yml, the probe's output, a release.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = dmb::toolchain::compiler::parse_proc_version(&text);
    let _ = dmb::toolchain::compiler::parse_compiler(&text);
    let _ = dmb::detect::linuxkit::kernel_image(&text);
    let _ = dmb::scripts::sections(&text);
    let _ = dmb::detect::LoadedModules::parse(&text);
    if let Ok(release) = dmb::kernel::KernelRelease::parse(&text) {
        let _ = dmb::detect::platform::classify(&release, &text, false);
    }
});
