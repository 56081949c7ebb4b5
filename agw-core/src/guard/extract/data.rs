//! JSON the model reads as data (tool inputs and results, generic bodies): every string, key
//! and long number, and the base64 files in it.

use super::numbers::integer_digits;
use super::{Extractor, Joined, Loc, Top};
use crate::guard::Field;
use crate::guard::files::Declared;
use crate::json::{Decoded, JsonError, Scanner, Str};
use std::borrow::Cow;

/// The shortest JSON number read as text (see [`Extractor::push_number`]): eight characters,
/// the fewest a detector's numbers have (an E.164 phone number's digits).
pub(super) const MIN_NUMBER_TEXT: usize = 8;

/// Whether `key` names a media type (`media_type`, `mime_type`, Gemini's `mimeType`).
pub(super) fn is_media_key(sc: &Scanner<'_>, key: &crate::json::Str) -> bool {
    ["media_type", "mime_type", "mimetype"]
        .iter()
        .any(|k| sc.key_matches(key, k))
}

/// Whether the value just read from `value` was a `type` key's `"base64"` (decoded, as a
/// provider reads it: `"b\u0061se64"` too).
pub(super) fn is_base64_type(sc: &Scanner<'_>, key: &crate::json::Str, value: usize) -> bool {
    if !sc.key_matches(key, "type") {
        return false;
    }
    let raw = &sc.bytes()[value..sc.offset()];
    if raw == b"\"base64\"" {
        return true;
    }
    let mut again = sc.at(value);
    raw.contains(&b'\\')
        && again
            .string()
            .is_ok_and(|s| &*again.str_value(&s) == b"base64")
}

impl Extractor {
    /// Every string inside one JSON value, object keys included: in arbitrary JSON the model
    /// reads (tool inputs, tool results), a key is text like any other, and a masked key stays
    /// a JSON string (two keys may become equal).
    pub(in crate::guard) fn all_strings(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        match sc.peek() {
            Some(b'"') => {
                // Separate values are separate words (`["n", "AKIA…"]` is not `nAKIA…`), as
                // keys are.
                self.doc.text.push(b'\n');
                self.push_next(sc, field, loc)?;
                Ok(())
            }
            Some(b'{') => self.data_object(sc, field, |this, sc, key| {
                this.push_key(sc, field, key, loc)?;
                if loc.top == Top::Tools
                    && (sc.key_matches(key, "headers") || sc.key_matches(key, "authorization"))
                {
                    // A Responses MCP tool's credential for its server (OpenAI documents
                    // `headers: {Authorization: Bearer …}`): the client's own, as Anthropic's
                    // `mcp_servers[].authorization_token` is, so read by literal and regex
                    // rules only (seventeenth session's second review: credential detectors
                    // refused every turn of such a tool).
                    let credential = Loc {
                        leaf: ".mcp_credential",
                        ..loc
                    };
                    return this.all_strings(sc, field, credential);
                }
                let text = sc.key_matches(key, "text") && sc.peek() == Some(b'"');
                let from = this.doc.text.len();
                let url = if loc.top == Top::Tools {
                    // A Responses MCP tool's server, which the provider connects to: read as
                    // Anthropic's `mcp_servers[].url` is, by every rule (a secret in it reaches
                    // a third party), not as a definition's text (red-team review). Other URLs
                    // in definitions are their text.
                    let server = Loc {
                        leaf: ".server_url",
                        ..loc
                    };
                    sc.key_matches(key, "server_url")
                        .then(|| this.url_value(sc, key, Field::Messages, server))
                        .flatten()
                } else if field == Field::Messages {
                    // A URL read generically (a stored prompt's variables, a passthrough body):
                    // one the provider or a server may fetch, read again decoded.
                    this.url_value(sc, key, field, loc)
                } else {
                    None
                };
                url.unwrap_or_else(|| this.all_strings(sc, field, loc))?;
                if text {
                    this.note_element_text(from);
                }
                Ok(())
            }),
            Some(b'[') => {
                self.joining_array(sc, field, |this, sc| this.all_strings(sc, field, loc))
            }
            Some(b'-' | b'0'..=b'9') => self.push_number(sc, field, loc),
            _ => sc.skip_fast(),
        }
    }

