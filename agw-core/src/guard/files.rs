//! Files a request carries: a `data:` URL (`data:text/plain;base64,…`, `data:,credit%20card`),
//! a Responses `input_file` or chat `file` part's `file_data`, an Anthropic document's base64
//! `source`, a form's file part or an upload's body. A provider hands what a file holds to its
//! model, so every file but declared media (images, audio, video) is read, in every form a
//! reader may take it: as UTF-8 (invalid bytes and control characters dropped, as a lenient
//! reader drops them), as Windows-1252 where it is not UTF-8, as UTF-16 or UTF-32 where its
//! byte order mark or zero bytes say so; a gzip file, a zip archive (office documents:
//! DOCX, XLSX, PPTX, ODF) and a PDF's text are read from inside ([`super::containers`]).
//! Nothing is taken for binary and passed unread (the eighteenth session's red team: four
//! control characters made a text file "binary"); a file whose contents would not fit in
//! [`READ_LIMIT`] once decompressed is [`FileText::Unreadable`]. The decoded text is not
//! rewritten in place: a rule's match refuses the request ([`super::Policy`]).
//!
//! A file is read as the request declares it ([`Declared`]: its media types, its file name's
//! extension), not as its first bytes look: a provider hands a `text/plain` document to its
//! model as text, a PNG's signature at its head or not (twenty-first session's red team, F3).
//! Declared text is always read as text (a container inside it read too); any other type
//! but media is read as the container it is, and as text where it is none; only a file whose
//! declarations are all media, or that declares nothing, may go unread for being a picture,
//! and then only a real one ([`super::containers`]). Declarations that disagree (an image's
//! media type, a `.txt` name) fail toward reading.

/// Media types whose contents are not text a rule can read (by prefix, lower case): a model
/// sees pictures and sound there, and providers check that they are.
const MEDIA: [&[u8]; 3] = [b"image/", b"audio/", b"video/"];

/// How much text one file may be read as, once decoded and decompressed.
pub(super) const READ_LIMIT: usize = 64 << 20;

/// What one reading of a file gave the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileText {
    /// Text a reader finds in the file.
    Text(String),
    /// A file agw cannot read whole (why, for the refusal's message).
    Unreadable(&'static str),
}

/// Media types that declare nothing about the contents: bytes of some kind.
const UNTYPED: [&[u8]; 5] = [
    b"application/octet-stream",
    b"binary/octet-stream",
    b"application/binary",
    b"application/unknown",
    b"*/*",
];

/// Words in a media type's subtype that make it text (`application/ld+json`, `image/svg+xml`,
/// `application/x-yaml`, `application/javascript`, `text/csv` by its type already).
const TEXT_SUBTYPES: [&[u8]; 22] = [
    b"json",
    b"xml",
    b"yaml",
    b"yml",
    b"csv",
    b"javascript",
    b"ecmascript",
    b"typescript",
    b"markdown",
    b"toml",
    b"sql",
    b"x-sh",
    b"shellscript",
    b"python",
    b"x-tex",
    b"latex",
    b"rtf",
    b"plain",
    b"html",
    b"urlencoded",
    b"graphql",
    b"subrip",
];

/// File name extensions of pictures and recordings (lower case).
const MEDIA_EXTENSIONS: [&[u8]; 30] = [
    b"png", b"jpg", b"jpeg", b"jfif", b"gif", b"webp", b"bmp", b"tif", b"tiff", b"heic", b"heif",
    b"avif", b"ico", b"mp3", b"wav", b"wave", b"ogg", b"oga", b"opus", b"flac", b"m4a", b"aac",
    b"aiff", b"mp4", b"m4v", b"mov", b"webm", b"mkv", b"mpeg", b"mpga",
];

/// File name extensions of text (lower case); any other extension declares a file of some
/// other kind, which is read as what it is.
const TEXT_EXTENSIONS: [&[u8]; 56] = [
    b"txt",
    b"text",
    b"md",
    b"markdown",
    b"mdx",
    b"rst",
    b"csv",
    b"tsv",
    b"json",
    b"jsonl",
    b"ndjson",
    b"json5",
    b"xml",
    b"yaml",
    b"yml",
    b"toml",
    b"ini",
    b"cfg",
    b"conf",
    b"env",
    b"log",
    b"html",
    b"htm",
    b"xhtml",
    b"css",
    b"js",
    b"mjs",
    b"cjs",
    b"ts",
    b"tsx",
    b"jsx",
    b"py",
    b"rb",
    b"go",
    b"rs",
    b"java",
    b"kt",
    b"swift",
    b"c",
    b"h",
    b"cc",
    b"cpp",
    b"hpp",
    b"cs",
    b"php",
    b"pl",
    b"sh",
    b"bash",
    b"zsh",
    b"sql",
    b"tex",
    b"svg",
    b"srt",
    b"vtt",
    b"eml",
    b"properties",
];

