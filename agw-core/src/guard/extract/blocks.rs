//! Content blocks and parts: a message's `content`, each block by its type, a document's source.

use super::urls::FETCHED_URLS;
use super::{Extractor, Loc, shape, shape_at};
use crate::guard::Field;
use crate::json::{JsonError, Scanner, Str};
use std::borrow::Cow;

/// String fields of a block that may hold prompt text, and the leaf each is reported as.
pub(super) const BLOCK_STRINGS: [(&str, &str); 9] = [
    ("text", ".text"),
    ("title", ".title"),
    ("context", ".context"),
    ("refusal", ".refusal"),
    ("filename", ".filename"),
    ("url", ".url"),
    ("name", ".name"),
    ("file_url", ".file_url"),
    ("page_age", ".page_age"),
];

/// Whether a block of type `ty` has text agw reads in its strings — its [`BLOCK_STRINGS`],
/// keys it has no reading for, its values: every block's but reasoning's, whose text is read
/// as [`Reasoning`] says. An image's `text` or `title`, a search result's `text`, a tool
/// call's `title` are no fields of theirs, but a lenient server may print them, and they reach
/// the provider (fourteenth review: they were skipped).
pub(super) fn reads_string(ty: &[u8]) -> bool {
    !matches!(ty, b"thinking" | b"redacted_thinking")
}

/// What an Anthropic reasoning block (`thinking`, `redacted_thinking`) holds: where its text
/// is, and whether it is signed.
///
/// Signed reasoning in an assistant turn is not read: Claude Code sends its signed thinking
/// back, and a changed block fails its signature. Anywhere else its text is read — a thinking
/// block without a (non-empty string) signature, one inside a user, tool or system message, in
/// `system`, in a tool result — since nothing verifies it there and an Anthropic-compatible
/// server or an open model's chat template puts it into the prompt (twenty-first session's
/// red team: such text went upstream unread). Unsigned, it is masked in place; signed (a
/// `redacted_thinking` block's `data` is sealed ciphertext), its segments are
/// [`Doc::sealed`](super::Doc::sealed). Only the text is read: a reasoning block's other
/// fields are no template's.
#[derive(Debug, Default)]
pub(super) struct Reasoning {
    /// Where the value of its `thinking` key starts.
    thinking: Option<usize>,
    /// Where the value of its `data` key starts.
    data: Option<usize>,
    /// Whether every `signature` it has is a non-empty string; `None` without one.
    signed: Option<bool>,
}

impl Reasoning {
    /// Consumes the value of a reasoning block's key: its text's place and its signature are
    /// noted, the rest skipped. A second `thinking` or `data` is refused, as a second `type`
    /// is (parsers disagree on which one wins).
    fn key(&mut self, sc: &mut Scanner<'_>, key: &Str, loc: Loc) -> Result<(), JsonError> {
        let (slot, name) = if sc.key_matches(key, "thinking") {
            (&mut self.thinking, "thinking")
        } else if sc.key_matches(key, "data") {
            (&mut self.data, "data")
        } else if sc.key_matches(key, "signature") {
            let signed = match sc.string_or_none()? {
                Some(s) => !s.raw.is_empty(),
                None => {
                    sc.skip_fast()?;
                    false
                }
            };
            self.signed = Some(self.signed.unwrap_or(true) && signed);
            return Ok(());
        } else {
            return sc.skip_fast();
        };
        if slot.replace(sc.position()).is_some() {
            return Err(shape(format!("duplicate key `{name}` in {loc}")));
        }
        sc.skip_fast()
    }
}

/// Block fields whose meaning depends on the block's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Content,
    Input,
    Source,
    /// An OpenAI file part's `file` object.
    File,
    /// A text block's citations: the cited text, titles and links.
    Citations,
}

