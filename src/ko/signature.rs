//! An appended module signature: `[ELF][signature][struct module_signature]
//! "~Module signature appended~\n"`. For PKCS#7 signatures (what
//! `scripts/sign-file` writes) the signer, key id and hash algorithm live in
//! the PKCS#7 SignerInfo; older formats carry them in the trailer.

use serde::Serialize;

use super::KoError;

pub const MAGIC: &[u8] = b"~Module signature appended~\n";
/// `struct module_signature`: algo, hash, id_type, signer_len, key_id_len,
/// 3 bytes of padding, big-endian sig_len.
const TRAILER: usize = 12;
const ID_PKCS7: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// `pkcs7`, or the raw id type for older formats.
    pub format: String,
    pub signer: Option<String>,
    /// The certificate serial number (hex), as modinfo shows `sig_key`.
    pub key_id: Option<String>,
    pub hash_algorithm: Option<String>,
    pub length: usize,
}

/// Splits a module file into its ELF part and its signature, if any.
pub fn split(file: &[u8]) -> Result<(&[u8], Option<Signature>), KoError> {
    let Some(body) = file.strip_suffix(MAGIC) else {
        return Ok((file, None));
    };
    if body.len() < TRAILER {
        return Err(KoError::Malformed("signature trailer is truncated".into()));
    }
    let (rest, trailer) = body.split_at(body.len() - TRAILER);
    let id_type = trailer[2];
    let (signer_len, key_id_len) = (trailer[3] as usize, trailer[4] as usize);
    let sig_len = u32::from_be_bytes(trailer[8..12].try_into().expect("4 bytes")) as usize;
    let total = sig_len
        .checked_add(signer_len)
        .and_then(|n| n.checked_add(key_id_len))
        .filter(|n| *n <= rest.len())
        .ok_or_else(|| {
            KoError::Malformed(format!(
                "signature of {sig_len} bytes does not fit the file"
            ))
        })?;
    let (elf, blob) = rest.split_at(rest.len() - total);
    let signature = if id_type == ID_PKCS7 {
        let mut s = pkcs7_signer(&blob[signer_len + key_id_len..]).unwrap_or_default();
        s.length = sig_len;
        s
    } else {
        // Pre-PKCS#7 formats: signer name and key id precede the signature.
        let signer = String::from_utf8_lossy(&blob[..signer_len]).into_owned();
        let key_id = hex(&blob[signer_len..signer_len + key_id_len]);
        Signature {
            format: format!("id-type-{id_type}"),
            signer: Some(signer).filter(|s| !s.is_empty()),
            key_id: Some(key_id).filter(|s| !s.is_empty()),
            hash_algorithm: None,
            length: sig_len,
        }
    };
    Ok((elf, Some(signature)))
}

