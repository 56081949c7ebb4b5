//! The stream guard: reads every event, holds back only what could still become a match or a
//! tool call not yet checked, masks, or cuts the stream off.

use super::events::{
    CONTINUED, ChanKey, ChanKind, Completes, Dialect, FastDelta, MAX_CONTINUED, Meaning, Step,
    continued, meaning, messages_delta,
};
use super::prefix::Live;
use super::sse::{Fields, UnknownField, fields};
use crate::api::{Api, ErrorBody, ErrorKind};
use crate::guard::response::walk;
use crate::guard::{Action, ActionKind, Decision, Policy};
use crate::json::{normalize_plain, plain_needs_normalization};
use crate::route::RouteKind;
use bytes::Bytes;
use regex_automata::hybrid::dfa::Cache;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

/// A rule that matched in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHit {
    /// The rule's name (a text rule or a tool rule; `agw:...` for agw's own refusals).
    pub rule: Arc<str>,
    /// What it did.
    pub action: ActionKind,
}

#[derive(Debug)]
struct Part {
    text: String,
    site: Site,
    ready: bool,
    changed: bool,
}

/// Where a part's string lies in its event, for writing a changed part back.
#[derive(Debug)]
enum Site {
    /// The path to it in the event's JSON tree (read the general way).
    Path(Vec<Step>),
    /// The bytes of its JSON string in the event (read without a tree): a change is spliced in
    /// there.
    Span(std::ops::Range<usize>),
    /// A JSON pointer to it (a string of an event agw does not recognise).
    Pointer(String),
}

#[derive(Debug)]
struct Item {
    seq: u64,
    raw: Bytes,
    name: Option<String>,
    json: Option<Value>,
    parts: Vec<Part>,
    /// A tool channel this event may not pass before (a tool call's start and what follows).
    waits: Option<usize>,
}

#[derive(Debug)]
struct Chan {
    key: ChanKey,
    /// The tool's name, for tool channels.
    name: String,
    done: bool,
    /// The most recent text already decided, as context for matches reaching back into it.
    sent_tail: String,
    /// Where `sent_tail` starts in the channel's text (what was dropped from its front).
    base: usize,
    /// The prefix automaton's live states over the channel's text.
    live: Live,
    /// Parts not yet decided: (item seq, part index).
    pending: VecDeque<(u64, usize)>,
    /// A tool call's input so far.
    input: Vec<u8>,
    /// The last open-match check ([`StreamGuard::scan`]): where the match still growing
    /// started and where the text ended, both counted from the channel's start.
    open: Option<(usize, usize)>,
    /// Bytes of text in `pending`.
    held: usize,
    /// Audit hits already recorded for the tool's name: a name streamed in pieces is checked
    /// whole after each, and a hit is recorded once.
    name_hits: usize,
}

/// Guards one streamed response. Feed it complete events (from
/// [`SseDecoder`](super::SseDecoder)); it appends what may be sent to `out`. See the
/// [module docs](super).
pub struct StreamGuard {
    policy: Policy,
    dialect: Dialect,
    api: Api,
    window: usize,
    cache: Option<Cache>,
    queue: VecDeque<Item>,
    next_seq: u64,
    chans: Vec<Chan>,
    /// The tool channel every new event waits for, while a tool call is open.
    open_tool: Option<usize>,
    rejected: bool,
    hits: Vec<StreamHit>,
    /// Bytes of the events held back.
    held_bytes: usize,
    /// A channel's text and where each held part starts in it, kept between scans.
    scratch: (String, Vec<(u64, usize, usize)>),
    /// The end of the last text channel that completed, context for the next one (a Responses
    /// text of its own kind, such as an audio transcript, continued in the next output item;
    /// a response's blocks of text are one channel, `JOINED`).
    text_tail: String,
    /// The message (every choice) has ended.
    ended: bool,
    /// An event of a known API was read: until then, the strings of events agw does not
    /// recognise are texts continued by path ([`CONTINUED`]); after, such events are read
    /// one at a time, beside the known ones.
    known: bool,
    /// A Responses stream's text parts as streamed, by output item and content index: the
    /// text as it came and as it went out ([`Resync`]).
    sent_parts: Resync,
    /// A Messages stream's open content block ([`StreamGuard::check_block`]).
    open_block: Option<u64>,
    /// The completions the request asked for, when known ([`StreamGuard::with_choices`]).
    choices: Option<u64>,
    /// The Gemini candidates the request asked for ([`StreamGuard::with_candidates`]).
    candidates: Option<u64>,
}

/// What a Responses stream's text parts were and what went out, so that the events that
/// repeat a part whole (`response.output_text.done`, `response.content_part.done`,
/// `response.output_item.done`, `response.completed`) carry what went out: a match masked
/// across two parts or items is in neither part alone, so reading such an event by itself
/// found nothing in it, and it carried the secret's pieces in clear (black-box review).
///
/// A part's text as it came is kept as a hash and a length; what went out is kept whole (the
/// repeating events need it), one copy of the text, at most [`MAX_HELD`] bytes a stream.
#[derive(Debug, Default)]
struct Resync {
    parts: Vec<SentPart>,
    /// Bytes of text kept in `parts`.
    kept: usize,
    /// Whether any part went out changed: only then are the repeating events looked at.
    changed: bool,
}

#[derive(Debug)]
struct SentPart {
    /// (output index, content index).
    at: (u64, u64),
    /// The text as it came: hashed, and its length.
    raw: std::hash::DefaultHasher,
    raw_len: usize,
    /// The text as it went out; `None` once the stream's kept text passed [`MAX_HELD`] (a
    /// stream is not kept whole without bound).
    sent: Option<String>,
    /// Whether what went out differs from what came.
    masked: bool,
}

impl SentPart {
    fn came(&self, text: &str) -> bool {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(text.as_bytes());
        text.len() == self.raw_len && h.finish() == self.raw.finish()
    }
}

/// A repeated part that is neither what came nor what went out: the event cannot be made to
/// agree with what the client was sent, and fails closed.
const DISAGREES: &str = "it repeats a text part that was masked, in a form other than its deltas";

impl Resync {
    /// Records a released text delta of part `at`: `raw` came, `sent` went out.
    fn delta(&mut self, at: (u64, u64), raw: &str, sent: &str) {
        use std::hash::Hasher;
        let i = match self.parts.iter().rposition(|p| p.at == at) {
            Some(i) => i,
            None => {
                self.parts.push(SentPart {
                    at,
                    raw: std::hash::DefaultHasher::new(),
                    raw_len: 0,
                    sent: Some(String::new()),
                    masked: false,
                });
                self.parts.len() - 1
            }
        };
        let part = &mut self.parts[i];
        part.raw.write(raw.as_bytes());
        part.raw_len += raw.len();
        self.kept += sent.len();
        match &mut part.sent {
            Some(kept) if self.kept <= MAX_HELD => kept.push_str(sent),
            // Past the bound the part's text is let go: a repeat of it that needs rewriting
            // then fails closed.
            kept => *kept = None,
        }
        if raw != sent {
            part.masked = true;
            self.changed = true;
        }
    }