impl Extractor {
    /// A message's or a tool result's `content`: a string or an array of blocks.
    pub(super) fn content(
        &mut self,
        sc: &mut Scanner<'_>,
        m: u32,
        block: Option<u32>,
        field: Field,
    ) -> Result<(), JsonError> {
        let nested = block.is_some();
        let loc = Loc {
            top: self.doc.st.top,
            message: Some(m),
            list: ".content",
            block,
            sub: None,
            leaf: ".content",
        };
        match sc.peek() {
            Some(b'"') => {
                self.push_next(sc, field, loc)?;
                Ok(())
            }
            Some(b'[') => sc.array(|sc, i| {
                let i = i as u32;
                let loc = if nested {
                    Loc {
                        sub: Some(i),
                        leaf: "",
                        ..loc
                    }
                } else {
                    Loc {
                        block: Some(i),
                        leaf: "",
                        ..loc
                    }
                };
                self.block(sc, loc, Some(field).filter(|_| nested))
            }),
            // OpenAI assistant turns with tool calls have `"content": null`.
            Some(b'n') => sc.skip_fast(),
            // A tool result's content may be an object (a code execution's output, a search
            // error, a fetched page): every string in it counts.
            Some(b'{') if nested => self.all_strings(sc, field, loc),
            _ => Err(shape_at(
                sc,
                format!("{loc} must be a string or an array of content blocks"),
            )),
        }
    }

    /// One content block. `forced` overrides the field that the block type implies (inside a
    /// tool result everything is tool output; inside `system`, system).
    pub(in crate::guard) fn block(
        &mut self,
        sc: &mut Scanner<'_>,
        loc: Loc,
        forced: Option<Field>,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return Err(shape_at(sc, format!("{loc} must be an object")));
        }
        let mut ty: Option<Cow<'_, [u8]>> = None;
        let mut strings: Vec<(Str, &'static str)> = Vec::new();
        let mut deferred: Vec<(Key, usize)> = Vec::new();
        let mut others: Vec<(Str, usize)> = Vec::new();
        let mut reasoning = Reasoning::default();
        sc.object(|sc, key| {
            if sc.key_matches(&key, "type") {
                let Some(s) = sc.string_or_none()? else {
                    return Err(shape(format!("{loc}.type must be a string")));
                };
                if ty.is_some() {
                    return Err(shape(format!("duplicate key `type` in {loc}")));
                }
                ty = Some(sc.str_value(&s));
                return Ok(());
            }
            if self.doc.st.chat && sc.key_matches(&key, "thinking") {
                // A chat part's reasoning (a string, or text parts): every string is read.
                let field = forced.unwrap_or(Field::Messages);
                return self.all_strings(
                    sc,
                    field,
                    Loc {
                        leaf: ".thinking",
                        ..loc
                    },
                );
            }
            if sc.key_matches(&key, "file_data") {
                // A Responses `input_file`'s contents.
                return self.file_data(sc, forced.unwrap_or(Field::Messages), loc);
            }
            // Each such key is 9 characters long; one written with escapes is longer.
            let url = key.raw.len() >= 9;
            if let Some(&(_, leaf, url_leaf)) = FETCHED_URLS
                .iter()
                .find(|(name, ..)| url && sc.key_matches(&key, name))
            {
                // Media the provider or the server fetches, whatever the part's type (found by
                // the fourth red-team review: these were not read).
                let field = forced.unwrap_or(Field::Messages);
                return if sc.peek() == Some(b'{') {
                    self.url_object(
                        sc,
                        field,
                        Loc {
                            leaf: url_leaf,
                            ..loc
                        },
                    )
                } else {
                    self.push_url(sc, field, Loc { leaf, ..loc })
                };
            }
            for (name, leaf) in BLOCK_STRINGS {
                if sc.key_matches(&key, name) && matches!(sc.peek(), Some(b'[' | b'{')) {
                    // Not the string it should be (`"text": ["..."]`): a lenient reader may
                    // still take the text from it, so every string in it is read (found by
                    // the red-team review: it was skipped).
                    let field = forced.unwrap_or(Field::Messages);
                    return self.all_strings(sc, field, Loc { leaf, ..loc });
                }
                if sc.key_matches(&key, name) && sc.peek() == Some(b'"') {
                    match ty.as_deref() {
                        // The type usually comes first: read the text straight into the buffer.
                        Some(t) if reads_string(t) => {
                            let field = forced.unwrap_or(Field::Messages);
                            if leaf == ".file_url" {
                                self.push_url(sc, field, Loc { leaf, ..loc })?;
                            } else {
                                self.push_next(sc, field, Loc { leaf, ..loc })?;
                            }
                        }
                        Some(_) => {
                            sc.skip_fast()?;
                        }
                        None => strings.push((sc.string()?, leaf)),
                    }
                    return Ok(());
                }
            }
            let k = if sc.key_matches(&key, "content") {
                Key::Content
            } else if sc.key_matches(&key, "input") {
                Key::Input
            } else if sc.key_matches(&key, "source") {
                Key::Source
            } else if sc.key_matches(&key, "citations") || sc.key_matches(&key, "annotations") {
                // Anthropic's citations, a Responses output text's annotations (titles, file
                // names, URLs: black-box review).
                Key::Citations
            } else if sc.key_matches(&key, "file") {
                Key::File
            } else {
                // A key agw has no reading for: read unless the block is reasoning.
                return match ty.as_deref() {
                    Some(t) if !reads_string(t) => reasoning.key(sc, &key, loc),
                    Some(_) => self.other_key(sc, &key, forced.unwrap_or(Field::Messages), loc),
                    None => {
                        others.push((key, sc.skip()?.start));
                        Ok(())
                    }
                };
            };
            match &ty {
                // The type usually comes first: then the value is handled in this one pass.
                Some(t) => {
                    let t = t.clone();
                    self.value(sc, &t, k, loc, forced)
                }
                None => {
                    deferred.push((k, sc.skip()?.start));
                    Ok(())
                }
            }
        })?;
        let ty = ty.unwrap_or_default();
        let field = forced.unwrap_or(Field::Messages);
        for (s, leaf) in strings {
            if reads_string(&ty) {
                let start = self.doc.text.len();
                self.push(sc, field, &s, Loc { leaf, ..loc })?;
                if leaf == ".file_url" {
                    // As `push_url` reads it when the type comes first.
                    self.data_url_since(start, field);
                    self.note_url(start);
                }
            }
        }
        for (k, at) in deferred {
            self.value(&mut sc.at(at), &ty, k, loc, forced)?;
        }
        if reads_string(&ty) {
            for (key, at) in others {
                self.other_key(&mut sc.at(at), &key, field, loc)?;
            }
        } else {
            for (key, at) in others {
                reasoning.key(&mut sc.at(at), &key, loc)?;
            }
            self.reasoning(sc, &ty, &reasoning, loc, forced)?;
        }
        if let (None, Some(b)) = (forced, loc.block) {
            let text = matches!(&*ty, b"text" | b"input_text");
            self.doc.st.last_block = Some((b, text));
        }
        Ok(())
    }

