//! Walks a request body once and collects the text a model reads, grouped into units.
//!
//! A *unit* is a run of strings from one message (or the system prompt) that belong to the same
//! [`Field`]; their decoded text is laid out back to back in one buffer, so a phrase split across
//! two adjacent text blocks is matched as one (an object key read as text is set apart by a line
//! break on either side). Every string, key or value, keeps its raw byte range in the body, which
//! is what masking edits.
//!
//! This file holds the document ([`Doc`], [`Unit`], [`Seg`]), the entry point ([`extract`])
//! and the one place strings enter the text ([`Extractor::push_next`], `add`); the walk is
//! split by what it reads: `fields` (a body's top-level keys, tool definitions, the model),
//! `conversation` (system prompt, messages, which turn is the latest), `blocks` (content
//! blocks by type, a document's source), `data` (JSON the model reads as data: tool inputs
//! and results), `tools` (tool calls and their `arguments`), `urls` (URLs the provider
//! fetches, inline files) and `numbers` (a number's digits as a server prints them). Walkers
//! for the other route kinds are in [`super::kinds`].

use super::Field;
use crate::json::{Decoded, JsonError, Scanner, Str, decode};
use crate::route::RouteKind;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

mod blocks;
mod conversation;
mod data;
mod fields;
mod numbers;
mod tools;
mod urls;

/// The top-level key a string sits under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Top {
    #[default]
    Messages,
    System,
    Input,
    Instructions,
    Prompt,
    Suffix,
    Prediction,
    /// A body read generically.
    Body,
    /// A request field agw has no reading for, read generically (`Extractor::unknown`).
    Other,
    /// Tool definitions (`tools`, `functions`): names, descriptions, schemas.
    Tools,
    /// An OpenAI-compatible server's RAG `documents`, which its chat template puts into the
    /// prompt.
    Documents,
    /// Such a server's `chat_template_kwargs`, the template's variables.
    TemplateKwargs,
    /// Such a server's `chat_template`: the template itself, read as system text.
    Template,
    /// Anthropic's `mcp_servers`: their URLs (fetched by the provider) and names.
    McpServers,
}

impl Top {
    fn name(self) -> &'static str {
        match self {
            Top::Messages => "messages",
            Top::System => "system",
            Top::Input => "input",
            Top::Instructions => "instructions",
            Top::Prompt => "prompt",
            Top::Suffix => "suffix",
            Top::Prediction => "prediction",
            Top::Body => "body",
            Top::Other => "other field",
            Top::Tools => "tools",
            Top::Documents => "documents",
            Top::TemplateKwargs => "chat_template_kwargs",
            Top::Template => "chat_template",
            Top::McpServers => "mcp_servers",
        }
    }
}

/// Where a string sits in the body, for reporting (`messages[3].content[1].text`). The batch
/// request a string belongs to is on its [`Unit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub top: Top,
    /// The index in the top-level list, if it is one.
    pub message: Option<u32>,
    /// The list `block` indexes: `.content` or `.tool_calls` (empty under `system`).
    pub list: &'static str,
    pub block: Option<u32>,
    pub sub: Option<u32>,
    pub leaf: &'static str,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.top.name())?;
        if let Some(m) = self.message {
            write!(f, "[{m}]")?;
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
    /// Part of the final prompt: the last text block of the latest user message, or that
    /// whole message when it does not end in a text block.
    pub last_prompt: bool,
    /// A JSON number, not a string (`raw` is the whole number): a mask replaces it whole, with
    /// a JSON string.
    pub number: bool,
    /// The string lies in the JSON document [`Doc::inner`]`[i]`, not in the body: `raw` is a
    /// range of that document.
    pub inner: Option<u32>,
}