    /// `v`, a part's text repeated whole: replaced by what went out when it is what came.
    fn fix(&self, at: (u64, u64), v: Option<&mut Value>) -> Result<bool, &'static str> {
        let Some(v) = v else {
            return Ok(false);
        };
        let Some(text) = v.as_str() else {
            return Ok(false);
        };
        match self.parts.iter().rfind(|p| p.at == at) {
            Some(part) if part.masked && part.sent.as_deref() != Some(text) => match &part.sent {
                Some(sent) if part.came(text) => {
                    *v = Value::String(sent.clone());
                    Ok(true)
                }
                _ => Err(DISAGREES),
            },
            _ => Ok(false),
        }
    }

    /// The parts of a message item's `content` (at output index `o`).
    fn fix_content(&self, o: u64, content: Option<&mut Value>) -> Result<bool, &'static str> {
        let mut fixed = false;
        let parts = content.and_then(Value::as_array_mut);
        for (i, part) in parts.into_iter().flatten().enumerate() {
            if let Some(part) = part.as_object_mut() {
                for key in ["text", "refusal"] {
                    fixed |= self.fix((o, i as u64), part.get_mut(key))?;
                }
            }
        }
        Ok(fixed)
    }

    /// The event `raw` with the parts it repeats as they went out; `None` when it repeats
    /// none that changed.
    fn event(&self, raw: &Bytes) -> Result<Option<Bytes>, &'static str> {
        if !self.changed {
            return Ok(None);
        }
        let Some(f) = std::str::from_utf8(raw).ok().and_then(|t| fields(t).ok()) else {
            return Ok(None);
        };
        let Ok(mut json) = serde_json::from_str::<Value>(&f.data) else {
            return Ok(None);
        };
        let Some(obj) = json.as_object_mut() else {
            return Ok(None);
        };
        let ty = obj
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let index = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        let at = (
            index(obj.get("output_index")),
            index(obj.get("content_index")),
        );
        let fixed = match ty.as_str() {
            "response.output_text.done" => self.fix(at, obj.get_mut("text"))?,
            "response.refusal.done" => self.fix(at, obj.get_mut("refusal"))?,
            "response.content_part.done" => {
                let part = obj.get_mut("part").and_then(Value::as_object_mut);
                match part {
                    Some(p) => {
                        let a = self.fix(at, p.get_mut("text"))?;
                        self.fix(at, p.get_mut("refusal"))? || a
                    }
                    None => false,
                }
            }
            "response.output_item.done" => {
                let item = obj.get_mut("item").and_then(Value::as_object_mut);
                self.fix_content(at.0, item.and_then(|i| i.get_mut("content")))?
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let items = obj
                    .get_mut("response")
                    .and_then(Value::as_object_mut)
                    .and_then(|r| r.get_mut("output"))
                    .and_then(Value::as_array_mut);
                let mut fixed = false;
                for (o, item) in items.into_iter().flatten().enumerate() {
                    if let Some(item) = item.as_object_mut() {
                        fixed |= self.fix_content(o as u64, item.get_mut("content"))?;
                    }
                }
                fixed
            }
            _ => false,
        };
        Ok(fixed.then(|| {
            Bytes::from(match f.name {
                Some(n) => format!("event: {n}\ndata: {json}\n\n"),
                None => format!("data: {json}\n\n"),
            })
        }))
    }
}

/// Most bytes of events held back at once (a tool call's input and the events around it);
/// a stream that needs more ends with an error event.
pub const MAX_HELD: usize = 4 << 20;

/// Most bytes of a channel's text held back for one key, token or private key block still
/// growing (see [`StreamGuard`]'s module docs): a private key, line numbers and all, is a few
/// KB; a stream whose secret runs longer ends with an error event.
pub const MAX_OPEN_MATCH: usize = 16 << 10;

impl std::fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGuard")
            .field("dialect", &self.dialect)
            .field("api", &self.api)
            .field("window", &self.window)
            .field("held", &self.queue.len())
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.policy.prefixes().recycle(self.cache.take());
    }
}

impl StreamGuard {
    /// A guard for a Messages (Anthropic) or chat completions (OpenAI) stream in `api`'s
    /// format that holds back at most `window` bytes of text per block.
    pub fn new(policy: Policy, api: Api, window: usize) -> Self {
        let kind = match api {
            Api::Anthropic => RouteKind::Messages,
            Api::OpenAi => RouteKind::Completions,
        };
        Self::for_route(policy, kind, api, window)
    }

    /// A guard for a stream of route `kind` (Messages, Complete, Completions,
    /// LegacyCompletions, Responses) whose client speaks `api` (the shape of the error event).
    pub fn for_route(policy: Policy, kind: RouteKind, api: Api, window: usize) -> Self {
        let cache = policy.prefixes().cache();
        Self {
            dialect: Dialect::of(kind, api),
            policy,
            api,
            window: window.max(1),
            cache,
            queue: VecDeque::new(),
            next_seq: 0,
            chans: Vec::new(),
            open_tool: None,
            rejected: false,
            hits: Vec::new(),
            held_bytes: 0,
            scratch: Default::default(),
            text_tail: String::new(),
            ended: false,
            known: false,
            sent_parts: Resync::default(),
            open_block: None,
            choices: None,
            candidates: None,
        }
    }

    /// The completions the request asked for (`n`, `best_of`): a chat chunk's choice at or
    /// past that index ends the stream. Clients that read `choices[0]` of every chunk (the
    /// SDKs' quick-start loop, LangChain) join whatever choice comes first, so an unasked
    /// choice's pieces, read by agw as a text of its own, would reach them as one text with
    /// the asked one's (twelfth session's black-box review).
    pub fn with_choices(mut self, n: u64) -> Self {
        self.choices = Some(n.max(1));
        self
    }

