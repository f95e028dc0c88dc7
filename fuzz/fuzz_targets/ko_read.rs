//! Any bytes as a module file (plain, compressed, signed): an error or a
//! module, never a panic, and bounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dmb::ko::Module::read("fuzz.ko", data.to_vec()) {
        let _ = m.inspection();
        let _ = m.info.parameters();
        let _ = m.info.depends();
    }
});
