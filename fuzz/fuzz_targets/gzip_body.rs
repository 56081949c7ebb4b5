//! `agw_tower::decode::decode`: bounded `Content-Encoding` decoding.
//!
//! - **Any bytes**, any list of encodings (known, unknown, upper case): no panic, an `Ok`
//!   output is never longer than the limit, errors display. (An empty list gives the data back
//!   unchanged, whatever the limit.)
//! - **Round trip.** Data (repeated, to reach past small limits) is encoded with one to three
//!   layers of gzip (one member or two), zlib or raw deflate (both `deflate`), zstd (ruzstd's
//!   encoder) or brotli (uncompressed meta-blocks, written here). Three layers are more than
//!   agw decodes (`TooManyCodings`); with fewer, decoding with a limit gives the data back
//!   exactly when the data and every intermediate layer fit the limit together, and
//!   `TooLarge` otherwise.
#![no_main]

use agw_fuzz::literal;
use agw_tower::decode::{DecodeError, MAX_CODINGS, decode};
use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Enc {
    Gzip,
    XGzip,
    GzipTwoMembers,
    Zlib,
    RawDeflate,
    Zstd,
    Brotli,
}

impl Enc {
    fn name(self) -> &'static str {
        match self {
            Enc::Gzip | Enc::GzipTwoMembers => "gzip",
            Enc::XGzip => "x-gzip",
            Enc::Zlib | Enc::RawDeflate => "deflate",
            Enc::Zstd => "zstd",
            Enc::Brotli => "br",
        }
    }

    fn encode(self, data: &[u8], level: u32) -> Vec<u8> {
        let level = flate2::Compression::new(level % 10);
        match self {
            Enc::Gzip | Enc::XGzip => gzip(data, level),
            Enc::GzipTwoMembers => {
                let half = data.len() / 2;
                [gzip(&data[..half], level), gzip(&data[half..], level)].concat()
            }
            Enc::Zlib => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
                e.write_all(data).expect("in memory");
                e.finish().expect("in memory")
            }
            Enc::RawDeflate => {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
                e.write_all(data).expect("in memory");
                e.finish().expect("in memory")
            }
            Enc::Zstd => {
                let level = if level.level().is_multiple_of(2) {
                    ruzstd::encoding::CompressionLevel::Uncompressed
                } else {
                    ruzstd::encoding::CompressionLevel::Fastest
                };
                ruzstd::encoding::compress_to_vec(data, level)
            }
            Enc::Brotli => brotli_stored(data),
        }
    }
}

fn gzip(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

/// A brotli stream of uncompressed meta-blocks (RFC 7932 §9.2), bits written LSB first.
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u64, n: u32) {
            self.acc |= v << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn align(&mut self) {
            if self.n > 0 {
                self.put(0, 8 - self.n);
            }
        }
    }
    let mut w = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    w.put(0, 1); // WBITS = 16
    for chunk in data.chunks(1 << 16) {
        w.put(0, 1); // ISLAST = 0
        w.put(0, 2); // MNIBBLES = 4
        w.put(chunk.len() as u64 - 1, 16); // MLEN - 1
        w.put(1, 1); // ISUNCOMPRESSED
        w.align();
        w.out.extend_from_slice(chunk);
    }
    w.put(1, 1); // ISLAST
    w.put(1, 1); // ISLASTEMPTY
    w.align();
    w.out
}

#[derive(Clone, Arbitrary)]
enum Input {
    /// Field order makes hand-made seeds easy: `[0; 4]`, three encodings, how many of them
    /// to use, the limit, then the data (the rest of the input).
    Raw {
        /// Indexes into `NAMES`.
        encodings: [u8; 3],
        count: u8,
        limit: u16,
        data: Vec<u8>,
    },
    RoundTrip {
        data: Vec<u8>,
        repeat: u8,
        layers: Vec<Enc>,
        level: u8,
        limit: u32,
    },
}

const NAMES: &[&str] = &[
    "gzip", "x-gzip", "deflate", "br", "zstd", "identity", "compress", "GZIP", "",
];

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Raw {
                data,
                encodings,
                count,
                limit,
            } => {
                let names: Vec<_> = encodings[..*count as usize % 4]
                    .iter()
                    .map(|e| NAMES[*e as usize % NAMES.len()])
                    .collect();
                writeln!(f, "let data = {};", literal(data))?;
                write!(f, "let encodings = {names:?}; let limit = {limit};")
            }
            Input::RoundTrip {
                data,
                repeat,
                layers,
                level,
                limit,
            } => {
                writeln!(
                    f,
                    "let plain = {}.repeat({});",
                    literal(data),
                    *repeat as usize + 1
                )?;
                write!(
                    f,
                    "layers: {layers:?}, level {level}, limit {}",
                    limit % (1 << 20)
                )
            }
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw {
            data,
            encodings,
            count,
            limit,
        } => {
            let names: Vec<String> = encodings[..count as usize % 4]
                .iter()
                .map(|e| NAMES[*e as usize % NAMES.len()].to_owned())
                .collect();
            let limit = limit as usize;
            match decode(&Bytes::from(data.clone()), &names, limit) {
                // Without encodings there is nothing to decode: the data comes back as it is
                // (callers only decode when `encodings` found some).
                Ok(out) if names.is_empty() => assert!(out == data),
                Ok(out) => assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len()),
                Err(e) => drop(e.to_string()),
            }
        }
        Input::RoundTrip {
            data,
            repeat,
            layers,
            level,
            limit,
        } => {
            if layers.is_empty() {
                return;
            }
            let plain = data.repeat(repeat as usize + 1);
            let limit = limit as usize % (1 << 20);
            let mut cur = plain.clone();
            // Every layer's decoded size: the data, then each intermediate encoding.
            let mut sizes = vec![plain.len()];
            for (i, l) in layers.iter().take(3).enumerate() {
                if i > 0 {
                    sizes.push(cur.len());
                }
                cur = l.encode(&cur, u32::from(level));
            }
            let names: Vec<String> = layers.iter().take(3).map(|l| l.name().to_owned()).collect();
            let got = decode(&Bytes::from(cur), &names, limit);
            if names.len() > MAX_CODINGS {
                assert!(
                    matches!(got, Err(DecodeError::TooManyCodings(n)) if n == names.len()),
                    "too many codings: {got:?}"
                );
            } else if sizes.iter().sum::<usize>() <= limit {
                match got {
                    Ok(out) => assert!(out == plain, "round trip changed the data"),
                    Err(e) => panic!("round trip failed: {e}"),
                }
            } else {
                assert!(
                    matches!(got, Err(DecodeError::TooLarge(l)) if l == limit),
                    "over the limit: {got:?}"
                );
            }
        }
    }
});
