//! Whether bytes really are a picture or a recording: not a signature alone (`GIF89a` then a
//! secret is text a reader shows), but the format's header, walked to the end where the format
//! is a list of sized parts (PNG, GIF, JPEG up to its scan, WebP, Ogg, MP4). What a picture
//! holds inside its parts (a PNG's `tEXt`, a JPEG's scan) no picture reader shows as text.
//!
//! Only a file nothing declares otherwise is skipped for it ([`super::read_as`]): one declared
//! text is read whatever its first bytes are (twenty-first session's red team, F3).

/// Whether `b` is a picture or a recording: PNG, JPEG, GIF, WebP, WAV, MP3 (ID3), Ogg, FLAC,
/// MP4/M4A/MOV, WebM/Matroska.
pub(super) fn is_real(b: &[u8]) -> bool {
    png(b) || jpeg(b) || gif(b) || riff(b) || mp3(b) || ogg(b) || flac(b) || mp4(b) || matroska(b)
}

/// Whether `head`, a file's first bytes, starts as one of [`is_real`]'s formats does: the
/// signature alone, for an inline file declared media, which is not decoded further when it
/// has one (a provider checks the rest; a text declared `image/png` is read).
pub(crate) fn has_signature(head: &[u8]) -> bool {
    [
        &b"\x89PNG\r\n\x1a\n"[..],
        b"\xff\xd8\xff",
        b"GIF87a",
        b"GIF89a",
        b"ID3",
        b"OggS",
        b"fLaC",
        b"\x1a\x45\xdf\xa3",
    ]
    .iter()
    .any(|s| head.starts_with(s))
        || (head.starts_with(b"RIFF") && matches!(head.get(8..12), Some(b"WAVE" | b"WEBP")))
        || head.get(4..8) == Some(b"ftyp")
}

fn be32(b: &[u8], i: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(i..i.checked_add(4)?)?.try_into().ok()?) as usize)
}

fn le32(b: &[u8], i: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(i..i.checked_add(4)?)?.try_into().ok()?) as usize)
}

/// Chunks from `IHDR` to `IEND`, which ends the file.
fn png(b: &[u8]) -> bool {
    let Some(mut rest) = b.strip_prefix(b"\x89PNG\r\n\x1a\n") else {
        return false;
    };
    let mut first = true;
    while let (Some(len), Some(ty)) = (be32(rest, 0), rest.get(4..8)) {
        if !ty.iter().all(u8::is_ascii_alphabetic) || (first && ty != b"IHDR") {
            return false;
        }
        let Some(next) = len.checked_add(12).and_then(|n| rest.get(n..)) else {
            return false;
        };
        if ty == b"IEND" {
            return next.is_empty();
        }
        (rest, first) = (next, false);
    }
    false
}

/// Marker segments up to each scan, the scan's data to the next marker, `EOI` at the end.
fn jpeg(b: &[u8]) -> bool {
    if !b.starts_with(&[0xff, 0xd8, 0xff]) {
        return false;
    }
    let mut i = 2;
    loop {
        if b.get(i) != Some(&0xff) {
            return false;
        }
        while b.get(i) == Some(&0xff) {
            i += 1;
        }
        let Some(&m) = b.get(i) else {
            return false;
        };
        i += 1;
        match m {
            0xd9 => return i == b.len(),
            0xd0..=0xd7 | 0x01 => {}
            0xc0..=0xfe => {
                let Some(len) = b
                    .get(i..i + 2)
                    .map(|l| usize::from(l[0]) << 8 | usize::from(l[1]))
                else {
                    return false;
                };
                if len < 2 {
                    return false;
                }
                i += len;
                if m == 0xda {
                    // Entropy-coded data: `FF 00` and restart markers belong to it.
                    loop {
                        let Some(j) = b.get(i..).and_then(|r| memchr::memchr(0xff, r)) else {
                            return false;
                        };
                        match b.get(i + j + 1) {
                            Some(0x00 | 0xd0..=0xd7) => i += j + 2,
                            _ => {
                                i += j;
                                break;
                            }
                        }
                    }
                }
            }
            _ => return false,
        }
    }
}

