//! What one stream event means, per dialect: which text, tool-input and reasoning deltas it
//! carries (and where in its JSON), which blocks it opens and which it completes.

use crate::api::Api;
use crate::route::RouteKind;
use serde_json::Value;

/// The event format of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Anthropic Messages.
    Messages,
    /// Anthropic legacy text completions (`completion` events).
    Complete,
    /// OpenAI chat completion chunks.
    Chat,
    /// OpenAI legacy completion chunks (`choices[].text`).
    Legacy,
    /// OpenAI Responses events.
    Responses,
}

impl Dialect {
    pub fn of(kind: RouteKind, api: Api) -> Dialect {
        match kind {
            RouteKind::Complete => Dialect::Complete,
            RouteKind::Completions => Dialect::Chat,
            RouteKind::LegacyCompletions => Dialect::Legacy,
            RouteKind::Responses | RouteKind::StoredResponses => Dialect::Responses,
            RouteKind::StoredCompletions => Dialect::Chat,
            RouteKind::Messages => Dialect::Messages,
            _ => match api {
                Api::Anthropic => Dialect::Messages,
                Api::OpenAi => Dialect::Chat,
            },
        }
    }

    /// The dialect an event's shape belongs to without doubt, if any: chat chunks and
    /// completions carry `choices`, Responses events a `response.` type, Anthropic's their own
    /// types. Pings, errors and unknown events say nothing.
    pub fn of_event(ty: &str, json: &Value) -> Option<Dialect> {
        if let Some(choices) = json.get("choices") {
            let legacy = choices
                .as_array()
                .and_then(|c| c.first())
                .is_some_and(|c| c.get("text").is_some() && c.get("delta").is_none());
            return Some(if legacy {
                Dialect::Legacy
            } else {
                Dialect::Chat
            });
        }
        if ty.starts_with("response.") {
            return Some(Dialect::Responses);
        }
        match ty {
            "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop" => Some(Dialect::Messages),
            "completion" => Some(Dialect::Complete),
            _ => None,
        }
    }

    pub fn is_anthropic(self) -> bool {
        matches!(self, Dialect::Messages | Dialect::Complete)
    }
}

/// What a delta is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ChanKind {
    /// Text: matched, masked.
    Text,
    /// Signed reasoning (Anthropic thinking): never changed; a mask rule's hit in it ends the
    /// stream, a reject rule's rejects, an audit rule's is recorded.
    Reasoning,
    /// Tool-call input (partial JSON): held until the call is complete, then checked whole.
    Tool,
    /// Free-form tool-call input (OpenAI custom tools): plain text, held and checked whole
    /// like [`ChanKind::Tool`], as one JSON string.
    ToolText,
}

impl ChanKind {
    /// Whether the channel carries a tool call's input (held until the call is complete).
    pub fn is_tool(self) -> bool {
        matches!(self, ChanKind::Tool | ChanKind::ToolText)
    }
}

/// A channel: one text, reasoning or tool-input stream inside the event stream. `group` is what
/// a completion names (Anthropic block index, OpenAI choice index, Responses output index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ChanKey {
    pub kind: ChanKind,
    pub group: u64,
    pub sub: u64,
}

/// The group of a response's one text channel in the dialects whose text comes in blocks
/// (Messages text blocks, Responses output text and refusal parts): a client shows the blocks
/// as one text, so a match may run from one into the next. No block's stop completes it; the
/// message's end does.
pub(crate) const JOINED: u64 = u64::MAX;

/// The group of the texts of a stream whose events agw does not recognise: one channel per
/// JSON path (its `sub`, a hash of the path), continued from event to event (see
/// [`leaves`](crate::guard::leaves)).
pub(crate) const CONTINUED: u64 = u64::MAX - 1;

/// The group of a Responses stream's deltas that name no output item (Realtime-style audio
/// transcripts): one text per event kind (its `sub`), across the stream.
pub(crate) const ITEMLESS: u64 = u64::MAX - 2;

/// Most texts of [`CONTINUED`] paths followed at once; one more completes the oldest that
/// holds nothing back (a piece at its path later ends the stream), or, when each holds text
/// back, ends the stream.
pub(crate) const MAX_CONTINUED: usize = 64;

/// The channel of the text at JSON pointer `pointer` in a stream agw does not recognise.
pub(crate) fn continued(pointer: &str, signed: bool) -> ChanKey {
    ChanKey {
        kind: if signed {
            ChanKind::Reasoning
        } else {
            ChanKind::Text
        },
        group: CONTINUED,
        sub: fnv(pointer),
    }
}

/// The group of a delta of `kind` in block `index` (Messages, Responses).
fn block_group(kind: ChanKind, index: u64) -> u64 {
    if kind == ChanKind::Text {
        JOINED
    } else {
        index
    }
}

/// One step of the path to a delta's string in the event JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Key(&'static str),
    Index(usize),
}