/// A JSON document held in a JSON string: a function call's `arguments`, which a server parses
/// before its model reads it. Its strings, keys and long numbers are read as a tool's input
/// given as an object is ([`Seg::inner`]); a mask edits the document, and the edit is written
/// back into the string that holds it.
#[derive(Debug, Clone)]
pub(crate) struct Inner {
    /// The raw content (between the quotes) of the string that holds it, in the body.
    pub raw: Range<usize>,
    /// The string's text, unescaped exactly: the document.
    pub json: Vec<u8>,
}

/// Strings of one message (or the system prompt) and one field, matched as one text.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub field: Field,
    pub message: Option<u32>,
    pub request: Option<u32>,
    /// Strings of different groups are never joined (generic bodies: one group per array).
    pub group: u32,
    /// Newer than the last assistant turn of its conversation (or outside any conversation,
    /// except the system prompt).
    pub latest: bool,
    /// From a message the client writes (a user or tool message), not the assistant or system.
    pub user: bool,
    /// A user (or tool) message comes after it in its conversation: an earlier turn.
    pub answered: bool,
    /// Read generically (a body agw has no reading for, a top-level field it does not know):
    /// which field its text is to the provider is unknown, so every rule reads it, whatever
    /// its `fields` (black-box review: a rule for tool output skipped a passthrough body).
    pub any_field: bool,
    /// Range in [`Doc::segs`].
    pub segs: Range<usize>,
}

/// Where the extractor is, while it walks a body.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub request: Option<u32>,
    pub top: Top,
    pub group: u32,
    /// The last top-level block of the message being read: its index, and whether it is text.
    pub last_block: Option<(u32, bool)>,
    /// The latest user message of the conversation being read, and its last block when that
    /// is a text block.
    pub final_prompt: Option<(u32, Option<u32>)>,
    /// The last assistant turn of the conversation being read.
    pub last_assistant: Option<u32>,
    /// The message being read: where its object starts, and whether its role is
    /// `assistant` once that is known; `None` outside a message. Signed reasoning is left
    /// unread only in an assistant turn ([`blocks::Reasoning`]).
    pub turn: Option<(usize, Option<bool>)>,
    /// Reading a chat completions body: content parts' `thinking` is prompt text there
    /// (Mistral's reasoning parts, which a chat template puts back), not a signed block.
    pub chat: bool,
    /// Reading text whose field agw cannot tell (a Responses item of a type it does not
    /// know): its units are [`Unit::any_field`].
    pub any_field: bool,
    /// The `text` string of the array element being read generically, as a range of
    /// [`Doc::text`] ([`Doc::joined`]).
    pub element_text: Option<Range<usize>>,
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
    /// The top-level output cap, completions and `stream`, read with `model` as
    /// [`crate::usage::request_shape`] reads them.
    pub shape: crate::usage::RequestShape,
    pub st: State,
    /// The id of the policy reading the body (see [`super::clean`]).
    pub policy: u64,
    /// The depth and raw range of each tool definitions value read (not already known clean).
    pub tool_values: Vec<(usize, Range<usize>)>,
    /// Where a string's text starts right at the end of the one before (no line break put
    /// between them): within a unit, a word boundary for detectors ([`Doc::edges_in`]).
    /// Positions in [`Doc::text`], ascending.
    pub edges: Vec<usize>,
    /// The request brings its own `chat_template` (a program the server runs over the
    /// messages: see [`Policy::inspect`](super::Policy::inspect)).
    pub template: bool,
    /// The request gives a prompt as token ids or embeddings, which no rule can read (see
    /// [`Policy::inspect`](super::Policy::inspect)).
    pub token_ids: bool,
    /// URLs the provider fetches that carry percent-escapes or `+` (which whoever serves them
    /// decodes): ranges of [`Doc::text`].
    pub encoded_urls: Vec<Range<usize>>,
    /// Identifier fields' strings (`user`, `safety_identifier`, `prompt_cache_key`,
    /// `metadata`): read, never rewritten ([`Extractor::other_field`]).
    pub identifiers: Vec<String>,
    /// The text of files the request carries inline, with the field each is in
    /// ([`super::files`]): read, never rewritten.
    pub inline_files: Vec<(super::files::FileText, Field)>,
    /// Where Anthropic documents' base64 sources are, for removing one from history.
    pub file_sources: Vec<FileSource>,
    /// JSON documents held in strings ([`Seg::inner`]).
    pub inner: Vec<Inner>,
    /// Text parts read generically that a server runs together: the `text` strings of an
    /// array's consecutive elements (Gemini's `parts`, Bedrock's `content`, content blocks on
    /// a path agw has no reading for), joined, with where they meet; read, never rewritten.
    pub joined: Vec<Joined>,
    /// A mask of text that [`Doc::inner`] documents hold only through escapes refuses instead
    /// (requests: see `Policy::decide`); otherwise it is written back (responses, as a stream's
    /// tool call input is).
    pub escaped_refuses: bool,
    /// Signed reasoning read where it does not belong (outside an assistant turn: see
    /// [`blocks::Reasoning`]), as ranges of [`Doc::segs`]: a lenient server shows it, but it
    /// cannot be changed without breaking its signature, so a mask there refuses.
    pub sealed: Vec<Range<usize>>,
}

