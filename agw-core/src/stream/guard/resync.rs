//! Resynchronising a stream's closing events with the deltas that were masked: a final event
//! that repeats a masked text part must repeat it masked, or the stream is cut off.

use super::MAX_HELD;
use crate::stream::sse::fields;
use bytes::Bytes;
use serde_json::Value;

/// What a Responses stream's text parts were and what went out, so that the events that
/// repeat a part whole (`response.output_text.done`, `response.content_part.done`,
/// `response.output_item.done`, `response.completed`) carry what went out: a match masked
/// across two parts or items is in neither part alone, so reading such an event by itself
/// found nothing in it, and it carried the secret's pieces in clear (black-box review).
///
/// A part's text as it came is kept as a hash and a length; what went out is kept whole (the
/// repeating events need it), one copy of the text, at most [`MAX_HELD`] bytes a stream.
#[derive(Debug, Default)]
pub(super) struct Resync {
    parts: Vec<SentPart>,
    /// Bytes of text kept in `parts`.
    kept: usize,
    /// Whether any part went out changed: only then are the repeating events looked at.
    changed: bool,
}

#[derive(Debug)]
pub(super) struct SentPart {
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
    pub(super) fn came(&self, text: &str) -> bool {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(text.as_bytes());
        text.len() == self.raw_len && h.finish() == self.raw.finish()
    }
}

/// A repeated part that is neither what came nor what went out: the event cannot be made to
/// agree with what the client was sent, and fails closed.
pub(super) const DISAGREES: &str =
    "it repeats a text part that was masked, in a form other than its deltas";

impl Resync {
    /// Records a released text delta of part `at`: `raw` came, `sent` went out.
    pub(super) fn delta(&mut self, at: (u64, u64), raw: &str, sent: &str) {
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
    pub(super) fn fix(&self, at: (u64, u64), v: Option<&mut Value>) -> Result<bool, &'static str> {
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
    pub(super) fn fix_content(
        &self,
        o: u64,
        content: Option<&mut Value>,
    ) -> Result<bool, &'static str> {
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
    pub(super) fn event(&self, raw: &Bytes) -> Result<Option<Bytes>, &'static str> {
        if !self.changed {
            return Ok(None);
        }
        let Some(f) = std::str::from_utf8(raw).ok().and_then(|t| fields(t).ok()) else {
            return Ok(None);
        };
        let Ok(mut json) = serde_json::from_str::<Value>(&f.data) else {
            return Ok(None);
        };
        // Its keys as the event was read ([`crate::guard::keys`]).
        crate::guard::keys::fold_keys(&mut json)?;
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
