//! Files a request carries inline: a `data:` URL (`data:text/plain;base64,…`,
//! `data:,credit%20card`), a Responses `input_file` or chat `file` part's `file_data`, an
//! Anthropic document's base64 `source`. A provider hands a text file's contents to its model
//! as text, so such a file is read: decoded, and kept when what it holds is text (valid UTF-8
//! without NUL bytes), whatever media type it claims. Images, audio, video and PDFs (by the
//! media type given) are not decoded. The decoded text is not rewritten in place: a rule's
//! match refuses the request ([`super::Policy`]). Found by the eighth red-team review: these
//! were passed unread.

/// Media types whose contents are not text a rule can read (by prefix, lower case).
const BINARY: [&[u8]; 4] = [b"image/", b"audio/", b"video/", b"application/pdf"];

/// How much of a payload is decoded to tell text from binary before the rest is.
const SNIFF_BYTES: usize = 3 * 1024;

/// The text of an inline file: `value` is a `data:` URL or, when it is not one, base64;
/// `media_type` is the one its siblings declare (a data URL's own comes first). `None` for
/// binary contents, declared or found.
pub(super) fn text_of(value: &[u8], media_type: Option<&[u8]>) -> Option<String> {
    let data_url = split_data_url(value);
    let media = data_url
        .map(|(m, ..)| m)
        .filter(|m| !m.is_empty())
        .or(media_type)
        .map(|m| m.split(|&c| c == b';').next().unwrap_or(m).trim_ascii());
    // Decided before anything is copied: most inline files are images.
    if media.is_some_and(|m| {
        BINARY
            .iter()
            .any(|b| m.len() >= b.len() && m[..b.len()].eq_ignore_ascii_case(b))
    }) {
        return None;
    }
    let payload = match data_url {
        // A data URL's body is percent-decoded first, base64 or not (the Fetch standard's
        // reading, and Python's `urllib`).
        Some((_, base64, body)) => {
            let plain = crate::route::canonical::escapes_decoded(body);
            if base64 {
                Payload::Base64(plain.into())
            } else {
                Payload::Plain(plain)
            }
        }
        None => Payload::Base64(value.into()),
    };
    let bytes = match payload {
        Payload::Base64(b64) => {
            // A glance first: an image's or an archive's bytes are mostly not text.
            if !mostly_text(&base64_decoded(&b64, SNIFF_BYTES)) {
                return None;
            }
            base64_decoded(&b64, usize::MAX)
        }
        Payload::Plain(bytes) => bytes,
    };
    decoded_text(&bytes)
}

/// Whether `value` is a `data:` URL (`data:[type/subtype][;params],body`).
pub(super) fn is_data_url(value: &[u8]) -> bool {
    split_data_url(value).is_some()
}

/// A data URL's body as its header says to read it.
enum Payload<'a> {
    Base64(std::borrow::Cow<'a, [u8]>),
    Plain(Vec<u8>),
}

/// A `data:` URL's media type, whether it is base64 (its last parameter is `base64`, as a
/// reader of data URLs reads it: `;base64;x=1` is not), and its body.
fn split_data_url(value: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let rest = value
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case(b"data:"))
        .map(|_| &value[5..])?;
    let comma = memchr::memchr(b',', rest)?;
    let header = &rest[..comma];
    let media = header.split(|&c| c == b';').next().unwrap_or_default();
    // A media type is written without blanks, quotes or brackets: text that only starts with
    // `data:` (an SSE transcript's `data: {"a": 1, ...}`, a prompt's `data: see below, ...`)
    // is no data URL, and a mask rule masks it as text (thirteenth review: it was refused as a
    // file). Readers take any such type (`text`, `*/*`, `//text/plain`: Python's `urllib`
    // and `fetch` decode them all; second round), so no more is asked of it.
    let valid = media
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || b"!#$&^_.+-*/%".contains(&c));
    if !valid {
        return None;
    }
    let base64 = header
        .rsplit(|&c| c == b';')
        .next()
        .is_some_and(|p| p.trim_ascii().eq_ignore_ascii_case(b"base64") && header.contains(&b';'));
    Some((media, base64, &rest[comma + 1..]))
}

