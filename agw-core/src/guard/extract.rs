//! Walks a request body once and collects the text a model reads, grouped into units.
//!
//! A *unit* is a run of strings from one message (or the system prompt) that belong to the same
//! [`Field`]; their decoded text is laid out back to back in one buffer, so a phrase split across
//! two adjacent text blocks is matched as one. Every string keeps its raw byte range in the body,
//! which is what masking edits.

use super::Field;
use crate::json::{Decoded, JsonError, Scanner, Str, decode};
use crate::route::RouteKind;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

/// Where a string sits in the body, for reporting (`messages[3].content[1].text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    /// `None` for the top-level `system` prompt.
    pub message: Option<u32>,
    /// The list `block` indexes: `.content` or `.tool_calls` (empty under `system`).
    pub list: &'static str,
    pub block: Option<u32>,
    pub sub: Option<u32>,
    pub leaf: &'static str,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message {
            None => f.write_str("system")?,
            Some(m) => write!(f, "messages[{m}]")?,
        }
        if let Some(b) = self.block {
            write!(f, "{}[{b}]", self.list)?;
        }
        if let Some(s) = self.sub {
            write!(f, ".content[{s}]")?;
        }
        f.write_str(self.leaf)
    }
}

/// One string of scanned text.
#[derive(Debug, Clone)]
pub(crate) struct Seg {
    /// Range in [`Doc::text`].
    pub text: Range<usize>,
    /// Range of the string's raw content (between the quotes) in the body.
    pub raw: Range<usize>,
    pub kind: Decoded,
    pub loc: Loc,
}

/// Strings of one message (or the system prompt) and one field, matched as one text.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub field: Field,
    pub message: Option<u32>,
    /// Range in [`Doc::segs`].
    pub segs: Range<usize>,
}

/// Everything scanned from one body.
#[derive(Debug, Default)]
pub(crate) struct Doc {
    pub text: Vec<u8>,
    pub segs: Vec<Seg>,
    pub units: Vec<Unit>,
    /// Index of the last message with role `assistant`.
    pub last_assistant: Option<u32>,
    /// The top-level `model`, when it is a string.
    pub model: Option<String>,
}

thread_local! {
    /// One set of buffers per thread, reused by every inspection on it: text, segments and
    /// units are allocated once, not grown afresh for each request.
    static SPARE: std::cell::Cell<Option<Doc>> = const { std::cell::Cell::new(None) };
}

/// Buffers larger than this are freed after use rather than kept for the next request.
const KEEP_BYTES: usize = 1 << 20;

impl Doc {
    /// An empty document, with the thread's spare buffers when there are some.
    fn reused() -> Doc {
        SPARE.with(Cell::take).unwrap_or_default()
    }

    /// Hands the buffers back for the next inspection on this thread.
    pub fn recycle(mut self) {
        if self.text.capacity() > KEEP_BYTES
            || self.segs.capacity() * size_of::<Seg>() > KEEP_BYTES
            || self.units.capacity() * size_of::<Unit>() > KEEP_BYTES
        {
            return;
        }
        self.text.clear();
        self.segs.clear();
        self.units.clear();
        self.last_assistant = None;
        self.model = None;
        SPARE.with(|spare| spare.set(Some(self)));
    }

    pub fn unit_text(&self, u: &Unit) -> &[u8] {
        let first = &self.segs[u.segs.start];
        let last = &self.segs[u.segs.end - 1];
        &self.text[first.text.start..last.text.end]
    }

    /// Whether the unit is newer than the last assistant turn.
    pub fn is_latest(&self, u: &Unit) -> bool {
        match (u.message, self.last_assistant) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(m), Some(a)) => m > a,
        }
    }
}

