//! Any text as what a VM says of its kernel: /proc/version, a compiler
//! string, /etc/linuxkit.yml, the probe's sections.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = dmb::target::version::parse_proc_version(&text);
    let _ = dmb::target::version::parse_compiler(&text);
    let _ = dmb::target::linuxkit_kernel_image(&text);
    let _ = dmb::target::parse_sections(&text);
    let _ = dmb::target::platform::classify(&text, &text, false);
});