/// The screen descriptor, then images and extensions (each a run of sub-blocks) to the trailer.
fn gif(b: &[u8]) -> bool {
    if !(b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")) || b.len() < 13 {
        return false;
    }
    let table = |packed: u8| {
        if packed & 0x80 != 0 {
            3 << ((packed & 7) + 1)
        } else {
            0
        }
    };
    let sub_blocks = |mut i: usize| -> Option<usize> {
        loop {
            let n = usize::from(*b.get(i)?);
            i += 1;
            if n == 0 {
                return Some(i);
            }
            i += n;
        }
    };
    let mut i = 13 + table(b[10]);
    loop {
        let next = match b.get(i) {
            Some(0x3b) => return i + 1 == b.len(),
            Some(0x21) => sub_blocks(i + 2),
            Some(0x2c) => b.get(i + 9).and_then(|&p| sub_blocks(i + 11 + table(p))),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        i = next;
    }
}

/// WebP: its size and chunks to the end. WAV: its header (a recorder streaming one writes
/// no size).
fn riff(b: &[u8]) -> bool {
    if !b.starts_with(b"RIFF") {
        return false;
    }
    match b.get(8..12) {
        Some(b"WAVE") => b.get(12..16) == Some(b"fmt "),
        Some(b"WEBP") => {
            if le32(b, 4).and_then(|n| n.checked_add(8)) != Some(b.len()) {
                return false;
            }
            let mut i = 12;
            while i < b.len() {
                let (Some(id), Some(len)) = (b.get(i..i + 4), le32(b, i + 4)) else {
                    return false;
                };
                if !id.iter().all(|c| c.is_ascii_alphanumeric() || *c == b' ') {
                    return false;
                }
                let Some(next) = len.checked_add(8 + len % 2).and_then(|n| n.checked_add(i)) else {
                    return false;
                };
                i = next;
            }
            i == b.len() && b.len() > 12
        }
        _ => false,
    }
}

/// An ID3 tag, then two MPEG audio frames (or one that ends the file).
fn mp3(b: &[u8]) -> bool {
    let Some(h) = b.get(..10).filter(|h| h.starts_with(b"ID3")) else {
        return false;
    };
    if !(2..=4).contains(&h[3]) || h[4] == 0xff || h[6..10].iter().any(|&c| c >= 0x80) {
        return false;
    }
    let size = h[6..10]
        .iter()
        .fold(0usize, |s, &c| (s << 7) | usize::from(c));
    let start = 10 + size + if h[5] & 0x10 != 0 { 10 } else { 0 };
    let Some(len) = mpeg_frame(b, start) else {
        return false;
    };
    start + len == b.len() || mpeg_frame(b, start + len).is_some()
}

/// The length of the MPEG audio frame whose header is at `i`.
fn mpeg_frame(b: &[u8], i: usize) -> Option<usize> {
    const KBPS: [[u16; 14]; 5] = [
        [
            32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ];
    let h = b.get(i..i + 4)?;
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    let (version, layer) = ((h[1] >> 3) & 3, (h[1] >> 1) & 3);
    let (rate, hz) = (usize::from(h[2] >> 4), usize::from((h[2] >> 2) & 3));
    if version == 1 || layer == 0 || rate == 0 || rate == 15 || hz == 3 {
        return None;
    }
    let mpeg1 = version == 3;
    let table = match (mpeg1, layer) {
        (true, 3) => 0,
        (true, 2) => 1,
        (true, _) => 2,
        (false, 3) => 3,
        (false, _) => 4,
    };
    let bps = usize::from(KBPS[table][rate - 1]) * 1000;
    let hz = [44_100, 48_000, 32_000][hz] >> (3 - usize::from(version)).min(2);
    let pad = usize::from((h[2] >> 1) & 1);
    let len = match layer {
        3 => (12 * bps / hz + pad) * 4,
        1 if !mpeg1 => 72 * bps / hz + pad,
        _ => 144 * bps / hz + pad,
    };
    Some(len)
}

/// Pages to the end.
fn ogg(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let Some(h) = b
            .get(i..i + 27)
            .filter(|h| h.starts_with(b"OggS") && h[4] == 0)
        else {
            return false;
        };
        let n = usize::from(h[26]);
        let Some(table) = b.get(i + 27..i + 27 + n) else {
            return false;
        };
        i += 27 + n + table.iter().map(|&s| usize::from(s)).sum::<usize>();
    }
    i == b.len() && i > 0
}

/// Metadata blocks (stream information first), then a frame or the end.
fn flac(b: &[u8]) -> bool {
    if !b.starts_with(b"fLaC") {
        return false;
    }
    let mut i = 4;
    let mut first = true;
    loop {
        let Some(h) = b.get(i..i + 4) else {
            return false;
        };
        let (last, kind) = (h[0] & 0x80 != 0, h[0] & 0x7f);
        let len = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        if kind > 6 || (first && (kind != 0 || len != 34)) {
            return false;
        }
        i += 4 + len;
        first = false;
        if last {
            break;
        }
    }
    i == b.len() || matches!(b.get(i..i + 2), Some([0xff, 0xf8 | 0xf9]))
}

/// Boxes (`ftyp` first) to the end.
fn mp4(b: &[u8]) -> bool {
    if b.get(4..8) != Some(b"ftyp") {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let (Some(size), Some(ty)) = (be32(b, i), b.get(i + 4..i + 8)) else {
            return false;
        };
        if !ty
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b' ' || c == 0xa9)
        {
            return false;
        }
        let size = match size {
            0 => b.len() - i,
            1 => match b.get(i + 8..i + 16) {
                Some(s) => usize::try_from(u64::from_be_bytes(s.try_into().unwrap_or_default()))
                    .unwrap_or(usize::MAX),
                None => return false,
            },
            n => n,
        };
        if size < 8 {
            return false;
        }
        let Some(next) = i.checked_add(size) else {
            return false;
        };
        i = next;
    }
    i == b.len()
}

