//! Taking events in: what each event means (a text delta, a tool call's input, a block's
//! start or end, an event agw does not recognise), and which channel's text it adds to.

use super::{Chan, Item, MAX_CLOSED, MAX_HELD, NOT_TEXT, Part, Site, StreamGuard, StreamHit};
use crate::api::{ErrorBody, ErrorKind};
use crate::guard::response::{walk, walk_error};
use crate::guard::{ActionKind, Decision};
use crate::stream::events::{
    CONTINUED, ChanKey, ChanKind, Completes, Dialect, FastDelta, ITEMLESS, MAX_CONTINUED, Meaning,
    Step, continued, meaning, messages_delta,
};
use crate::stream::prefix::Live;
use crate::stream::sse::{Fields, UnknownField, fields};
use bytes::Bytes;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

/// Sets the string at `path` in `v` to "" (nothing when the path is not there).
pub(super) fn blank(v: &mut Value, path: &[Step]) {
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

/// Whether `v` has a non-empty string other than its deltas' and those of [`NOT_TEXT`] keys.
pub(super) fn has_other_strings(v: &Value, deltas: &[crate::stream::events::Delta]) -> bool {
    /// One step of the path walked so far.
    #[derive(Clone, Copy)]
    enum At<'a> {
        Key(&'a str),
        Index(usize),
    }
    fn is_delta(at: &[At<'_>], deltas: &[crate::stream::events::Delta]) -> bool {
        deltas.iter().any(|d| {
            d.path.len() == at.len()
                && d.path.iter().zip(at).all(|(step, at)| match (step, at) {
                    (Step::Key(k), At::Key(a)) => k == a,
                    (Step::Index(i), At::Index(a)) => i == a,
                    _ => false,
                })
        })
    }
    fn any<'a>(
        v: &'a Value,
        at: &mut Vec<At<'a>>,
        deltas: &[crate::stream::events::Delta],
    ) -> bool {
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

impl StreamGuard {
    /// Reads an event into the queue.
    pub(super) fn take(&mut self, raw: Bytes) -> Result<(), ErrorBody> {
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
            extras,
        }) = fields(text)
        else {
            return Err(self.unreadable(&UnknownField.to_string()));
        };
        let kept = if extras { self.read_sides(text)? } else { None };
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut item = Item {
            seq,
            raw: kept.unwrap_or(raw),
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
        let mut json: Value = match serde_json::from_str(&data) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(self.unreadable("its data is not a JSON object")),
            Err(e) => return Err(self.unreadable(&e.to_string())),
        };
        // Read as a client that matches keys without regard to case reads it (`Choices`).
        if let Err(why) = crate::guard::keys::fold_keys(&mut json) {
            return Err(self.unreadable(why));
        }
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
            self.now_known()?;
        }
        if self.dialect == Dialect::Messages {
            self.check_block(&ty, json["index"].as_u64())?;
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
        self.check_text_order(m.text_at)?;
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
        // An error event (Anthropic's `event: error`, the Responses `error` event, a chat or
        // Gemini chunk's `error`): read whole, identifiers and types too, as the SDKs print
        // all of it (nineteenth session's red team). Not pieces of a text.
        let error_event = m.generic
            && !m.beside
            && m.deltas.is_empty()
            && m.opens.is_empty()
            && (ty == "error" || json.get("error").is_some_and(|e| !e.is_null()));
        let pieces = !error_event
            && (!self.known || strays)
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
            self.generic(&mut item, &rest.to_string(), m.check_tools, false, false)?;
        } else if m.generic {
            self.generic(&mut item, &data, m.check_tools, true, error_event)?;
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

    /// A Messages stream's blocks come one at a time, by rising index: started, their deltas,
    /// stopped. A block started while another is open, a delta for a block other than the
    /// open one, and a block started or continued after a later one was named, or after it
    /// stopped, is read by no client as agw would read it (deltas joined in the order they
    /// came, a client's text assembled by index: black-box review, a card split over two open
    /// blocks passed), and ends the stream. So text held back at a block's end is the end of
    /// the text a client has so far, and is held over the blocks that follow until the next
    /// text decides it (rt2 review: released before a tool call, the start of a token split
    /// around the call went out in clear).
    pub(super) fn check_block(&mut self, ty: &str, index: Option<u64>) -> Result<(), ErrorBody> {
        let Some(i) = index else {
            return Ok(());
        };
        let before = |last: Option<(u64, bool)>, reopen: bool| {
            last.is_some_and(|(l, stopped)| i < l || (i == l && (reopen || stopped)))
        };
        match ty {
            "content_block_start" => {
                if self.open_block.is_some() {
                    return Err(self.unreadable("a content block started while another is open"));
                }
                if before(self.last_block, true) {
                    return Err(self.unreadable("a content block started out of order"));
                }
                self.open_block = Some(i);
                self.last_block = Some((i, false));
            }
            "content_block_delta" => match self.open_block {
                Some(open) if open != i => {
                    return Err(self.unreadable("a delta for a block other than the open one"));
                }
                Some(_) => {}
                None if before(self.last_block, false) => {
                    return Err(self.unreadable("a delta for a block that had ended"));
                }
                None => self.last_block = Some((i, false)),
            },
            "content_block_stop" => {
                if self.open_block == Some(i) {
                    self.open_block = None;
                }
                if self.last_block.is_none_or(|(l, _)| i >= l) {
                    self.last_block = Some((i, true));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A Responses stream's text goes from part to part by rising (output index, content
    /// index), as servers stream output items and their parts one after the other. Text of a
    /// part the stream had left would be joined by a client with that part's earlier text,
    /// and by agw with the text between (rt2 review: `key AKIA2E0A`, another item's `Sure.`,
    /// `8F3B244C9986` passed): it ends the stream.
    pub(super) fn check_text_order(
        &mut self,
        at: Option<((u64, u64), (u64, u64))>,
    ) -> Result<(), ErrorBody> {
        let Some((first, last)) = at else {
            return Ok(());
        };
        if self.text_at.is_some_and(|before| first < before) {
            return Err(self.unreadable("text for an output part the stream had left"));
        }
        self.text_at = Some(last);
        Ok(())
    }

    /// The event's delta when it is a Messages `content_block_delta` of the common shape, read
    /// without a tree; its span is in `text` (the event's raw bytes). `None` otherwise.
    pub(super) fn fast_delta(
        &self,
        text: &str,
        name: Option<&str>,
        data: &str,
    ) -> Option<FastDelta> {
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
    pub(super) fn take_delta(&mut self, mut item: Item, fast: FastDelta) -> Result<(), ErrorBody> {
        if !self.known {
            self.now_known()?;
        }
        self.check_block("content_block_delta", Some(fast.index))?;
        self.add_part(&mut item, fast.chan, fast.text, Site::Span(fast.span))?;
        self.hold(item)
    }

    /// An event of a known API came: the texts continued by path so far are complete (the
    /// events after them are read in their API), and a piece at one of their paths later ends
    /// the stream. Text one of them still holds back would be decided without what follows
    /// it, which a client may join to it (rt2 review: llama.cpp's `content` held, then an
    /// event with `choices` released it): the stream ends.
    pub(super) fn now_known(&mut self) -> Result<(), ErrorBody> {
        self.known = true;
        if self
            .chans
            .iter()
            .any(|c| c.key.group == CONTINUED && !c.done && c.held > 0)
        {
            return Err(self.unreadable("its format changed while text was held back"));
        }
        for c in 0..self.chans.len() {
            if self.chans[c].key.group == CONTINUED && !self.chans[c].done {
                self.chans[c].done = true;
                self.close(self.chans[c].key)?;
            }
        }
        Ok(())
    }

    /// Remembers that channel `key` completed (within [`MAX_CLOSED`]).
    pub(super) fn close(&mut self, key: ChanKey) -> Result<(), ErrorBody> {
        if self.closed.len() >= MAX_CLOSED && !self.closed.contains(&key) {
            return Err(self.held_too_much("it has too many texts and tool calls"));
        }
        self.closed.insert(key);
        Ok(())
    }

    /// Reads an event agw does not recognise, of a stream none of whose events it recognised
    /// so far, as pieces of texts continued by path (see [`leaves`](crate::guard::leaves)):
    /// each string a delta of the text at its path, held back and masked as text deltas are.
    /// `false` for an event with no such piece, or with more than [`MAX_PIECES`] none of
    /// which continues a text followed so far: read as a JSON document instead. In an event
    /// with more, the pieces at paths followed so far are still joined to their texts (rt2
    /// review: nine empty pieces beside `content` had it read alone, and the held start of a
    /// key released), and the others read with the rest of the event. A piece at a path read
    /// whole that way, or at a path completed, later ends the stream.
    /// A tool call beside the pieces (or only a key named `input` or `arguments`) is checked
    /// with the event's other strings; it no longer stops the pieces from being joined
    /// (fourteenth session's review: `{"content": …, "input": ""}` turned joining off).
    ///
    /// [`MAX_PIECES`]: crate::guard::leaves::MAX_PIECES
    pub(super) fn continue_texts(
        &mut self,
        item: &mut Item,
        json: &Value,
    ) -> Result<bool, ErrorBody> {
        use crate::guard::leaves::{MAX_PIECES, is_token_path};
        let found = crate::guard::leaves::leaves(json);
        if found.ambiguous {
            return Err(self.unreadable("a part's `thought` that is not true or false"));
        }
        // Only strings where servers stream tokens are pieces; an event with none of them,
        // or with more than a few, is a document, read on its own (regression round).
        let (mut pieces, mut rest): (Vec<_>, Vec<_>) = found
            .leaves
            .into_iter()
            .partition(|l| is_token_path(&l.pointer));
        if pieces.is_empty() {
            return Ok(false);
        }
        let key_of = |l: &crate::guard::leaves::Leaf| {
            let path = crate::guard::leaves::text_path(&l.pointer, l.thought, l.candidate);
            continued(&path, l.signed)
        };
        let open = |c: &Chan| c.key.group == CONTINUED && !c.done;
        if pieces.len() > MAX_PIECES {
            let followed = |l: &crate::guard::leaves::Leaf| {
                let key = key_of(l);
                self.chans.iter().any(|c| open(c) && c.key == key)
            };
            let (joined, whole): (Vec<_>, Vec<_>) = pieces.into_iter().partition(followed);
            for l in whole.iter().filter(|l| !l.text.is_empty()) {
                self.close(key_of(l))?;
            }
            if joined.is_empty() {
                return Ok(false);
            }
            pieces = joined;
            rest.extend(whole);
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
            self.generic(item, &other.to_string(), found.tool, false, false)?;
        }
        for leaf in pieces {
            let key = key_of(&leaf);
            if !self.chans.iter().any(|c| open(c) && c.key == key)
                && self.chans.iter().filter(|c| open(c)).count() >= MAX_CONTINUED
            {
                // Too many texts at once: the oldest that holds nothing back is complete;
                // when each holds text back, none can be decided without what may follow.
                let idle = self
                    .chans
                    .iter()
                    .position(|c| open(c) && c.pending.is_empty());
                let Some(c) = idle else {
                    return Err(self.held_too_much("it streams too many texts at once"));
                };
                self.chans[c].done = true;
                self.close(self.chans[c].key)?;
            }
            self.add_part(item, key, leaf.text, Site::Pointer(leaf.pointer))?;
        }
        Ok(true)
    }

    /// Adds a delta of `item` to its channel (a tool call's input is gathered, within
    /// [`MAX_TOOL_INPUT`](crate::guard::MAX_TOOL_INPUT)), to be decided with the channel's text.
    pub(super) fn add_part(
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
        if !text.is_empty() && !self.closed.is_empty() && self.closed.contains(&key) {
            // A client appends it to a text or input agw decided whole.
            return Err(self.unreadable("a delta for a text or tool call that had completed"));
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

    pub(super) fn tool_input_too_large(&mut self) -> ErrorBody {
        let rule: Arc<str> = "agw:tool-input".into();
        let err = ErrorBody::new(
            ErrorKind::InvalidRequest,
            "agw blocked a tool call whose input is too large to check",
        );
        self.reject(rule, err)
    }

    /// Queues an event, within [`MAX_HELD`].
    pub(super) fn hold(&mut self, item: Item) -> Result<(), ErrorBody> {
        self.held_bytes += item.raw.len();
        self.queue.push_back(item);
        if self.held_bytes > MAX_HELD {
            return Err(self.held_too_much("too much of it is held back"));
        }
        Ok(())
    }

    /// Ends the stream: what it holds back cannot be inspected within bounds (`why`).
    pub(super) fn held_too_much(&mut self, why: &str) -> ErrorBody {
        let err = ErrorBody::new(
            ErrorKind::BadGateway,
            format!("agw could not inspect the provider's stream: {why}"),
        );
        self.reject("agw:held-too-much".into(), err)
    }

    /// The channel for `key`, opened if new.
    pub(super) fn chan(&mut self, key: ChanKey) -> usize {
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
    /// With `whole`, the event is an error: every string of it is read (see
    /// [`walk_error`]).
    pub(super) fn generic(
        &mut self,
        item: &mut Item,
        data: &str,
        check_tools: bool,
        may_rewrite: bool,
        whole: bool,
    ) -> Result<(), ErrorBody> {
        let walked = if whole {
            walk_error(data.as_bytes())
        } else {
            walk(data.as_bytes())
        };
        let mut walked = match walked {
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
    pub(super) fn complete(&mut self, which: Completes) -> Result<(), ErrorBody> {
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
            // A text without an output item is decided when it is done, and the next of its
            // kind is a text of its own.
            if which != Completes::All && self.chans[c].key.group != ITEMLESS {
                self.close(self.chans[c].key)?;
            }
            if self.chans[c].key.kind.is_tool() {
                self.check_tool(c)?;
                if self.open_tool == Some(c) {
                    self.open_tool = None;
                }
            }
        }
        Ok(())
    }
}