/// What a request declares a file to be: its media types (a part's `media_type`, a data URL's
/// own, a form part's `Content-Type`) and its name's extension, each adding to what is known.
/// Nothing declared (no type, `application/octet-stream`, a name without an extension) leaves
/// the file untyped: its bytes tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Declared {
    /// A media type says picture, sound or film.
    media: bool,
    /// A file name's extension says picture, sound or film.
    named_media: bool,
    /// Something says text.
    text: bool,
    /// Something says another kind (a PDF, an archive, an office document, a kind agw does
    /// not know).
    other: bool,
    /// An upload: a file the provider keeps, which a model's code execution may open as any
    /// file (the text in a picture or a recording is read too).
    upload: bool,
}

impl Declared {
    /// A file nothing declares.
    pub(crate) const UNTYPED: Self = Self {
        media: false,
        named_media: false,
        text: false,
        other: false,
        upload: false,
    };

    /// A file declared text (a form field's value, a form's values).
    pub(crate) const TEXT: Self = Self {
        text: true,
        ..Self::UNTYPED
    };

    /// Adds a media type (parameters allowed; an empty one declares nothing).
    #[must_use]
    pub(crate) fn with_type(mut self, media_type: &[u8]) -> Self {
        let m = media_type
            .split(|&c| c == b';')
            .next()
            .unwrap_or(media_type)
            .trim_ascii();
        let is = |list: &[&[u8]]| list.iter().any(|t| m.eq_ignore_ascii_case(t));
        let starts = |p: &[u8]| m.len() >= p.len() && m[..p.len()].eq_ignore_ascii_case(p);
        if m.is_empty() || is(&UNTYPED) {
        } else if starts(b"text/")
            || starts(b"message/")
            || TEXT_SUBTYPES.iter().any(|w| contains_ignore_case(m, w))
        {
            self.text = true;
        } else if MEDIA.iter().any(|p| starts(p)) {
            self.media = true;
        } else {
            self.other = true;
        }
        self
    }

    /// Marks an upload.
    #[must_use]
    pub(crate) fn upload(mut self) -> Self {
        self.upload = true;
        self
    }

    /// Whether it is an upload.
    pub(crate) fn is_upload(self) -> bool {
        self.upload
    }

    /// Adds a media type, if there is one.
    #[must_use]
    pub(crate) fn with(self, media_type: Option<&[u8]>) -> Self {
        media_type.map_or(self, |m| self.with_type(m))
    }

    /// Adds a file name's extension (a name without one declares nothing).
    #[must_use]
    pub(crate) fn with_filename(mut self, name: &[u8]) -> Self {
        let base = name
            .rsplit(|&c| c == b'/' || c == b'\\')
            .next()
            .unwrap_or(name)
            .trim_ascii();
        let Some(dot) = base.iter().rposition(|&c| c == b'.') else {
            return self;
        };
        let ext = &base[dot + 1..];
        let is = |list: &[&[u8]]| list.iter().any(|e| ext.eq_ignore_ascii_case(e));
        if ext.is_empty() {
        } else if is(&TEXT_EXTENSIONS) {
            self.text = true;
        } else if is(&MEDIA_EXTENSIONS) {
            self.named_media = true;
        } else {
            self.other = true;
        }
        self
    }

    /// Whether the file is declared media by its media types and nothing says otherwise: an
    /// inline one that starts as a picture or a recording is not decoded further
    /// ([`texts_declared`]).
    pub(super) fn media_only(self) -> bool {
        self.media && !self.text && !self.other
    }

    /// Whether the file may go unread for being a picture or a recording: it declares media or
    /// nothing.
    pub(super) fn may_be_picture(self) -> bool {
        self.media || self.named_media || !(self.text || self.other)
    }