impl Default for Signature {
    fn default() -> Self {
        Signature {
            format: "pkcs7".into(),
            signer: None,
            key_id: None,
            hash_algorithm: None,
            length: 0,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One DER element: tag and contents.
struct Der<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads the element at the start of `data`; returns it and what follows.
fn der(data: &[u8]) -> Option<(Der<'_>, &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let (body, after) = rest.split_at(len);
    Some((Der { tag, body }, after))
}

/// The elements inside a constructed element.
fn children(body: &[u8]) -> Vec<Der<'_>> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some((d, after)) = der(rest) {
        out.push(d);
        rest = after;
    }
    out
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const CONTEXT_0: u8 = 0xa0;

/// ContentInfo → [0] SignedData → signerInfos (the last SET) → first
/// SignerInfo → issuerAndSerialNumber, digestAlgorithm.
fn pkcs7_signer(der_bytes: &[u8]) -> Option<Signature> {
    let (content_info, _) = der(der_bytes)?;
    let ci = children(content_info.body);
    let explicit = ci.iter().find(|d| d.tag == CONTEXT_0)?;
    let (signed_data, _) = der(explicit.body)?;
    let signer_infos = children(signed_data.body)
        .into_iter()
        .rev()
        .find(|d| d.tag == SET)?;
    let (signer_info, _) = der(signer_infos.body)?;
    let parts = children(signer_info.body);
    let mut sig = Signature::default();
    if let Some(ias) = parts.iter().find(|d| d.tag == SEQUENCE) {
        let ias = children(ias.body);
        if let Some(issuer) = ias.first() {
            sig.signer = common_name(issuer.body);
        }
        if let Some(serial) = ias.iter().find(|d| d.tag == INTEGER) {
            // DER prefixes a 0 byte to keep a high-bit serial positive.
            let bytes = match serial.body {
                [0, rest @ ..] if rest.first().is_some_and(|b| *b >= 0x80) => rest,
                all => all,
            };
            sig.key_id = Some(hex(bytes));
        }
    }
    if let Some(alg) = parts.iter().filter(|d| d.tag == SEQUENCE).nth(1) {
        if let Some(oid) = children(alg.body).iter().find(|d| d.tag == OID) {
            sig.hash_algorithm = Some(digest_name(oid.body));
        }
    }
    Some(sig)
}

/// The CN of an X.501 Name (SEQUENCE of SET of SEQUENCE {OID, value}).
fn common_name(name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    for rdn in children(name) {
        for atv in children(rdn.body) {
            let parts = children(atv.body);
            if let [oid, value, ..] = parts.as_slice() {
                if oid.tag == OID && oid.body == CN {
                    return Some(String::from_utf8_lossy(value.body).into_owned());
                }
            }
        }
    }
    None
}

fn digest_name(oid: &[u8]) -> String {
    const NIST: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    if oid == [0x2b, 0x0e, 0x03, 0x02, 0x1a] {
        return "sha1".into();
    }
    if let Some([n]) = oid.strip_prefix(NIST) {
        let name = match n {
            1 => "sha256",
            2 => "sha384",
            3 => "sha512",
            4 => "sha224",
            8 => "sha3-256",
            9 => "sha3-384",
            10 => "sha3-512",
            _ => "",
        };
        if !name.is_empty() {
            return name.into();
        }
    }
    format!("oid {}", hex(oid))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 0x80 {
            v.push(body.len() as u8);
        } else {
            v.push(0x82);
            v.extend((body.len() as u16).to_be_bytes());
        }
        v.extend(body);
        v
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// A PKCS#7 SignedData with one SignerInfo, shaped as sign-file writes it.
    pub(crate) fn pkcs7(cn: &str, serial: &[u8]) -> Vec<u8> {
        let sha256 = tlv(OID, &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]);
        let issuer = tlv(
            SEQUENCE,
            &tlv(
                SET,
                &tlv(
                    SEQUENCE,
                    &cat(&[tlv(OID, &[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())]),
                ),
            ),
        );
        let signer_info = tlv(
            SEQUENCE,
            &cat(&[
                tlv(INTEGER, &[1]),
                tlv(SEQUENCE, &cat(&[issuer, tlv(INTEGER, serial)])),
                tlv(SEQUENCE, &cat(&[sha256.clone(), tlv(0x05, &[])])),
                tlv(
                    SEQUENCE,
                    &tlv(OID, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
                ),
                tlv(0x04, &[0xaa; 16]),
            ]),
        );
        let signed_data = tlv(
            SEQUENCE,
            &cat(&[
                tlv(INTEGER, &[1]),
                tlv(SET, &tlv(SEQUENCE, &sha256)),
                tlv(
                    SEQUENCE,
                    &tlv(OID, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]),
                ),
                tlv(SET, &signer_info),
            ]),
        );
        tlv(
            SEQUENCE,
            &cat(&[
                tlv(OID, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]),
                tlv(CONTEXT_0, &signed_data),
            ]),
        )
    }

    /// Appends a PKCS#7 signature the way sign-file does.
    pub(crate) fn sign(elf: &[u8], cn: &str) -> Vec<u8> {
        let sig = pkcs7(cn, &[0x3f, 0x01]);
        let mut out = elf.to_vec();
        out.extend(&sig);
        out.extend([0, 0, ID_PKCS7, 0, 0, 0, 0, 0]);
        out.extend((sig.len() as u32).to_be_bytes());
        out.extend(MAGIC);
        out
    }

    #[test]
    fn a_pkcs7_signature_names_signer_key_and_hash() {
        let signed = sign(b"ELF", "Build time autogenerated kernel key");
        let (elf, sig) = split(&signed).unwrap();
        assert_eq!(elf, b"ELF");
        let sig = sig.unwrap();
        assert_eq!(
            sig.signer.as_deref(),
            Some("Build time autogenerated kernel key")
        );
        assert_eq!(sig.key_id.as_deref(), Some("3f01"));
        assert_eq!(sig.hash_algorithm.as_deref(), Some("sha256"));
        assert_eq!(sig.format, "pkcs7");
    }

    #[test]
    fn no_trailer_no_signature() {
        assert_eq!(split(b"ELF").unwrap(), (&b"ELF"[..], None));
    }

    #[test]
    fn a_signature_longer_than_the_file_is_an_error() {
        let mut f = b"ELF".to_vec();
        f.extend([0, 0, ID_PKCS7, 0, 0, 0, 0, 0]);
        f.extend(0xffff_fff0u32.to_be_bytes());
        f.extend(MAGIC);
        assert!(split(&f).is_err());
        assert!(split(MAGIC).is_err());
    }

    #[test]
    fn garbage_pkcs7_gives_an_anonymous_signature() {
        let mut f = b"ELF".to_vec();
        f.extend([0xde, 0xad]);
        f.extend([0, 0, ID_PKCS7, 0, 0, 0, 0, 0]);
        f.extend(2u32.to_be_bytes());
        f.extend(MAGIC);
        let sig = split(&f).unwrap().1.unwrap();
        assert_eq!((sig.signer, sig.length), (None, 2));
    }
}