/// A delta found in an event.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    pub chan: ChanKey,
    pub text: String,
    pub path: Vec<Step>,
}

/// Which channels an event completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completes {
    Nothing,
    Group(u64),
    All,
}

/// The meaning of one event.
#[derive(Debug)]
pub(crate) struct Meaning {
    pub deltas: Vec<Delta>,
    /// A tool call starts: its channel and tool name.
    pub opens: Vec<(ChanKey, String)>,
    pub completes: Completes,
    /// Chat choices whose `finish_reason` came (their tool calls are complete).
    pub finished: Vec<u64>,
    /// The rest of the event is inspected as a JSON document (every string it carries).
    pub generic: bool,
    /// Whether the generic inspection checks the tool calls it finds (not for a tool call's
    /// start, whose input is still to come).
    pub check_tools: bool,
    /// The deltas were taken out of an event whose other fields are read generically too
    /// (the deltas' strings blanked there; a mask there cannot be merged: refused).
    pub beside: bool,
    /// Strings of a chat delta agw has no reading for, each a piece of a text continued by
    /// its path (channel, text, JSON pointer in the event): see [`delta_extras`].
    pub pointed: Vec<(ChanKey, String, String)>,
    /// Where the text a Responses event adds to the response's joined text (`JOINED`) lies:
    /// the first and the last (output index, content index) of the parts it adds to (in
    /// rising order within an event). Clients assemble text per part, agw in the order it
    /// comes: the stream guard ends a stream whose text goes back to a part it had left.
    pub text_at: Option<((u64, u64), (u64, u64))>,
}

impl Meaning {
    fn generic() -> Meaning {
        Meaning {
            deltas: Vec::new(),
            opens: Vec::new(),
            completes: Completes::Nothing,
            finished: Vec::new(),
            generic: true,
            check_tools: true,
            beside: false,
            pointed: Vec::new(),
            text_at: None,
        }
    }

    /// Records text for part `at` (see [`Meaning::text_at`]).
    fn text_in(&mut self, at: (u64, u64)) {
        self.text_at = Some(match self.text_at {
            Some((first, _)) => (first, at),
            None => (at, at),
        });
    }
}