    /// Why an event's chat choices or Gemini candidates cannot be read as a client reads
    /// them: one at or past what the request asked for (`n`, `candidateCount`; clients that
    /// read `choices[0]` or `candidates[0]` of every chunk join whatever comes first — second
    /// review round), or two with one index in one event (agw joins them, a client shows one).
    fn unasked_choice(&self, json: &Value) -> Option<&'static str> {
        let chat = matches!(self.dialect, Dialect::Chat | Dialect::Legacy);
        let (list, n) = match (json.get("choices"), json.get("candidates")) {
            (Some(Value::Array(l)), _) if chat => (l, self.choices),
            (_, Some(Value::Array(l))) => (l, self.candidates),
            _ => return None,
        };
        if list.len() < 2 && n.is_none() {
            return None;
        }
        crate::usage::unasked_index(list, n)
    }

    /// The candidates a Gemini request asked for (`generationConfig.candidateCount`, 1 when
    /// it names none): a candidate at or past that index, or two with one index in one
    /// event, ends the stream (see [`StreamGuard::with_choices`]).
    pub fn with_candidates(mut self, n: u64) -> Self {
        self.candidates = Some(n.max(1));
        self
    }

    /// The rules that matched so far.
    pub fn hits(&self) -> &[StreamHit] {
        &self.hits
    }

    /// Whether the stream was cut off (by a rejecting rule or an event agw could not read).
    pub fn is_rejected(&self) -> bool {
        self.rejected
    }

    /// Ends the stream with an error event in the client's format (e.g. an event too large to
    /// read): nothing held back is sent.
    pub fn fail(&mut self, message: &str, out: &mut Vec<Bytes>) {
        if self.rejected {
            return;
        }
        self.hits.push(StreamHit {
            rule: "agw:unreadable".into(),
            action: ActionKind::Reject,
        });
        let err = ErrorBody::new(ErrorKind::BadGateway, message);
        self.stop(&err, out);
    }

    /// Takes one complete event; appends the events that may now be sent to `out`.
    pub fn event(&mut self, raw: Bytes, out: &mut Vec<Bytes>) {
        if self.rejected {
            return;
        }
        if let Err(err) = self.take(raw) {
            // What was decided before this event (text settled ahead of a tool call that is
            // now refused) goes out ahead of the error.
            self.release(out);
            if !self.rejected {
                self.stop(&err, out);
            }
            return;
        }
        if let Err(err) = self.scan_all(false) {
            self.stop(&err, out);
            return;
        }
        self.release(out);
    }

    /// The stream ended: completes every open block and sends everything held back.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.rejected {
            return;
        }
        let result = self
            .complete(Completes::All)
            .and_then(|()| self.scan_all(true));
        if let Err(err) = result {
            self.stop(&err, out);
            return;
        }
        self.release(out);
    }

    fn stop(&mut self, err: &ErrorBody, out: &mut Vec<Bytes>) {
        out.push(self.error_event(err));
        self.rejected = true;
        self.queue.clear();
        self.chans.clear();
        self.held_bytes = 0;
    }

    fn unreadable(&mut self, what: &str) -> ErrorBody {
        self.hits.push(StreamHit {
            rule: "agw:unreadable".into(),
            action: ActionKind::Reject,
        });
        ErrorBody::new(
            ErrorKind::BadGateway,
            format!("agw could not inspect an event in the provider's stream: {what}"),
        )
    }

    fn reject(&mut self, rule: Arc<str>, err: ErrorBody) -> ErrorBody {
        self.hits.push(StreamHit {
            rule,
            action: ActionKind::Reject,
        });
        err
    }

    /// Reads an event into the queue.
    fn take(&mut self, raw: Bytes) -> Result<(), ErrorBody> {
        let bytes = raw.clone();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Err(self.unreadable("it is not UTF-8"));
        };
        // A line no provider's stream has (a JSON body labelled as a stream is nothing else)
        // is never forwarded: a client may read the body some other way.
        let Ok(Fields {
            name,
            data,
            has_data,
        }) = fields(text)
        else {
            return Err(self.unreadable(&UnknownField.to_string()));
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut item = Item {
            seq,
            raw,
            name: name.map(str::to_owned),
            json: None,
            parts: Vec::new(),
            waits: self.open_tool,
        };
        let trimmed = data.trim();
        if !has_data || trimmed.is_empty() {
            return self.hold(item);
        }
        if trimmed == "[DONE]" && matches!(self.dialect, Dialect::Chat | Dialect::Legacy) {
            self.hold(item)?;
            return self.complete(Completes::All);
        }
        if let Some(fast) = self.fast_delta(text, name, &data) {
            return self.take_delta(item, fast);
        }
        if let Err(e) = crate::guard::response::check_json(data.as_bytes()) {
            return Err(self.unreadable(&e.to_string()));
        }
        let json: Value = match serde_json::from_str(&data) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(self.unreadable("its data is not a JSON object")),
            Err(e) => return Err(self.unreadable(&e.to_string())),
        };
        let ty = json["type"].as_str().or(name).unwrap_or("").to_owned();
        if let (Some(n), Some(t)) = (name, json["type"].as_str())
            && n != t
        {
            return Err(self.unreadable("its event name and type disagree"));
        }
        let of = Dialect::of_event(&ty, &json);
        if let Some(d) = of.filter(|d| *d != self.dialect) {
            // Events of another API than the route's (a passthrough path on a backend whose
            // server speaks several, a stored completion): the stream is read, and ends, as
            // the stream it is, so text split across its deltas is still held back and matched
            // whole. Only before any delta was read: a stream does not change API midway.
            if self.chans.iter().any(|c| c.key.group != CONTINUED) {
                return Err(self.unreadable("its events are of another API than those before"));
            }
            self.dialect = d;
        }
        if of.is_some() && !self.known {
            self.now_known();
        }
        if self.dialect == Dialect::Messages {
            self.check_block(&ty, json["index"].as_u64())?;
        }
        if self.starts_other_than_text(&ty, &json) {
            // Text is read across blocks, but not held over a tool call or reasoning: what
            // was said before one is decided now and goes out ahead of it.
            self.settle_text()?;
        }
        if let Some(why) = self.unasked_choice(&json) {
            return Err(self.unreadable(why));
        }
        if crate::guard::response::carries_logprobs(&json) {
            return Err(self.unreadable("token log probabilities, which agw does not read"));
        }
        let mut m: Meaning = match meaning(self.dialect, &ty, &json) {
            Ok(m) => m,
            Err(e) => return Err(self.unreadable(&e)),
        };
        for (key, name) in &m.opens {
            // Anthropic blocks come one after the other, each started once: a second start
            // of an open block would make its tool's name two names run together.
            if self.dialect == Dialect::Messages
                && self
                    .chans
                    .iter()
                    .any(|c| !c.done && c.key.group == key.group)
            {
                return Err(self.unreadable("a content block started while it is open"));
            }
            let c = self.chan(*key);
            // A name sent again in a later delta is appended here, but some clients take it
            // as the whole name (openai-node replaces it): a piece is checked on its own too
            // (black-box review: a card as the second piece, glued to the first, passed).
            if !self.chans[c].name.is_empty() {
                let alone = self.policy.tool_name_verdict(name);
                if let Decision::Reject(r) = alone.into_decision() {
                    return Err(self.reject(r.rule.clone(), r.error_body()));
                }
            }
            self.chans[c].name.push_str(name);
            // The name is checked as a non-streamed one is (`Policy::tool_name_verdict`), all
            // of it so far: a refusal ends the stream before this event goes out.
            let named = self.policy.tool_name_verdict(&self.chans[c].name);
            let audits: Vec<_> = named
                .hits()
                .iter()
                .filter(|h| h.action != ActionKind::Reject)
                .collect();
            for h in &audits[self.chans[c].name_hits.min(audits.len())..] {
                self.hits.push(StreamHit {
                    rule: h.rule.clone(),
                    action: h.action,
                });
            }
            self.chans[c].name_hits = self.chans[c].name_hits.max(audits.len());
            if let Decision::Reject(r) = named.into_decision() {
                return Err(self.reject(r.rule.clone(), r.error_body()));
            }
            if self.open_tool.is_none() {
                self.open_tool = Some(c);
                item.waits = Some(c);
            }
        }
        // A chat delta's strings agw has no reading for are pieces of texts of their own
        // (`delta_extras`): out of what the rest of the event is read as.
        let pointed = std::mem::take(&mut m.pointed);
        let blanked = (!pointed.is_empty()).then(|| {
            let mut j = json.clone();
            for (_, _, p) in &pointed {
                if let Some(v) = j.pointer_mut(p) {
                    *v = Value::String(String::new());
                }
            }
            j
        });
        let rest_of = blanked.as_ref().unwrap_or(&json);
        // A chunk of a known API carrying strings, but none where that API puts text (a chat
        // delta's `text`): read, not skipped, as texts continued by path. Found by the
        // seventh red-team review (such a chunk was read by no rule).
        let strays = !m.generic
            && m.deltas.is_empty()
            && pointed.is_empty()
            && has_other_strings(rest_of, &[]);
        if strays {
            m.generic = true;
        }
        if !m.generic
            && (!m.deltas.is_empty() || !pointed.is_empty())
            && has_other_strings(rest_of, &m.deltas)
        {
            // A delta event that carries more text than its delta (a citation, an annotation,
            // an unknown field a client may show or keep): that is read too.
            m.generic = true;
            m.beside = true;
            m.check_tools = false;
        }
        let pieces = (!self.known || strays)
            && m.generic
            && !m.beside
            && m.deltas.is_empty()
            && m.opens.is_empty()
            && self.continue_texts(&mut item, &json)?;
        if pieces {
            // Its strings are pieces of texts continued by path, read with the others.
        } else if m.generic && m.beside {
            // The rest of an event whose text is read with the deltas: its other strings,
            // with the text blanked out.
            let mut rest = rest_of.clone();
            for d in &m.deltas {
                blank(&mut rest, &d.path);
            }
            self.generic(&mut item, &rest.to_string(), m.check_tools, false)?;
        } else if m.generic {
            self.generic(&mut item, &data, m.check_tools, true)?;
        }
        for d in m.deltas {
            self.add_part(&mut item, d.chan, d.text, Site::Path(d.path))?;
        }
        for (chan, text, pointer) in pointed {
            self.add_part(&mut item, chan, text, Site::Pointer(pointer))?;
        }
        if !item.parts.is_empty() {
            item.json = Some(json);
        }
        self.hold(item)?;
        for g in m.finished {
            self.complete(Completes::Group(g))?;
        }
        self.complete(m.completes)
    }

    /// A Messages stream's blocks come one at a time: started, their deltas, stopped. A block
    /// started while another is open, or a delta for a block other than the open one, is read
    /// by no client as agw would read it (deltas joined in the order they came, a client's text
    /// assembled by index: black-box review, a card split over two open blocks passed), and
    /// ends the stream.
    fn check_block(&mut self, ty: &str, index: Option<u64>) -> Result<(), ErrorBody> {
        match ty {
            "content_block_start" => {
                if self.open_block.is_some() {
                    return Err(self.unreadable("a content block started while another is open"));
                }
                self.open_block = index;
            }
            "content_block_delta" => {
                if let (Some(open), Some(i)) = (self.open_block, index)
                    && open != i
                {
                    return Err(self.unreadable("a delta for a block other than the open one"));
                }
            }
            "content_block_stop" if self.open_block == index => self.open_block = None,
            _ => {}
        }
        Ok(())
    }

    /// Whether the event starts a block or output item that is not text.
    fn starts_other_than_text(&self, ty: &str, json: &Value) -> bool {
        match (self.dialect, ty) {
            (Dialect::Messages, "content_block_start") => {
                json["content_block"]["type"].as_str() != Some("text")
            }
            (Dialect::Responses, "response.output_item.added") => {
                json["item"]["type"].as_str() != Some("message")
            }
            _ => false,
        }
    }

    /// Decides all the held text of the open text channel (keeping its end as context).
    fn settle_text(&mut self) -> Result<(), ErrorBody> {
        let joined = self.chans.iter().position(|c| {
            !c.done && c.key.kind == ChanKind::Text && c.key.group == super::events::JOINED
        });
        match joined {
            Some(c) if !self.chans[c].pending.is_empty() => self.scan(c, true),
            _ => Ok(()),
        }
    }

    /// The event's delta when it is a Messages `content_block_delta` of the common shape, read
    /// without a tree; its span is in `text` (the event's raw bytes). `None` otherwise.
    fn fast_delta(&self, text: &str, name: Option<&str>, data: &str) -> Option<FastDelta> {
        if self.dialect != Dialect::Messages || name.is_some_and(|n| n != "content_block_delta") {
            return None;
        }
        // Only data that lies in the event (one `data:` line, not several joined) can be
        // spliced into.
        let at = (data.as_ptr() as usize)
            .checked_sub(text.as_ptr() as usize)
            .filter(|at| at + data.len() <= text.len())?;
        let mut fast = messages_delta(data.as_bytes())?;
        fast.span = fast.span.start + at..fast.span.end + at;
        Some(fast)
    }

    /// Queues a delta read by [`Self::fast_delta`]: what [`Self::take`] does for one delta,
    /// without the tree.
    fn take_delta(&mut self, mut item: Item, fast: FastDelta) -> Result<(), ErrorBody> {
        if !self.known {
            self.now_known();
        }
        self.check_block("content_block_delta", Some(fast.index))?;
        self.add_part(&mut item, fast.chan, fast.text, Site::Span(fast.span))?;
        self.hold(item)
    }

    /// An event of a known API came: the texts continued by path so far are complete (the
    /// events after them are read in their API).
    fn now_known(&mut self) {
        self.known = true;
        for c in &mut self.chans {
            if c.key.group == CONTINUED {
                c.done = true;
            }
        }
    }

    /// Reads an event agw does not recognise, of a stream none of whose events it recognised
    /// so far, as pieces of texts continued by path (see [`leaves`](crate::guard::leaves)):
    /// each string a delta of the text at its path, held back and masked as text deltas are.
    /// `false` for an event with no such piece (or too many), read as a JSON document instead.
    /// A tool call beside the pieces (or only a key named `input` or `arguments`) is checked
    /// with the event's other strings; it no longer stops the pieces from being joined
    /// (fourteenth session's review: `{"content": …, "input": ""}` turned joining off).
    fn continue_texts(&mut self, item: &mut Item, json: &Value) -> Result<bool, ErrorBody> {
        use crate::guard::leaves::{MAX_PIECES, is_token_path};
        let found = crate::guard::leaves::leaves(json);
        if found.ambiguous {
            return Err(self.unreadable("a part's `thought` that is not true or false"));
        }
        // Only strings where servers stream tokens are pieces; an event with none of them,
        // or with more than a few, is a document, read on its own (regression round).
        let (pieces, rest): (Vec<_>, Vec<_>) = found
            .leaves
            .into_iter()
            .partition(|l| is_token_path(&l.pointer));
        if pieces.is_empty() || pieces.len() > MAX_PIECES {
            return Ok(false);
        }
        if !rest.is_empty() || found.tool {
            // Its other strings and its tool calls: read as the event's own, the pieces
            // blanked out.
            let mut other = json.clone();
            for p in &pieces {
                if let Some(v) = other.pointer_mut(&p.pointer) {
                    *v = Value::String(String::new());
                }
            }
            self.generic(item, &other.to_string(), found.tool, false)?;
        }
        for leaf in pieces {
            let path = crate::guard::leaves::text_path(&leaf.pointer, leaf.thought, leaf.candidate);
            let key = continued(&path, leaf.signed);
            let open = |c: &Chan| c.key.group == CONTINUED && !c.done;
            if !self.chans.iter().any(|c| open(c) && c.key == key)
                && self.chans.iter().filter(|c| open(c)).count() >= MAX_CONTINUED
            {
                // Too many texts at once: the oldest is complete (decided in full).
                if let Some(c) = self.chans.iter_mut().find(|c| open(c)) {
                    c.done = true;
                }
            }
            self.add_part(item, key, leaf.text, Site::Pointer(leaf.pointer))?;
        }
        Ok(true)
    }

    /// Adds a delta of `item` to its channel (a tool call's input is gathered, within
    /// [`MAX_TOOL_INPUT`](crate::guard::MAX_TOOL_INPUT)), to be decided with the channel's text.
    fn add_part(
        &mut self,
        item: &mut Item,
        key: ChanKey,
        text: String,
        site: Site,
    ) -> Result<(), ErrorBody> {
        if !text.is_empty() && self.ended {
            // A client may still show it, but it would be read without the text it follows.
            return Err(self.unreadable("a delta after the message ended"));
        }
        let c = self.chan(key);
        let chan = &mut self.chans[c];
        if chan.key.kind.is_tool() {
            chan.input.extend_from_slice(text.as_bytes());
            if chan.input.len() > crate::guard::MAX_TOOL_INPUT {
                return Err(self.tool_input_too_large());
            }
            if self.open_tool.is_none() {
                self.open_tool = Some(c);
                item.waits = Some(c);
            }
        }
        self.chans[c].held += text.len();
        self.chans[c]
            .pending
            .push_back((item.seq, item.parts.len()));
        item.parts.push(Part {
            text,
            site,
            ready: false,
            changed: false,
        });
        Ok(())
    }

    fn tool_input_too_large(&mut self) -> ErrorBody {
        let rule: Arc<str> = "agw:tool-input".into();
        let err = ErrorBody::new(
            ErrorKind::InvalidRequest,
            "agw blocked a tool call whose input is too large to check",
        );
        self.reject(rule, err)
    }

    /// Queues an event, within [`MAX_HELD`].
    fn hold(&mut self, item: Item) -> Result<(), ErrorBody> {
        self.held_bytes += item.raw.len();
        self.queue.push_back(item);
        if self.held_bytes > MAX_HELD {
            return Err(self.held_too_much("too much of it is held back"));
        }
        Ok(())
    }

    /// Ends the stream: what it holds back cannot be inspected within bounds (`why`).
    fn held_too_much(&mut self, why: &str) -> ErrorBody {
        let err = ErrorBody::new(
            ErrorKind::BadGateway,
            format!("agw could not inspect the provider's stream: {why}"),
        );
        self.reject("agw:held-too-much".into(), err)
    }

    /// The channel for `key`, opened if new.
    fn chan(&mut self, key: ChanKey) -> usize {
        if let Some(i) = self.chans.iter().position(|c| c.key == key && !c.done) {
            return i;
        }
        // A new text block reads on from where the last one ended.
        let chained = key.kind == ChanKind::Text
            && key.group != CONTINUED
            && matches!(self.dialect, Dialect::Messages | Dialect::Responses);
        let sent_tail = if chained {
            std::mem::take(&mut self.text_tail)
        } else {
            String::new()
        };
        self.chans.push(Chan {
            key,
            name: String::new(),
            done: false,
            sent_tail,
            base: 0,
            live: Live::default(),
            pending: VecDeque::new(),
            input: Vec::new(),
            open: None,
            held: 0,
            name_hits: 0,
        });
        self.chans.len() - 1
    }

    /// Inspects an event that is not a delta as a JSON document: masks in place or rejects.
    /// With `may_rewrite` false (the event's text is read as deltas, which are rewritten in
    /// place), a mask is refused: the stream ends with an error rather than going out unmasked.
    fn generic(
        &mut self,
        item: &mut Item,
        data: &str,
        check_tools: bool,
        may_rewrite: bool,
    ) -> Result<(), ErrorBody> {
        let mut walked = match walk(data.as_bytes()) {
            Ok(w) => w,
            Err(e) => return Err(self.unreadable(&e.to_string())),
        };
        if walked.text.segs.is_empty()
            && walked.reasoning.segs.is_empty()
            && walked.tools.is_empty()
        {
            return Ok(());
        }
        if !check_tools {
            walked.tools.clear();
        }
        let verdict = self.policy.decide_walked(data.as_bytes(), walked);
        for h in verdict.hits() {
            if h.action != ActionKind::Reject {
                self.hits.push(StreamHit {
                    rule: h.rule.clone(),
                    action: h.action,
                });
            }
        }
        match verdict.into_decision() {
            Decision::Allow => Ok(()),
            Decision::Reject(r) => Err(self.reject(r.rule.clone(), r.error_body())),
            Decision::Rewrite(_) if !may_rewrite => Err(self.unreadable(
                "it has something to mask beside its text, which cannot be masked together \
                 with it",
            )),
            Decision::Rewrite(masked) => {
                let masked = String::from_utf8_lossy(&masked);
                let mut raw = String::with_capacity(masked.len() + 32);
                if let Some(n) = &item.name {
                    raw.push_str("event: ");
                    raw.push_str(n);
                    raw.push('\n');
                }
                // Data that came on several lines (joined by line feeds) goes out on as many
                // `data:` lines: a line without the field would be dropped by the client.
                for line in masked.split('\n') {
                    raw.push_str("data: ");
                    raw.push_str(line);
                    raw.push('\n');
                }
                raw.push('\n');
                item.raw = Bytes::from(raw);
                Ok(())
            }
        }
    }

    /// Marks channels complete; checks completed tool calls.
    fn complete(&mut self, which: Completes) -> Result<(), ErrorBody> {
        if which == Completes::All {
            self.ended = true;
        }
        // A chat choice's `finish_reason` completes its tool calls; its text is read on until
        // the stream ends (some servers send more text after it, or a `finish_reason` on every
        // chunk: a client appends it to the choice).
        let chat = matches!(self.dialect, Dialect::Chat | Dialect::Legacy);
        for c in 0..self.chans.len() {
            let chan = &self.chans[c];
            let hit = match which {
                Completes::Nothing => false,
                Completes::All => true,
                Completes::Group(g) => chan.key.group == g && (!chat || chan.key.kind.is_tool()),
            };
            if !hit || chan.done {
                continue;
            }
            self.chans[c].done = true;
            if self.chans[c].key.kind.is_tool() {
                self.check_tool(c)?;
                if self.open_tool == Some(c) {
                    self.open_tool = None;
                }
            }
        }
        Ok(())
    }

    /// A tool call is complete: the tool rules and the text rules decide on its whole input.
    fn check_tool(&mut self, c: usize) -> Result<(), ErrorBody> {
        let chan = &self.chans[c];
        // Free-form input is checked as the JSON string it is.
        let free = chan.key.kind == ChanKind::ToolText;
        let quoted;
        let input: &[u8] = if free {
            quoted = serde_json::to_string(&*String::from_utf8_lossy(&chan.input))
                .expect("a string serialises");
            quoted.as_bytes()
        } else if chan.input.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &chan.input
        };
        // The text rules read the input as a tool input (every string, masked in place).
        let wrap = |input: &[u8], closers: &[u8]| {
            let mut doc = Vec::with_capacity(input.len() + closers.len() + 10);
            doc.extend_from_slice(b"{\"input\":");
            doc.extend_from_slice(input);
            doc.extend_from_slice(closers);
            doc.push(b'}');
            doc
        };
        let mut doc = wrap(input, b"");
        // What closes an input cut short (the model's token limit hit mid-call), as clients'
        // partial-JSON readers complete it: read as completed, and a masked one goes out
        // without the closers (thirteenth review: such a stream had ended with an error event,
        // and the stop reason, usage and the call were lost).
        let mut closers = Vec::new();
        // What completing it left out (a partial escape, literal or exponent, a dangling
        // comma): kept as sent after a mask.
        let mut tail: &[u8] = b"";
        let walked = match walk(&doc) {
            Ok(w) => w,
            Err(e) => {
                let completed = (!free).then(|| crate::json::cut::complete(input)).flatten();
                let walked = completed.and_then(|c| {
                    let cut = wrap(&input[..c.kept], &c.closers);
                    let walked = walk(&cut).ok()?;
                    doc = cut;
                    closers = c.closers;
                    tail = &input[c.kept..];
                    Some(walked)
                });
                match walked {
                    Some(w) => w,
                    None => {
                        // No JSON, cut short or not: a rule naming the tool refuses it with
                        // its own answer (`agw:tool-input`), as before; else it is unreadable.
                        if let Some(hit) = self.policy.check_tool_call(&self.chans[c].name, input)
                            && let Some((status, message)) = hit.reject
                        {
                            let err = ErrorBody::new(ErrorKind::InvalidRequest, message)
                                .with_status(status);
                            return Err(self.reject(hit.rule, err));
                        }
                        let what = format!("a tool call's input is not valid JSON ({e})");
                        return Err(self.unreadable(&what));
                    }
                }
            }
        };
        // The tool rules decide on the input as read (completed, if it was cut short: a rule
        // naming the tool had refused a cut call as not JSON; second round).
        let read = &doc[9..doc.len() - 1];
        if let Some(hit) = self.policy.check_tool_call(&self.chans[c].name, read) {
            match hit.reject {
                Some((status, message)) => {
                    let err =
                        ErrorBody::new(ErrorKind::InvalidRequest, message).with_status(status);
                    return Err(self.reject(hit.rule, err));
                }
                None => self.hits.push(StreamHit {
                    rule: hit.rule,
                    action: hit.action,
                }),
            }
        }
        let verdict = self.policy.decide_walked(&doc, walked);
        for h in verdict.hits() {
            if h.action != ActionKind::Reject {
                self.hits.push(StreamHit {
                    rule: h.rule.clone(),
                    action: h.action,
                });
            }
        }
        let masked = match verdict.into_decision() {
            Decision::Allow => None,
            Decision::Reject(r) => return Err(self.reject(r.rule.clone(), r.error_body())),
            Decision::Rewrite(m) => {
                let m = String::from_utf8_lossy(&m[9..m.len() - 1]).into_owned();
                if free {
                    // Back from the JSON string to the text the deltas carry.
                    match serde_json::from_str::<String>(&m) {
                        Ok(text) => Some(text),
                        Err(e) => {
                            return Err(self.unreadable(&format!("a masked tool input ({e})")));
                        }
                    }
                } else {
                    match m.strip_suffix(&*String::from_utf8_lossy(&closers)) {
                        Some(m) => Some(format!("{m}{}", String::from_utf8_lossy(tail))),
                        None => return Err(self.unreadable("a masked tool input cut short")),
                    }
                }
            }
        };
        self.chans[c].held = 0;
        let pending: Vec<(u64, usize)> = self.chans[c].pending.drain(..).collect();
        let front = self.queue.front().map_or(0, |i| i.seq);
        for (n, (seq, pi)) in pending.into_iter().enumerate() {
            let part = &mut self.queue[(seq - front) as usize].parts[pi];
            part.ready = true;
            if let Some(m) = &masked {
                part.text = if n == 0 { m.clone() } else { String::new() };
                part.changed = true;
            }
        }
        Ok(())
    }

    /// Whether channel `c`'s text is held by a match found still growing at a recent scan,
    /// which need not be looked at again yet. Reading the held text again for every event
    /// would cost time quadratic in a long secret (a 16 KB JWT at a byte per event took
    /// seconds): a match found open is held without a look until the text after its start has
    /// doubled, and at least 64 bytes more have come. Holding it past its end changes no mask
    /// (nothing is decided meanwhile, and the next look reads all of it); a reject rule's
    /// match behind it is found at that look, before any of it goes out; `MAX_OPEN_MATCH` is
    /// checked on a fresh look.
    fn still_open(&self, c: usize) -> bool {
        let chan = &self.chans[c];
        let Some((o, checked)) = chan.open else {
            return false;
        };
        let end = chan.base + chan.sent_tail.len() + chan.held;
        o >= chan.base + chan.sent_tail.len()
            && end - o < (2 * (checked - o)).max(checked - o + 64)
            && end - o <= MAX_OPEN_MATCH.max(self.window)
    }

    fn scan_all(&mut self, all: bool) -> Result<(), ErrorBody> {
        for c in 0..self.chans.len() {
            if !self.chans[c].key.kind.is_tool() && !self.chans[c].pending.is_empty() {
                let force = all || self.chans[c].done;
                self.scan(c, force)?;
            }
        }
        Ok(())
    }

    /// Scans a text or reasoning channel: the decided tail plus all its held text. Rejects at
    /// once on a rejecting match; decides (and masks) the parts nothing later can change.
    ///
    /// A part is decided once the text after it cannot change what matches in it: it ends
    /// before the earliest position where a match could still be growing (see
    /// [`prefix`](super::prefix)), or at least `window` bytes before the end — but never after
    /// the start of a key, token or key block still growing ([`MAX_OPEN_MATCH`]).
    fn scan(&mut self, c: usize, force: bool) -> Result<(), ErrorBody> {
        if !force && self.still_open(c) {
            return Ok(());
        }
        let front = self.queue.front().map_or(0, |i| i.seq);
        let chan = &self.chans[c];
        let maskable = chan.key.kind == ChanKind::Text;
        let (mut window, mut starts) = std::mem::take(&mut self.scratch);
        window.clear();
        window.push_str(&chan.sent_tail);
        let held_start = window.len();
        // (seq, part, start in window)
        starts.clear();
        for &(seq, pi) in &chan.pending {
            starts.push((seq, pi, window.len()));
            window.push_str(&self.queue[(seq - front) as usize].parts[pi].text);
        }
        let end = window.len();
        let plain = !plain_needs_normalization(&window);
        let mut norm = Vec::new();
        let mut map = Vec::new();
        if !plain {
            normalize_plain(&window, &mut norm, &mut map);
        }
        let text = if plain { window.as_bytes() } else { &norm[..] };
        let source = |i: usize| if plain { i..i + 1 } else { map[i].clone() };
        let hold = if force {
            end
        } else {
            // Text before the window's start is released whatever could still match there,
            // so the automaton need not try start positions before it. The window counts the
            // text rules read: characters normalising drops (zero-width ones, say) take no
            // room in it, so padding a secret with them does not push its start out
            // (`MAX_HELD` bounds the bytes held).
            let floor = if plain {
                end.saturating_sub(self.window)
            } else {
                match norm.len().checked_sub(self.window) {
                    Some(n) if n > 0 => map[n].start,
                    _ => 0,
                }
            };
            if end - floor > padded_limit(self.window) {
                // The window's text is mostly characters normalising drops: no model writes
                // that, and reading it again for every event would cost time quadratic in
                // it. The stream ends (found by the review of the padding fix).
                self.scratch = (window, starts);
                return Err(self.held_too_much("its text is padded with invisible characters"));
            }
            let from = if plain {
                floor
            } else {
                map.partition_point(|r| r.start < floor)
            };
            let prefixes = self.policy.prefixes();
            let chan = &mut self.chans[c];
            let h = if plain {
                let h = prefixes.hold_live(&mut self.cache, &mut chan.live, text, chan.base, from);
                debug_assert_eq!(h, prefixes.hold_from(&mut self.cache, text, from));
                h
            } else {
                // Normalising may change text already read: no live states across it.
                chan.live.reset();
                prefixes.hold_from(&mut self.cache, text, from)
            };
            let h = if h >= text.len() {
                end
            } else {
                source(h).start
            };
            let h = h.max(floor);
            if floor <= held_start {
                // The automaton read every start in the held text, and its patterns are
                // broader than a secret still growing: `h` is at or before any.
                h
            } else {
                // A key, token or key block still growing is held from its start, whatever
                // the window (within `MAX_OPEN_MATCH`): released in part, its start would go
                // out in clear or its end not be recognised.
                let held_from = if plain {
                    held_start
                } else {
                    map.partition_point(|r| r.start < held_start)
                };
                let open = prefixes.open_start(text, held_from);
                // Remembered, so the next events need not read the held text again (see
                // `still_open`).
                chan.open = open
                    .filter(|_| plain)
                    .map(|o| (chan.base + o, chan.base + end));
                match open {
                    Some(o) if end - source(o).start > MAX_OPEN_MATCH.max(self.window) => {
                        self.scratch = (window, starts);
                        let why = "a secret in its text is too long to check";
                        return Err(self.held_too_much(why));
                    }
                    Some(o) => h.min(source(o).start),
                    None => h,
                }
            }
        };
        let found = if end > held_start {
            self.policy.find_in_text(text)
        } else {
            Vec::new()
        };
        // What JSON escapes in the text spell out (structured output a client parses) is
        // read too; it cannot be masked where it is written (see `Policy::escaped_match`).
        if end > held_start
            && let Some(rule) = self.policy.escaped_match(text)
        {
            let r = crate::guard::response::escaped_refusal(rule);
            self.scratch = (window, starts);
            return Err(self.reject(r.rule.clone(), r.error_body()));
        }
        // A whole-word match that ends where the text read so far ends may not be one: the
        // next delta can go on with the word (`The kill` + `er whale`). It is decided with
        // what follows, or when the text is complete (twelfth session's differential test:
        // a delta's end counted as a word's).
        let open_word = |m: &crate::guard::TextMatch<'_>| {
            !force && m.whole_word && m.range.end == text.len() && !m.range.is_empty()
        };
        let hold = (found.iter())
            .filter(|m| open_word(m))
            .map(|m| source(m.range.start).start)
            .fold(hold, usize::min);
        // Parts that end before the hold point are decided now.
        let ready = starts
            .iter()
            .enumerate()
            .take_while(|(n, _)| starts.get(n + 1).map_or(end, |s| s.2) <= hold)
            .count();
        let cut = starts.get(ready).map_or(end, |s| s.2);
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        let mut reject = None;
        if end > held_start {
            for m in &found {
                if m.range.is_empty() || open_word(m) {
                    continue;
                }
                let start = source(m.range.start).start;
                let stop = source(m.range.end - 1).end;
                if stop <= held_start {
                    continue; // Seen, and dealt with, before it was decided.
                }
                if let Action::Reject { status, message } = m.action {
                    let err = ErrorBody::new(ErrorKind::InvalidRequest, message.clone())
                        .with_status(*status);
                    reject = Some((m.rule.clone(), err));
                    break;
                }
                if start >= cut {
                    continue; // Decided when the text it starts in is.
                }
                if !maskable && m.action.kind() == ActionKind::Mask {
                    // Signed reasoning is not rewritten: what a mask rule finds in it ends
                    // the stream, as in a tool's name (seventh red-team review).
                    let r = crate::guard::response::signed_reasoning_refusal(m.rule.clone());
                    reject = Some((r.rule.clone(), r.error_body()));
                    break;
                }
                self.hits.push(StreamHit {
                    rule: m.rule.clone(),
                    action: m.action.kind(),
                });
                if maskable && matches!(m.action, Action::Mask { .. }) {
                    edits.push((start.max(held_start), stop, m.placeholder().to_owned()));
                }
            }
        }
        if let Some((rule, err)) = reject {
            return Err(self.reject(rule, err));
        }
        let edited = !edits.is_empty();
        self.apply(&window, &starts, front, edits);
        // Move the decided parts into the sent tail.
        let chan = &mut self.chans[c];
        if edited {
            // The automaton read the text before the masks, and the open match was found
            // in it: both start again.
            chan.live.reset();
            chan.open = None;
        }
        for &(seq, pi, _) in &starts[..ready] {
            chan.pending.pop_front();
            let part = &mut self.queue[(seq - front) as usize].parts[pi];
            part.ready = true;
            chan.sent_tail.push_str(&part.text);
        }
        let queue = &self.queue;
        chan.held = (chan.pending.iter())
            .map(|&(seq, pi)| queue[(seq - front) as usize].parts[pi].text.len())
            .sum();
        if force && chan.done {
            chan.base += chan.sent_tail.len();
            chan.live.reset();
            chan.open = None;
            if maskable && chan.key.group != CONTINUED {
                // The channel has ended: its end is the next one's context.
                keep_tail(&mut chan.sent_tail, self.window);
                std::mem::swap(&mut chan.sent_tail, &mut self.text_tail);
            }
            chan.sent_tail.clear();
        } else {
            chan.base += keep_tail(&mut chan.sent_tail, self.window);
        }
        self.scratch = (window, starts);
        Ok(())
    }

    /// Rebuilds each held part's text with the edits that fall in it: the placeholder goes
    /// where a match starts, the rest of a match spanning parts is removed.
    fn apply(
        &mut self,
        window: &str,
        starts: &[(u64, usize, usize)],
        front: u64,
        mut edits: Vec<(usize, usize, String)>,
    ) {
        if edits.is_empty() {
            return;
        }
        // Overlapping matches (a token inside what another detector reads as an address) are
        // masked as their union, the earlier one's placeholder first, as `edit::apply` does
        // for a response that is not streamed.
        edits.sort_by_key(|e| (e.0, e.1));
        edits.dedup_by(|later, kept| {
            let overlaps = later.0 < kept.1;
            if overlaps {
                kept.1 = kept.1.max(later.1);
            }
            overlaps
        });
        for (n, &(seq, pi, start)) in starts.iter().enumerate() {
            let end = starts.get(n + 1).map_or(window.len(), |s| s.2);
            let mut new = String::new();
            let mut at = start;
            let mut changed = false;
            for (es, ee, ph) in &edits {
                let (s, e) = ((*es).max(start), (*ee).min(end));
                if s >= e || s < at {
                    continue;
                }
                new.push_str(&window[at..s]);
                if *es >= start {
                    new.push_str(ph);
                }
                at = e;
                changed = true;
            }
            if changed {
                new.push_str(&window[at..end]);
                let part = &mut self.queue[(seq - front) as usize].parts[pi];
                part.text = new;
                part.changed = true;
            }
        }
    }

    /// Sends queued events, in order, up to the first that is still held.
    fn release(&mut self, out: &mut Vec<Bytes>) {
        while let Some(item) = self.queue.front() {
            let waiting = item.waits.is_some_and(|c| {
                self.chans
                    .get(c)
                    .is_some_and(|ch| !ch.done || !ch.pending.is_empty())
            });
            if waiting || item.parts.iter().any(|p| !p.ready) {
                break;
            }
            let item = self.queue.pop_front().expect("peeked");
            self.held_bytes -= item.raw.len();
            if self.dialect == Dialect::Responses {
                match self.resynced(item) {
                    Ok(bytes) => out.push(bytes),
                    Err(why) => {
                        let err = self.unreadable(why);
                        self.stop(&err, out);
                        return;
                    }
                }
                continue;
            }
            out.push(self.serialize(item));
        }
        if self.queue.is_empty() {
            // Channel indexes are only kept while events refer to them.
            if self.open_tool.is_none() {
                self.chans.retain(|c| !c.done);
            }
        }
    }

    /// [`serialize`](Self::serialize) for a Responses stream, recording its text deltas and
    /// rewriting the events that repeat them ([`Resync`]).
    fn resynced(&mut self, item: Item) -> Result<Bytes, &'static str> {
        if let (Some(json), Some(part)) = (&item.json, item.parts.first())
            && matches!(
                json["type"].as_str(),
                Some("response.output_text.delta" | "response.refusal.delta")
            )
            && let Some(raw) = json["delta"].as_str()
        {
            let index = |v: &Value| v.as_u64().unwrap_or(0);
            let at = (index(&json["output_index"]), index(&json["content_index"]));
            let sent = if part.changed {
                part.text.as_str()
            } else {
                raw
            };
            self.sent_parts.delta(at, raw, sent);
            return Ok(self.serialize(item));
        }
        let out = self.serialize(item);
        Ok(self.sent_parts.event(&out)?.unwrap_or(out))
    }

    fn serialize(&self, item: Item) -> Bytes {
        if !item.parts.iter().any(|p| p.changed) {
            return item.raw;
        }
        if let Some(out) = splice_pointers(&item) {
            return out;
        }
        let Some(mut json) = item.json else {
            // Read without a tree: each changed string replaces its old bytes, the rest of the
            // event stays as sent.
            let mut out = Vec::with_capacity(item.raw.len());
            let mut at = 0;
            for p in item.parts.iter().filter(|p| p.changed) {
                let Site::Span(span) = &p.site else {
                    unreachable!("an event read without a tree has spans")
                };
                out.extend_from_slice(&item.raw[at..span.start]);
                out.extend_from_slice(
                    serde_json::to_string(&p.text)
                        .expect("a string serializes")
                        .as_bytes(),
                );
                at = span.end;
            }
            out.extend_from_slice(&item.raw[at..]);
            return Bytes::from(out);
        };
        for p in item.parts.iter().filter(|p| p.changed) {
            let path = match &p.site {
                Site::Path(path) => path,
                Site::Pointer(pointer) => {
                    if let Some(v) = json.pointer_mut(pointer) {
                        *v = Value::String(p.text.clone());
                    }
                    continue;
                }
                Site::Span(_) => unreachable!("an event read as a tree has paths"),
            };
            let mut v = &mut json;
            for step in path {
                v = match step {
                    Step::Key(k) => &mut v[*k],
                    Step::Index(i) => &mut v[*i],
                };
            }
            *v = Value::String(p.text.clone());
        }
        Bytes::from(match &item.name {
            Some(n) => format!("event: {n}\ndata: {json}\n\n"),
            None => format!("data: {json}\n\n"),
        })
    }

    /// The event that ends this stream with `err`, in its dialect's shape.
    fn error_event(&self, err: &ErrorBody) -> Bytes {
        use crate::dialect::{anthropic, openai_chat, openai_responses};
        Bytes::from(match self.dialect {
            Dialect::Responses => openai_responses::error_event(err),
            d if d.is_anthropic() => anthropic::error_event(err),
            _ => openai_chat::error_event(err),
        })
    }
}