/// Consecutive text parts of one array, joined ([`Doc::joined`]).
#[derive(Debug)]
pub(crate) struct Joined {
    pub text: Vec<u8>,
    /// Where one part ends and the next starts, offsets into `text`.
    pub meets: Vec<usize>,
    pub field: Field,
}

impl Joined {
    pub(crate) fn new(field: Field) -> Self {
        Joined {
            text: Vec::new(),
            meets: Vec::new(),
            field,
        }
    }
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
        self.shape = crate::usage::RequestShape::default();
        self.st = State::default();
        self.tool_values.clear();
        self.edges.clear();
        self.template = false;
        self.token_ids = false;
        self.encoded_urls.clear();
        self.identifiers.clear();
        self.inline_files.clear();
        self.file_sources.clear();
        self.inner.clear();
        self.joined.clear();
        self.escaped_refuses = false;
        self.sealed.clear();
        SPARE.with(|spare| spare.set(Some(self)));
    }

    pub fn unit_text(&self, u: &Unit) -> &[u8] {
        let first = &self.segs[u.segs.start];
        let last = &self.segs[u.segs.end - 1];
        &self.text[first.text.start..last.text.end]
    }

    /// Where the unit's strings meet, as offsets into [`Doc::unit_text`]: two blocks are two
    /// texts to the client that sent them, so a match may end where one does (`hi` + `4111 1111 `
    /// + `1111 1111` + `thanks` holds a card). Found by the fourth red-team review.
    pub fn edges_in(&self, u: &Unit) -> crate::detect::Edges<'_> {
        let (at, start) = self.edge_offsets(u);
        crate::detect::Edges::new(at, start)
    }

    /// The edges inside a unit's text, as positions in the buffer, and where the unit's text
    /// starts there.
    pub fn edge_offsets(&self, u: &Unit) -> (&[usize], usize) {
        if u.segs.len() < 2 {
            return (&[], 0);
        }
        let (first, last) = (&self.segs[u.segs.start], &self.segs[u.segs.end - 1]);
        let (start, end) = (first.text.start, last.text.end);
        let from = self.edges.partition_point(|&e| e <= start);
        let to = from + self.edges[from..].partition_point(|&e| e < end);
        (&self.edges[from..to], start)
    }

    /// Whether the unit is newer than the last assistant turn.
    pub fn is_latest(&self, u: &Unit) -> bool {
        u.latest
    }
}

