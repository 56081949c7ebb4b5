//! Matching the held text: rules over each channel's window, tool calls once complete, and
//! the masks written into the held events.

use super::{MAX_OPEN_MATCH, StreamGuard, StreamHit};
use crate::api::{ErrorBody, ErrorKind};
use crate::guard::response::walk;
use crate::guard::{Action, ActionKind, Decision};
use crate::json::{normalize_plain, plain_needs_normalization};
use crate::stream::events::{CONTINUED, ChanKind};

/// Most raw bytes a window of `window` bytes of normalised text may span: real text stays far
/// below (a character is at most 4 bytes, a few marks on it more); beyond this, the text is
/// padded with characters normalising drops.
pub(super) fn padded_limit(window: usize) -> usize {
    window.saturating_mul(16).max(4096)
}

/// Keeps the end of `s` that holds its last `n` bytes of text as rules read it (normalised:
/// characters normalising drops take no room), within [`padded_limit`]; returns how many bytes
/// were cut.
pub(super) fn keep_tail(s: &mut String, n: usize) -> usize {
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
pub(super) fn keep_last(s: &mut String, n: usize) -> usize {
    let mut cut = s.len().saturating_sub(n);
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s.drain(..cut);
    cut
}

impl StreamGuard {
    /// A tool call is complete: the tool rules and the text rules decide on its whole input.
    pub(super) fn check_tool(&mut self, c: usize) -> Result<(), ErrorBody> {
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
    pub(super) fn still_open(&self, c: usize) -> bool {
        let chan = &self.chans[c];
        let Some((o, checked)) = chan.open else {
            return false;
        };
        let end = chan.base + chan.sent_tail.len() + chan.held;
        o >= chan.base + chan.sent_tail.len()
            && end - o < (2 * (checked - o)).max(checked - o + 64)
            && end - o <= MAX_OPEN_MATCH.max(self.window)
    }

    pub(super) fn scan_all(&mut self, all: bool) -> Result<(), ErrorBody> {
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
    /// [`prefix`](crate::stream::prefix)), or at least `window` bytes before the end — but never after
    /// the start of a key, token or key block still growing ([`MAX_OPEN_MATCH`]).
    pub(super) fn scan(&mut self, c: usize, force: bool) -> Result<(), ErrorBody> {
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
    pub(super) fn apply(
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
}
