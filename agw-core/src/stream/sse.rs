//! The incremental SSE decoder.

use bytes::{Bytes, BytesMut};
use std::borrow::Cow;

/// An event too large for the decoder's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a server-sent event exceeds {limit} bytes")]
pub struct SseError {
    /// The limit.
    pub limit: usize,
}

/// Splits a byte stream into complete server-sent events (each with its terminating blank
/// line, bytes unchanged), whatever the chunking. Lines may end in `\n`, `\r\n` or `\r`.
#[derive(Debug)]
pub struct SseDecoder {
    buf: BytesMut,
    /// Where the scan for the event end resumes.
    scanned: usize,
    /// Whether `scanned` is at the start of a line (so a line end there ends the event).
    at_line_start: bool,
    limit: usize,
    /// Whether the stream's first bytes were looked at for a byte order mark.
    bom_checked: bool,
}

/// UTF-8's byte order mark, which an event stream may start with (and a reader drops).
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseDecoder {
    /// A decoder refusing events larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            at_line_start: true,
            limit,
            bom_checked: false,
        }
    }

    /// Feeds a chunk; appends each event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Bytes>) -> Result<(), SseError> {
        self.buf.extend_from_slice(chunk);
        if !self.bom_checked {
            // The standard's reader drops one byte order mark at the stream's start (a black-box
            // review's stream that began with one ended in an error); it may come split.
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Ok(());
            }
            self.bom_checked = true;
            if self.buf.starts_with(BOM) {
                let _ = self.buf.split_to(BOM.len());
            }
        }
        loop {
            // A `\r` at the very end waits for the next chunk: it may be half of a `\r\n`.
            let end = self.buf.len() - usize::from(self.buf.last() == Some(&b'\r'));
            let mut i = self.scanned;
            let mut event_end = None;
            while i < end {
                match memchr::memchr2(b'\n', b'\r', &self.buf[i..end]) {
                    None => {
                        self.at_line_start = false;
                        i = end;
                    }
                    Some(0) => {
                        let mut next = i + 1;
                        if self.buf[i] == b'\r' && self.buf.get(next) == Some(&b'\n') {
                            next += 1;
                        }
                        if self.at_line_start {
                            event_end = Some(next);
                            break;
                        }
                        self.at_line_start = true;
                        i = next;
                    }
                    Some(n) => {
                        self.at_line_start = false;
                        i += n;
                    }
                }
            }
            match event_end {
                Some(e) => {
                    if e > self.limit {
                        // Whole in one chunk or not, an event over the limit is refused.
                        return Err(SseError { limit: self.limit });
                    }
                    out.push(self.buf.split_to(e).freeze());
                    self.scanned = 0;
                    self.at_line_start = true;
                }
                None => {
                    self.scanned = i;
                    break;
                }
            }
        }
        if self.buf.len() > self.limit {
            return Err(SseError { limit: self.limit });
        }
        Ok(())
    }

    /// The bytes of an unfinished event at the end of the stream, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        self.at_line_start = true;
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

/// What one event says: its `event:` name, its `data:` lines joined (borrowed when there is
/// one), and whether it has a `data` field at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub name: Option<&'a str>,
    pub data: Cow<'a, str>,
    pub has_data: bool,
    /// The event has text outside its `data` that a client may show: a comment, an `id` or
    /// `retry` value, an event name that is none of Anthropic's ([`side_text`] reads them).
    pub extras: bool,
}

/// Anthropic's event names (every event of its streams has one): the provider's vocabulary,
/// not read again (any other name is, once per stream).
fn known_name(name: &str) -> bool {
    matches!(
        name,
        "message_start"
            | "message_delta"
            | "message_stop"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "ping"
            | "error"
            | "completion"
    )
}

/// What one line of an event carries outside its `data` that a client may show (see
/// [`Fields::extras`]): a comment's text, an `id` or `retry` value, or an event name agw does
/// not know (then `true`). Raw consumers (`curl`, the SDKs' `raw_events`), an SDK that returns
/// a stream it did not ask for as a string, and Google's SDK (which reports a line it cannot
/// parse in its error) show them: they are read as text (nineteenth session's red team).
pub(crate) fn side_text(line: &str) -> Option<(&str, bool)> {
    let (field, value) = match line.split_once(':') {
        Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
        None => (line, ""),
    };
    match field {
        "" | "id" | "retry" if !value.is_empty() => Some((value, false)),
        "event" if !known_name(value) && !value.is_empty() => Some((value, true)),
        _ => None,
    }
}

/// The lines of an event's text, each without and with its line end (`\n`, `\r\n` or `\r`).
pub(crate) fn lines_with_ends(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let start = at;
        let (end, next) = match memchr::memchr2(b'\n', b'\r', &bytes[at..]) {
            None => (bytes.len(), bytes.len()),
            Some(n) => {
                let e = at + n;
                let crlf = bytes[e] == b'\r' && bytes.get(e + 1) == Some(&b'\n');
                (e, e + 1 + usize::from(crlf))
            }
        };
        at = next;
        Some((&text[start..end], &text[start..next]))
    })
}

/// A line of an event that is none of the fields a provider's stream carries.
///
/// It names no part of the line: what the provider sent is not shown to anyone unread.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("it has a line that is none of the fields `data`, `event`, `id`, `retry`")]
pub(crate) struct UnknownField;