/// Scans `body` as a request of `kind`. [`RouteKind::Models`] and [`RouteKind::Unguarded`] give
/// an empty [`Doc`]; so does a passthrough request without a body. A passthrough body is read
/// generically: every string of a JSON document, keys included.
pub(crate) fn extract(kind: RouteKind, body: &[u8], policy: u64) -> Result<Doc, JsonError> {
    let mut ex = Extractor { doc: Doc::reused() };
    ex.doc.policy = policy;
    ex.doc.escaped_refuses = true;
    let generic = !kind.has_prompt();
    if matches!(kind, RouteKind::Models | RouteKind::Unguarded)
        || (generic && body.iter().all(|b| b.is_ascii_whitespace()))
    {
        return Ok(ex.doc);
    }
    let mut sc = Scanner::new(body)?;
    if generic {
        ex.generic(&mut sc)?;
        sc.finish()?;
        return Ok(ex.doc);
    }
    if sc.peek() != Some(b'{') {
        if sc
            .peek()
            .is_some_and(|c| !b"[\"-0123456789tfn".contains(&c))
        {
            return Err(sc.skip().expect_err("not a JSON value"));
        }
        return Err(shape_at(&mut sc, "the request body must be a JSON object"));
    }
    match kind {
        RouteKind::Messages | RouteKind::CountTokens | RouteKind::Completions => {
            ex.messages_body(&mut sc, kind, true)?;
        }
        RouteKind::MessageBatches => ex.batches(&mut sc)?,
        RouteKind::Complete => ex.prompts(&mut sc, &[("prompt", Top::Prompt, false)])?,
        RouteKind::LegacyCompletions => ex.prompts(
            &mut sc,
            &[
                ("prompt", Top::Prompt, true),
                ("suffix", Top::Suffix, false),
            ],
        )?,
        // vLLM embeds chat too: `messages` through its chat template (and the template's
        // variables, or a template of the request's own), beside OpenAI's `input` (found by
        // the fourth review's regression round).
        RouteKind::Embeddings => ex.prompts(
            &mut sc,
            &[
                ("input", Top::Input, true),
                ("messages", Top::Input, true),
                ("chat_template_kwargs", Top::TemplateKwargs, false),
                ("chat_template", Top::Template, false),
            ],
        )?,
        RouteKind::Responses => ex.responses(&mut sc)?,
        _ => ex.generic(&mut sc)?,
    }
    sc.finish()?;
    Ok(ex.doc)
}