/// Base64 decoded as a lenient reader decodes it (Python's `b64decode`, Node's `Buffer`):
/// characters outside both alphabets (line breaks, spaces) are skipped, and padding that
/// completes a group ends it; at most `limit` bytes.
fn base64_decoded(s: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((s.len() / 4 * 3).min(limit));
    let (mut acc, mut bits) = (0u32, 0u32);
    let (mut quad, mut pads) = (0usize, 0usize);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            // Padding ends the data once it completes a group (an `=` elsewhere is skipped),
            // as Python's `b64decode` reads it.
            b'=' => {
                if quad >= 2 {
                    pads += 1;
                    if quad + pads >= 4 {
                        break;
                    }
                }
                continue;
            }
            _ => continue,
        };
        quad = (quad + 1) % 4;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
            if out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// Whether the first bytes of a file may be text's: at most a quarter of them are not
/// printable ASCII or UTF-8 (a binary header aside, text may follow), or they are UTF-16.
fn mostly_text(head: &[u8]) -> bool {
    if utf16(head).is_some() {
        return true;
    }
    // UTF-8 (the head may end inside a character), else Windows-1252 as `decoded_text` reads it.
    let text: String = match std::str::from_utf8(head) {
        Ok(t) => t.to_owned(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()
        }
        Err(_) => head.iter().map(|&b| windows_1252(b)).collect(),
    };
    let total = text.chars().count();
    let odd = text.chars().filter(|&c| odd_char(c)).count();
    total > 0 && odd * 4 <= total
}

/// A character no text file holds: NUL and other control characters but tab, line breaks,
/// form feed and escape, and bytes that do not decode.
fn odd_char(c: char) -> bool {
    c == char::REPLACEMENT_CHARACTER
        || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c' | '\x1b'))
}