    /// Whether the file is declared text: read as text, whatever else it may be.
    pub(super) fn is_text(self) -> bool {
        self.text
    }
}

/// Whether `haystack` holds `needle`, ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The readings of an inline file, appended to `out`: `value` is a `data:` URL or, when it is
/// not one, base64; `media_type` is the one its siblings declare. Nothing for declared media.
pub(super) fn texts_of(value: &[u8], media_type: Option<&[u8]>, out: &mut Vec<FileText>) {
    texts_declared(value, Declared::UNTYPED.with(media_type), out);
}

/// The readings of an inline file as [`texts_of`], declared `declared` by its siblings (a data
/// URL's own type adds to it).
pub(super) fn texts_declared(value: &[u8], declared: Declared, out: &mut Vec<FileText>) {
    let data_url = split_data_url(value);
    let declared = match data_url {
        Some((m, ..)) => declared.with_type(m),
        None => declared,
    };
    // Most inline files are pictures, sent again with every turn: one declared media whose
    // first bytes are a picture's or a recording's is not decoded further (the provider checks
    // the rest, and shows it to the model as nothing but a picture). One that starts
    // otherwise is read (black-box review, twenty-fourth session: text declared `image/png`
    // went upstream unread).
    if declared.media_only() && starts_as_media(value, data_url) {
        return;
    }
    let bytes = match data_url {
        // A data URL's body is percent-decoded first, base64 or not (the Fetch standard's
        // reading, and Python's `urllib`).
        Some((_, base64, body)) => {
            let plain = crate::route::canonical::escapes_decoded(body);
            if base64 {
                base64_decoded(&plain, usize::MAX)
            } else {
                plain
            }
        }
        None => {
            // Not base64 at all (`"data": "my credit card…"` under `"type": "base64"`): a
            // reader that finds no base64 there may take it as written (a red-team case).
            let written = value.iter().any(|&c| {
                !(c.is_ascii_alphanumeric() || b"+/-_=".contains(&c) || c.is_ascii_whitespace())
            });
            if written {
                read_file(value, declared, out);
            }
            base64_decoded(value, usize::MAX)
        }
    };
    read_file(&bytes, declared, out);
}

/// Whether an inline file (`value`, a data URL split as `data_url` says, or base64) starts as a
/// picture or a recording does, read from its first 64 characters.
fn starts_as_media(value: &[u8], data_url: Option<(&[u8], bool, &[u8])>) -> bool {
    let (base64, body) = match data_url {
        Some((_, base64, body)) => (base64, body),
        None => (true, value),
    };
    let head = &body[..body.len().min(64)];
    let head = crate::route::canonical::escapes_decoded(head);
    let head = if base64 {
        base64_decoded(&head[..head.len() / 4 * 4], usize::MAX)
    } else {
        head
    };
    super::containers::has_signature(&head)
}

/// The readings of a file sent as bytes (a form's file part, an upload's body) whose media
/// type, if any, is `media`: nothing for a real picture or recording.
pub(crate) fn file_texts(bytes: &[u8], media: Option<&[u8]>, out: &mut Vec<FileText>) {
    file_texts_declared(bytes, Declared::UNTYPED.with(media).upload(), out);
}

/// The readings of a file sent as bytes, declared `declared`: for a real picture or recording
/// that declares media or nothing, only the text in it when it is an upload (it is kept, and a
/// model's code execution may read it later as any file).
pub(crate) fn file_texts_declared(bytes: &[u8], declared: Declared, out: &mut Vec<FileText>) {
    read_file(bytes, declared, out);
}

/// Every reading of a file's bytes, within [`READ_LIMIT`].
fn read_file(bytes: &[u8], declared: Declared, out: &mut Vec<FileText>) {
    let mut budget = READ_LIMIT;
    if super::containers::read_as(bytes, declared, 0, &mut budget, out).is_err() {
        out.push(FileText::Unreadable(
            "a file in the request is larger than agw reads once decompressed",
        ));
    }
}

