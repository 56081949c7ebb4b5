//! Units of a conversation a policy has already read and found nothing in, kept by their
//! bytes, so that the history a client resends on every turn is not read again.
//!
//! An agentic client sends the whole conversation with each request: turn *n* of a Claude Code
//! session carries turns 1 to *n* − 1 again, byte for byte (megabytes in a long session), and
//! the guard read them all each time — a session's guard work grew with the square of its
//! length. A unit (a message's text of one field, [`Unit`](super::extract::Unit)) in which a
//! policy's reading (its rules' matches, the encoded runs and the escapes read through, the
//! joins between its strings) found nothing is kept here, with everything that reading
//! depended on besides the text: the policy's id, the context the unit was read in (its field
//! and whether it was the latest turn, an older user turn or older), what the body had that
//! widens the reading of escapes ([`Also`]), and where the unit's strings start, end and meet.
//! A unit with all of these equal, and the same text byte for byte, is known clean by one
//! comparison: no hash decides, so a different unit is never taken for a kept one.
//!
//! A unit with any match is never kept: it is read, and acted on, every time (a masked value
//! comes back unmasked in the client's next request, and is masked again). A unit read in
//! another context (the latest prompt, once answered, is read as an older turn) is another
//! entry. Policy ids are never reused, so a unit found clean by a policy since replaced (a
//! reload) is not known to the new one.
//!
//! A lookup that finds a unit is faster than a reading, so a request's timing tells whether a
//! text (64 bytes or more, byte for byte) was read clean on its thread recently: a caller who
//! can guess a whole message could learn that someone sent it. The texts are the callers'
//! own conversations, kept in memory only.
//!
//! Per thread, no locking: up to [`BUDGET`] bytes of text and [`ENTRIES`] units. When an
//! addition would pass either, the units the current inspection did not use are dropped first
//! (another conversation's); if that is not enough, the unit is not kept.

use super::encoded::Also;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Largest unit text kept.
const MAX_TEXT: usize = 512 * 1024;
/// Bytes of unit text kept per thread.
const BUDGET: usize = 2 << 20;
/// Units kept per thread.
const ENTRIES: usize = 4096;
/// Units shorter than this are read rather than looked up: the lookup costs about what
/// reading them does.
const MIN_TEXT: usize = 64;

/// What a unit's reading depended on besides its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Context {
    /// The policy's id ([`super::clean::next_id`]).
    pub policy: u64,
    /// The row of the policy's wanted rules: field and latest, older or older user.
    pub wanted: u32,
    /// [`Also::dashes`] and [`Also::terminal`].
    pub also: u8,
}

impl Context {
    pub(super) fn new(policy: u64, wanted: usize, also: Also) -> Self {
        Self {
            policy,
            wanted: wanted as u32,
            also: u8::from(also.dashes) | u8::from(also.terminal) << 1,
        }
    }
}

#[derive(Debug)]
struct Entry {
    context: Context,
    /// Where the unit's strings start and end, and where they meet, relative to its text.
    shape: Box<[u32]>,
    text: Box<[u8]>,
    /// The inspection that last used it.
    used: u64,
}

/// A fingerprint is already mixed: the map's hasher passes it through.
#[derive(Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// By fingerprint; a fingerprint's entry is replaced by a different unit with the same one.
    map: HashMap<u64, Entry, BuildHasherDefault<Passthrough>>,
    bytes: usize,
    inspection: u64,
}

thread_local! {
    static SEEN: RefCell<Seen> = RefCell::new(Seen::default());
}

#[cfg(test)]
thread_local! {
    static KNOWN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many units this thread found known since it started (tests).
#[cfg(test)]
pub(crate) fn known_count() -> usize {
    KNOWN.get()
}

/// Marks the start of an inspection: units looked up or kept from here on are its own, and
/// the last to be dropped to make room.
pub(super) fn begin() {
    SEEN.with(|s| s.borrow_mut().inspection += 1);
}

/// Forgets every unit this thread kept.
pub(super) fn forget() {
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        s.map.clear();
        s.bytes = 0;
    });
}

fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    u64::from_le_bytes(w)
}

/// A fingerprint of the context, the shape, the length and a few bytes of each end and of
/// the middle: it picks the entry to compare, and never decides alone.
fn fingerprint(context: Context, shape: &[u32], text: &[u8]) -> u64 {
    let mut h = mix(
        context.policy,
        u64::from(context.wanted) << 8 | u64::from(context.also),
    );
    h = mix(h, text.len() as u64);
    for &s in shape.iter().take(8) {
        h = mix(h, u64::from(s));
    }
    let n = text.len();
    for at in [0, n / 2, n.saturating_sub(16), n.saturating_sub(8)] {
        h = mix(h, word(&text[at.min(n)..]));
    }
    h
}