/// Scans `body` as a request of `kind`. Kinds without prompts give an empty [`Doc`].
pub(crate) fn extract(kind: RouteKind, body: &[u8]) -> Result<Doc, JsonError> {
    let mut ex = Extractor { doc: Doc::reused() };
    if !kind.has_prompt() {
        return Ok(ex.doc);
    }
    let mut sc = Scanner::new(body)?;
    if sc.peek() != Some(b'{') {
        if sc
            .peek()
            .is_some_and(|c| !b"[\"-0123456789tfn".contains(&c))
        {
            return Err(sc.skip().expect_err("not a JSON value"));
        }
        return Err(shape_at(&mut sc, "the request body must be a JSON object"));
    }
    let (mut seen_system, mut seen_messages) = (false, false);
    sc.object(|sc, key| {
        if sc.key_is(&key, "messages") {
            once(&mut seen_messages, "messages")?;
            ex.messages(sc)
        } else if sc.key_is(&key, "model") && sc.peek() == Some(b'"') {
            let s = sc.string()?;
            ex.doc.model = Some(String::from_utf8_lossy(&sc.str_value(&s)).into_owned());
            Ok(())
        } else if kind != RouteKind::Completions && sc.key_is(&key, "system") {
            once(&mut seen_system, "system")?;
            ex.system(sc)
        } else {
            sc.skip_fast()
        }
    })?;
    sc.finish()?;
    Ok(ex.doc)
}

fn shape(msg: impl Into<String>) -> JsonError {
    JsonError::Shape(msg.into())
}

/// A shape error, unless the body simply ended: then the syntax error says more.
fn shape_at(sc: &mut Scanner<'_>, msg: impl Into<String>) -> JsonError {
    match sc.peek() {
        None => sc.skip().expect_err("nothing left to skip"),
        Some(_) => shape(msg),
    }
}

fn once(seen: &mut bool, key: &str) -> Result<(), JsonError> {
    if std::mem::replace(seen, true) {
        return Err(shape(format!("duplicate key `{key}`")));
    }
    Ok(())
}

/// Whether a block of type `ty` has prompt text in its string field `leaf`. Thinking blocks and
/// images have none; `title` and `context` count for documents and search results only.
fn reads_string(ty: &[u8], leaf: &str) -> bool {
    match ty {
        b"thinking" | b"redacted_thinking" | b"image" => false,
        b"document" | b"search_result" => true,
        _ => leaf == ".text",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    Assistant,
    System,
    Tool,
}

struct Extractor {
    doc: Doc,
}

/// Block fields whose meaning depends on the block's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Content,
    Input,
    Source,
}

impl Extractor {
    /// Reads the string at the cursor straight into the text buffer.
    fn push_next(&mut self, sc: &mut Scanner<'_>, field: Field, loc: Loc) -> Result<(), JsonError> {
        let start = self.doc.text.len();
        let (s, kind) = sc.string_into(&mut self.doc.text)?;
        self.add(start, &s, kind, field, loc);
        Ok(())
    }

    fn push(&mut self, sc: &Scanner<'_>, field: Field, s: &Str, loc: Loc) {
        let body = sc.bytes();
        let start = self.doc.text.len();
        let kind = decode(&body[s.raw.clone()], s.escaped, &mut self.doc.text);
        self.add(start, s, kind, field, loc);
    }

    fn add(&mut self, start: usize, s: &Str, kind: Decoded, field: Field, loc: Loc) {
        let seg = Seg {
            text: start..self.doc.text.len(),
            raw: s.raw.clone(),
            kind,
            loc,
        };
        let idx = self.doc.segs.len();
        self.doc.segs.push(seg);
        match self.doc.units.last_mut() {
            Some(u) if u.field == field && u.message == loc.message && u.segs.end == idx => {
                u.segs.end = idx + 1;
            }
            _ => self.doc.units.push(Unit {
                field,
                message: loc.message,
                segs: idx..idx + 1,
            }),
        }
    }

    fn system(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        let loc = Loc {
            message: None,
            list: "",
            block: None,
            sub: None,
            leaf: "",
        };
        match sc.peek() {
            Some(b'"') => {
                self.push_next(sc, Field::System, loc)?;
                Ok(())
            }
            Some(b'[') => sc.array(|sc, i| {
                let loc = Loc {
                    block: Some(i as u32),
                    ..loc
                };
                self.block(sc, loc, Some(Field::System))
            }),
            _ => Err(shape_at(
                sc,
                "`system` must be a string or an array of content blocks",
            )),
        }
    }