    /// A reasoning block's text ([`Reasoning`]): a `thinking` block's `thinking`, a
    /// `redacted_thinking` block's `data`; not read when sealed in an assistant turn.
    fn reasoning(
        &mut self,
        sc: &Scanner<'_>,
        ty: &[u8],
        r: &Reasoning,
        loc: Loc,
        forced: Option<Field>,
    ) -> Result<(), JsonError> {
        let (at, leaf, sealed) = if ty == b"thinking" {
            (r.thinking, ".thinking", r.signed == Some(true))
        } else {
            (r.data, ".data", true)
        };
        let Some(at) = at else {
            return Ok(());
        };
        if sealed && self.in_assistant_turn(sc, loc, forced) {
            return Ok(());
        }
        let field = forced.unwrap_or(Field::Messages);
        let loc = Loc { leaf, ..loc };
        let first = self.doc.segs.len();
        let sc = &mut sc.at(at);
        if sc.peek() == Some(b'"') {
            self.push_next(sc, field, loc)?;
        } else {
            // Not the string it should be: a lenient template prints it all the same.
            self.all_strings(sc, field, loc)?;
        }
        if sealed && self.doc.segs.len() > first {
            self.doc.sealed.push(first..self.doc.segs.len());
        }
        Ok(())
    }

    /// Whether a block at `loc` is one of an assistant turn's own (a top-level block of a
    /// message whose role is `assistant`), where signed reasoning belongs. The role may come
    /// after the content: then the message is looked through for it, once.
    fn in_assistant_turn(&mut self, sc: &Scanner<'_>, loc: Loc, forced: Option<Field>) -> bool {
        if forced.is_some() || loc.sub.is_some() || loc.message.is_none() {
            return false;
        }
        match self.doc.st.turn {
            Some((_, Some(assistant))) => assistant,
            Some((at, None)) => {
                let mut ahead = sc.at(at);
                let mut assistant = false;
                let walked = ahead.object(|sc, key| {
                    if sc.key_matches(&key, "role")
                        && let Some(s) = sc.string_or_none()?
                    {
                        assistant = *sc.str_value(&s) == *b"assistant";
                        return Ok(());
                    }
                    sc.skip_fast()
                });
                // A message that does not parse is refused by the walk that reads it.
                let assistant = walked.is_ok() && assistant;
                self.doc.st.turn = Some((at, Some(assistant)));
                assistant
            }
            None => false,
        }
    }