    /// Reads an array (the cursor is at it), `each` reading each element, and keeps the
    /// `text` strings of consecutive elements joined ([`super::Doc::joined`]): a server runs
    /// them together (Gemini's `parts`, Bedrock's `content`).
    pub(in crate::guard) fn joining_array(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        mut each: impl FnMut(&mut Self, &mut Scanner<'_>) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        let outer = self.doc.st.element_text.take();
        let mut joined = Joined::new(field);
        sc.array(|sc, _| {
            each(self, sc)?;
            match self.doc.st.element_text.take() {
                Some(r) => {
                    if !joined.text.is_empty() {
                        joined.meets.push(joined.text.len());
                    }
                    joined.text.extend_from_slice(&self.doc.text[r]);
                }
                None => self.keep_joined(&mut joined),
            }
            Ok(())
        })?;
        self.keep_joined(&mut joined);
        self.doc.st.element_text = outer;
        Ok(())
    }

    /// Notes the text of a `text` key's string value read from `from` ([`Self::joining_array`]).
    pub(in crate::guard) fn note_element_text(&mut self, from: usize) {
        // Read after a line break of its own.
        let from = from + usize::from(self.doc.text.get(from) == Some(&b'\n'));
        self.doc.st.element_text = Some(from..self.doc.text.len());
    }

    /// Keeps text parts joined when there are two or more, and starts anew.
    fn keep_joined(&mut self, joined: &mut Joined) {
        if joined.meets.is_empty() {
            joined.text.clear();
            return;
        }
        let field = joined.field;
        self.doc
            .joined
            .push(std::mem::replace(joined, Joined::new(field)));
    }

    /// Reads an object of data read string by string (the cursor is at it), `each` reading
    /// each key and its value. When one of its keys was `"type": "base64"` it is a base64
    /// source (`{"type":"base64","media_type":…,"data":…}`, a fetched page in a tool result),
    /// whose `data` is then read as an inline file; so is a `data` beside a media type
    /// (Gemini's `inlineData: {mimeType, data}`), a `bytes` string (Bedrock's `source.bytes`)
    /// and a `file_data` (a Responses `input_file` in a stored prompt's variables): found by a
    /// black-box review, a text file in any of these passed unread.
    pub(in crate::guard) fn data_object(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        mut each: impl FnMut(&mut Self, &mut Scanner<'_>, &crate::json::Str) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        let from = sc.position();
        let (mut base64, mut media, mut data, mut file) = (false, false, false, false);
        sc.object(|sc, key| {
            let value = sc.position();
            each(self, sc, &key)?;
            if sc.bytes().get(value) == Some(&b'"') {
                base64 |= is_base64_type(sc, &key, value);
                media |= is_media_key(sc, &key);
                data |= sc.key_matches(&key, "data");
                file |= sc.key_matches(&key, "bytes") || sc.key_matches(&key, "file_data");
            }
            Ok(())
        })?;
        if base64 || (media && data) || file {
            self.base64_source(&mut sc.at(from), field, true)?;
        }
        Ok(())
    }

    /// An object that may be a base64 source: its `data` is an inline file when its `type` is
    /// `base64` or `assume` says it is one (its own keys only; nested objects are read on their
    /// own); its `bytes` and `file_data` are always.
    pub(super) fn base64_source(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        assume: bool,
    ) -> Result<(), JsonError> {
        fn string<'a>(sc: &mut Scanner<'a>) -> Result<Option<Cow<'a, [u8]>>, JsonError> {
            Ok(sc.string_or_none()?.map(|s| sc.str_value(&s)))
        }
        // Keys named twice (data read whole is not refused for that): every `data` is read,
        // as every media type and file name declares it (types that disagree fail toward
        // reading: [`Declared`]).
        let (mut base64, mut declared, mut data) = (assume, Declared::UNTYPED, Vec::new());
        let mut files = Vec::new();
        sc.object(|sc, key| {
            let media_key = is_media_key(sc, &key);
            match string(sc)? {
                Some(t) if sc.key_matches(&key, "type") => base64 |= &*t == b"base64",
                Some(m) if media_key => declared = declared.with_type(&m),
                // A Responses `input_file`'s or a chat `file`'s name: its extension declares
                // the file's type where no media type does.
                Some(n) if sc.key_matches(&key, "filename") => {
                    declared = declared.with_filename(&n);
                }
                Some(d) if sc.key_matches(&key, "data") => data.push(d),
                Some(f) if sc.key_matches(&key, "bytes") || sc.key_matches(&key, "file_data") => {
                    files.push(f);
                }
                Some(_) => {}
                None => sc.skip_fast()?,
            }
            Ok(())
        })?;
        for f in &files {
            self.inline_file_declared(f, declared, field);
        }
        if base64 {
            for d in &data {
                self.inline_file_declared(d, declared, field);
            }
        }
        Ok(())
    }

