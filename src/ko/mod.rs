//! Reading kernel modules (`.ko`, also `.ko.gz`/`.ko.xz`/`.ko.zst`) in pure
//! Rust: `.modinfo`, imported symbol versions, undefined and exported
//! symbols, the ELF class and machine, and an appended signature.
//!
//! Hostile input gives a [`KoError`], never a panic: sizes are checked
//! against the file before anything is read, and decompression is bounded.

mod compress;
mod modinfo;
mod signature;
mod versions;

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SectionIndex, SymbolSection};
use serde::Serialize;

pub use compress::{inflate, MAX_MODULE_BYTES};
pub use modinfo::{module_name, name_from_file, ModInfo, Parameter};
pub use signature::Signature;
pub use versions::SymbolVersion;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KoError {
    #[error("not an ELF object: {0}")]
    NotElf(String),
    #[error("no .modinfo section: not a kernel module")]
    NoModinfo,
    #[error("malformed module: {0}")]
    Malformed(String),
    #[error("cannot decompress: {0}")]
    Compression(String),
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("cannot read: {0}")]
    Io(String),
}

/// The ELF identity of a module: what kernel architecture it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ElfKind {
    /// 32 or 64.
    pub class: u8,
    #[serde(serialize_with = "machine_name")]
    pub machine: u16,
    pub little_endian: bool,
}

/// ELF `e_machine` values dmb names.
pub mod machine {
    pub const I386: u16 = 3;
    pub const ARM: u16 = 40;
    pub const X86_64: u16 = 62;
    pub const AARCH64: u16 = 183;
    pub const RISCV: u16 = 243;
    pub const PPC64: u16 = 21;
    pub const S390: u16 = 22;

    pub fn name(m: u16) -> String {
        match m {
            I386 => "i386".into(),
            ARM => "arm".into(),
            X86_64 => "x86_64".into(),
            AARCH64 => "aarch64".into(),
            RISCV => "riscv".into(),
            PPC64 => "ppc64".into(),
            S390 => "s390".into(),
            other => format!("machine {other}"),
        }
    }
}

fn machine_name<S: serde::Serializer>(m: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&machine::name(*m))
}

pub(crate) fn hex_crc<S: serde::Serializer>(crc: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{crc:08x}"))
}

/// A symbol the module exports, with its CRC when built with modversions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Export {
    pub symbol: String,
    #[serde(serialize_with = "opt_hex_crc")]
    pub crc: Option<u32>,
    pub gpl_only: bool,
}

fn opt_hex_crc<S: serde::Serializer>(crc: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match crc {
        Some(c) => hex_crc(c, s),
        None => s.serialize_none(),
    }
}

/// A kernel module as read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub file_name: String,
    pub name: String,
    pub info: ModInfo,
    pub elf: ElfKind,
    /// `__versions` and the extended form, in file order.
    pub versions: Vec<SymbolVersion>,
    pub undefined: Vec<String>,
    pub exports: Vec<Export>,
    pub signature: Option<Signature>,
    /// The `.note.gnu.build-id` section as it is in the file: the kernel
    /// shows the same bytes in `/sys/module/<name>/notes/`, which tells a
    /// loaded module's build apart where `srcversion` is absent.
    pub build_id_note: Option<Vec<u8>>,
}

impl Module {
    /// The build ID (the note's descriptor), in hex.
    pub fn build_id(&self) -> Option<String> {
        build_id_of_note(self.build_id_note.as_deref()?, self.elf.little_endian)
    }
}

/// The descriptor of a GNU build-ID note (`.note.gnu.build-id`, or what
/// `/sys/module/*/notes` shows) in hex: after the note's 12-byte header and
/// its name, which must be `GNU`. A descriptor cut short is shown as far as
/// it goes.
pub fn build_id_of_note(note: &[u8], little_endian: bool) -> Option<String> {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = note.get(at..at + 4)?.try_into().ok()?;
        Some(if little_endian {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize)
    };
    let (namesz, descsz) = (word(0)?, word(4)?);
    if namesz != 4 || note.get(12..16)? != b"GNU\0" {
        return None;
    }
    let start = 12 + namesz.checked_add(3)? / 4 * 4;
    let desc = note.get(start..start.checked_add(descsz)?.min(note.len()))?;
    (!desc.is_empty()).then(|| hex(desc))
}