/// An event whose changed strings are at JSON pointers (texts continued by path), with each
/// spliced in over its old bytes: the rest of the event is forwarded as it came. `None` when
/// the event's data is not one slice of it (several `data:` lines) or a string is not found:
/// then the event is written anew from its tree.
fn splice_pointers(item: &Item) -> Option<Bytes> {
    let text = std::str::from_utf8(&item.raw).ok()?;
    let data = fields(text).ok()?.data;
    let at = (data.as_ptr() as usize)
        .checked_sub(text.as_ptr() as usize)
        .filter(|at| at + data.len() <= text.len())?;
    let mut edits = Vec::new();
    for p in item.parts.iter().filter(|p| p.changed) {
        let Site::Pointer(pointer) = &p.site else {
            return None;
        };
        let span = crate::guard::leaves::span_at(data.as_bytes(), pointer)?;
        edits.push((span.start + at..span.end + at, &p.text));
    }
    edits.sort_by_key(|e| e.0.start);
    let mut out = Vec::with_capacity(item.raw.len() + 32);
    let mut from = 0;
    for (span, text) in edits {
        if span.start < from {
            return None;
        }
        out.extend_from_slice(&item.raw[from..span.start]);
        out.extend_from_slice(
            serde_json::to_string(text)
                .expect("a string serializes")
                .as_bytes(),
        );
        from = span.end;
    }
    out.extend_from_slice(&item.raw[from..]);
    Some(Bytes::from(out))
}

