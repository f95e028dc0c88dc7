//! Compressed modules (`.ko.gz`, `.ko.xz`, `.ko.zst`), recognised by their
//! magic bytes and inflated with a hard limit, so a decompression bomb costs
//! at most [`MAX_MODULE_BYTES`] of memory.

use std::io::Read;

use super::KoError;

/// The largest module dmb reads, compressed or not.
pub const MAX_MODULE_BYTES: u64 = 256 * 1024 * 1024;

/// The file's contents, decompressed when they are compressed.
pub fn inflate(raw: Vec<u8>) -> Result<Vec<u8>, KoError> {
    let reader: Box<dyn Read + '_> = match raw.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(raw.as_slice())),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => {
            Box::new(xz2::read::XzDecoder::new_multi_decoder(raw.as_slice()))
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
            zstd::stream::read::Decoder::new(raw.as_slice())
                .map_err(|e| KoError::Compression(e.to_string()))?,
        ),
        _ => return Ok(raw),
    };
    let mut out = Vec::new();
    reader
        .take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| KoError::Compression(e.to_string()))?;
    if out.len() as u64 > MAX_MODULE_BYTES {
        return Err(KoError::TooLarge {
            limit: MAX_MODULE_BYTES,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn each_format_round_trips() {
        let data = b"\x7fELF module bytes".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        assert_eq!(inflate(gz.finish().unwrap()).unwrap(), data);
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        assert_eq!(inflate(xz.finish().unwrap()).unwrap(), data);
        let zst = zstd::stream::encode_all(&data[..], 1).unwrap();
        assert_eq!(inflate(zst).unwrap(), data);
        assert_eq!(inflate(data.clone()).unwrap(), data);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 300 MiB of zeros compress to a few hundred KiB.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        assert!(matches!(inflate(bomb), Err(KoError::TooLarge { .. })));
    }

    #[test]
    fn truncated_streams_are_errors() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; 4096]).unwrap();
        let mut bytes = gz.finish().unwrap();
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(inflate(bytes), Err(KoError::Compression(_))));
    }
}
