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
    let (media, base64, payload) = match split_data_url(value) {
        Some((media, base64, payload)) => (Some(media).filter(|m| !m.is_empty()), base64, payload),
        None => (None, true, value),
    };
    let media = media.or(media_type).map(|m| {
        let m = m.split(|&c| c == b';').next().unwrap_or(m);
        m.trim_ascii().to_ascii_lowercase()
    });
    if media.is_some_and(|m| BINARY.iter().any(|b| m.starts_with(b))) {
        return None;
    }
    let bytes = if base64 {
        // A glance first: an image's or an archive's bytes are not UTF-8 a few bytes in.
        let head = base64_decoded(payload, SNIFF_BYTES);
        if !looks_like_text(&head, head.len() == SNIFF_BYTES) {
            return None;
        }
        base64_decoded(payload, usize::MAX)
    } else {
        crate::route::canonical::percent_decoded(payload)
    };
    if !looks_like_text(&bytes, false) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// A `data:` URL's media type, whether it is base64, and its payload.
fn split_data_url(value: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let rest = value
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case(b"data:"))
        .map(|_| &value[5..])?;
    let comma = memchr::memchr(b',', rest)?;
    let mut params = rest[..comma].split(|&c| c == b';');
    let media = params.next().unwrap_or_default();
    let base64 = params.any(|p| p.trim_ascii().eq_ignore_ascii_case(b"base64"));
    Some((media, base64, &rest[comma + 1..]))
}

/// Base64 decoded as a lenient reader decodes it (Python's `b64decode`): characters outside
/// both alphabets (line breaks, spaces, padding) are skipped; at most `limit` bytes.
fn base64_decoded(s: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((s.len() / 4 * 3).min(limit));
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
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

/// UTF-8 without NUL bytes; `cut`: the bytes may end inside a character.
fn looks_like_text(bytes: &[u8], cut: bool) -> bool {
    if bytes.is_empty() || memchr::memchr(0, bytes).is_some() {
        return false;
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => cut && e.error_len().is_none(),
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
        assert_eq!(text_of(b64(b"a\0b").as_bytes(), None), None);
        assert_eq!(text_of(b"", None), None);
        // Long text: sniffed, then decoded whole.
        let long = "line of text é\n".repeat(1000);
        assert_eq!(text_of(b64(long.as_bytes()).as_bytes(), None), Some(long));
    }
}