/// Most raw bytes a window of `window` bytes of normalised text may span: real text stays far
/// below (a character is at most 4 bytes, a few marks on it more); beyond this, the text is
/// padded with characters normalising drops.
fn padded_limit(window: usize) -> usize {
    window.saturating_mul(16).max(4096)
}

/// Keeps the end of `s` that holds its last `n` bytes of text as rules read it (normalised:
/// characters normalising drops take no room), within [`padded_limit`]; returns how many bytes
/// were cut.
fn keep_tail(s: &mut String, n: usize) -> usize {
    if s.len() <= n || !plain_needs_normalization(s) {
        return keep_last(s, n);
    }
    let pre = if s.len() > padded_limit(n) {
        keep_last(s, padded_limit(n))
    } else {
        0
    };
    let (mut norm, mut map) = (Vec::new(), Vec::new());
    normalize_plain(s, &mut norm, &mut map);
    let mut cut = match norm.len().checked_sub(n) {
        Some(k) if k > 0 => map[k].start,
        _ => 0,
    };
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.drain(..cut);
    pre + cut
}

/// Keeps the last `n` bytes of `s` (fewer, to start on a character); returns how many were cut.
fn keep_last(s: &mut String, n: usize) -> usize {
    let mut cut = s.len().saturating_sub(n);
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s.drain(..cut);
    cut
}

