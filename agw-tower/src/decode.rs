//! Decoding `Content-Encoding` for inspection, with a bound on the decoded size.
//!
//! Claude Code compresses large request bodies. A guard must read what the provider will read,
//! so compressed bodies are decoded — never past the body limit, so a decompression bomb costs
//! at most `limit` bytes of memory.
//!
//! # Untrusted input
//!
//! HTTP lets a sender stack codings (`Content-Encoding: gzip, br`), and every layer is decoded
//! in turn, synchronously. So that stacking cannot multiply the work, a body may have at most
//! [`MAX_CODINGS`] codings, and the bytes all layers produce *together* are bounded by `limit`:
//! decoding one body never writes more than `limit` bytes, however it is layered.

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_ENCODING;
use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decoded body exceeds the limit (every layer's output counts, see [`decode`]).
    #[error("the decoded request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// An encoding agw does not know.
    #[error("unsupported content-encoding `{0}`")]
    Unsupported(String),
    /// More codings than [`MAX_CODINGS`] (the number given).
    #[error("{0} stacked content-encodings, more than the {max} agw decodes", max = MAX_CODINGS)]
    TooManyCodings(usize),
    /// The data is corrupt.
    #[error("the {0} request body is corrupt")]
    Corrupt(&'static str),
    /// A `Content-Type` names a charset other than UTF-8 (or ASCII, a subset): agw reads text
    /// as UTF-8, and a receiver that decodes the declared charset would read other text (UTF-7's
    /// `+ACI-` is a quote: a black-box review smuggled JSON keys past every check that way).
    #[error("its charset `{0}` is not UTF-8, the only one agw reads")]
    Charset(String),
}

/// The most codings a body may have (`identity`, which is no coding, is not counted).
///
/// Every client agw serves sends one coding (Claude Code, the SDKs), and so do the proxies in
/// front of it (nginx, Envoy): a second allows one re-compression on the way, a third has no
/// use but to make agw decode the same bytes again and again. A body with more is refused like
/// one with an unknown coding.
pub const MAX_CODINGS: usize = 2;

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

/// The charset a `Content-Type` header of `headers` names that is not UTF-8 (every
/// header is looked at: receivers differ on which one counts), printable for an error: a name
/// that is not a plain token reads `?`.
pub(crate) fn foreign_charset(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(http::header::CONTENT_TYPE) {
        let bytes = v.as_bytes();
        // The usual `application/json` has no parameter: nothing to parse.
        if !bytes.contains(&b';') {
            continue;
        }
        let text = String::from_utf8_lossy(bytes);
        for param in text.split(';').skip(1) {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            let name = name.trim();
            // RFC 2231's `charset*=utf-8''…` names one too (Python's `email`, Go's `mime`).
            let extended = name.len() > 7 && name.as_bytes()[..8].eq_ignore_ascii_case(b"charset*");
            if !name.eq_ignore_ascii_case("charset") && !extended {
                continue;
            }
            let value = value.trim().trim_matches(['"', '\'']).trim();
            // ASCII labels are named too: a body with other bytes is not what they say (a
            // receiver that drops such bytes reads other text: round 3); see `ascii_superset`.
            let known = !extended
                && ["utf-8", "utf8"]
                    .iter()
                    .any(|c| value.eq_ignore_ascii_case(c));
            if !known {
                let printable = !value.is_empty()
                    && value.len() <= 40
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
                return Some(if printable {
                    value.to_owned()
                } else {
                    "?".into()
                });
            }
        }
    }
    None
}

/// Whether a charset named by [`foreign_charset`] reads ASCII bytes as ASCII and nothing else
/// as ASCII (ISO 8859, Windows code pages): a body of ASCII bytes is the same text in it and
/// in UTF-8. UTF-7, UTF-16 and the like are not.
pub(crate) fn ascii_superset(charset: &str) -> bool {
    let c = charset.to_ascii_lowercase();
    c.starts_with("iso-8859-")
        || c.starts_with("iso8859-")
        || c.starts_with("iso_8859-")
        || c.starts_with("windows-125")
        || c.starts_with("cp125")
        || matches!(
            c.as_str(),
            "latin1" | "latin-1" | "l1" | "us-ascii" | "ascii" | "us_ascii"
        )
}

/// Decodes `data` (encoded with `encodings`, applied in order, at most [`MAX_CODINGS`] of
/// them). The output of every layer counts against `limit`, not only the last: with two
/// layers, the intermediate bytes and the decoded body together are at most `limit`.
pub fn decode(data: &Bytes, encodings: &[String], limit: usize) -> Result<Bytes, DecodeError> {
    decode_reserving(data, encodings, limit, |_| Ok(()))
}

/// [`decode`], calling `reserve` with the size of each layer's output once that layer is
/// decoded, before the next one starts; its error stops decoding. (The body stage reserves the
/// bytes from the shared budget this way, intermediate layers included.)
pub(crate) fn decode_reserving<E: From<DecodeError>>(
    data: &Bytes,
    encodings: &[String],
    limit: usize,
    mut reserve: impl FnMut(usize) -> Result<(), E>,
) -> Result<Bytes, E> {
    if encodings.len() > MAX_CODINGS {
        return Err(DecodeError::TooManyCodings(encodings.len()).into());
    }
    let mut cur = data.clone();
    let mut produced = 0;
    for e in encodings.iter().rev() {
        // What earlier layers wrote leaves that much less room for this one.
        cur = decode_one(&cur, e, limit - produced).map_err(|e| match e {
            DecodeError::TooLarge(_) => DecodeError::TooLarge(limit),
            e => e,
        })?;
        produced += cur.len();
        reserve(cur.len())?;
    }
    Ok(cur)
}

/// Decodes one layer. The whole input must be encoded data: bytes after the end of the
/// encoded stream would reach the upstream without having been inspected (an upstream decoder
/// might read them), so they make the body corrupt. zstd frames are read one after another,
/// as `zstd -d` reads them.
fn decode_one(data: &[u8], encoding: &str, limit: usize) -> Result<Bytes, DecodeError> {
    let corrupt = || DecodeError::Corrupt(static_name(encoding));
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    // Reads `reader` to its end into `out`, within the limit.
    let read_all = |reader: &mut dyn Read, out: &mut Vec<u8>| {
        let room = (limit + 1).saturating_sub(out.len()) as u64;
        reader.take(room).read_to_end(out).map_err(|_| corrupt())?;
        if out.len() > limit {
            return Err(DecodeError::TooLarge(limit));
        }
        Ok(())
    };
    // The decoders below read from `rest`, which they advance past what they consume.
    let mut rest = data;
    match encoding {
        "gzip" | "x-gzip" => {
            let mut d = flate2::bufread::MultiGzDecoder::new(&mut rest);
            read_all(&mut d, &mut out)?;
        }
        "deflate" => {
            // RFC 9110 says zlib-wrapped; some clients send raw deflate. A zlib header names
            // method 8 in its low nibble; a raw deflate stream would need a stored block with a
            // non-zero padding bit for that, which encoders never write.
            if data.len() >= 2
                && data[0] & 0x0f == 8
                && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0
            {
                read_all(&mut flate2::bufread::ZlibDecoder::new(&mut rest), &mut out)?;
            } else {
                read_all(
                    &mut flate2::bufread::DeflateDecoder::new(&mut rest),
                    &mut out,
                )?;
            }
        }
        "br" => {
            rest = brotli(rest, limit, &mut out)?;
        }
        "zstd" => {
            while !rest.is_empty() {
                let mut d =
                    ruzstd::decoding::StreamingDecoder::new(&mut rest).map_err(|_| corrupt())?;
                read_all(&mut d, &mut out)?;
            }
        }
        other => return Err(DecodeError::Unsupported(other.to_owned())),
    }
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok(Bytes::from(out))
}

/// Decodes one brotli stream from `data` into `out` (within `limit` bytes), returning the input
/// after the stream's end (the reader API does not say how much it consumed).
fn brotli<'a>(data: &'a [u8], limit: usize, out: &mut Vec<u8>) -> Result<&'a [u8], DecodeError> {
    use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
    let mut state = BrotliState::new(
        StandardAlloc::default(),
        StandardAlloc::default(),
        StandardAlloc::default(),
    );
    let mut chunk = vec![0u8; 16 << 10];
    let (mut available_in, mut input_offset, mut total_out) = (data.len(), 0, 0);
    loop {
        let (mut available_out, mut output_offset) = (chunk.len(), 0);
        let result = BrotliDecompressStream(
            &mut available_in,
            &mut input_offset,
            data,
            &mut available_out,
            &mut output_offset,
            &mut chunk,
            &mut total_out,
            &mut state,
        );
        if out.len() + output_offset > limit {
            return Err(DecodeError::TooLarge(limit));
        }
        out.extend_from_slice(&chunk[..output_offset]);
        match result {
            BrotliResult::NeedsMoreOutput => {}
            BrotliResult::ResultSuccess => return Ok(&data[input_offset..]),
            // The input ended inside the stream, or is not brotli.
            BrotliResult::NeedsMoreInput | BrotliResult::ResultFailure => {
                return Err(DecodeError::Corrupt("br"));
            }
        }
    }
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

    /// A brotli stream of uncompressed meta-blocks (RFC 7932 §9.2), as `fuzz/` writes them.
    fn brotli_stored(data: &[u8]) -> Vec<u8> {
        let (mut out, mut acc, mut n) = (Vec::new(), 0u64, 0u32);
        let mut put = |out: &mut Vec<u8>, v: u64, bits: u32| {
            acc |= v << n;
            n += bits;
            while n >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                n -= 8;
            }
            n
        };
        put(&mut out, 0, 1); // WBITS = 16
        for chunk in data.chunks(1 << 16) {
            put(&mut out, 0, 1); // ISLAST = 0
            put(&mut out, 0, 2); // MNIBBLES = 4
            put(&mut out, chunk.len() as u64 - 1, 16); // MLEN - 1
            let left = put(&mut out, 1, 1); // ISUNCOMPRESSED
            if left > 0 {
                put(&mut out, 0, 8 - left);
            }
            out.extend_from_slice(chunk);
        }
        put(&mut out, 1, 1); // ISLAST
        let left = put(&mut out, 1, 1); // ISLASTEMPTY
        if left > 0 {
            put(&mut out, 0, 8 - left);
        }
        out
    }

    #[test]
    fn brotli_is_read_to_its_end_within_the_limit() {
        let plain: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let enc = Bytes::from(brotli_stored(&plain));
        assert_eq!(decode(&enc, &["br".into()], 1 << 20).unwrap(), plain);
        assert!(matches!(
            decode(&enc, &["br".into()], 50_000),
            Err(DecodeError::TooLarge(50_000))
        ));
        // Cut short: corrupt, not a shorter body.
        let cut = enc.slice(..enc.len() - 10);
        assert!(matches!(
            decode(&cut, &["br".into()], 1 << 20),
            Err(DecodeError::Corrupt("br"))
        ));
    }

    /// Found by the audit: bytes after the end of the encoded stream were dropped by the
    /// decoder, so they went upstream uninspected (a decoder there might read them).
    #[test]
    fn bytes_after_the_encoded_stream_are_corrupt_and_zstd_frames_are_all_read() {
        let plain = b"{\"prompt\":\"credit card\"}";
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"{}").unwrap();
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        d.write_all(b"{}").unwrap();
        let zstd = |data: &[u8]| {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        };
        let cases: [(&str, Vec<u8>); 5] = [
            ("gzip", gzip(b"{}").to_vec()),
            ("deflate", z.finish().unwrap()),
            ("deflate", d.finish().unwrap()),
            // The empty brotli stream (window bits 16, last and empty meta-block).
            ("br", vec![0x06]),
            ("zstd", zstd(b"{}")),
        ];
        for (encoding, encoded) in cases {
            let list = [encoding.to_owned()];
            let whole = Bytes::from(encoded.clone());
            decode(&whole, &list, 1 << 20).unwrap_or_else(|e| panic!("{encoding}: {e}"));
            for tail in [&b"x"[..], &plain[..], &gzip(plain)[..]] {
                let mut with_tail = encoded.clone();
                with_tail.extend_from_slice(tail);
                let got = decode(&Bytes::from(with_tail), &list, 1 << 20);
                if encoding == "gzip" && tail.starts_with(&[0x1f, 0x8b]) {
                    // A second gzip member: one body, read whole.
                    assert_eq!(got.unwrap(), &b"{}{\"prompt\":\"credit card\"}"[..]);
                    continue;
                }
                assert!(
                    matches!(got, Err(DecodeError::Corrupt(_))),
                    "{encoding} + {tail:?}: {got:?}"
                );
            }
        }
        // Concatenated zstd frames are one body (the second is not skipped).
        let mut two = zstd(b"");
        two.extend_from_slice(&zstd(plain));
        let got = decode(&Bytes::from(two.clone()), &["zstd".into()], 1 << 20).unwrap();
        assert_eq!(got, &plain[..]);
        // ... and bounded together.
        let mut big = zstd(&[b'a'; 600]);
        big.extend_from_slice(&zstd(&[b'b'; 600]));
        assert!(matches!(
            decode(&Bytes::from(big), &["zstd".into()], 1000),
            Err(DecodeError::TooLarge(1000))
        ));
    }

    /// Found by a security review: 600 stacked layers (stored gzip, brotli outermost) made agw
    /// decode 28 MiB once per layer, seconds of CPU per request. At most two codings are
    /// decoded, however the headers list them; `identity` is no coding.
    #[test]
    fn stacked_codings_are_bounded_in_number() {
        let plain = b"{\"messages\":[]}";
        let cases: [(&[&str], usize, Option<usize>); 8] = [
            (&["gzip"], 1, None),
            (&["gzip, gzip"], 2, None),
            (&["gzip", "gzip"], 2, None),
            (
                &["identity, gzip, identity", "identity", "IDENTITY, gzip"],
                2,
                None,
            ),
            (&["gzip, gzip, gzip"], 3, Some(3)),
            (&["gzip", "gzip", "gzip"], 3, Some(3)),
            (&["gzip, gzip", "identity, gzip"], 3, Some(3)),
            (&["gzip,gzip, identity,gzip ,gzip"], 4, Some(4)),
        ];
        for (values, layers, refused) in cases {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(CONTENT_ENCODING, v.parse().unwrap());
            }
            let list = encodings(&h).unwrap();
            assert_eq!(list.len(), layers, "{values:?}");
            let data = (0..layers).fold(Bytes::from_static(plain), |b, _| gzip(&b));
            match (decode(&data, &list, 1 << 20), refused) {
                (Ok(got), None) => assert_eq!(got, &plain[..], "{values:?}"),
                (Err(DecodeError::TooManyCodings(n)), Some(want)) => {
                    assert_eq!(n, want, "{values:?}")
                }
                (got, _) => panic!("{values:?}: {got:?}"),
            }
        }
        // Refused before any layer is decoded: the count, not the (corrupt) data, is the error.
        let many = vec!["gzip".to_owned(); 600];
        let err = decode(&Bytes::from_static(b"nope"), &many, 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::TooManyCodings(600)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "600 stacked content-encodings, more than the 2 agw decodes"
        );
    }

    /// Every layer's output counts against the limit: two layers that each fit it alone are
    /// refused when together they write more (the review's filler, wrapped in stored layers,
    /// is as large in every layer).
    #[test]
    fn the_limit_bounds_all_layers_together() {
        let plain: Vec<u8> = (0..600u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        e.write_all(&plain).unwrap();
        let inner = e.finish().unwrap();
        let both = ["gzip".to_owned(), "gzip".to_owned()];
        for (outer, list) in [
            (gzip(&inner), both.clone()),
            (
                Bytes::from(brotli_stored(&inner)),
                ["gzip".into(), "br".into()],
            ),
        ] {
            let total = plain.len() + inner.len();
            assert_eq!(decode(&outer, &list, total).unwrap(), plain);
            let got = decode(&outer, &list, total - 1);
            assert!(
                matches!(got, Err(DecodeError::TooLarge(l)) if l == total - 1),
                "{list:?}: {got:?}"
            );
            // Each layer alone fits that limit.
            assert_eq!(decode(&outer, &list[1..], total - 1).unwrap(), inner);
            let inner = Bytes::from(inner.clone());
            assert_eq!(decode(&inner, &list[..1], total - 1).unwrap(), plain);
        }
        // Each layer is reserved as it is decoded, and a refusal stops before the next one.
        let outer = gzip(&inner);
        let mut seen = Vec::new();
        let got = decode_reserving(&outer, &both, 1 << 20, |n| {
            seen.push(n);
            Ok::<_, DecodeError>(())
        });
        assert_eq!(got.unwrap(), plain);
        assert_eq!(seen, [inner.len(), plain.len()]);
        seen.clear();
        let got = decode_reserving(&outer, &both, 1 << 20, |n| {
            seen.push(n);
            Err(DecodeError::Corrupt("budget"))
        });
        assert!(matches!(got, Err(DecodeError::Corrupt("budget"))));
        assert_eq!(seen, [inner.len()]);
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