    /// A JSON number in data the model reads (a tool's input or output, a generic body): read
    /// as a word when it is long enough to be a card, a phone or an account number
    /// (`{"card": 4111111111111111}`, found by the third red-team review: only strings were
    /// read). A whole number written with a fraction or an exponent (`4.111111111111111e15`,
    /// `4111111111111111.0`), which a server may print back as its digits, is read by those
    /// digits too (the fourth review). Masking it replaces the number with a JSON string.
    pub(in crate::guard) fn push_number(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        let raw = sc.skip()?;
        let number = &sc.bytes()[raw.clone()];
        let digits = integer_digits(number);
        if raw.len() < MIN_NUMBER_TEXT && digits.as_ref().is_none_or(|d| d.len() < MIN_NUMBER_TEXT)
        {
            return Ok(());
        }
        self.doc.text.push(b'\n');
        let start = self.doc.text.len();
        self.doc.text.extend_from_slice(number);
        if let Some(d) = &digits {
            // A line apart from the number as written: the two are two words.
            self.doc.text.push(b'\n');
            self.doc.text.extend_from_slice(d.as_bytes());
        }
        let s = Str {
            raw,
            escaped: false,
        };
        self.add(start, &s, Decoded::Identity, field, loc);
        if let Some(seg) = self.doc.segs.last_mut() {
            seg.number = true;
        }
        Ok(())
    }

    /// Every string of an object but those under the `skip` keys (its keys are not read).
    pub(super) fn except(
        &mut self,
        sc: &mut Scanner<'_>,
        skip: &[&str],
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return self.all_strings(sc, field, loc);
        }
        sc.object(|sc, key| {
            if skip.iter().any(|k| sc.key_matches(&key, k)) {
                sc.skip_fast()
            } else {
                self.all_strings(sc, field, loc)
            }
        })
    }

    /// Every string under the listed keys of an object, each reported as its leaf (anything
    /// else is skipped).
    pub(super) fn only(
        &mut self,
        sc: &mut Scanner<'_>,
        keys: &[(&str, &'static str)],
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return sc.skip_fast();
        }
        sc.object(
            |sc, key| match keys.iter().find(|(k, _)| sc.key_matches(&key, k)) {
                Some(&("arguments", leaf)) => self.arguments(sc, field, Loc { leaf, ..loc }),
                Some(&(_, leaf)) => {
                    let loc = Loc { leaf, ..loc };
                    self.url_value(sc, &key, field, loc)
                        .unwrap_or_else(|| self.all_strings(sc, field, loc))
                }
                None => sc.skip_fast(),
            },
        )
    }
}
