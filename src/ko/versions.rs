//! Imported symbol versions: `__versions` (64-byte records
//! `{unsigned long crc; char name[64 - sizeof(long)]}`) and, on kernels that
//! emit them, `__version_ext_crcs` + `__version_ext_names`.

use serde::Serialize;

use super::KoError;

/// Size of one `__versions` record, on every architecture.
const RECORD: usize = 64;

/// One symbol a module imports, with the CRC it was built against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolVersion {
    pub symbol: String,
    #[serde(serialize_with = "crate::ko::hex_crc")]
    pub crc: u32,
}

/// Reads `__versions`. `wide` is a 64-bit ELF (8-byte `unsigned long`).
pub fn parse_versions(
    data: &[u8],
    wide: bool,
    little_endian: bool,
) -> Result<Vec<SymbolVersion>, KoError> {
    if data.len() % RECORD != 0 {
        return Err(KoError::Malformed(format!(
            "__versions is {} bytes, not a multiple of {RECORD}",
            data.len()
        )));
    }
    let crc_size = if wide { 8 } else { 4 };
    data.chunks_exact(RECORD)
        .map(|record| {
            let (crc, name) = record.split_at(crc_size);
            let crc = if little_endian {
                crc[0..4].try_into().map(u32::from_le_bytes)
            } else {
                // A big-endian `unsigned long` keeps its low 32 bits last.
                crc[crc_size - 4..].try_into().map(u32::from_be_bytes)
            }
            .map_err(|_| KoError::Malformed("a __versions record is truncated".into()))?;
            let end = name.iter().position(|b| *b == 0).ok_or_else(|| {
                KoError::Malformed("a __versions name is not NUL-terminated".into())
            })?;
            Ok(SymbolVersion {
                symbol: String::from_utf8_lossy(&name[..end]).into_owned(),
                crc,
            })
        })
        .collect()
}

/// Reads the extended form: one 32-bit CRC per name, names NUL-terminated.
pub fn parse_ext_versions(
    crcs: &[u8],
    names: &[u8],
    little_endian: bool,
) -> Result<Vec<SymbolVersion>, KoError> {
    if crcs.len() % 4 != 0 {
        return Err(KoError::Malformed(format!(
            "__version_ext_crcs is {} bytes, not a multiple of 4",
            crcs.len()
        )));
    }
    let names: Vec<&[u8]> = match names.strip_suffix(&[0]) {
        Some(body) => body.split(|b| *b == 0).collect(),
        None if names.is_empty() => Vec::new(),
        None => {
            return Err(KoError::Malformed(
                "__version_ext_names does not end with NUL".into(),
            ))
        }
    };
    if names.len() != crcs.len() / 4 {
        return Err(KoError::Malformed(format!(
            "{} extended CRCs for {} names",
            crcs.len() / 4,
            names.len()
        )));
    }
    Ok(crcs
        .chunks_exact(4)
        .zip(names)
        .map(|(crc, name)| {
            let bytes: [u8; 4] = crc.try_into().expect("chunks of 4");
            SymbolVersion {
                symbol: String::from_utf8_lossy(name).into_owned(),
                crc: if little_endian {
                    u32::from_le_bytes(bytes)
                } else {
                    u32::from_be_bytes(bytes)
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record64(crc: u64, name: &str) -> Vec<u8> {
        let mut r = crc.to_le_bytes().to_vec();
        r.extend(name.as_bytes());
        r.resize(RECORD, 0);
        r
    }

    #[test]
    fn sixty_four_bit_records() {
        let mut data = record64(0x4c9d28b0, "phys_base");
        data.extend(record64(0x039823de, "init_uts_ns"));
        let v = parse_versions(&data, true, true).unwrap();
        assert_eq!(v[0].symbol, "phys_base");
        assert_eq!(v[0].crc, 0x4c9d28b0);
        assert_eq!(v[1].symbol, "init_uts_ns");
    }

    #[test]
    fn thirty_two_bit_records() {
        let mut r = 0x12345678u32.to_le_bytes().to_vec();
        r.extend(b"printk");
        r.resize(RECORD, 0);
        let v = parse_versions(&r, false, true).unwrap();
        assert_eq!((v[0].symbol.as_str(), v[0].crc), ("printk", 0x12345678));
    }

    #[test]
    fn big_endian_records() {
        let mut r = 0x0000_0000_1234_5678u64.to_be_bytes().to_vec();
        r.extend(b"x");
        r.resize(RECORD, 0);
        assert_eq!(parse_versions(&r, true, false).unwrap()[0].crc, 0x12345678);
    }

    #[test]
    fn odd_sizes_and_unterminated_names_are_errors() {
        assert!(parse_versions(&[0u8; 65], true, true).is_err());
        let mut r = 1u64.to_le_bytes().to_vec();
        r.resize(RECORD, b'a');
        assert!(parse_versions(&r, true, true).is_err());
    }

    #[test]
    fn extended_versions() {
        let mut crcs = 7u32.to_le_bytes().to_vec();
        crcs.extend(9u32.to_le_bytes());
        let v = parse_ext_versions(&crcs, b"a_rather_long_rust_symbol\0b\0", true).unwrap();
        assert_eq!(v[0].symbol, "a_rather_long_rust_symbol");
        assert_eq!(v[1].crc, 9);
        assert!(parse_ext_versions(&crcs, b"only_one\0", true).is_err());
        assert!(parse_ext_versions(&crcs[..3], b"a\0", true).is_err());
    }
}