    /// Consumes the value of a [`Key`] of a block of type `ty`.
    pub(super) fn value(
        &mut self,
        sc: &mut Scanner<'_>,
        ty: &[u8],
        key: Key,
        loc: Loc,
        forced: Option<Field>,
    ) -> Result<(), JsonError> {
        let natural = match (key, ty) {
            (_, t) if !reads_string(t) => None,
            // Any block's source, an image's too: its pixels are not read, but a URL the
            // provider will fetch is text that leaves (red-team review), and so are its media
            // type and keys agw has no reading for (fourteenth review's second round).
            (Key::Source, _) => Some(Field::Messages),
            (_, b"image") => None,
            (Key::Input, b"tool_use" | b"server_tool_use" | b"mcp_tool_use") => {
                Some(Field::ToolInput)
            }
            (Key::Input, _) => None,
            (Key::Content, t) if t.ends_with(b"tool_result") => Some(Field::ToolOutput),
            (Key::Content, _) => Some(Field::Messages),
            (Key::File | Key::Citations, _) => Some(Field::Messages),
        };
        let Some(natural) = natural else {
            return sc.skip_fast();
        };
        let field = forced.unwrap_or(natural);
        match key {
            Key::Input => self.all_strings(
                sc,
                field,
                Loc {
                    leaf: ".input",
                    ..loc
                },
            ),
            // A search result's `source` is a string: where the result comes from.
            Key::Source if sc.peek() == Some(b'"') => self.push_next(
                sc,
                field,
                Loc {
                    leaf: ".source",
                    ..loc
                },
            ),
            Key::Source => self.document_source(sc, loc, field),
            Key::File => {
                if sc.peek() != Some(b'{') {
                    return sc.skip_fast();
                }
                sc.object(|sc, key| {
                    if sc.key_matches(&key, "filename") {
                        let leaf = ".file.filename";
                        self.all_strings(sc, field, Loc { leaf, ..loc })
                    } else if sc.key_matches(&key, "file_data") {
                        self.file_data(sc, field, loc)
                    } else {
                        // `file_url` (a URL the provider fetches) and keys agw has no reading
                        // for; `file_id` is skipped there (fourteenth review).
                        self.other_key(sc, &key, field, loc)
                    }
                })
            }
            Key::Citations => {
                if sc.peek() != Some(b'[') {
                    // A document's `"citations": {"enabled": true}`: its strings, if any, are
                    // read as identifiers are (black-box review, twenty-fourth session).
                    return super::collect_strings(sc, &mut self.doc.identifiers);
                }
                let loc = Loc {
                    leaf: ".citations",
                    ..loc
                };
                // Every string of a citation but its kind and opaque references: the cited
                // text, titles, links, and fields agw does not know yet.
                let skip = ["type", "file_id", "encrypted_index"];
                sc.array(|sc, _| self.except(sc, &skip, field, loc))
            }
            Key::Content => match loc.message {
                Some(m) if loc.sub.is_none() => self.content(sc, m, loc.block, field),
                // Deeper nesting (inside a tool result or the system prompt): every string counts
                // rather than a shape the API does not define.
                _ => self.all_strings(
                    sc,
                    field,
                    Loc {
                        leaf: ".content",
                        ..loc
                    },
                ),
            },
        }
    }