fn u(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

/// An index that may be left out (then its position counts), and is otherwise a whole number:
/// `1.0` is not `1` to agw, and a client may read it either way.
fn whole(v: &Value, pos: usize, what: &str) -> Result<u64, String> {
    match v {
        Value::Null => Ok(pos as u64),
        v => u(v).ok_or_else(|| format!("{what} is not a whole number")),
    }
}

/// Whether a text block's start carries nothing but its `type`, its `text` and no citations:
/// then its text is read as the first delta of the block.
fn start_text_only(block: &Value) -> bool {
    block.as_object().is_some_and(|o| {
        o.iter().all(|(k, v)| match k.as_str() {
            "type" | "text" => true,
            "citations" => v.is_null() || v.as_array().is_some_and(Vec::is_empty),
            _ => false,
        })
    })
}

/// A delta of the text read across blocks (`JOINED`).
fn joined(text: &str, path: Vec<Step>) -> Delta {
    Delta {
        chan: ChanKey {
            kind: ChanKind::Text,
            group: JOINED,
            sub: 0,
        },
        text: text.to_owned(),
        path,
    }
}

/// The text of the text parts (`text`, `output_text`, `refusal`) of a `content` array at
/// `at` that a message or output item starts with: deltas of the joined text, the rest of
/// the event read beside them. Returns the indexes of the parts that carry text.
fn text_parts(content: &Value, at: &[&'static str], m: &mut Meaning) -> Vec<u64> {
    let mut with_text = Vec::new();
    let Some(parts) = content.as_array() else {
        return with_text;
    };
    for (i, part) in parts.iter().enumerate() {
        if !matches!(s(&part["type"]), Some("text" | "output_text" | "refusal")) {
            continue;
        }
        for key in ["text", "refusal"] {
            if let Some(text) = s(&part[key]).filter(|t| !t.is_empty()) {
                let mut path: Vec<Step> = at.iter().map(|k| Step::Key(k)).collect();
                path.extend([Step::Index(i), Step::Key(key)]);
                m.deltas.push(joined(text, path));
                m.beside = true;
                if with_text.last() != Some(&(i as u64)) {
                    with_text.push(i as u64);
                }
            }
        }
    }
    with_text
}

/// Reads an event's JSON. `Err` names what is wrong with it.
pub(crate) fn meaning(dialect: Dialect, ty: &str, json: &Value) -> Result<Meaning, String> {
    let mut m = Meaning::generic();
    match dialect {
        Dialect::Messages => match ty {
            "content_block_delta" => {
                let index = u(&json["index"]).ok_or("a content_block_delta without an index")?;
                let delta = &json["delta"];
                let (kind, key) = match s(&delta["type"]) {
                    Some("text_delta") => (ChanKind::Text, "text"),
                    Some("input_json_delta") => (ChanKind::Tool, "partial_json"),
                    Some("thinking_delta") => (ChanKind::Reasoning, "thinking"),
                    // A signature (never text) and a citation (whole in its delta): read as
                    // the rest of the event is.
                    Some("signature_delta" | "citations_delta") => return Ok(m),
                    _ if delta.get("signature").is_some() => return Ok(m),
                    _ => {
                        // A delta agw has no reading for (the `compaction_delta` beta, a new
                        // kind): the SDKs append each of its strings to the same field's in
                        // the block's earlier deltas, so each is a piece of a text of its own
                        // per block and path. Read one event at a time, a secret split over
                        // two deltas passed (thirteenth review).
                        delta_extras(delta, "/delta", &[], index, &mut m.pointed);
                        m.generic = false;
                        return Ok(m);
                    }
                };
                let text = s(&delta[key]).ok_or_else(|| format!("a delta without `{key}`"))?;
                m.generic = false;
                m.deltas.push(Delta {
                    chan: ChanKey {
                        kind,
                        group: block_group(kind, index),
                        sub: 0,
                    },
                    text: text.to_owned(),
                    path: vec![Step::Key("delta"), Step::Key(key)],
                });
            }
            "content_block_start" => {
                let index = u(&json["index"]).ok_or("a content_block_start without an index")?;
                let block = &json["content_block"];
                if s(&block["type"]) == Some("text") {
                    // Text a block starts with is the start of its text: read with what follows
                    // (a client appends the deltas to it), whatever else the start carries.
                    if let Some(text) = s(&block["text"]).filter(|t| !t.is_empty()) {
                        m.generic = !start_text_only(block);
                        m.beside = m.generic;
                        m.deltas.push(joined(
                            text,
                            vec![Step::Key("content_block"), Step::Key("text")],
                        ));
                    }
                }
                if s(&block["type"]) == Some("thinking") {
                    // Reasoning a block starts with, read with the thinking deltas that follow.
                    if let Some(text) = s(&block["thinking"]).filter(|t| !t.is_empty()) {
                        m.beside = true;
                        m.deltas.push(Delta {
                            chan: ChanKey {
                                kind: ChanKind::Reasoning,
                                group: block_group(ChanKind::Reasoning, index),
                                sub: 0,
                            },
                            text: text.to_owned(),
                            path: vec![Step::Key("content_block"), Step::Key("thinking")],
                        });
                    }
                }
                if let Some(name) = s(&block["name"]) {
                    m.opens.push((
                        ChanKey {
                            kind: ChanKind::Tool,
                            group: index,
                            sub: 0,
                        },
                        name.to_owned(),
                    ));
                    // The input usually follows in deltas, and the start says `{}`; a start
                    // that carries the input (clients use it when no delta follows) is
                    // checked as a tool call now.
                    m.check_tools = match &block["input"] {
                        Value::Null => false,
                        Value::Object(o) => !o.is_empty(),
                        _ => true,
                    };
                }
            }
            "content_block_stop" => {
                let index = u(&json["index"]).ok_or("a content_block_stop without an index")?;
                m.completes = Completes::Group(index);
            }
            "message_delta" | "message_stop" | "error" => m.completes = Completes::All,
            "message_start" => {
                // A message may start with text (the SDKs append the deltas that follow).
                text_parts(&json["message"]["content"], &["message", "content"], &mut m);
            }
            _ => {}
        },
        Dialect::Complete => {
            if ty == "completion" {
                if let Some(text) = s(&json["completion"]) {
                    m.deltas.push(Delta {
                        chan: ChanKey {
                            kind: ChanKind::Text,
                            group: 0,
                            sub: 0,
                        },
                        text: text.to_owned(),
                        path: vec![Step::Key("completion")],
                    });
                    m.generic = false;
                }
                if !json["stop_reason"].is_null() {
                    m.completes = Completes::All;
                }
            } else if ty == "error" {
                m.completes = Completes::All;
            }
        }
        Dialect::Chat | Dialect::Legacy => {
            let Some(choices) = json.get("choices") else {
                if json.get("error").is_some() {
                    m.completes = Completes::All;
                }
                return Ok(m);
            };
            if json.get("error").is_some() {
                // An error beside choices ends the stream: every string of the chunk is read
                // as a JSON document (what a client shows of it is the error).
                m.completes = Completes::All;
                return Ok(m);
            }
            let choices = choices.as_array().ok_or("`choices` is not an array")?;
            m.generic = false;
            let mut finished = Vec::new();
            for (pos, choice) in choices.iter().enumerate() {
                let index = whole(&choice["index"], pos, "a choice's `index`")?;
                let at = |keys: &[Step]| {
                    let mut p = vec![Step::Key("choices"), Step::Index(pos)];
                    p.extend_from_slice(keys);
                    p
                };
                let chan = |kind, sub| ChanKey {
                    kind,
                    group: index,
                    sub,
                };
                if dialect == Dialect::Legacy {
                    if let Some(text) = s(&choice["text"]) {
                        m.deltas.push(Delta {
                            chan: chan(ChanKind::Text, 0),
                            text: text.to_owned(),
                            path: at(&[Step::Key("text")]),
                        });
                    }
                } else {
                    let delta = &choice["delta"];
                    // Reasoning here carries no signature: a text of its own, masked like
                    // the content (seventh red-team review).
                    for (key, kind, sub) in [
                        ("content", ChanKind::Text, 0),
                        ("refusal", ChanKind::Text, 1),
                        ("reasoning_content", ChanKind::Text, 3),
                        ("reasoning", ChanKind::Text, 4),
                    ] {
                        if key == "content" && delta[key].is_array() {
                            // Mistral's reasoning models stream `content` as parts: text, and
                            // thinking made of text parts. Each text is read in its place.
                            content_parts(&delta[key], &at, &chan, &mut m.deltas)?;
                            continue;
                        }
                        if !delta[key].is_null() && !delta[key].is_string() {
                            // Text a client shows, not in a string: nothing to hold or mask.
                            return Err(format!("a delta's `{key}` is not a string"));
                        }
                        if let Some(text) = s(&delta[key]) {
                            m.deltas.push(Delta {
                                chan: chan(kind, sub),
                                text: text.to_owned(),
                                path: at(&[Step::Key("delta"), Step::Key(key)]),
                            });
                        }
                    }
                    if let Some(text) = s(&delta["audio"]["transcript"]) {
                        m.deltas.push(Delta {
                            chan: chan(ChanKind::Text, 2),
                            text: text.to_owned(),
                            path: at(&[
                                Step::Key("delta"),
                                Step::Key("audio"),
                                Step::Key("transcript"),
                            ]),
                        });
                    }
                    // The deprecated single call (`functions`): channel 0, the rest 1 + index.
                    let legacy = &delta["function_call"];
                    let calls = delta["tool_calls"]
                        .as_array()
                        .map_or(&[][..], Vec::as_slice);
                    let legacy = legacy.is_object().then_some((None, legacy, "function"));
                    let all =
                        legacy
                            .into_iter()
                            .chain(calls.iter().enumerate().map(|(tpos, call)| {
                                // A custom tool's input is free text; a function's, JSON.
                                let kind = if call["custom"].is_object() {
                                    "custom"
                                } else {
                                    "function"
                                };
                                (Some(tpos), &call[kind], kind)
                            }));
                    if calls
                        .iter()
                        .any(|c| !c["custom"].is_null() && !c["function"].is_null())
                    {
                        // Which one a client runs is its own choice: neither is let through.
                        return Err("a tool call that is both `custom` and `function`".into());
                    }
                    for (tpos, call, kind) in all {
                        let (sub, mut path) = match tpos {
                            None => (0, at(&[Step::Key("delta"), Step::Key("function_call")])),
                            Some(tpos) => {
                                let t =
                                    whole(&calls[tpos]["index"], tpos, "a tool call's `index`")?;
                                let path = at(&[
                                    Step::Key("delta"),
                                    Step::Key("tool_calls"),
                                    Step::Index(tpos),
                                    Step::Key(kind),
                                ]);
                                (t.wrapping_add(1), path)
                            }
                        };
                        let (chan_kind, input) = if kind == "custom" {
                            (ChanKind::ToolText, "input")
                        } else {
                            (ChanKind::Tool, "arguments")
                        };
                        let key = chan(chan_kind, sub);
                        if let Some(name) = s(&call["name"]) {
                            m.opens.push((key, name.to_owned()));
                        }
                        let value = &call[input];
                        if !value.is_null() && !value.is_string() {
                            // What a client would run is not in a string: no delta to hold.
                            return Err(format!("a tool call's `{input}` is not a string"));
                        }
                        if let Some(text) = s(value) {
                            path.push(Step::Key(input));
                            m.deltas.push(Delta {
                                chan: key,
                                text: text.to_owned(),
                                path,
                            });
                        }
                    }
                }
                if dialect == Dialect::Chat
                    && let Some(delta) = choice["delta"].as_object()
                    && delta.keys().any(|k| !DELTA_READ.contains(&k.as_str()))
                {
                    let at = format!("/choices/{pos}/delta");
                    delta_extras(&choice["delta"], &at, &DELTA_READ, index, &mut m.pointed);
                }
                if !choice["finish_reason"].is_null() {
                    finished.push(index);
                }
            }
            m.finished = finished;
        }
        Dialect::Responses => {
            // An index a client reads as a number agw would not (`1.0`, `-0`) would put text
            // in another part than agw reads it in: refused.
            let index = |key: &str| match &json[key] {
                Value::Null => Ok(None),
                v => u(v)
                    .map(Some)
                    .ok_or_else(|| format!("an event's `{key}` is not a whole number")),
            };
            let output = index("output_index")?;
            let part = index("content_index")?;
            let sub = part.or(index("summary_index")?).unwrap_or(0);
            // Output text and refusals are one text (`JOINED`); any other text a delta
            // carries (an audio transcript, a code interpreter's code, a delta of a kind agw
            // does not know) is a text of its own per output item and kind, read across its
            // deltas.
            let (kind, sub) = match ty {
                "response.output_text.delta" | "response.refusal.delta" => {
                    (Some(ChanKind::Text), 0)
                }
                "response.function_call_arguments.delta" => (Some(ChanKind::Tool), 0),
                "response.custom_tool_call_input.delta" => (Some(ChanKind::ToolText), 0),
                // Reasoning summaries and text carry no signature (the encrypted content is
                // apart): each a text of its own, masked (seventh red-team review).
                t if t.starts_with("response.reasoning") && t.ends_with(".delta") => (
                    Some(ChanKind::Text),
                    (fingerprint(t) << 20).wrapping_add(1).wrapping_add(sub),
                ),
                // Never base64 audio. An event without an output item to keep it to (the
                // Realtime-style `response.audio.transcript.delta` carries none) is read
                // across its deltas all the same, one text per kind (`ITEMLESS`): read one
                // event at a time, a transcript split over three deltas went out unread
                // (tenth red-team review).
                t if t.ends_with(".delta")
                    && json["delta"].is_string()
                    && t != "response.audio.delta" =>
                {
                    (
                        Some(ChanKind::Text),
                        (fingerprint(t) << 20).wrapping_add(1).wrapping_add(sub),
                    )
                }
                _ => (None, 0),
            };
            if let Some(kind) = kind {
                let group = match output {
                    Some(g) => g,
                    None if sub != 0 => ITEMLESS,
                    None => return Err("a delta event without an output_index".into()),
                };
                let text = s(&json["delta"]).ok_or("a delta event without a string `delta`")?;
                m.generic = false;
                if kind == ChanKind::Text && sub == 0 {
                    m.text_in((group, part.unwrap_or(0)));
                }
                m.deltas.push(Delta {
                    chan: ChanKey {
                        kind,
                        group: if kind == ChanKind::Text && sub == 0 {
                            JOINED
                        } else {
                            group
                        },
                        sub,
                    },
                    text: text.to_owned(),
                    path: vec![Step::Key("delta")],
                });
                return Ok(m);
            }
            if ty == "response.content_part.added" {
                // A part may start with text: the deltas that follow are appended to it.
                let start = &json["part"];
                for key in ["text", "refusal"] {
                    if let Some(text) = s(&start[key]).filter(|t| !t.is_empty()) {
                        let o = output.ok_or("a content part with text but no output_index")?;
                        m.text_in((o, part.unwrap_or(0)));
                        m.deltas
                            .push(joined(text, vec![Step::Key("part"), Step::Key(key)]));
                        m.beside = true;
                    }
                }
            }
            if ty == "response.output_item.added" {
                let parts = text_parts(&json["item"]["content"], &["item", "content"], &mut m);
                if !parts.is_empty() {
                    let o = output.ok_or("an output item with text but no output_index")?;
                    for p in parts {
                        m.text_in((o, p));
                    }
                }
            }
            if ty == "response.output_item.added" {
                let item = &json["item"];
                if let (Some(group), Some(name)) = (output, s(&item["name"])) {
                    m.opens.push((
                        ChanKey {
                            kind: if s(&item["type"]) == Some("custom_tool_call") {
                                ChanKind::ToolText
                            } else {
                                ChanKind::Tool
                            },
                            group,
                            sub: 0,
                        },
                        name.to_owned(),
                    ));
                    m.check_tools = false;
                }
            } else if ty.ends_with(".done") && output.is_some() {
                m.completes = Completes::Group(output.unwrap_or(0));
            } else if ty.ends_with(".done") && ty != "response.audio.done" {
                // A text without an output item (`response.audio.transcript.done`) is decided
                // when it is done, not held to the stream's end.
                m.completes = Completes::Group(ITEMLESS);
            } else if matches!(
                ty,
                "response.completed"
                    | "response.failed"
                    | "response.incomplete"
                    | "response.error"
                    | "error"
            ) {
                m.completes = Completes::All;
            }
        }
    }
    Ok(m)
}

/// Keys of a chat delta read in their own ways (or holding no text: the role, audio's data,
/// tool calls read as calls).
const DELTA_READ: [&str; 8] = [
    "content",
    "refusal",
    "reasoning_content",
    "reasoning",
    "audio",
    "tool_calls",
    "function_call",
    "role",
];

/// Marks a channel's `sub` as one of [`delta_extras`] (apart from the dialect's own subs).
const EXTRA: u64 = 1 << 62;

/// The strings of a chat delta agw has no reading for (OpenRouter's
/// `reasoning_details[].text`, a server's own fields): the OpenAI SDKs join every string of a
/// delta with the same path's in earlier chunks (list entries by their `index`), so each is a
/// piece of a text of its own per choice and path. Read one event at a time, a secret split
/// over two chunks passed (twelfth session's black-box review). Identifiers, types and
/// indexes are not text.
/// `read` names the delta's own keys its dialect reads in their own ways; `group` is the
/// chat choice or the Messages block the delta continues.
fn delta_extras(
    delta: &Value,
    at: &str,
    read: &[&str],
    group: u64,
    out: &mut Vec<(ChanKey, String, String)>,
) {
    /// Whether a list entry is signed reasoning (OpenRouter's `reasoning_details` of Claude:
    /// `format: "anthropic-…"`, a `signature`, encrypted reasoning): never rewritten, as a
    /// changed text would fail its signature when the client sends it back (third round).
    fn signed(entry: &Value) -> bool {
        entry.get("signature").is_some()
            || entry
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("anthropic"))
            || entry
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("encrypted"))
    }
    #[allow(clippy::too_many_arguments)]
    fn walk(
        v: &Value,
        pointer: &mut String,
        path: &mut String,
        top: Option<&[&str]>,
        choice: u64,
        is_signed: bool,
        out: &mut Vec<(ChanKey, String, String)>,
    ) {
        match v {
            Value::String(text) if !text.is_empty() && top.is_none() => {
                let sub = fnv(path);
                let chan = ChanKey {
                    kind: if is_signed {
                        ChanKind::Reasoning
                    } else {
                        ChanKind::Text
                    },
                    group: choice,
                    sub: EXTRA | (sub >> 2),
                };
                out.push((chan, text.clone(), pointer.clone()));
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let (p, q) = (pointer.len(), path.len());
                    pointer.push_str(&format!("/{i}"));
                    // An entry is continued by its `index`, as the SDKs merge it.
                    let index = item
                        .get("index")
                        .and_then(crate::guard::leaves::whole_index);
                    match index {
                        Some(index) => path.push_str(&format!("/#{index}")),
                        None => path.push_str(&format!("/{i}")),
                    }
                    walk(
                        item,
                        pointer,
                        path,
                        None,
                        choice,
                        is_signed || signed(item),
                        out,
                    );
                    pointer.truncate(p);
                    path.truncate(q);
                }
            }
            Value::Object(o) => {
                for (k, child) in o {
                    let skip = match top {
                        Some(read) => read.contains(&k.as_str()),
                        None => k == "index",
                    };
                    // A delta's own `name` (a participant's, which the SDKs join like
                    // any other string) is text; a tool call's is not read here.
                    let named = top.is_some() && k == "name";
                    if skip
                        || crate::guard::response::is_meta_key(k.as_bytes())
                        || (child.is_string()
                            && !named
                            && super::guard::NOT_TEXT.contains(&k.as_str()))
                    {
                        continue;
                    }
                    let (p, q) = (pointer.len(), path.len());
                    crate::guard::leaves::push_token(pointer, k);
                    path.push('/');
                    path.push_str(k);
                    walk(child, pointer, path, None, choice, is_signed, out);
                    pointer.truncate(p);
                    path.truncate(q);
                }
            }
            _ => {}
        }
    }
    if !delta.is_object() {
        return;
    }
    let mut pointer = at.to_owned();
    walk(
        delta,
        &mut pointer,
        &mut String::new(),
        Some(read),
        group,
        false,
        out,
    );
}

