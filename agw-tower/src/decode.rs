//! Decoding `Content-Encoding` for inspection, with a bound on the decoded size.
//!
//! Claude Code compresses large request bodies. A guard must read what the provider will read,
//! so compressed bodies are decoded — never past the body limit, so a decompression bomb costs
//! at most `limit` bytes of memory.

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_ENCODING;
use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decoded body exceeds the limit.
    #[error("the decoded request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// An encoding agw does not know.
    #[error("unsupported content-encoding `{0}`")]
    Unsupported(String),
    /// The data is corrupt.
    #[error("the {0} request body is corrupt")]
    Corrupt(&'static str),
}

/// The encodings of a message, outermost last, or `None` when it is not encoded.
pub fn encodings(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut list = Vec::new();
    for v in headers.get_all(CONTENT_ENCODING) {
        for e in v.to_str().unwrap_or("\u{FFFD}").split(',') {
            let e = e.trim().to_ascii_lowercase();
            if !e.is_empty() && e != "identity" {
                list.push(e);
            }
        }
    }
    (!list.is_empty()).then_some(list)
}

/// Decodes `data` (encoded with `encodings`, applied in order) to at most `limit` bytes.
pub fn decode(data: &Bytes, encodings: &[String], limit: usize) -> Result<Bytes, DecodeError> {
    let mut cur = data.clone();
    for e in encodings.iter().rev() {
        cur = decode_one(&cur, e, limit)?;
    }
    Ok(cur)
}

fn decode_one(data: &[u8], encoding: &str, limit: usize) -> Result<Bytes, DecodeError> {
    let reader: Box<dyn Read + '_> = match encoding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(data)),
        "deflate" => {
            // RFC 9110 says zlib-wrapped; some clients send raw deflate. A zlib header names
            // method 8 in its low nibble; a raw deflate stream would need a stored block with a
            // non-zero padding bit for that, which encoders never write.
            if data.len() >= 2
                && data[0] & 0x0f == 8
                && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0
            {
                Box::new(flate2::read::ZlibDecoder::new(data))
            } else {
                Box::new(flate2::read::DeflateDecoder::new(data))
            }
        }
        "br" => Box::new(brotli_decompressor::Decompressor::new(data, 8192)),
        "zstd" => Box::new(
            ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|_| DecodeError::Corrupt("zstd"))?,
        ),
        other => return Err(DecodeError::Unsupported(other.to_owned())),
    };
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let n = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt(static_name(encoding)))?;
    if n > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

fn static_name(e: &str) -> &'static str {
    match e {
        "gzip" | "x-gzip" => "gzip",
        "deflate" => "deflate",
        "br" => "br",
        _ => "zstd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn round_trips() {
        let plain = b"{\"messages\":[]}".repeat(100);
        let enc = gzip(&plain);
        assert_eq!(decode(&enc, &["gzip".into()], 1 << 20).unwrap(), plain);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&plain).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(decode(&z, &["deflate".into()], 1 << 20).unwrap(), plain);
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        d.write_all(&plain).unwrap();
        let d = Bytes::from(d.finish().unwrap());
        assert_eq!(decode(&d, &["deflate".into()], 1 << 20).unwrap(), plain);
        // Two layers, applied in order.
        let twice = gzip(&gzip(&plain));
        assert_eq!(
            decode(&twice, &["gzip".into(), "gzip".into()], 1 << 20).unwrap(),
            plain
        );
    }

    /// Found by `fuzz/` (gzip_body): raw deflate whose first two bytes happen to be a multiple
    /// of 31 (`fb ff` here) was taken for zlib and reported corrupt.
    #[test]
    fn raw_deflate_that_looks_like_a_zlib_header() {
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        d.write_all(b"\xff\xff").unwrap();
        let d = Bytes::from(d.finish().unwrap());
        assert_eq!(d[..2], [0xfb, 0xff]);
        assert_eq!(
            decode(&d, &["deflate".into()], 100).unwrap(),
            &b"\xff\xff"[..]
        );
    }

    #[test]
    fn bombs_are_bounded() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            decode(&bomb, &["gzip".into()], 1 << 20),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn corrupt_and_unknown() {
        assert!(matches!(
            decode(&Bytes::from_static(b"nope"), &["gzip".into()], 100),
            Err(DecodeError::Corrupt("gzip"))
        ));
        assert!(matches!(
            decode(&Bytes::from_static(b"x"), &["compress".into()], 100),
            Err(DecodeError::Unsupported(_))
        ));
        let mut h = HeaderMap::new();
        h.append(CONTENT_ENCODING, "gzip, identity".parse().unwrap());
        h.append(CONTENT_ENCODING, "BR".parse().unwrap());
        assert_eq!(encodings(&h).unwrap(), vec!["gzip", "br"]);
    }
}