/// The readings of bytes as text, appended to `out` within `budget`: UTF-8 (invalid bytes,
/// NULs and other control characters dropped), Windows-1252 where they are not UTF-8, UTF-16
/// and UTF-32 where their byte order mark or zero bytes say so.
pub(super) fn text_readings(
    bytes: &[u8],
    budget: &mut usize,
    out: &mut Vec<FileText>,
) -> Result<(), ()> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(());
    }
    let mut push = |text: String, out: &mut Vec<FileText>| {
        if *budget < text.len() {
            return Err(());
        }
        *budget -= text.len();
        if !text.trim().is_empty() {
            out.push(FileText::Text(text));
        }
        Ok(())
    };
    if let Some(big) = utf32(bytes) {
        let body = bytes
            .strip_prefix(if big {
                b"\0\0\xfe\xff"
            } else {
                b"\xff\xfe\0\0"
            })
            .unwrap_or(bytes);
        let text = body.chunks_exact(4).map(|c| {
            let unit = if big {
                u32::from_be_bytes([c[0], c[1], c[2], c[3]])
            } else {
                u32::from_le_bytes([c[0], c[1], c[2], c[3]])
            };
            char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)
        });
        push(cleaned(text), out)?;
    } else if let Some(big) = utf16(bytes) {
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
        let text = char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER));
        push(cleaned(text), out)?;
    }
    // As UTF-8 too, whatever else it may be (a UTF-8 file whose head looks like UTF-16 is
    // read as UTF-8 by a UTF-8 reader; a red-team case).
    match simdutf8::basic::from_utf8(bytes) {
        Ok(t) if !t.chars().any(odd_char) => push(t.to_owned(), out)?,
        Ok(t) => push(cleaned(t.chars()), out)?,
        Err(_) => {
            push(cleaned(String::from_utf8_lossy(bytes).chars()), out)?;
            // Not UTF-8: also as Windows-1252 (Latin-1's superset), as text exported on
            // Windows with smart quotes is (black-box review).
            push(cleaned(bytes.iter().map(|&b| windows_1252(b))), out)?;
        }
    }
    Ok(())
}

/// Text as a lenient reader shows it. In text with some characters no text holds (stray control
/// characters, bytes that do not decode: at most a quarter) those are dropped, as such readers
/// drop them, however many there are; in bytes mostly made of them (a font, compressed data:
/// over half) each run of them is a line break instead, so no word is glued together from
/// fragments (eighteenth session: a PDF's embedded font read as card numbers and addresses).
/// Between the two, a run of one or two is dropped (a character slipped into a word:
/// `cred\x01it`) and a longer one is a line break.
fn cleaned<I: Iterator<Item = char> + Clone>(chars: I) -> String {
    let (mut total, mut odd) = (0usize, 0usize);
    for c in chars.clone() {
        total += 1;
        odd += usize::from(odd_char(c));
    }
    let glue = if odd * 4 <= total {
        usize::MAX
    } else if odd * 2 <= total {
        2
    } else {
        0
    };
    let mut out = String::with_capacity(total);
    let mut run = 0usize;
    for c in chars {
        if odd_char(c) {
            run += 1;
            if glue.checked_add(1) == Some(run) {
                out.push('\n');
            }
        } else {
            out.push(c);
            run = 0;
        }
    }
    out
}

/// Whether `value` is a `data:` URL (`data:[type/subtype][;params],body`).
pub(super) fn is_data_url(value: &[u8]) -> bool {
    split_data_url(value).is_some()
}