/// The text parts of a chat delta's `content` array (`[{"type":"text","text":...},
/// {"type":"thinking","thinking":[{"type":"text","text":...}]}]`), in order: text on the text
/// channel, thinking on the reasoning channel. Any other part ends the stream.
fn content_parts(
    parts: &Value,
    at: &dyn Fn(&[Step]) -> Vec<Step>,
    chan: &dyn Fn(ChanKind, u64) -> ChanKey,
    out: &mut Vec<Delta>,
) -> Result<(), String> {
    let text_of = |part: &Value| -> Option<String> {
        let o = part.as_object()?;
        (s(&part["type"]) == Some("text") && o.keys().all(|k| k == "type" || k == "text"))
            .then(|| s(&part["text"]).map(str::to_owned))
            .flatten()
    };
    // A part's text, at `tail` under `delta.content[i]`.
    let delta = |kind, sub, text, i, tail: &[Step]| {
        let mut path = vec![Step::Key("delta"), Step::Key("content"), Step::Index(i)];
        path.extend_from_slice(tail);
        Delta {
            chan: chan(kind, sub),
            text,
            path: at(&path),
        }
    };
    for (i, part) in parts.as_array().into_iter().flatten().enumerate() {
        if let Some(text) = text_of(part) {
            out.push(delta(ChanKind::Text, 0, text, i, &[Step::Key("text")]));
            continue;
        }
        let thinking = part["thinking"].as_array().filter(|_| {
            s(&part["type"]) == Some("thinking") && part.as_object().is_some_and(|o| o.len() == 2)
        });
        let Some(thinking) = thinking else {
            return Err("a delta's `content` part is neither text nor thinking".into());
        };
        for (j, t) in thinking.iter().enumerate() {
            let text = text_of(t).ok_or("a thinking part that is not text")?;
            let tail = [Step::Key("thinking"), Step::Index(j), Step::Key("text")];
            // Mistral's thinking is unsigned: masked like its text, a text of its own.
            out.push(delta(ChanKind::Text, 5, text, i, &tail));
        }
    }
    Ok(())
}

