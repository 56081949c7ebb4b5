//! The stream guard: holds back text deltas, scans them, masks or cuts the stream off.

use super::sse::fields;
use crate::api::{Api, ErrorBody, ErrorKind};
use crate::guard::{Action, ActionKind, Policy};
use crate::json::{Scanner, needs_normalization, normalize_plain};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// A rule that matched in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHit {
    /// The rule's name.
    pub rule: Arc<str>,
    /// What it did.
    pub action: ActionKind,
}

#[derive(Debug)]
enum Item {
    /// An event passed on as it is.
    Raw(Bytes),
    /// A text delta, held back until it is safe to send.
    Delta {
        raw: Bytes,
        /// The event's data, parsed again only if masking changes the text.
        data: String,
        text: String,
        changed: bool,
    },
}

/// Guards one streamed response. Feed it complete events (from
/// [`SseDecoder`](super::SseDecoder)); it appends what may be sent to `out`. See the
/// [module docs](super).
#[derive(Debug)]
pub struct StreamGuard {
    policy: Policy,
    api: Api,
    window: usize,
    queue: VecDeque<Item>,
    /// The most recent text already sent, as context for matches that reach back into it.
    sent_tail: String,
    rejected: bool,
    hits: Vec<StreamHit>,
}

impl StreamGuard {
    /// A guard for a stream in `api`'s format that holds back `window` bytes of text.
    pub fn new(policy: Policy, api: Api, window: usize) -> Self {
        Self {
            policy,
            api,
            window: window.max(1),
            queue: VecDeque::new(),
            sent_tail: String::new(),
            rejected: false,
            hits: Vec::new(),
        }
    }

    /// The rules that matched so far.
    pub fn hits(&self) -> &[StreamHit] {
        &self.hits
    }

    /// Whether the stream was cut off by a rejecting rule.
    pub fn is_rejected(&self) -> bool {
        self.rejected
    }

    /// Takes one complete event; appends the events that may now be sent to `out`.
    pub fn event(&mut self, raw: Bytes, out: &mut Vec<Bytes>) {
        if self.rejected {
            return;
        }
        let (item, boundary) = self.classify(raw);
        self.queue.push_back(item);
        self.scan_and_release(boundary, out);
    }

