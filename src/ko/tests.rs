//! `.ko` reading on synthetic modules (real ones are read in
//! `tests/check.rs`) and on hostile input.

use object::write::{Object, Symbol, SymbolSection as WSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

use super::*;

/// Pieces of a synthetic module.
#[derive(Default)]
pub(crate) struct Fixture {
    pub modinfo: Vec<u8>,
    pub versions: Vec<(u64, &'static str)>,
    pub undefined: Vec<&'static str>,
    /// (symbol, crc, gpl)
    pub exports: Vec<(&'static str, u32, bool)>,
    pub absolute_crcs: bool,
    /// The descriptor of a `.note.gnu.build-id` (none when empty).
    pub build_id: Vec<u8>,
}

impl Fixture {
    pub fn hello() -> Self {
        Fixture {
            modinfo: b"vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0name=hello\0depends=\0license=GPL\0srcversion=ABC\0alias=fs-hello\0parmtype=greeting:charp\0parm=greeting:what to say\0".to_vec(),
            versions: vec![(0x4c9d28b0, "phys_base"), (0x92997ed8, "_printk")],
            undefined: vec!["_printk", "__fentry__"],
            exports: vec![("hello_answer", 0x1234abcd, true)],
            absolute_crcs: false,
            build_id: vec![0xaa, 0xbb, 0xcc, 0xdd],
        }
    }

    /// A module named `name` that depends on `depends` (comma-separated)
    /// and has integer parameters `params`.
    pub fn named(name: &str, depends: &str, params: &[&str], build_id: u8) -> Self {
        let mut modinfo = format!(
            "vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0name={name}\0depends={depends}\0license=GPL\0"
        );
        for p in params {
            modinfo.push_str(&format!("parmtype={p}:int\0"));
        }
        Fixture {
            modinfo: modinfo.into_bytes(),
            build_id: vec![build_id; 20],
            ..Fixture::hello()
        }
    }

    pub fn elf(&self) -> Vec<u8> {
        let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let modinfo = obj.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
        obj.append_section_data(modinfo, &self.modinfo, 1);
        if !self.versions.is_empty() {
            let mut data = Vec::new();
            for (crc, name) in &self.versions {
                let mut r = crc.to_le_bytes().to_vec();
                r.extend(name.as_bytes());
                r.resize(64, 0);
                data.extend(r);
            }
            let s = obj.add_section(
                Vec::new(),
                b"__versions".to_vec(),
                SectionKind::ReadOnlyData,
            );
            obj.append_section_data(s, &data, 8);
        }
        if !self.build_id.is_empty() {
            let mut note = Vec::new();
            note.extend(4u32.to_le_bytes());
            note.extend((self.build_id.len() as u32).to_le_bytes());
            note.extend(3u32.to_le_bytes());
            note.extend(b"GNU\0");
            note.extend(&self.build_id);
            let s = obj.add_section(
                Vec::new(),
                b".note.gnu.build-id".to_vec(),
                SectionKind::Note,
            );
            obj.append_section_data(s, &note, 4);
        }
        for name in &self.undefined {
            obj.add_symbol(Symbol {
                name: name.as_bytes().to_vec(),
                value: 0,
                size: 0,
                kind: SymbolKind::Unknown,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: WSection::Undefined,
                flags: SymbolFlags::None,
            });
        }
        for (name, crc, gpl) in &self.exports {
            let table = if *gpl {
                "___ksymtab_gpl+"
            } else {
                "___ksymtab+"
            };
            let ks = obj.add_section(
                Vec::new(),
                format!("{table}{name}").into_bytes(),
                SectionKind::Data,
            );
            let off = obj.append_section_data(ks, &[0u8; 12], 4);
            obj.add_symbol(Symbol {
                name: format!("__ksymtab_{name}").into_bytes(),
                value: off,
                size: 12,
                kind: SymbolKind::Data,
                scope: SymbolScope::Compilation,
                weak: false,
                section: WSection::Section(ks),
                flags: SymbolFlags::None,
            });
            let (section, value) = if self.absolute_crcs {
                (WSection::Absolute, *crc as u64)
            } else {
                let cs = obj.add_section(
                    Vec::new(),
                    b".rodata.crcs".to_vec(),
                    SectionKind::ReadOnlyData,
                );
                (
                    WSection::Section(cs),
                    obj.append_section_data(cs, &crc.to_le_bytes(), 4),
                )
            };
            obj.add_symbol(Symbol {
                name: format!("__crc_{name}").into_bytes(),
                value,
                size: 4,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section,
                flags: SymbolFlags::None,
            });
        }
        obj.write().unwrap()
    }
}

#[test]
fn a_module_is_read_whole() {
    let m = Module::read("hello.ko", Fixture::hello().elf()).unwrap();
    assert_eq!(m.name, "hello");
    assert_eq!(
        m.elf,
        ElfKind {
            class: 64,
            machine: machine::X86_64,
            little_endian: true
        }
    );
    assert_eq!(
        m.versions[1],
        SymbolVersion {
            symbol: "_printk".into(),
            crc: 0x92997ed8
        }
    );
    assert_eq!(m.undefined, ["__fentry__", "_printk"]);
    assert_eq!(
        m.exports,
        [Export {
            symbol: "hello_answer".into(),
            crc: Some(0x1234abcd),
            gpl_only: true
        }]
    );
    assert_eq!(
        m.info.parameters()[0].description.as_deref(),
        Some("what to say")
    );
    assert_eq!(m.signature, None);
}

#[test]
fn absolute_crcs_of_older_kernels() {
    let mut f = Fixture::hello();
    f.absolute_crcs = true;
    f.exports[0].2 = false;
    let m = Module::read("hello.ko", f.elf()).unwrap();
    assert_eq!(
        m.exports,
        [Export {
            symbol: "hello_answer".into(),
            crc: Some(0x1234abcd),
            gpl_only: false
        }]
    );
}

#[test]
fn compressed_and_signed_modules_read_the_same() {
    let plain = Fixture::hello().elf();
    let signed = signature::tests::sign(&plain, "dmb test key");
    let xz = {
        use std::io::Write;
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&signed).unwrap();
        e.finish().unwrap()
    };
    let m = Module::read("hello.ko.xz", xz).unwrap();
    assert_eq!(m.name, "hello");
    assert_eq!(m.signature.unwrap().signer.as_deref(), Some("dmb test key"));
}

#[test]
fn an_elf_without_modinfo_is_not_a_module() {
    let mut f = Fixture::hello();
    f.modinfo.clear();
    // An empty section is still a section: drop it by renaming.
    let mut elf = f.elf();
    let at = elf.windows(8).position(|w| w == b".modinfo").unwrap();
    elf[at..at + 8].copy_from_slice(b".notinfo");
    assert_eq!(Module::read("x.ko", elf), Err(KoError::NoModinfo));
}

#[test]
fn hostile_inputs_are_errors_not_panics() {
    let good = Fixture::hello().elf();
    // Every truncation of a real module.
    for len in (0..good.len()).step_by(7) {
        let _ = Module::read("t.ko", good[..len].to_vec());
    }
    // Flipped bytes all over the headers and tables.
    for i in 0..good.len().min(4096) {
        let mut bad = good.clone();
        bad[i] ^= 0xff;
        let _ = Module::read("f.ko", bad);
    }
    assert!(matches!(
        Module::read("e.ko", Vec::new()),
        Err(KoError::NotElf(_))
    ));
    assert!(matches!(
        Module::read("g.ko", b"\x7fELF garbage".to_vec()),
        Err(KoError::NotElf(_))
    ));
}

#[test]
fn a_huge_section_size_is_refused() {
    let mut elf = Fixture::hello().elf();
    // e_shoff (64-bit ELF, offset 40) points at the section headers; give
    // every section a size far past the end of the file.
    let shoff = u64::from_le_bytes(elf[40..48].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(elf[60..62].try_into().unwrap()) as usize;
    for i in 1..shnum {
        let size_at = shoff + i * 64 + 32;
        elf[size_at..size_at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    }
    assert!(Module::read("huge.ko", elf).is_err());
}

#[test]
fn odd_sized_versions_are_reported() {
    let mut f = Fixture::hello();
    f.versions.clear();
    let mut elf_obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let mi = elf_obj.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    elf_obj.append_section_data(mi, &f.modinfo, 1);
    let v = elf_obj.add_section(
        Vec::new(),
        b"__versions".to_vec(),
        SectionKind::ReadOnlyData,
    );
    elf_obj.append_section_data(v, &[0u8; 70], 1);
    let err = Module::read("odd.ko", elf_obj.write().unwrap()).unwrap_err();
    assert!(err.to_string().contains("not a multiple of 64"), "{err}");
}

#[test]
fn the_build_id_note_is_kept_whole_and_its_descriptor_read() {
    let m = Module::read("hello.ko", Fixture::hello().elf()).unwrap();
    assert_eq!(m.build_id().as_deref(), Some("aabbccdd"));
    let note = m.build_id_note.as_deref().unwrap();
    assert_eq!(hex(note), "040000000400000003000000474e5500aabbccdd");
    let none = Fixture {
        build_id: Vec::new(),
        ..Fixture::hello()
    };
    assert_eq!(Module::read("x.ko", none.elf()).unwrap().build_id(), None);
}