/// Lower-case hex of bytes, as `od -An -tx1` shows them without spaces.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower- or upper-case hex; `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Module {
    /// Reads a module file, decompressing it if needed.
    pub fn open(path: &Path) -> Result<Self, KoError> {
        let file = std::fs::File::open(path).map_err(|e| KoError::Io(e.to_string()))?;
        let len = file
            .metadata()
            .map_err(|e| KoError::Io(e.to_string()))?
            .len();
        if len > MAX_MODULE_BYTES {
            return Err(KoError::TooLarge {
                limit: MAX_MODULE_BYTES,
            });
        }
        let raw = std::fs::read(path).map_err(|e| KoError::Io(e.to_string()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Module::read(&name, raw)
    }

    /// Reads a module from the bytes of its file.
    pub fn read(file_name: &str, raw: impl Into<Vec<u8>>) -> Result<Self, KoError> {
        let bytes = compress::inflate(raw.into())?;
        let (elf_bytes, signature) = signature::split(&bytes)?;
        let elf = object::File::parse(elf_bytes).map_err(|e| KoError::NotElf(e.to_string()))?;
        let kind = ElfKind {
            class: if elf.is_64() { 64 } else { 32 },
            machine: e_machine(elf_bytes),
            little_endian: elf.is_little_endian(),
        };
        let section = |name: &str| -> Result<Option<&[u8]>, KoError> {
            match elf.section_by_name(name) {
                None => Ok(None),
                Some(s) => s
                    .data()
                    .map(Some)
                    .map_err(|e| KoError::Malformed(format!("section {name}: {e}"))),
            }
        };
        let info = ModInfo::parse_section(section(".modinfo")?.ok_or(KoError::NoModinfo)?);
        let mut versions = match section("__versions")? {
            Some(data) => versions::parse_versions(data, kind.class == 64, kind.little_endian)?,
            None => Vec::new(),
        };
        if let (Some(crcs), Some(names)) = (
            section("__version_ext_crcs")?,
            section("__version_ext_names")?,
        ) {
            versions.extend(versions::parse_ext_versions(
                crcs,
                names,
                kind.little_endian,
            )?);
        }
        let (undefined, exports) = symbols(&elf, kind.little_endian)?;
        let build_id_note = section(".note.gnu.build-id")?.map(<[u8]>::to_vec);
        let name = info
            .get("name")
            .map(module_name)
            .unwrap_or_else(|| name_from_file(file_name));
        Ok(Module {
            file_name: file_name.to_string(),
            name,
            info,
            elf: kind,
            versions,
            undefined,
            exports,
            signature,
            build_id_note,
        })
    }
}

/// `e_machine` sits at the same offset in both ELF classes; `object`
/// already checked that the header is there.
fn e_machine(elf: &[u8]) -> u16 {
    let bytes = [elf[18], elf[19]];
    if elf[5] == 2 {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    }
}

/// Undefined symbols, and exports with their CRCs. An export is marked by a
/// `__ksymtab_<name>` symbol; its CRC is `__crc_<name>`, an absolute symbol
/// on older kernels, a 32-bit variable on newer ones.
fn symbols(elf: &object::File, little_endian: bool) -> Result<(Vec<String>, Vec<Export>), KoError> {
    let mut undefined = Vec::new();
    let mut exports = Vec::new();
    let mut crcs = std::collections::HashMap::new();
    for sym in elf.symbols() {
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        match sym.section() {
            SymbolSection::Undefined => undefined.push(name.to_string()),
            SymbolSection::Absolute => {
                if let Some(export) = name.strip_prefix("__crc_") {
                    crcs.insert(export.to_string(), sym.address() as u32);
                }
            }
            SymbolSection::Section(index) => {
                if let Some(export) = name.strip_prefix("__crc_") {
                    if let Some(crc) = read_u32(elf, index, sym.address(), little_endian)? {
                        crcs.insert(export.to_string(), crc);
                    }
                } else if let Some(export) = name.strip_prefix("__ksymtab_") {
                    let gpl_only = elf
                        .section_by_index(index)
                        .ok()
                        .and_then(|s| s.name().ok().map(|n| n.contains("_gpl")))
                        .unwrap_or(false);
                    exports.push(Export {
                        symbol: export.to_string(),
                        crc: None,
                        gpl_only,
                    });
                }
            }
            _ => {}
        }
    }
    for e in &mut exports {
        e.crc = crcs.get(&e.symbol).copied();
    }
    undefined.sort();
    undefined.dedup();
    exports.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    Ok((undefined, exports))
}

fn read_u32(
    elf: &object::File,
    index: SectionIndex,
    offset: u64,
    little_endian: bool,
) -> Result<Option<u32>, KoError> {
    let Ok(section) = elf.section_by_index(index) else {
        return Ok(None);
    };
    // A NOBITS section (no file data) has no CRC to read.
    let data = section.data().unwrap_or(&[]);
    let Some(bytes) = usize::try_from(offset)
        .ok()
        .and_then(|o| data.get(o..o.checked_add(4)?))
    else {
        return Ok(None);
    };
    let bytes: [u8; 4] = bytes.try_into().expect("4 bytes");
    Ok(Some(if little_endian {
        u32::from_le_bytes(bytes)
    } else {
        u32::from_be_bytes(bytes)
    }))
}

#[cfg(test)]
pub(crate) mod tests;

/// Signs a module as sign-file does, for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn signature_tests_sign(elf: &[u8]) -> Vec<u8> {
    signature::tests::sign(elf, "dmb test key")
}

/// What `dmb inspect` tells of a module (also its `--json` shape).
#[derive(Debug, Serialize)]
pub struct Inspection<'a> {
    pub file: &'a str,
    pub name: &'a str,
    pub vermagic: Option<&'a str>,
    pub depends: Vec<String>,
    pub srcversion: Option<&'a str>,
    pub license: Option<&'a str>,
    pub parameters: Vec<Parameter>,
    pub aliases: Vec<&'a str>,
    pub elf: ElfKind,
    pub versions: &'a [SymbolVersion],
    pub undefined: &'a [String],
    pub exports: &'a [Export],
    pub signature: Option<&'a Signature>,
    pub build_id: Option<String>,
    pub modinfo: &'a ModInfo,
}

impl Module {
    pub fn inspection(&self) -> Inspection<'_> {
        Inspection {
            file: &self.file_name,
            name: &self.name,
            vermagic: self.info.vermagic(),
            depends: self.info.depends(),
            srcversion: self.info.get("srcversion"),
            license: self.info.get("license"),
            parameters: self.info.parameters(),
            aliases: self.info.all("alias").collect(),
            elf: self.elf,
            versions: &self.versions,
            undefined: &self.undefined,
            exports: &self.exports,
            signature: self.signature.as_ref(),
            build_id: self.build_id(),
            modinfo: &self.info,
        }
    }
}
