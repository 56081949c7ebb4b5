//! Letting events go: what can no longer become a match is released, masked events are
//! written back in their dialect, and errors become the dialect's error event.

use super::{Item, Site, StreamGuard};
use crate::api::ErrorBody;
use crate::stream::events::{Dialect, Step};
use crate::stream::sse::fields;
use bytes::Bytes;
use serde_json::Value;

/// An event whose changed strings are at JSON pointers or a dialect's paths, with each
/// spliced in over its old bytes: the rest of the event is forwarded as it came, its keys as
/// the upstream spelled them (a key read folded, `Choices`, is found by its folded spelling).
/// `None` when the event's data is not one slice of it (several `data:` lines) or a string is
/// not found: then the event is written anew from its tree.
pub(super) fn splice_pointers(item: &Item) -> Option<Bytes> {
    let text = std::str::from_utf8(&item.raw).ok()?;
    let data = fields(text).ok()?.data;
    let at = (data.as_ptr() as usize)
        .checked_sub(text.as_ptr() as usize)
        .filter(|at| at + data.len() <= text.len())?;
    let mut edits = Vec::new();
    for p in item.parts.iter().filter(|p| p.changed) {
        let pointer = match &p.site {
            Site::Pointer(pointer) => std::borrow::Cow::Borrowed(pointer.as_str()),
            Site::Path(path) => std::borrow::Cow::Owned(pointer_of(path)),
            Site::Span(_) => return None,
        };
        let span = crate::guard::leaves::span_at(data.as_bytes(), &pointer)?;
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

/// The JSON pointer of a dialect's `path` (its keys hold no `/` or `~`).
fn pointer_of(path: &[Step]) -> String {
    let mut pointer = String::new();
    for step in path {
        pointer.push('/');
        match step {
            Step::Key(k) => pointer.push_str(k),
            Step::Index(i) => pointer.push_str(&i.to_string()),
        }
    }
    pointer
}

impl StreamGuard {
    /// Sends queued events, in order, up to the first that is still held.
    pub(super) fn release(&mut self, out: &mut Vec<Bytes>) {
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
    /// rewriting the events that repeat them ([`Resync`](super::resync::Resync)).
    pub(super) fn resynced(&mut self, item: Item) -> Result<Bytes, &'static str> {
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

    pub(super) fn serialize(&self, item: Item) -> Bytes {
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
    /// The client's dialect is the route's (a chat client's stream ends with a chat error
    /// event whatever API the upstream's events are); on a route of no API, the events' (a
    /// Gemini call's is Google's error).
    pub(super) fn error_event(&self, err: &ErrorBody) -> Bytes {
        use crate::dialect::{anthropic, gemini, openai_chat, openai_responses};
        if self.client.is_none() && self.candidates.is_some() && !self.known {
            return Bytes::from(gemini::error_event(err));
        }
        Bytes::from(match self.client.unwrap_or(self.dialect) {
            Dialect::Responses => openai_responses::error_event(err),
            d if d.is_anthropic() => anthropic::error_event(err),
            _ => openai_chat::error_event(err),
        })
    }
}