/// The fields of one event (see [`Fields`]).
///
/// Every non-empty line must be a comment (it starts with `:`) or one of the fields a
/// provider sends — `data`, `event`, `id`, `retry` — named exactly as the SSE standard and the
/// SDKs compare them: the bytes before the first `:` (the whole line when it has none), case
/// and spaces included, so `Data:`, ` data:` and `data :` are not `data`. A client ignores any
/// other line; so does this reading, which is why such a line is refused: a body that is not a
/// stream at all (a JSON document labelled `text/event-stream`, which an SDK that asked for no
/// stream reads as JSON) consists of nothing else.
pub(crate) fn fields(text: &str) -> Result<Fields<'_>, UnknownField> {
    let mut name = None;
    let mut data: Option<Cow<'_, str>> = None;
    let mut extras = false;
    let bytes = text.as_bytes();
    let mut at = 0;
    while at <= bytes.len() {
        let end = memchr::memchr2(b'\n', b'\r', &bytes[at..]).map_or(bytes.len(), |n| at + n);
        let line = &text[at..end];
        at = end + 1;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => {
                extras |= !known_name(value) && !value.is_empty();
                name = Some(value);
            }
            "data" => match &mut data {
                None => data = Some(Cow::Borrowed(value)),
                Some(d) => {
                    let d = d.to_mut();
                    d.push('\n');
                    d.push_str(value);
                }
            },
            // An empty line ends the event; an empty field name is a comment.
            "" | "id" | "retry" => extras |= !value.is_empty(),
            _ => return Err(UnknownField),
        }
    }
    let has_data = data.is_some();
    Ok(Fields {
        name,
        data: data.unwrap_or_default(),
        has_data,
        extras,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(input: &[u8], mut sizes: impl FnMut(usize) -> usize) -> Vec<Bytes> {
        let mut d = SseDecoder::new(1 << 20);
        let mut out = Vec::new();
        let mut at = 0;
        let mut n = 0;
        while at < input.len() {
            let len = sizes(n).clamp(1, input.len() - at);
            d.push(&input[at..at + len], &mut out).unwrap();
            at += len;
            n += 1;
        }
        out.extend(d.finish());
        out
    }

    /// A stream may start with a byte order mark, which a reader drops (found by a black-box
    /// review: the stream ended in an error), whole or split; only at the start.
    #[test]
    fn a_byte_order_mark_at_the_start_is_dropped() {
        let plain = b"event: a\ndata: {\"x\":1}\n\n";
        let mut with = BOM.to_vec();
        with.extend_from_slice(plain);
        for size in [1, 2, 3, 64] {
            assert_eq!(
                split_all(&with, |_| size),
                split_all(plain, |_| 64),
                "{size}"
            );
        }
        let mut later = plain.to_vec();
        later.extend_from_slice(BOM);
        later.extend_from_slice(plain);
        let events = split_all(&later, |_| 64);
        assert!(events[1].starts_with(BOM), "{events:?}");
    }

    #[test]
    fn every_chunking_gives_the_same_events() {
        let input = b"event: a\ndata: {\"x\":1}\n\n: comment\n\nevent: b\r\ndata: 2\r\n\r\ndata: 3\r\rdata: 4\n\ndata: tail";
        let whole = split_all(input, |_| usize::MAX);
        let joined: Vec<u8> = whole.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(joined, input, "bytes are preserved");
        assert_eq!(whole.len(), 6, "{whole:?}");
        assert_eq!(&whole[0][..], b"event: a\ndata: {\"x\":1}\n\n");
        assert_eq!(&whole[1][..], b": comment\n\n");
        assert_eq!(&whole[2][..], b"event: b\r\ndata: 2\r\n\r\n");
        assert_eq!(&whole[3][..], b"data: 3\r\r");
        for size in 1..input.len() {
            assert_eq!(split_all(input, |_| size), whole, "chunks of {size}");
        }
        let mut seed = 7usize;
        for _ in 0..200 {
            let got = split_all(input, |_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 33) % 7 + 1
            });
            assert_eq!(got, whole);
        }
    }

    #[test]
    fn limit_is_enforced() {
        let mut d = SseDecoder::new(16);
        let mut out = Vec::new();
        assert!(d.push(b"data: 0123456789abcdef", &mut out).is_err());
        // Found by `fuzz/` (sse): an over-limit event delivered whole in one chunk passed.
        let mut d = SseDecoder::new(16);
        assert!(d.push(b"data: 0123456789abcdef\n\n", &mut out).is_err());
        let mut d = SseDecoder::new(16);
        assert!(d.push(b"data: 01234567\n\n", &mut out).is_ok());
    }

    #[test]
    fn fields_parse() {
        let f = fields("event: x\ndata: a\ndata:b\n: c\nid: 7\nretry: 10\nid\n\n").unwrap();
        assert_eq!(f.name, Some("x"));
        assert_eq!(f.data, "a\nb");
        assert!(f.has_data);
        assert!(!fields(": comment\n\n").unwrap().has_data);
        let f = fields("event: a\r\ndata: 1\r\ndata\r\n\r\n").unwrap();
        assert_eq!((f.name, &*f.data), (Some("a"), "1\n"));
        assert_eq!(fields(":\n\n").unwrap().data, "");
    }

    /// Found by the audit: a JSON body labelled `text/event-stream` was read as lines of
    /// unknown fields, ignored, and forwarded; an SDK that asked for no stream reads it as JSON.
    #[test]
    fn lines_that_are_no_field_a_provider_sends_are_refused() {
        for text in [
            r#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"my credit card"}]}"#,
            "{\n  \"content\": \"x\"\n}\n\n",
            "[1]\n\n",
            "Data: {}\n\n",
            "DATA: {}\n\n",
            " data: {}\n\n",
            "data : {}\n\n",
            "Event: x\n\n",
            "event: x\ntext: hello\n\n",
            "data: {}\r\nx\r\n\r\n",
            "\u{feff}data: {}\n\n",
            " \n\n",
        ] {
            assert!(fields(text).is_err(), "{text:?}");
        }
    }
}