/// Every string and key of the value at the cursor, decoded, and its numbers of eight
/// characters or more as written.
pub(super) fn collect_strings(
    sc: &mut Scanner<'_>,
    out: &mut Vec<String>,
) -> Result<(), JsonError> {
    match sc.peek() {
        Some(b'"') => {
            let s = sc.string()?;
            out.push(String::from_utf8_lossy(&sc.str_value(&s)).into_owned());
            Ok(())
        }
        Some(b'{') => sc.object(|sc, key| {
            out.push(String::from_utf8_lossy(&sc.str_value(&key)).into_owned());
            collect_strings(sc, out)
        }),
        Some(b'[') => sc.array(|sc, _| collect_strings(sc, out)),
        // A long number is text too (`"tool_use_id": 4111111111111111`, a numeric user id:
        // seventeenth session's second review), as numbers in data are.
        Some(b'-' | b'0'..=b'9') => {
            let raw = sc.skip()?;
            let number = &sc.bytes()[raw];
            if number.len() >= 8 {
                out.push(String::from_utf8_lossy(number).into_owned());
            }
            Ok(())
        }
        _ => sc.skip_fast(),
    }
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

pub(super) fn once(seen: &mut bool, key: &str) -> Result<(), JsonError> {
    if std::mem::replace(seen, true) {
        return Err(shape(format!("duplicate key `{key}`")));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Other,
    Assistant,
    System,
    Tool,
}

/// An Anthropic document's base64 `source` object: the files read from it (indexes into
/// [`Doc::inline_files`]), its bytes in the body, and whether its message is older than the
/// conversation's final prompt (decided when the conversation ends). A rule's hit in a file
/// there replaces the source with a text one naming the rule, as a string in history is
/// replaced: the file cannot be rewritten, and refusing it refused every later turn of the
/// session (nineteenth session, with Claude Code).
#[derive(Debug, Clone)]
pub(crate) struct FileSource {
    pub files: Range<usize>,
    pub raw: Range<usize>,
    /// The buffer `raw` is in (the body, or a JSON document held in a string).
    pub buffer: usize,
    pub message: Option<u32>,
    pub history: Option<bool>,
}

pub(super) struct Extractor {
    pub(super) doc: Doc,
}

impl Extractor {
    /// Reads the string at the cursor straight into the text buffer.
    pub(super) fn push_next(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        let start = self.doc.text.len();
        let (s, kind) = sc.string_into(&mut self.doc.text)?;
        self.data_url_since(start, field);
        self.add(start, &s, kind, field, loc);
        Ok(())
    }

    /// A `data:` URL anywhere (a prompt's variables, an instructions item, a field agw has no
    /// reading for), read into the text from `start`, is an inline file too (regression
    /// round).
    #[inline]
    fn data_url_since(&mut self, start: usize, field: Field) {
        let url = &self.doc.text[start..];
        if super::files::is_data_url(url) {
            // Read in place: an image's megabytes are not copied to learn they are an image.
            let mut texts = Vec::new();
            super::files::texts_of(url, None, &mut texts);
            self.doc
                .inline_files
                .extend(texts.into_iter().map(|t| (t, field)));
        }
    }

    /// Reads an object key as text. A key is a word of its own: a line break on either side
    /// (in the unit's text, in no string) keeps it from running into the strings around it,
    /// which would hide a secret a detector finds only at a word boundary.
    pub(super) fn push_key(
        &mut self,
        sc: &Scanner<'_>,
        field: Field,
        key: &Str,
        loc: Loc,
    ) -> Result<(), JsonError> {
        self.doc.text.push(b'\n');
        self.push(sc, field, key, loc)?;
        self.doc.text.push(b'\n');
        Ok(())
    }

    fn push(&mut self, sc: &Scanner<'_>, field: Field, s: &Str, loc: Loc) -> Result<(), JsonError> {
        let body = sc.bytes();
        let start = self.doc.text.len();
        let kind = decode(&body[s.raw.clone()], s.escaped, &mut self.doc.text)?;
        self.add(start, s, kind, field, loc);
        Ok(())
    }

    fn add(&mut self, start: usize, s: &Str, kind: Decoded, field: Field, loc: Loc) {
        let seg = Seg {
            text: start..self.doc.text.len(),
            raw: s.raw.clone(),
            kind,
            loc,
            last_prompt: false,
            number: false,
            inner: None,
        };
        let idx = self.doc.segs.len();
        if self.doc.segs.last().is_some_and(|s| s.text.end == start) {
            self.doc.edges.push(start);
        }
        self.doc.segs.push(seg);
        let (group, request) = (self.doc.st.group, self.doc.st.request);
        let any_field = matches!(loc.top, Top::Body | Top::Other) || self.doc.st.any_field;
        match self.doc.units.last_mut() {
            Some(u)
                if u.field == field
                    && u.message == loc.message
                    && u.request == request
                    && u.group == group
                    && u.any_field == any_field
                    && u.segs.end == idx =>
            {
                u.segs.end = idx + 1;
            }
            _ => self.doc.units.push(Unit {
                field,
                message: loc.message,
                request,
                group,
                // A Responses MCP tool's `server_url` is this request's, like
                // `mcp_servers[].url`: read by rules scoped to the latest text too.
                latest: !matches!(
                    loc.top,
                    Top::System | Top::Instructions | Top::Tools | Top::Template
                ) || loc.leaf == ".server_url",
                user: false,
                answered: false,
                any_field,
                segs: idx..idx + 1,
            }),
        }
    }
}
