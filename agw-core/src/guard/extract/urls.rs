//! URLs the provider (or a server) fetches, and files sent inline.

use super::Extractor;
use super::Loc;
use crate::guard::Field;
use crate::guard::files::Declared;
use crate::json::{JsonError, Scanner};

/// Keys whose string value, read generically as message text, is a URL a provider or a
/// server may fetch (read again percent-decoded: [`super::Doc::encoded_urls`]).
pub(in crate::guard) const URL_KEYS: [&str; 18] = [
    "url",
    "file_url",
    "image_url",
    "audio_url",
    "video_url",
    "server_url",
    "document_url",
    // Gemini's and Vertex's `fileData`, in both spellings. (Not any string that looks like
    // a URL: a search link in a tool result, `?q=credit+card`, is no URL the provider
    // fetches, and read decoded it refused every later turn: second round.)
    "file_uri",
    "fileuri",
    // The camel-case spellings of SDKs and compatible servers (keys are matched ignoring
    // case, not underscores).
    "imageurl",
    "audiourl",
    "videourl",
    "fileurl",
    "documenturl",
    "serverurl",
    // DashScope's `image`, `audio` and `video` parts.
    "image",
    "audio",
    "video",
];

/// Keys of a content part that hold a URL the provider (or a vLLM server) fetches: a string
/// (Responses `input_image`) or an object with a `url` (chat `image_url`, vLLM's `audio_url`
/// and `video_url`), and the leaves each is reported as.
pub(super) const FETCHED_URLS: [(&str, &str, &str); 3] = [
    ("image_url", ".image_url", ".image_url.url"),
    ("audio_url", ".audio_url", ".audio_url.url"),
    ("video_url", ".video_url", ".video_url.url"),
];

/// The longest `file_data` in base64 that is read as written too (a token, not a file).
pub(super) const SHORT_FILE_DATA: usize = 1024;

/// Whether `value` is written in base64's alphabets only (either one, padding and line breaks
/// allowed): an encoded file, not text. Text has blanks or punctuation.
pub(in crate::guard) fn looks_base64(value: &[u8]) -> bool {
    !value.is_empty()
        && value.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=' | b'\r' | b'\n')
        })
}

impl Extractor {
    /// Reads a URL the provider (or the server) fetches, when the cursor is at a string: text
    /// that leaves. A `data:` URL is the content itself: read as an inline file
    /// ([`Extractor::inline_file`]).
    pub(in crate::guard) fn push_url(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'"') {
            return sc.skip_fast();
        }
        // Only a string that starts with `d` or an escape (`\u0064ata:`) may be a data URL;
        // any other is read into the text in one pass.
        let at = sc.position();
        let first = sc.bytes().get(at + 1).copied();
        if !matches!(first, Some(b'd' | b'D' | b'\\')) {
            let start = self.doc.text.len();
            let (s, kind) = sc.string_into(&mut self.doc.text)?;
            self.note_url(start);
            self.add(start, &s, kind, field, loc);
            return Ok(());
        }
        let s = sc.string()?;
        let value = sc.str_value(&s);
        // Read in place (most images: their media type says so, and they are not decoded),
        // also when written with escapes (`d\u0061ta:`). Text that only starts with `data:`
        // is read as text (fourteenth review: `data: …` went upstream unread).
        if crate::guard::files::is_data_url(&value) {
            self.inline_file(&value, None, field);
            return Ok(());
        }
        drop(value);
        let start = self.doc.text.len();
        self.push(sc, field, &s, loc)?;
        self.note_url(start);
        Ok(())
    }

    /// The string at the cursor, an object's value read as a word of its own (as
    /// [`Extractor::all_strings`] reads one), when its key names a URL ([`URL_KEYS`]): read
    /// as one a provider or a server may fetch ([`Extractor::push_url`]), as is each string of a
    /// list there. `None`, the cursor
    /// untouched, otherwise.
    pub(in crate::guard) fn url_value(
        &mut self,
        sc: &mut Scanner<'_>,
        key: &crate::json::Str,
        field: Field,
        loc: Loc,
    ) -> Option<Result<(), JsonError>> {
        if !matches!(sc.peek(), Some(b'"' | b'['))
            || !URL_KEYS.iter().any(|k| sc.key_matches(key, k))
        {
            return None;
        }
        if sc.peek() == Some(b'[') {
            // A list of them (DashScope's `video` as frames): each string a URL, anything
            // else read as any value is.
            return Some(sc.array(|sc, _| {
                if sc.peek() == Some(b'"') {
                    self.doc.text.push(b'\n');
                    self.push_url(sc, field, loc)
                } else {
                    self.all_strings(sc, field, loc)
                }
            }));
        }
        self.doc.text.push(b'\n');
        Some(self.push_url(sc, field, loc))
    }

    /// Marks the text from `start` to the end as a URL to read again percent-decoded
    /// ([`super::Doc::encoded_urls`]) when it has escapes to decode.
    pub(super) fn note_url(&mut self, start: usize) {
        let end = self.doc.text.len();
        if self.doc.encoded_urls.last() == Some(&(start..end)) {
            return;
        }
        if self.doc.text[start..]
            .iter()
            .any(|&c| c == b'%' || c == b'+')
        {
            self.doc.encoded_urls.push(start..self.doc.text.len());
        }
    }

    /// Keeps the text of an inline file (a `data:` URL, or base64 with `media_type` from its
    /// siblings) when it holds text ([`crate::guard::files`]).
    pub(super) fn inline_file(&mut self, value: &[u8], media_type: Option<&[u8]>, field: Field) {
        self.inline_file_declared(value, Declared::UNTYPED.with(media_type), field);
    }

    /// The readings of an inline file declared `declared` (its media types, its name: read as
    /// they declare it, [`crate::guard::files`]), kept with the field it is in.
    pub(super) fn inline_file_declared(&mut self, value: &[u8], declared: Declared, field: Field) {
        let mut texts = Vec::new();
        crate::guard::files::texts_declared(value, declared, &mut texts);
        self.doc
            .inline_files
            .extend(texts.into_iter().map(|t| (t, field)));
    }

    /// A `file_data` string (the cursor is at it): an inline file when it is a `data:` URL or
    /// base64; anything else is read as a URL the provider fetches (OpenRouter takes a PDF's
    /// URL there) or text (fourteenth review: it went upstream unread). Short base64 is read
    /// as written too: a token is written in base64's alphabet.
    pub(super) fn file_data(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'"') {
            return sc.skip_fast();
        }
        let s = sc.string()?;
        let value = sc.str_value(&s);
        let data_url = crate::guard::files::is_data_url(&value);
        if data_url || looks_base64(&value) {
            self.inline_file(&value, None, field);
            // A short base64 value may be a token: read as written too.
            if data_url || value.len() > SHORT_FILE_DATA {
                return Ok(());
            }
        }
        drop(value);
        // Read as `push_url` reads a URL that is no data URL, from the string already found.
        self.doc.text.push(b'\n');
        let start = self.doc.text.len();
        let leaf = Loc {
            leaf: ".file_data",
            ..loc
        };
        self.push(sc, field, &s, leaf)?;
        self.note_url(start);
        Ok(())
    }

    /// An object's `url` (the cursor is at the object), read by [`Extractor::push_url`].
    pub(in crate::guard) fn url_object(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        sc.object(|sc, key| {
            if sc.key_matches(&key, "url") {
                self.push_url(sc, field, loc)
            } else {
                // `detail` and keys agw has no reading for (second round: they were skipped).
                self.other_key(sc, &key, field, loc)
            }
        })
    }
}