/// A small number for an event type, to keep the texts of different delta kinds apart.
fn fingerprint(ty: &str) -> u64 {
    fnv(ty) & 0xff_ffff
}

/// The 64-bit FNV-1a hash of `s`: a channel's number for a path or a kind.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A text, tool-input or reasoning delta read straight from the bytes of an event's JSON.
#[derive(Debug)]
pub(crate) struct FastDelta {
    pub chan: ChanKey,
    /// The content block's index.
    pub index: u64,
    pub text: String,
    /// Where the delta's JSON string (quotes included) lies in the event's data.
    pub span: std::ops::Range<usize>,
}

/// A Messages `content_block_delta` with a text, tool-input or thinking delta — the bulk of an
/// Anthropic stream — read without building a tree, and validated as
/// [`check_json`](crate::guard::response::check_json) validates (the scanner's checks, no
/// repeated key). `None` for any other shape: another or a repeated key, an index that is not
/// a plain whole number, a `\u` escape or a raw control character in the delta's text; those
/// are read the general way, which gives the same meaning or names the error.
pub(crate) fn messages_delta(data: &[u8]) -> Option<FastDelta> {
    exact_delta(data).or_else(|| scanned_delta(data))
}

/// The delta of an event exactly as Anthropic writes it, keys in its order and no spaces:
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}`
/// (or an `input_json_delta` or `thinking_delta`). Only the string is scanned.
fn exact_delta(data: &[u8]) -> Option<FastDelta> {
    const HEADS: [(&[u8], ChanKind); 3] = [
        (br#","delta":{"type":"text_delta","text":""#, ChanKind::Text),
        (
            br#","delta":{"type":"input_json_delta","partial_json":""#,
            ChanKind::Tool,
        ),
        (
            br#","delta":{"type":"thinking_delta","thinking":""#,
            ChanKind::Reasoning,
        ),
    ];
    let rest = data.strip_prefix(br#"{"type":"content_block_delta","index":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // A JSON number: `0`, or no leading zero.
    if digits == 0 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let index: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let (head, kind) = HEADS
        .into_iter()
        .find(|(head, _)| rest[digits..].starts_with(head))?;
    let quote = data.len() - rest.len() + digits + head.len() - 1;
    let sc = crate::json::Scanner::new(data).ok()?;
    let mut sc = sc.at(quote);
    let text = sc.string().ok()?;
    let tail = &data[text.raw.end + 1..];
    if !tail.starts_with(b"}}")
        || !tail[2..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return None;
    }
    fast_delta(&sc, kind, index, &text)
}

/// The delta of a `content_block_delta` of any key order and spacing, read with the scanner.
fn scanned_delta(data: &[u8]) -> Option<FastDelta> {
    use crate::json::{JsonError, Scanner, Str};
    let other = || JsonError::Shape(String::new());
    let mut sc = Scanner::new(data).ok()?;
    if sc.peek() != Some(b'{') {
        return None;
    }
    let (mut ty, mut index, mut delta) = (false, None, None);
    sc.object(|sc, key| {
        if sc.key_is(&key, "type") && !ty {
            let s = sc.string()?;
            ty = !s.escaped && sc.bytes()[s.raw] == *b"content_block_delta";
            if ty { Ok(()) } else { Err(other()) }
        } else if sc.key_is(&key, "index") && index.is_none() {
            let r = sc.skip()?;
            let digits = &sc.bytes()[r];
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(other());
            }
            index = Some(
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
                    .ok_or_else(other)?,
            );
            Ok(())
        } else if sc.key_is(&key, "delta") && delta.is_none() && sc.peek() == Some(b'{') {
            // The delta's `type`, and its one text field.
            let (mut dty, mut text): (Option<Str>, Option<(&'static str, Str)>) = (None, None);
            sc.object(|sc, key| {
                if sc.key_is(&key, "type") && dty.is_none() {
                    dty = Some(sc.string()?);
                    return Ok(());
                }
                let field = ["text", "partial_json", "thinking"]
                    .into_iter()
                    .find(|f| sc.key_is(&key, f));
                match field {
                    Some(f) if text.is_none() && sc.peek() == Some(b'"') => {
                        text = Some((f, sc.string()?));
                        Ok(())
                    }
                    _ => Err(other()),
                }
            })?;
            delta = Some((dty.ok_or_else(other)?, text.ok_or_else(other)?));
            Ok(())
        } else {
            Err(other())
        }
    })
    .ok()?;
    sc.finish().ok()?;
    let (index, (dty, (field, text))) = (index?, delta?);
    if !ty || dty.escaped {
        return None;
    }
    let (kind, expected) = match &sc.bytes()[dty.raw] {
        b"text_delta" => (ChanKind::Text, "text"),
        b"input_json_delta" => (ChanKind::Tool, "partial_json"),
        b"thinking_delta" => (ChanKind::Reasoning, "thinking"),
        _ => return None,
    };
    if field != expected {
        return None;
    }
    fast_delta(&sc, kind, index, &text)
}

/// The delta whose string `text` (of kind `kind`) was found by `sc`.
fn fast_delta(
    sc: &crate::json::Scanner<'_>,
    kind: ChanKind,
    index: u64,
    text: &crate::json::Str,
) -> Option<FastDelta> {
    // What the scanner lets through but a strict parser (serde_json, clients) refuses — a raw
    // control character, a lone surrogate escape — is left to the general way, which ends the
    // stream on it.
    let raw = &sc.bytes()[text.raw.clone()];
    if raw.iter().any(|&b| b < 0x20) || (text.escaped && raw.windows(2).any(|w| w == b"\\u")) {
        return None;
    }
    let decoded = String::from_utf8(sc.str_value(text).into_owned()).ok()?;
    Some(FastDelta {
        chan: ChanKey {
            kind,
            group: block_group(kind, index),
            sub: 0,
        },
        index,
        text: decoded,
        span: text.raw.start - 1..text.raw.end + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general reading of one event's data, as the stream guard does it.
    fn general(data: &str) -> Result<Meaning, String> {
        crate::guard::response::check_json(data.as_bytes()).map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
        let ty = json["type"].as_str().unwrap_or("").to_owned();
        meaning(Dialect::Messages, &ty, &json)
    }

    /// Wherever the fast reading answers, it means what the general reading means, and its
    /// span holds the delta's string; where it does not, the general reading decides.
    #[test]
    fn fast_deltas_mean_what_the_general_reading_means() {
        let answered = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi there"}}"#,
            r#"{"index":12,"delta":{"text":"a \"quoted\" \\ line\nnext","type":"text_delta"},"type":"content_block_delta"}"#,
            r#" { "type" : "content_block_delta" , "index" : 1 , "delta" : { "type" : "input_json_delta" , "partial_json" : "{\"cmd\": \"ls" } } "#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"thinking_delta","thinking":"hmm → ok"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
            // Anthropic's own spelling (read by template), with escapes and a trailing newline.
            "{\"type\":\"content_block_delta\",\"index\":10,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\\"b\\\\c\\n\"}}\n",
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"so"}}"#,
        ];
        for data in answered {
            let fast = messages_delta(data.as_bytes()).unwrap_or_else(|| panic!("{data}"));
            let m = general(data).unwrap();
            assert!(!m.generic && m.opens.is_empty(), "{data}");
            assert_eq!(m.completes, Completes::Nothing, "{data}");
            let [d] = m.deltas.as_slice() else {
                panic!("{data}")
            };
            assert_eq!((d.chan, &d.text), (fast.chan, &fast.text), "{data}");
            let literal: String = serde_json::from_str(&data[fast.span.clone()]).unwrap();
            assert_eq!(literal, d.text, "{data}");
            // The span is the very string the general reading's path leads to: a string put
            // there is what the tree holds at that path.
            let marked = format!(
                "{}\"{}\"{}",
                &data[..fast.span.start],
                '\u{E000}',
                &data[fast.span.end..]
            );
            let mut v: Value = serde_json::from_str(&marked).unwrap();
            for step in &d.path {
                v = match step {
                    Step::Key(k) => v[*k].take(),
                    Step::Index(i) => v[*i].take(),
                };
            }
            assert_eq!(v, "\u{E000}", "{data}");
        }
        let declined = [
            // Other event types and shapes.
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","citations":[]}}"#,
            r#"{"type":"content_block_delta","index":0,"extra":1,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","partial_json":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0}"#,
            // Repeated keys: refused by the general reading.
            r#"{"type":"content_block_delta","type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
            // Indexes that are not plain whole numbers.
            r#"{"type":"content_block_delta","index":1.0,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"a"}}"#,
            // Escaped names, `\u` escapes and raw controls: the general reading decides.
            r#"{"type":"content_block\u005fdelta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"caf\u00e9"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x \ud800"}}"#,
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tab\there\"}}",
            // Not JSON, or more than one document.
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}} {}"#,
            r#"[]"#,
            // Anthropic's spelling, broken.
            r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}} x"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\x"}}"#,
            r#"{"type":"content_block_delta","index":99999999999999999999,"delta":{"type":"text_delta","text":"a"}}"#,
        ];
        for data in declined {
            assert!(messages_delta(data.as_bytes()).is_none(), "{data}");
        }
    }
}