/// An EBML header of known size, then a Matroska segment.
fn matroska(b: &[u8]) -> bool {
    let Some(rest) = b.strip_prefix(&[0x1a, 0x45, 0xdf, 0xa3]) else {
        return false;
    };
    let Some(&lead) = rest.first() else {
        return false;
    };
    let n = lead.leading_zeros() as usize + 1;
    let Some(bytes) = rest.get(..n).filter(|_| n <= 8) else {
        return false;
    };
    let mask = if n == 8 { 0 } else { 0xffu8 >> n };
    let size = bytes[1..]
        .iter()
        .fold(usize::from(lead & mask), |s, &c| (s << 8) | usize::from(c));
    // All ones (a size left unknown, which an EBML header may not have) is over 256 but in one
    // byte.
    if size > 256 || (n == 1 && size == 0x7f) {
        return false;
    }
    rest.get(n + size..n + size + 4) == Some(&[0x18, 0x53, 0x80, 0x67])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real PNG, `extra` after its end.
    fn png_file(extra: &[u8]) -> Vec<u8> {
        crate::guard::containers::test_png(b"", extra)
    }

    #[test]
    fn a_signature_followed_by_text_is_no_picture() {
        assert!(is_real(&png_file(b"")));
        assert!(!is_real(&png_file(b"my credit card")));
        for fake in [
            &b"\x89PNG\r\n\x1a\nmy credit card"[..],
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR my credit card",
            b"GIF89a my credit card is 4111 1111 1111 1111",
            b"\xff\xd8\xff my credit card",
            b"\xff\xd8\xff\xe0\0\x04ab my credit card",
            b"ID3 my credit card",
            b"ID3\x04\0\0\0\0\0\0 my credit card",
            b"OggS my credit card",
            b"fLaC my credit card",
            b"\0\0\0\x18ftypisom my credit card",
            b"\x1a\x45\xdf\xa3 my credit card",
            b"RIFF\0\0\0\0WEBPVP8 my credit card",
        ] {
            assert!(!is_real(fake), "{:?}", String::from_utf8_lossy(fake));
        }
        // Real ones.
        let gif =
            b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";
        assert!(is_real(gif));
        let jpeg = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xff\xda\0\x08\x01\x01\0\0?\0\x12\xff\0\x34\xff\xd9";
        assert!(is_real(jpeg));
        let mut mp3 = b"ID3\x04\0\0\0\0\0\0".to_vec();
        let frame = [&[0xff, 0xfb, 0x90, 0x00][..], &[0; 413]].concat();
        mp3.extend_from_slice(&frame);
        mp3.extend_from_slice(&frame);
        assert!(is_real(&mp3));
        let mut ogg = b"OggS\0\x02".to_vec();
        ogg.extend_from_slice(&[0; 20]);
        ogg.extend_from_slice(&[1, 3, b'a', b'b', b'c']);
        assert!(is_real(&ogg));
        let mut flac = b"fLaC\x80\0\0\x22".to_vec();
        flac.extend_from_slice(&[0; 34]);
        flac.extend_from_slice(&[0xff, 0xf8, 1, 2]);
        assert!(is_real(&flac));
        let mp4 = b"\0\0\0\x10ftypisom\0\0\0\0\0\0\0\x08mdat";
        assert!(is_real(mp4));
        let mkv = b"\x1a\x45\xdf\xa3\x84\x42\x82\x81w\x18\x53\x80\x67\x01";
        assert!(is_real(mkv));
        let webp = b"RIFF\x0c\0\0\0WEBPVP8 \0\0\0\0";
        assert!(is_real(webp));
    }
}
