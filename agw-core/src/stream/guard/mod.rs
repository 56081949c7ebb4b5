//! The stream guard: reads every event, holds back only what could still become a match or a
//! tool call not yet checked, masks, or cuts the stream off.
//!
//! This file holds the guard's state and its public face ([`StreamGuard::event`],
//! [`StreamGuard::finish`]); `intake` reads each event into the channels it adds text to,
//! `scan` matches the held text and checks complete tool calls, `release` lets events go
//! (masked ones written back in their dialect), and `resync` keeps a Responses stream's closing
//! events in step with the deltas that were masked.

use super::events::{ChanKey, Completes, Dialect, Step};
use super::prefix::Live;
use crate::api::{Api, ErrorBody, ErrorKind};
use crate::guard::{ActionKind, Policy};
use crate::route::RouteKind;
use bytes::Bytes;
use regex_automata::hybrid::dfa::Cache;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

mod intake;
mod release;
mod resync;
mod scan;

use resync::Resync;

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
    /// recognise are texts continued by path ([`CONTINUED`](super::events::CONTINUED)); after, such events are read
    /// one at a time, beside the known ones.
    known: bool,
    /// A Responses stream's text parts as streamed, by output item and content index: the
    /// text as it came and as it went out ([`Resync`]).
    sent_parts: Resync,
    /// A Messages stream's open content block ([`StreamGuard::check_block`]).
    open_block: Option<u64>,
    /// The last content block a Messages stream named, and whether it stopped
    /// ([`StreamGuard::check_block`]).
    last_block: Option<(u64, bool)>,
    /// The part of a Responses stream's output that its text last went to: (output index,
    /// content index) ([`StreamGuard::check_text_order`]).
    text_at: Option<(u64, u64)>,
    /// Channels that completed (a tool call, a reasoning part, a followed path): a piece for
    /// one of them later ends the stream, as a client appends it to what agw decided whole.
    closed: std::collections::HashSet<ChanKey>,
    /// The dialect the client speaks, when the route names one: the shape of the error event
    /// whatever API the stream's events turn out to be.
    client: Option<Dialect>,
    /// The completions the request asked for, when known ([`StreamGuard::with_choices`]).
    choices: Option<u64>,
    /// The Gemini candidates the request asked for ([`StreamGuard::with_candidates`]).
    candidates: Option<u64>,
    /// Comments, `id`s, `retry`s and event names read in this stream (at most
    /// [`MAX_CLEAN_SIDES`]), each with whether its line is dropped: a keep-alive comment or
    /// an event name that comes again is not read again.
    clean_sides: Vec<(Box<str>, bool)>,
}

/// Most texts outside events' data remembered clean per stream ([`StreamGuard`]'s
/// `clean_sides`); past it, each is read every time it comes.
const MAX_CLEAN_SIDES: usize = 64;

/// Most bytes of events held back at once (a tool call's input and the events around it);
/// a stream that needs more ends with an error event.
pub const MAX_HELD: usize = 4 << 20;

/// Most bytes of a channel's text held back for one key, token or private key block still
/// growing (see [`StreamGuard`]'s module docs): a private key, line numbers and all, is a few
/// KB; a stream whose secret runs longer ends with an error event.
pub const MAX_OPEN_MATCH: usize = 16 << 10;

/// Most completed channels remembered (so that a piece continuing one ends the stream); a
/// stream that completes more ends with an error event.
pub(super) const MAX_CLOSED: usize = 4096;

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
            last_block: None,
            text_at: None,
            closed: Default::default(),
            client: match kind {
                RouteKind::Messages
                | RouteKind::Complete
                | RouteKind::Completions
                | RouteKind::LegacyCompletions
                | RouteKind::Responses
                | RouteKind::StoredResponses
                | RouteKind::StoredCompletions => Some(Dialect::of(kind, api)),
                _ => None,
            },
            choices: None,
            candidates: None,
            clean_sides: Vec::new(),
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
            // A rule refused this event (a tool call): the stream ends before it, so the text
            // held back is all a client gets, and is decided as at the stream's end (masked,
            // or refused). It goes out ahead of the error (the text before a refused tool
            // call); the refused call, waiting, does not. A stream agw cannot read as a client
            // does sends nothing held (fail closed).
            let unread = self
                .hits
                .last()
                .is_some_and(|h| matches!(&*h.rule, "agw:unreadable" | "agw:held-too-much"));
            if !unread {
                // (Not this event's parts, added before it failed.)
                let held = match (self.queue.front(), self.queue.back()) {
                    (Some(f), Some(b)) => f.seq..b.seq + 1,
                    _ => 0..0,
                };
                for c in &mut self.chans {
                    c.pending.retain(|(seq, _)| held.contains(seq));
                }
                if self.scan_all(true).is_ok() {
                    self.release(out);
                }
            } else {
                self.release(out);
            }
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

    /// Reads what an event carries outside its data (see [`super::sse::side_text`]): a hit of
    /// a rejecting rule ends the stream, an audit rule's is reported. A masking rule's hit
    /// ends the stream in an event name (the event is what it names); a comment, `id` or
    /// `retry` line with one is dropped (clients ignore comments, and no SDK acts on the
    /// others). Returns the event's text without the dropped lines, if any is.
    fn read_sides(&mut self, text: &str) -> Result<Option<Bytes>, ErrorBody> {
        let mut kept: Option<String> = None;
        let mut at = 0;
        for (line, whole) in super::sse::lines_with_ends(text) {
            let drop = match super::sse::side_text(line) {
                Some((side, is_name)) => self.read_side(side, is_name)?,
                None => false,
            };
            if drop {
                kept.get_or_insert_with(|| text[..at].to_owned());
            } else if let Some(k) = &mut kept {
                k.push_str(whole);
            }
            at += whole.len();
        }
        Ok(kept.map(|k| {
            if k.bytes().all(|b| b == b'\n' || b == b'\r') {
                // Nothing but the blank line that ended it: no event at all.
                Bytes::new()
            } else {
                Bytes::from(k)
            }
        }))
    }

    /// One text of [`StreamGuard::read_sides`]: whether its line is dropped.
    fn read_side(&mut self, side: &str, is_name: bool) -> Result<bool, ErrorBody> {
        if let Some((_, drop)) = self.clean_sides.iter().find(|(c, _)| **c == *side) {
            return Ok(*drop);
        }
        let what = if is_name {
            "an event name"
        } else {
            "a comment, `id` or `retry` line"
        };
        let verdict = self.policy.unrewritten_text(side, what);
        let mut drop = false;
        for h in verdict.hits() {
            match h.action {
                ActionKind::Audit => self.hits.push(StreamHit {
                    rule: h.rule.clone(),
                    action: h.action,
                }),
                ActionKind::Mask => drop = true,
                ActionKind::Reject => {}
            }
        }
        let reject = verdict
            .hits()
            .iter()
            .any(|h| h.action == ActionKind::Reject || (is_name && h.action == ActionKind::Mask));
        if reject && let crate::guard::Decision::Reject(r) = verdict.into_decision() {
            return Err(self.reject(r.rule.clone(), r.error_body()));
        }
        if self.clean_sides.len() < MAX_CLEAN_SIDES {
            self.clean_sides.push((side.into(), drop));
        }
        Ok(drop)
    }

    fn reject(&mut self, rule: Arc<str>, err: ErrorBody) -> ErrorBody {
        self.hits.push(StreamHit {
            rule,
            action: ActionKind::Reject,
        });
        err
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

#[cfg(test)]
mod tests;
