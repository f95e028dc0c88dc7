//! Any bytes as a kernel's Module.symvers, .config and headers.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = dmb::kernel::symvers::Symvers::parse(&text);
    let mut files = BTreeMap::new();
    let (a, b) = data.split_at(data.len() / 2);
    files.insert(".config".to_string(), a.to_vec());
    files.insert("Module.symvers".to_string(), b.to_vec());
    files.insert("include/generated/utsrelease.h".to_string(), data.to_vec());
    if let Ok(f) = dmb::kernel::KernelFacts::from_files(&files) {
        let _ = f.vermagic();
    }
    let _ = dmb::kernel::image::FactFiles::read(data);
});