    fn messages(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        if sc.peek() != Some(b'[') {
            return Err(shape_at(sc, "`messages` must be an array"));
        }
        sc.array(|sc, m| self.message(sc, m as u32))
    }

    fn message(&mut self, sc: &mut Scanner<'_>, m: u32) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return Err(shape_at(sc, format!("messages[{m}] must be an object")));
        }
        let first_unit = self.doc.units.len();
        let mut role = None;
        sc.object(|sc, key| {
            if sc.key_is(&key, "role") {
                let Some(s) = sc.string_or_none()? else {
                    return Err(shape(format!("messages[{m}].role must be a string")));
                };
                if role.is_some() {
                    return Err(shape(format!("duplicate key `role` in messages[{m}]")));
                }
                role = Some(match &*sc.str_value(&s) {
                    b"assistant" => Role::Assistant,
                    b"system" | b"developer" => Role::System,
                    b"tool" | b"function" => Role::Tool,
                    _ => Role::Other,
                });
                Ok(())
            } else if sc.key_is(&key, "content") {
                self.content(sc, m, None, Field::Messages)
            } else if sc.key_is(&key, "tool_calls") {
                self.tool_calls(sc, m)
            } else if sc.key_is(&key, "function_call") {
                self.function_call(sc, m, None)
            } else {
                sc.skip_fast()
            }
        })?;
        let role = role.unwrap_or(Role::Other);
        if role == Role::Assistant {
            self.doc.last_assistant = Some(m);
        }
        let patched = match role {
            Role::System => Field::System,
            Role::Tool => Field::ToolOutput,
            Role::Other | Role::Assistant => return Ok(()),
        };
        for u in &mut self.doc.units[first_unit..] {
            if u.field == Field::Messages {
                u.field = patched;
            }
        }
        Ok(())
    }

    /// A message's or a tool result's `content`: a string or an array of blocks.
    fn content(
        &mut self,
        sc: &mut Scanner<'_>,
        m: u32,
        block: Option<u32>,
        field: Field,
    ) -> Result<(), JsonError> {
        let nested = block.is_some();
        let loc = Loc {
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
            _ => Err(shape_at(
                sc,
                format!("{loc} must be a string or an array of content blocks"),
            )),
        }
    }

    /// One content block. `forced` overrides the field that the block type implies (inside a
    /// tool result everything is tool output; inside `system`, system).
    fn block(
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
        sc.object(|sc, key| {
            if sc.key_is(&key, "type") {
                let Some(s) = sc.string_or_none()? else {
                    return Err(shape(format!("{loc}.type must be a string")));
                };
                if ty.is_some() {
                    return Err(shape(format!("duplicate key `type` in {loc}")));
                }
                ty = Some(sc.str_value(&s));
                return Ok(());
            }
            for (name, leaf) in [
                ("text", ".text"),
                ("title", ".title"),
                ("context", ".context"),
            ] {
                if sc.key_is(&key, name) && sc.peek() == Some(b'"') {
                    match ty.as_deref() {
                        // The type usually comes first: read the text straight into the buffer.
                        Some(t) if reads_string(t, leaf) => {
                            let field = forced.unwrap_or(Field::Messages);
                            self.push_next(sc, field, Loc { leaf, ..loc })?;
                        }
                        Some(_) => {
                            sc.skip_fast()?;
                        }
                        None => strings.push((sc.string()?, leaf)),
                    }
                    return Ok(());
                }
            }
            let k = if sc.key_is(&key, "content") {
                Key::Content
            } else if sc.key_is(&key, "input") {
                Key::Input
            } else if sc.key_is(&key, "source") {
                Key::Source
            } else {
                return sc.skip_fast();
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
            if reads_string(&ty, leaf) {
                self.push(sc, field, &s, Loc { leaf, ..loc });
            }
        }
        for (k, at) in deferred {
            self.value(&mut sc.at(at), &ty, k, loc, forced)?;
        }
        Ok(())
    }

    /// Consumes the value of a `content`, `input` or `source` key of a block of type `ty`.
    fn value(
        &mut self,
        sc: &mut Scanner<'_>,
        ty: &[u8],
        key: Key,
        loc: Loc,
        forced: Option<Field>,
    ) -> Result<(), JsonError> {
        let natural = match (key, ty) {
            (_, b"thinking" | b"redacted_thinking" | b"image") => None,
            (Key::Input, b"tool_use" | b"server_tool_use" | b"mcp_tool_use") => {
                Some(Field::ToolInput)
            }
            (Key::Input, _) => None,
            (Key::Content, t) if t.ends_with(b"tool_result") => Some(Field::ToolOutput),
            (Key::Content, _) => Some(Field::Messages),
            (Key::Source, b"document") => Some(Field::Messages),
            (Key::Source, _) => None,
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
            Key::Source => self.document_source(sc, loc, field),
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

    /// A document's `source`: `{"type":"text","data":...}` or `{"type":"content","content":[..]}`.
    /// Base64 and URL sources are binary or remote and are not scanned.
    fn document_source(
        &mut self,
        sc: &mut Scanner<'_>,
        loc: Loc,
        field: Field,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return sc.skip_fast();
        }
        let mut ty = None;
        let mut data = None;
        let mut content = None;
        sc.object(|sc, key| {
            if sc.key_is(&key, "type") {
                if let Some(s) = sc.string_or_none()? {
                    ty = Some(sc.str_value(&s));
                    return Ok(());
                }
            } else if sc.key_is(&key, "data") {
                if let Some(s) = sc.string_or_none()? {
                    data = Some(s);
                    return Ok(());
                }
            } else if sc.key_is(&key, "content") {
                content = Some(sc.skip()?.start);
                return Ok(());
            }
            sc.skip_fast()
        })?;
        match ty.as_deref() {
            Some(b"text") => {
                if let Some(s) = data {
                    let leaf = Loc {
                        leaf: ".source.data",
                        ..loc
                    };
                    self.push(sc, field, &s, leaf);
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
            _ => {}
        }
        Ok(())
    }

    /// Every string value (not key) inside one JSON value.
    fn all_strings(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        match sc.peek() {
            Some(b'"') => {
                self.push_next(sc, field, loc)?;
                Ok(())
            }
            Some(b'{') => sc.object(|sc, _| self.all_strings(sc, field, loc)),
            Some(b'[') => sc.array(|sc, _| self.all_strings(sc, field, loc)),
            _ => sc.skip_fast(),
        }
    }

    /// OpenAI `tool_calls`: every `function.arguments` (a JSON string) is tool input.
    fn tool_calls(&mut self, sc: &mut Scanner<'_>, m: u32) -> Result<(), JsonError> {
        if sc.peek() != Some(b'[') {
            return sc.skip_fast();
        }
        sc.array(|sc, i| {
            if sc.peek() != Some(b'{') {
                return sc.skip_fast();
            }
            sc.object(|sc, key| {
                if sc.key_is(&key, "function") {
                    self.function_call(sc, m, Some(i as u32))
                } else {
                    sc.skip_fast()
                }
            })
        })
    }

    fn function_call(
        &mut self,
        sc: &mut Scanner<'_>,
        m: u32,
        call: Option<u32>,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return sc.skip_fast();
        }
        let loc = Loc {
            message: Some(m),
            list: ".tool_calls",
            block: call,
            sub: None,
            leaf: if call.is_some() {
                ".function.arguments"
            } else {
                ".function_call.arguments"
            },
        };
        sc.object(|sc, key| {
            if sc.key_is(&key, "arguments") {
                self.all_strings(sc, Field::ToolInput, loc)
            } else {
                sc.skip_fast()
            }
        })
    }
}