/// Whether a unit with this context, shape and text was read before and found clean.
pub(super) fn known(context: Context, shape: &[u32], text: &[u8]) -> bool {
    if !(MIN_TEXT..=MAX_TEXT).contains(&text.len()) {
        return false;
    }
    let key = fingerprint(context, shape, text);
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        let inspection = s.inspection;
        match s.map.get_mut(&key) {
            Some(e) if e.context == context && *e.shape == *shape && *e.text == *text => {
                e.used = inspection;
                #[cfg(test)]
                KNOWN.set(KNOWN.get() + 1);
                true
            }
            _ => false,
        }
    })
}

/// Remembers that a unit with this context, shape and text was read and found clean.
pub(super) fn keep(context: Context, shape: &[u32], text: &[u8]) {
    if !(MIN_TEXT..=MAX_TEXT).contains(&text.len()) {
        return;
    }
    let key = fingerprint(context, shape, text);
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        let s = &mut *s;
        if let Some(old) = s.map.remove(&key) {
            s.bytes -= old.text.len();
        }
        if s.bytes + text.len() > BUDGET || s.map.len() >= ENTRIES {
            let inspection = s.inspection;
            s.map.retain(|_, e| e.used == inspection);
            s.bytes = s.map.values().map(|e| e.text.len()).sum();
            if s.bytes + text.len() > BUDGET || s.map.len() >= ENTRIES {
                return;
            }
        }
        s.bytes += text.len();
        s.map.insert(
            key,
            Entry {
                context,
                shape: shape.into(),
                text: text.into(),
                used: s.inspection,
            },
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(policy: u64) -> Context {
        Context::new(
            policy,
            1,
            Also {
                dashes: false,
                terminal: false,
            },
        )
    }

    #[test]
    fn known_only_with_the_same_context_shape_and_bytes() {
        let policy = super::super::clean::next_id();
        let text = [b'a'; 100];
        let shape = [0, 50, 50, 100, 50];
        begin();
        assert!(!known(context(policy), &shape, &text));
        keep(context(policy), &shape, &text);
        assert!(known(context(policy), &shape, &text));
        let other = super::super::clean::next_id();
        assert!(!known(context(other), &shape, &text), "another policy");
        let mut wanted = context(policy);
        wanted.wanted = 2;
        assert!(!known(wanted, &shape, &text), "another context");
        let also = Context::new(
            policy,
            1,
            Also {
                dashes: true,
                terminal: false,
            },
        );
        assert!(!known(also, &shape, &text), "another reading of escapes");
        assert!(
            !known(context(policy), &[0, 100], &text),
            "strings met elsewhere"
        );
        // One byte in the middle changed, where the fingerprint does not look.
        let mut changed = text;
        changed[30] = b'b';
        assert!(!known(context(policy), &shape, &changed));
        // A unit with the same fingerprint replaces the kept one.
        keep(context(policy), &shape, &changed);
        assert!(known(context(policy), &shape, &changed));
        assert!(!known(context(policy), &shape, &text));
        // Too short or too long: never kept.
        keep(context(policy), &[0, 10], &text[..10]);
        assert!(!known(context(policy), &[0, 10], &text[..10]));
        let big = vec![b'x'; MAX_TEXT + 1];
        keep(context(policy), &[0], &big);
        assert!(!known(context(policy), &[0], &big));
    }

    #[test]
    fn room_is_made_from_units_other_inspections_used() {
        let policy = super::super::clean::next_id();
        let unit = |i: usize| {
            let mut text = vec![b'0'; 256 << 10];
            *text.last_mut().unwrap() = b'0' + i as u8;
            text
        };
        begin();
        for i in 0..8 {
            keep(context(policy), &[], &unit(i));
        }
        assert!((0..8).all(|i| known(context(policy), &[], &unit(i))));
        // Full: this inspection's own units stay, a ninth is not kept.
        keep(context(policy), &[], &unit(8));
        assert!(!known(context(policy), &[], &unit(8)));
        // The next inspection uses two of them; the rest make room for new ones.
        begin();
        assert!(known(context(policy), &[], &unit(0)));
        assert!(known(context(policy), &[], &unit(1)));
        keep(context(policy), &[], &unit(8));
        assert!(known(context(policy), &[], &unit(8)));
        assert!(known(context(policy), &[], &unit(0)));
        assert!(!known(context(policy), &[], &unit(5)));
    }
}