/// A `data:` URL's media type, whether it is base64 (its last parameter is `base64`, as a
/// reader of data URLs reads it: `;base64;x=1` is not), and its body.
fn split_data_url(value: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    // URL parsers strip leading spaces and control characters (WHATWG, Python 3.12's
    // `urlsplit`): ` data:text/plain,…` is a data URL to them (a red-team case).
    let start = value.iter().position(|&c| c > b' ').unwrap_or(value.len());
    let value = &value[start..];
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
pub(super) fn base64_decoded(s: &[u8], limit: usize) -> Vec<u8> {
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

/// A character no text holds, which a lenient reader drops: NUL and other control characters
/// but tab, line breaks, form feed and escape, and bytes that do not decode.
fn odd_char(c: char) -> bool {
    c == char::REPLACEMENT_CHARACTER
        || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c' | '\x1b'))
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

/// Whether bytes are UTF-32, and big-endian: by a byte order mark, or by three zero bytes in
/// every four of the first characters (ASCII text written as UTF-32).
fn utf32(b: &[u8]) -> Option<bool> {
    match b {
        [0, 0, 0xfe, 0xff, ..] => return Some(true),
        [0xff, 0xfe, 0, 0, ..] => return Some(false),
        _ => {}
    }
    let head = &b[..b.len().min(64)];
    if head.len() < 8 {
        return None;
    }
    let quads = head.chunks_exact(4);
    let n = quads.len();
    let little = quads
        .clone()
        .filter(|q| q[0] != 0 && q[1..] == [0, 0, 0])
        .count();
    let big = quads.filter(|q| q[3] != 0 && q[..3] == [0, 0, 0]).count();
    if little * 10 >= n * 9 {
        Some(false)
    } else if big * 10 >= n * 9 {
        Some(true)
    } else {
        None
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

    /// The texts of an inline file's readings.
    fn texts(value: &[u8], media: Option<&[u8]>) -> Vec<String> {
        let mut out = Vec::new();
        texts_of(value, media, &mut out);
        out.into_iter()
            .map(|t| match t {
                FileText::Text(t) => t,
                FileText::Unreadable(why) => panic!("unreadable: {why}"),
            })
            .collect()
    }

    /// The one reading of a file, `None` for none.
    fn text_of(value: &[u8], media: Option<&[u8]>) -> Option<String> {
        let mut t = texts(value, media);
        assert!(t.len() <= 1, "{t:?}");
        t.pop()
    }

    /// Whether some reading of a file holds `needle`.
    fn read_as(value: &[u8], media: Option<&[u8]>, needle: &str) -> bool {
        texts(value, media).iter().any(|t| t.contains(needle))
    }

    #[test]
    fn declarations_are_read_as_text_media_or_nothing() {
        let typed = |m: &[u8]| Declared::UNTYPED.with_type(m);
        let named = |n: &[u8]| Declared::UNTYPED.with_filename(n);
        for m in [
            &b"text/plain"[..],
            b"Text/CSV; charset=utf-8",
            b"application/json",
            b"application/ld+json",
            b"application/xml",
            b"image/svg+xml",
            b"application/x-yaml",
            b"application/javascript",
            b"message/rfc822",
        ] {
            assert!(typed(m).is_text() && !typed(m).may_be_picture(), "{m:?}");
        }
        for n in [
            &b"notes.txt"[..],
            b"dir/A.MD",
            b"c:\\x\\data.csv",
            b"a.tar.json",
        ] {
            assert!(named(n).is_text() && !named(n).may_be_picture(), "{n:?}");
        }
        // Media types and names: read unless the bytes really are a picture.
        for m in [&b"image/png"[..], b"AUDIO/wav", b"video/mp4;codecs=x"] {
            assert!(typed(m).may_be_picture() && !typed(m).is_text(), "{m:?}");
        }
        assert!(named(b"photo.png").may_be_picture());
        // Containers and unknown kinds are read; nothing declared leaves the bytes to tell.
        for d in [typed(b"application/pdf"), named(b"a.docx"), named(b"a.bin")] {
            assert!(!d.may_be_picture() && !d.is_text(), "{d:?}");
        }
        for d in [
            typed(b""),
            typed(b"application/octet-stream"),
            named(b"upload"),
            named(b"dir.d/upload"),
            named(b"upload."),
        ] {
            assert_eq!(d, Declared::UNTYPED);
        }
        // Declarations that disagree fail toward reading.
        let both = typed(b"image/png").with_filename(b"notes.txt");
        assert!(both.is_text() && both.may_be_picture());
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
        // A leading space or control character, which URL parsers strip.
        assert_eq!(
            text_of(format!(" \tdata:text/plain;base64,{enc}").as_bytes(), None),
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
        // Declared media is read too when it does not start as media (twenty-fourth session);
        // one that does is not decoded further.
        assert_eq!(
            text_of(format!("data:image/png;base64,{enc}").as_bytes(), None),
            want
        );
        assert_eq!(text_of(enc.as_bytes(), Some(b"audio/wav")), want);
        let png = b64(&[&b"\x89PNG\r\n\x1a\n"[..], text.as_bytes()].concat());
        assert_eq!(
            text_of(format!("data:image/png;base64,{png}").as_bytes(), None),
            None
        );
        assert_eq!(text_of(enc.as_bytes(), Some(b"application/pdf")), want);
        assert_eq!(
            text_of(enc.as_bytes(), Some(b"application/octet-stream")),
            want
        );
        // A file declared text is read whatever its first bytes are (twenty-first session's
        // red team: a PNG's signature before a secret passed unread).
        let png = b64(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR my credit card");
        assert!(read_as(
            png.as_bytes(),
            Some(b"text/plain"),
            "my credit card"
        ));
        // Nor is a picture's signature before text a picture when nothing is declared.
        assert!(read_as(png.as_bytes(), None, "my credit card"));
        // Control characters, NULs and bad bytes are dropped, as lenient readers drop them,
        // however many there are (eighteenth session's red team: four made a file binary).
        let mut stray = b"my credit card ".repeat(10);
        stray.extend_from_slice(b"\0\xff");
        assert!(read_as(b64(&stray).as_bytes(), None, "my credit card"));
        let controls = b"my cred\x01it card and key AKIAZ7QRSTUVWX2345AB\n\x01\x01\x01\x01\x7f\x0b";
        assert!(read_as(
            b64(controls).as_bytes(),
            Some(b"text/plain"),
            "my credit card"
        ));
        let noise: Vec<u8> = (0..3000u32).map(|i| (i * 97 % 256) as u8).collect();
        let mut prefixed = noise.clone();
        prefixed.extend_from_slice(b" the credit card phrase");
        assert!(read_as(
            b64(&prefixed).as_bytes(),
            None,
            "the credit card phrase"
        ));
        // UTF-16 and UTF-32, with and without a byte order mark; a UTF-8 file whose head
        // looks like UTF-16 is read as UTF-8 too.
        let utf16: Vec<u8> = "my credit card"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(read_as(b64(&utf16).as_bytes(), None, "my credit card"));
        let mut bom = vec![0xfe, 0xff];
        bom.extend("my credit card".encode_utf16().flat_map(u16::to_be_bytes));
        assert!(read_as(b64(&bom).as_bytes(), None, "my credit card"));
        let utf32: Vec<u8> = "my credit card"
            .chars()
            .flat_map(|c| u32::from(c).to_le_bytes())
            .collect();
        assert!(read_as(b64(&utf32).as_bytes(), None, "my credit card"));
        let mut mixed: Vec<u8> = "Notes file.\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect::<Vec<u8>>()
            .repeat(3);
        mixed.extend_from_slice(b"then my credit card");
        assert!(read_as(b64(&mixed).as_bytes(), None, "then my credit card"));
        let mut fffe = b"\xff\xfe".to_vec();
        fffe.extend_from_slice(b"my credit card");
        assert!(read_as(b64(&fffe).as_bytes(), None, "my credit card"));
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
        // Windows-1252 (smart quotes: black-box review) is read in that code page, and as
        // UTF-8 with the bad bytes dropped: full-width digits a UTF-8 reader sees are kept.
        let cp1252 = b"\x93q\x94 \x93q\x94 Customer\x92s card: 4539 1488 0343 6467\nthe credit card phrase\n";
        assert!(read_as(
            b64(cp1252).as_bytes(),
            Some(b"text/plain"),
            "Customer\u{2019}s card: 4539 1488 0343 6467"
        ));
        let wide = [&b"\x92 note: card "[..], "４１１１ １１１１".as_bytes()].concat();
        assert!(read_as(b64(&wide).as_bytes(), None, "４１１１ １１１１"));
        // `+` in a data URL's base64 is base64's, not a space.
        let plus = b64(&[&b"\xfb\xef\xbe"[..], &b" my credit card".repeat(20)].concat());
        assert!(plus.contains('+'), "{plus}");
        assert!(read_as(
            format!("data:;base64,{plus}").as_bytes(),
            None,
            " my credit card"
        ));
        // A leading `=` is skipped.
        assert_eq!(text_of(format!("={enc}").as_bytes(), None), want);
        // Bytes mostly of characters no text holds (a font, compressed data) glue nothing
        // together: fragments between them stay apart.
        let mut binary = Vec::new();
        for i in 0..400u32 {
            binary.extend_from_slice(&[0, 1, 2, 0x9d, (i % 7) as u8]);
            binary.extend_from_slice(b"4111");
        }
        assert!(!read_as(b64(&binary).as_bytes(), None, "41114111"));
        // Long text, decoded whole.
        let long = "line of text é\n".repeat(1000);
        assert_eq!(text_of(b64(long.as_bytes()).as_bytes(), None), Some(long));
    }
}