#[cfg(test)]
mod tests;

/// Sets the string at `path` in `v` to "" (nothing when the path is not there).
fn blank(v: &mut Value, path: &[Step]) {
    let mut at = v;
    for step in path {
        let next = match step {
            Step::Key(k) => at.get_mut(*k),
            Step::Index(i) => at.get_mut(*i),
        };
        let Some(next) = next else {
            return;
        };
        at = next;
    }
    if at.is_string() {
        *at = Value::String(String::new());
    }
}

/// Fields of a delta event that carry no text a client shows: identifiers, names of types,
/// roles, a finish reason, a tool's name (checked with its call), Responses' random padding.
/// A chat delta's own `name` (a participant's) is text ([`super::events`]); so is a
/// `stop_reason`, which vLLM fills with the stop string that matched.
pub(super) const NOT_TEXT: [&str; 11] = [
    "id",
    "object",
    "model",
    "system_fingerprint",
    "type",
    "role",
    "finish_reason",
    "service_tier",
    "item_id",
    "name",
    "obfuscation",
];

/// Whether `v` has a non-empty string other than its deltas' and those of [`NOT_TEXT`] keys.
fn has_other_strings(v: &Value, deltas: &[super::events::Delta]) -> bool {
    /// One step of the path walked so far.
    #[derive(Clone, Copy)]
    enum At<'a> {
        Key(&'a str),
        Index(usize),
    }
    fn is_delta(at: &[At<'_>], deltas: &[super::events::Delta]) -> bool {
        deltas.iter().any(|d| {
            d.path.len() == at.len()
                && d.path.iter().zip(at).all(|(step, at)| match (step, at) {
                    (Step::Key(k), At::Key(a)) => k == a,
                    (Step::Index(i), At::Index(a)) => i == a,
                    _ => false,
                })
        })
    }
    fn any<'a>(v: &'a Value, at: &mut Vec<At<'a>>, deltas: &[super::events::Delta]) -> bool {
        let under = |step: At<'a>, v: &'a Value, at: &mut Vec<At<'a>>| {
            at.push(step);
            let found = any(v, at, deltas);
            at.pop();
            found
        };
        match v {
            Value::String(s) => !s.is_empty() && !is_delta(at, deltas),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .any(|(i, v)| under(At::Index(i), v, at)),
            Value::Object(o) => o.iter().any(|(k, v)| {
                !(v.is_string() && NOT_TEXT.contains(&k.as_str())) && under(At::Key(k), v, at)
            }),
            _ => false,
        }
    }
    any(v, &mut Vec::new(), deltas)
}