    /// The stream ended: sends everything held back.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        if !self.rejected {
            self.scan_and_release(true, out);
        }
    }

    /// Sorts an event into a text delta or anything else, and says whether it ends a block
    /// (after which everything held back can go).
    fn classify(&self, raw: Bytes) -> (Item, bool) {
        let (name, data) = fields(&raw);
        match self.api {
            Api::Anthropic => {
                if data.contains("\"text_delta\"") {
                    if let Some(text) = anthropic_text(data.as_bytes()) {
                        let item = Item::Delta {
                            raw,
                            data,
                            text,
                            changed: false,
                        };
                        return (item, false);
                    }
                }
                let ends = matches!(
                    name,
                    Some("content_block_stop" | "message_delta" | "message_stop" | "error")
                );
                (Item::Raw(raw), ends)
            }
            Api::OpenAi => {
                if data.trim() == "[DONE]" {
                    return (Item::Raw(raw), true);
                }
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&data) {
                    let choice = &json["choices"][0];
                    let finished = !choice["finish_reason"].is_null();
                    let single = json["choices"].as_array().is_some_and(|c| c.len() == 1);
                    if let (true, Some(text)) = (single, choice["delta"]["content"].as_str()) {
                        let text = text.to_owned();
                        let item = Item::Delta {
                            raw,
                            data,
                            text,
                            changed: false,
                        };
                        return (item, finished);
                    }
                    return (Item::Raw(raw), finished);
                }
                (Item::Raw(raw), false)
            }
        }
    }

    /// Scans the sent tail plus all held text and rejects at once on a rejecting match; then
    /// sends what is safe (see [`release`](Self::release)), masking in it.
    ///
    /// A masking match is applied only when the text it starts in is sent. Until then more
    /// text can change which match wins — `card` in `credit ca` must wait for `credit card`
    /// — so held text stays as it came and is scanned again with each new delta.
    fn scan_and_release(&mut self, all: bool, out: &mut Vec<Bytes>) {
        let mut window = self.sent_tail.clone();
        let held_start = window.len();
        // Where each held delta's text starts in `window`.
        let mut starts = Vec::new();
        for (i, item) in self.queue.iter().enumerate() {
            if let Item::Delta { text, .. } = item {
                starts.push((i, window.len()));
                window.push_str(text);
            }
        }
        let (count, cut) = self.releasable(all, &starts, window.len());
        if window.len() > held_start {
            // Most text needs no normalisation: then text offsets are source offsets.
            let mut norm = Vec::new();
            let mut map = Vec::new();
            let plain = window.is_ascii() || !needs_normalization(window.as_bytes(), &mut '\0');
            if !plain {
                normalize_plain(&window, &mut norm, &mut map);
            }
            let text = if plain { window.as_bytes() } else { &norm[..] };
            let source = |i: usize| if plain { i..i + 1 } else { map[i].clone() };
            // Source ranges to mask, clipped to held text, with their placeholders.
            let mut edits: Vec<(usize, usize, String)> = Vec::new();
            for m in &self.policy.find_in_text(text) {
                if m.range.is_empty() {
                    continue;
                }
                let start = source(m.range.start).start;
                let end = source(m.range.end - 1).end;
                if end <= held_start {
                    continue; // Seen, and dealt with, before it was sent.
                }
                let reject = matches!(m.action, Action::Reject { .. });
                if !reject && start >= cut {
                    continue; // Decided when the text it starts in is sent.
                }
                self.hits.push(StreamHit {
                    rule: m.rule.clone(),
                    action: m.action.kind(),
                });
                match m.action {
                    Action::Reject { status, message } => {
                        let err = ErrorBody::new(ErrorKind::InvalidRequest, message.clone())
                            .with_status(*status);
                        out.push(self.error_event(&err));
                        self.rejected = true;
                        self.queue.clear();
                        return;
                    }
                    Action::Mask { .. } => {
                        edits.push((start.max(held_start), end, m.placeholder().to_owned()));
                    }
                    _ => {}
                }
            }
            self.apply(&window, &starts, edits);
        }
        self.release(count, all, out);
    }

    /// How many queued items can go now, and where the first held-back text starts in the
    /// scanned window: everything at a boundary, otherwise all but the last `window` bytes of
    /// held text (and the events queued before them).
    fn releasable(&self, all: bool, starts: &[(usize, usize)], end: usize) -> (usize, usize) {
        if all {
            return (self.queue.len(), end);
        }
        for (n, &(qi, at)) in starts.iter().enumerate() {
            // A delta goes once at least `window` bytes of text follow it.
            let after = starts.get(n + 1).map_or(end, |s| s.1);
            if end - after < self.window {
                return (qi, at);
            }
        }
        (self.queue.len(), end)
    }

    /// Rebuilds each held delta's text with the edits that fall in it: the placeholder goes
    /// where a match starts, the rest of a match spanning deltas is removed.
    fn apply(
        &mut self,
        window: &str,
        starts: &[(usize, usize)],
        mut edits: Vec<(usize, usize, String)>,
    ) {
        if edits.is_empty() {
            return;
        }
        edits.sort_by_key(|e| e.0);
        for (n, &(qi, start)) in starts.iter().enumerate() {
            let end = starts.get(n + 1).map_or(window.len(), |s| s.1);
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
                if let Some(Item::Delta {
                    text, changed: c, ..
                }) = self.queue.get_mut(qi)
                {
                    *text = new;
                    *c = true;
                }
            }
        }
    }

    /// Sends the first `count` queued items; at a boundary (`all`) forgets the sent text.
    fn release(&mut self, count: usize, all: bool, out: &mut Vec<Bytes>) {
        for _ in 0..count {
            match self.queue.pop_front().expect("counted") {
                Item::Raw(raw) => out.push(raw),
                Item::Delta {
                    raw,
                    data,
                    text,
                    changed,
                } => {
                    out.push(if changed {
                        self.reserialize(&data, &text)
                    } else {
                        raw
                    });
                    self.sent_tail.push_str(&text);
                }
            }
        }
        if self.sent_tail.len() > self.window {
            let mut cut = self.sent_tail.len() - self.window;
            while !self.sent_tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.sent_tail.drain(..cut);
        }
        if all {
            self.sent_tail.clear();
        }
    }

    fn reserialize(&self, data: &str, text: &str) -> Bytes {
        // agw's scanner accepted the event; serde_json may not (raw control characters, lone
        // surrogates), so the event is rebuilt when it cannot be edited in place.
        let mut json: serde_json::Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => match self.api {
                Api::Anthropic => serde_json::json!({
                    "type": "content_block_delta",
                    "index": delta_index(data.as_bytes()),
                    "delta": {"type": "text_delta", "text": ""},
                }),
                Api::OpenAi => serde_json::json!({"choices": [{"index": 0, "delta": {}}]}),
            },
        };
        let data = match self.api {
            Api::Anthropic => {
                json["delta"]["text"] = text.into();
                format!("event: content_block_delta\ndata: {json}\n\n")
            }
            Api::OpenAi => {
                json["choices"][0]["delta"]["content"] = text.into();
                format!("data: {json}\n\n")
            }
        };
        Bytes::from(data)
    }

    fn error_event(&self, err: &ErrorBody) -> Bytes {
        let json = err.to_json(self.api);
        Bytes::from(match self.api {
            Api::Anthropic => format!("event: error\ndata: {json}\n\n"),
            Api::OpenAi => format!("data: {json}\n\n"),
        })
    }
}

/// The `index` of an Anthropic delta event (0 if it has none that fits).
fn delta_index(data: &[u8]) -> u64 {
    let mut index = 0;
    let Ok(mut sc) = Scanner::new(data) else {
        return 0;
    };
    let _ = sc.object(|sc, key| {
        let range = sc.skip()?;
        if sc.key_is(&key, "index") {
            index = std::str::from_utf8(&data[range])
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
        }
        Ok(())
    });
    index
}

/// The text of an Anthropic `content_block_delta` event with a `text_delta`, read with the
/// guard's own scanner (no tree, few allocations).
fn anthropic_text(data: &[u8]) -> Option<String> {
    let mut sc = Scanner::new(data).ok()?;
    let (mut is_delta, mut text, mut text_type) = (false, None, false);
    sc.object(|sc, key| {
        if sc.key_is(&key, "type") {
            if let Some(s) = sc.string_or_none()? {
                is_delta = &*sc.str_value(&s) == b"content_block_delta";
                return Ok(());
            }
        } else if sc.key_is(&key, "delta") && sc.peek() == Some(b'{') {
            return sc.object(|sc, key| {
                if sc.key_is(&key, "type") {
                    if let Some(s) = sc.string_or_none()? {
                        text_type = &*sc.str_value(&s) == b"text_delta";
                        return Ok(());
                    }
                } else if sc.key_is(&key, "text") {
                    if let Some(s) = sc.string_or_none()? {
                        text = Some(String::from_utf8_lossy(&sc.str_value(&s)).into_owned());
                        return Ok(());
                    }
                }
                sc.skip().map(drop)
            });
        }
        sc.skip().map(drop)
    })
    .ok()?;
    sc.finish().ok()?;
    text.filter(|_| is_delta && text_type)
}

#[cfg(test)]
mod tests;