/// The text of a file's bytes, when they are text: UTF-8 (a byte order mark dropped), or
/// UTF-16 by its byte order mark or by its zero bytes, with at most one character in fifty
/// that no text file holds (NUL and other control characters, bytes that do not decode) —
/// a stray byte does not make a text file binary; compressed or image data is mostly such
/// characters.
fn decoded_text(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if bytes.is_empty() {
        return None;
    }
    let text = match utf16(bytes) {
        Some(big) => {
            let body = bytes
                .strip_prefix(if big { b"\xfe\xff" } else { b"\xff\xfe" })
                .unwrap_or(bytes);
            let units = body.chunks_exact(2).map(|c| {
                if big {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect::<String>()
        }
        None => match std::str::from_utf8(bytes) {
            Ok(t) => t.to_owned(),
            // Not UTF-8: read as Windows-1252 (Latin-1's superset), as text exported on Windows
            // with smart quotes is (black-box review: such a file, a few bytes in a hundred
            // not UTF-8, was taken for binary and not read). Every byte is a character there;
            // binary data is still mostly control characters.
            Err(_) => bytes.iter().map(|&b| windows_1252(b)).collect(),
        },
    };
    let total = text.chars().count();
    let odd = text.chars().filter(|&c| odd_char(c)).count();
    // A stray byte or two in a short file leaves it text.
    (total > 0 && odd <= total / 50 + 2).then(|| text.replace('\0', ""))
}

/// A byte read as Windows-1252: ASCII and Latin-1 as themselves, 0x80–0x9F as the code page's
/// punctuation and letters (the five it leaves undefined as the C1 controls they are).
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// Whether bytes are UTF-16, and big-endian: by a byte order mark, or by zero bytes in every
/// other place of the first characters (ASCII text written as UTF-16).
fn utf16(b: &[u8]) -> Option<bool> {
    match b {
        [0xfe, 0xff, ..] => return Some(true),
        [0xff, 0xfe, ..] => return Some(false),
        _ => {}
    }
    let head = &b[..b.len().min(64)];
    if head.len() < 4 {
        return None;
    }
    let zeros = |parity: usize| {
        head.iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&c| c == 0)
            .count()
    };
    let half = head.len() / 2;
    let (even, odd) = (zeros(0), zeros(1));
    if odd * 10 >= half * 9 && even * 10 < half {
        Some(false)
    } else if even * 10 >= half * 9 && odd * 10 < half {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.chunks(3) {
            let n = chunk.len();
            let v = u32::from(chunk[0]) << 16
                | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= n {
                    out.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn text_files_are_decoded_in_every_form_a_server_reads() {
        let text = "my credit card is 4111 1111 1111 1111\n";
        let enc = b64(text.as_bytes());
        let want = Some(text.to_owned());
        assert_eq!(
            text_of(format!("data:text/plain;base64,{enc}").as_bytes(), None),
            want
        );
        assert_eq!(
            text_of(
                format!("DATA:Text/Plain;charset=utf-8;BASE64,{enc}").as_bytes(),
                None
            ),
            want
        );
        // Line-wrapped, URL-safe or without padding.
        let wrapped: String = enc
            .as_bytes()
            .chunks(8)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(text_of(wrapped.as_bytes(), Some(b"text/plain")), want);
        assert_eq!(text_of(enc.trim_end_matches('=').as_bytes(), None), want);
        // Not base64: percent-escapes.
        assert_eq!(
            text_of(b"data:,my%20credit%20card", None),
            Some("my credit card".to_owned())
        );
        // A declared binary type is not decoded; a claimed one that is text still is.
        assert_eq!(
            text_of(format!("data:image/png;base64,{enc}").as_bytes(), None),
            None
        );
        assert_eq!(text_of(enc.as_bytes(), Some(b"application/pdf")), None);
        assert_eq!(
            text_of(enc.as_bytes(), Some(b"application/octet-stream")),
            want
        );
        // Binary contents are not text.
        let png = b64(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        assert_eq!(text_of(png.as_bytes(), None), None);
        // A stray NUL or bad byte in a text file leaves it text (the NUL dropped); UTF-16
        // with and without its byte order mark is text.
        let mut stray = b"my credit card ".repeat(10);
        stray.extend_from_slice(b"\0\xff");
        assert!(
            text_of(b64(&stray).as_bytes(), None)
                .unwrap()
                .starts_with("my credit card")
        );
        let utf16: Vec<u8> = "my credit card"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            text_of(b64(&utf16).as_bytes(), None),
            Some("my credit card".to_owned())
        );
        let mut bom = vec![0xfe, 0xff];
        bom.extend("my credit card".encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(
            text_of(b64(&bom).as_bytes(), None),
            Some("my credit card".to_owned())
        );
        // Padding ends base64 (what follows is ignored, as decoders do); base64 that is itself
        // percent-encoded; `;base64` only as the last parameter.
        assert_eq!(text_of(format!("{enc}////").as_bytes(), None), want);
        let escaped = enc.replace('=', "%3D");
        assert_eq!(
            text_of(format!("data:text/plain;base64,{escaped}").as_bytes(), None),
            want
        );
        assert_eq!(
            text_of(b"data:text/plain;base64;x=1,my%20credit%20card", None),
            Some("my credit card".to_owned())
        );
        assert_eq!(text_of(b"", None), None);
        // Windows-1252 (smart quotes, a few bytes in a hundred not UTF-8: black-box review)
        // is text, read in that code page; compressed-looking bytes are still not.
        let cp1252 = b"\x93q\x94 \x93q\x94 Customer\x92s card: 4539 1488 0343 6467\nthe credit card phrase\n";
        let got = text_of(b64(cp1252).as_bytes(), Some(b"text/plain")).unwrap();
        assert!(
            got.contains("Customer\u{2019}s card: 4539 1488 0343 6467"),
            "{got}"
        );
        assert!(got.starts_with("\u{201c}q\u{201d}"), "{got}");
        let noise: Vec<u8> = (0..600u32).map(|i| (i * 97 % 256) as u8).collect();
        assert_eq!(text_of(b64(&noise).as_bytes(), None), None);
        // `+` in a data URL's base64 is base64's, not a space.
        let plus = b64(&[&b"\xfb\xef\xbe"[..], &b" my credit card".repeat(20)].concat());
        assert!(plus.contains('+'), "{plus}");
        let got = text_of(format!("data:;base64,{plus}").as_bytes(), None).unwrap();
        assert!(got.ends_with(" my credit card"), "{got:?}");
        // A leading `=` is skipped; a binary header before text, a stray byte in a short file
        // leave it text (the final regression round).
        assert_eq!(text_of(format!("={enc}").as_bytes(), None), want);
        let mut header = vec![0xffu8; 100];
        header.extend(b"my credit card\n".repeat(3000));
        assert!(text_of(b64(&header).as_bytes(), None).is_some());
        assert!(text_of(b64(b"my credit card\xff").as_bytes(), None).is_some());
        // Long text: sniffed, then decoded whole.
        let long = "line of text é\n".repeat(1000);
        assert_eq!(text_of(b64(long.as_bytes()).as_bytes(), None), Some(long));
    }
}
