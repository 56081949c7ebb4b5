//! The stream guard: holds back text deltas, scans them, masks or cuts the stream off.

use super::sse::fields;
use crate::api::{Api, ErrorBody, ErrorKind};
use crate::guard::{Action, ActionKind, Policy};
use crate::json::normalize_plain;
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
        json: serde_json::Value,
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
        self.scan(out);
        if !self.rejected {
            self.release(boundary, out);
        }
    }

    /// The stream ended: sends everything held back.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        if !self.rejected {
            self.scan(out);
        }
        if !self.rejected {
            self.release(true, out);
        }
    }

    /// Sorts an event into a text delta or anything else, and says whether it ends a block
    /// (after which everything held back can go).
    fn classify(&self, raw: Bytes) -> (Item, bool) {
        let (name, data) = fields(&raw);
        let parsed = || serde_json::from_str::<serde_json::Value>(&data).ok();
        match self.api {
            Api::Anthropic => {
                if data.contains("\"text_delta\"") {
                    if let Some(json) = parsed() {
                        let text = json
                            .pointer("/delta/text")
                            .and_then(|t| t.as_str())
                            .filter(|_| json["delta"]["type"] == "text_delta")
                            .map(str::to_owned);
                        if let Some(text) = text {
                            return (
                                Item::Delta {
                                    raw,
                                    json,
                                    text,
                                    changed: false,
                                },
                                false,
                            );
                        }
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
                if let Some(json) = parsed() {
                    let choice = &json["choices"][0];
                    let finished = !choice["finish_reason"].is_null();
                    let single = json["choices"].as_array().is_some_and(|c| c.len() == 1);
                    if let (true, Some(text)) = (single, choice["delta"]["content"].as_str()) {
                        let text = text.to_owned();
                        let item = Item::Delta {
                            raw,
                            json,
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

    /// Scans the sent tail plus all held text; masks in held text, or rejects.
    fn scan(&mut self, out: &mut Vec<Bytes>) {
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
        if window.len() == held_start {
            return;
        }
        let mut norm = Vec::with_capacity(window.len());
        let mut map = Vec::with_capacity(window.len());
        normalize_plain(&window, &mut norm, &mut map);
        let matches = self.policy.find_in_text(&norm);
        // Source ranges to mask, clipped to held text, with their placeholders.
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        for m in &matches {
            if m.range.is_empty() {
                continue;
            }
            let start = map[m.range.start].start;
            let end = map[m.range.end - 1].end;
            if end <= held_start {
                continue; // Seen, and dealt with, before it was sent.
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
        if edits.is_empty() {
            return;
        }
        edits.sort_by_key(|e| e.0);
        // Rebuild each held delta's text with the edits that fall in it; the placeholder goes
        // where a match starts, the rest of a match spanning deltas is removed.
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

    /// Sends what is safe: everything at a boundary, otherwise all but the last `window` bytes
    /// of held text (and the events queued before them).
    fn release(&mut self, all: bool, out: &mut Vec<Bytes>) {
        let held: usize = self
            .queue
            .iter()
            .map(|i| match i {
                Item::Delta { text, .. } => text.len(),
                Item::Raw(_) => 0,
            })
            .sum();
        let mut remaining = held;
        while let Some(front) = self.queue.front() {
            if let Item::Delta { text, .. } = front {
                if !all && remaining - text.len() < self.window {
                    break;
                }
                remaining -= text.len();
            }
            match self.queue.pop_front().expect("front exists") {
                Item::Raw(raw) => out.push(raw),
                Item::Delta {
                    raw,
                    json,
                    text,
                    changed,
                } => {
                    out.push(if changed {
                        self.reserialize(json, &text)
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

    fn reserialize(&self, mut json: serde_json::Value, text: &str) -> Bytes {
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

#[cfg(test)]
mod tests;