    /// A document's `source`: `{"type":"text","data":...}` or `{"type":"content","content":[..]}`;
    /// a base64 one is an inline file ([`Extractor::inline_file`]), a URL one's URL is read.
    pub(super) fn document_source(
        &mut self,
        sc: &mut Scanner<'_>,
        loc: Loc,
        field: Field,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return sc.skip_fast();
        }
        let start = sc.position();
        let mut ty = None;
        let mut data = None;
        let mut media = None;
        let mut content = None;
        sc.object(|sc, key| {
            if sc.key_matches(&key, "media_type") {
                if let Some(s) = sc.string_or_none()? {
                    // The media type decides whether `data` is decoded: a second one must not
                    // hide it, as for `type`.
                    if media.replace(sc.str_value(&s)).is_some() {
                        return Err(shape(format!("duplicate key `media_type` in {loc}.source")));
                    }
                    // Text that reaches the provider too (second round).
                    self.doc.text.push(b'\n');
                    return self.push(sc, field, &s, loc);
                }
            } else if sc.key_matches(&key, "type") {
                if let Some(s) = sc.string_or_none()? {
                    // The type decides whether `data` is text: a second one must not hide it.
                    if ty.replace(sc.str_value(&s)).is_some() {
                        return Err(shape(format!("duplicate key `type` in {loc}.source")));
                    }
                    return Ok(());
                }
            } else if sc.key_matches(&key, "data") {
                if let Some(s) = sc.string_or_none()? {
                    // Read as `type` says: a second one must not hide the first.
                    if data.replace(s).is_some() {
                        return Err(shape(format!("duplicate key `data` in {loc}.source")));
                    }
                    return Ok(());
                }
            } else if sc.key_matches(&key, "content") {
                content = Some(sc.skip()?.start);
                return Ok(());
            } else if sc.key_matches(&key, "url") && sc.peek() == Some(b'"') {
                // A URL the provider will fetch: text that leaves, read again decoded.
                let leaf = Loc {
                    leaf: ".source.url",
                    ..loc
                };
                return self.push_url(sc, field, leaf);
            }
            if ["media_type", "type", "data", "content", "url"]
                .iter()
                .any(|k| sc.key_matches(&key, k))
            {
                // Not a string where one is read above.
                return sc.skip_fast();
            }
            // Keys agw has no reading for (second round: they were skipped).
            self.other_key(sc, &key, field, loc)
        })?;
        match ty.as_deref() {
            Some(b"text") => {
                if let Some(s) = data {
                    let leaf = Loc {
                        leaf: ".source.data",
                        ..loc
                    };
                    self.push(sc, field, &s, leaf)?;
                }
            }
            Some(b"content") => {
                if let Some(at) = content {
                    let leaf = Loc {
                        leaf: ".source.content",
                        ..loc
                    };
                    self.all_strings(&mut sc.at(at), field, leaf)?;
                }
            }
            Some(b"base64") => {
                // An image's, audio's or video's bytes too: they go unread only when they
                // really are a picture or a recording (`files`; black-box review, twenty-fourth
                // session: text declared `image/png` went upstream unread).
                if let Some(s) = data {
                    let files = self.doc.inline_files.len();
                    self.inline_file(&sc.str_value(&s), media.as_deref(), field);
                    self.doc.file_sources.push(super::FileSource {
                        files: files..self.doc.inline_files.len(),
                        raw: start..sc.offset(),
                        buffer: sc.bytes().as_ptr() as usize,
                        message: loc.message,
                        history: None,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}
