//! Large values skipped recently, kept by their bytes so that the same value is recognised with
//! one comparison instead of being scanned again.
//!
//! Agentic clients send the same large unread values on every turn: Claude Code's tool schemas
//! (tens of kilobytes, most of a first turn), earlier turns' thinking blocks and images. A skip
//! only finds where a value ends and checks that its brackets nest; both depend on nothing but
//! the value's own bytes (and the depth it starts at), so bytes equal to a value skipped before
//! end where it ended. The comparison is exact (`==` on the bytes, no hash), so a different
//! value is never taken for a known one.
//!
//! A value is kept the second time it is skipped (a one-off value costs no copy and pushes
//! nothing out), and the least recently used values make room: up to [`ENTRIES`] values and
//! [`BUDGET`] bytes per thread, so a turn's repeated values fit together (with four slots, a
//! tools array and four images pushed each other out on every turn). Per thread, no locking.
//!
//! A hit is faster than a scan, so its timing tells that the same large unread value passed
//! through this thread recently; the values are ones no rule reads.

use std::cell::RefCell;

/// Smallest value worth keeping: below this, scanning costs about what a lookup does.
pub(super) const MIN_LEN: usize = 2048;
/// Largest value kept.
pub(super) const MAX_LEN: usize = 256 * 1024;
/// Values kept per thread.
const ENTRIES: usize = 16;
/// Bytes kept per thread.
const BUDGET: usize = 1 << 20;
/// Values seen once, remembered by a fingerprint until they are seen again.
const CANDIDATES: usize = 32;

struct Entry {
    bytes: Vec<u8>,
    /// The deepest nesting inside the value (the value's own brackets count as 1).
    depth: usize,
    /// When this entry was last stored or found (a per-thread counter).
    used: u64,
}

#[derive(Default)]
struct Seen {
    entries: Vec<Entry>,
    /// Bytes held by `entries`.
    held: usize,
    /// Fingerprints of values skipped once; a ring.
    candidates: [u64; CANDIDATES],
    next: usize,
    clock: u64,
}

thread_local! {
    static SEEN: RefCell<Seen> = RefCell::default();
}

/// Length and first and last bytes: enough to tell a value seen before from most others, and
/// only decides whether a value is copied (a match is always compared whole).
fn fingerprint(value: &[u8]) -> u64 {
    let word = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().expect("8 bytes"));
    let n = value.len();
    let mut h = n as u64;
    for w in [word(0), word(8), word(n - 16), word(n - 8)] {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    // Zero marks an empty candidate slot.
    h | 1
}

/// The length of the value that `rest` starts with, when it is byte for byte one kept here
/// whose nesting, starting at `depth`, stays within `max_depth`.
pub(super) fn find(rest: &[u8], depth: usize, max_depth: usize) -> Option<usize> {
    SEEN.try_with(|seen| {
        let mut seen = seen.try_borrow_mut().ok()?;
        seen.clock += 1;
        let now = seen.clock;
        let entry = seen.entries.iter_mut().find(|e| {
            let n = e.bytes.len();
            // Lengths, then the last bytes (where near-copies usually differ), then the rest.
            rest.len() >= n && rest[n - 8..n] == e.bytes[n - 8..] && rest[..n] == e.bytes[..]
        })?;
        if depth + entry.depth > max_depth {
            return None;
        }
        entry.used = now;
        #[cfg(test)]
        HITS.set(HITS.get() + 1);
        Some(entry.bytes.len())
    })
    .ok()
    .flatten()
}

/// Notes that `value` (skipped, its nesting `depth` deep) was skipped; keeps it if it was
/// skipped before, making room by dropping the values unused the longest.
pub(super) fn keep(value: &[u8], depth: usize) {
    if !(MIN_LEN..=MAX_LEN).contains(&value.len()) {
        return;
    }
    let _ = SEEN.try_with(|seen| {
        let Ok(mut seen) = seen.try_borrow_mut() else {
            return;
        };
        let seen = &mut *seen;
        let print = fingerprint(value);
        let Some(slot) = seen.candidates.iter().position(|&c| c == print) else {
            seen.candidates[seen.next] = print;
            seen.next = (seen.next + 1) % CANDIDATES;
            return;
        };
        seen.candidates[slot] = 0;
        while seen.entries.len() >= ENTRIES || seen.held + value.len() > BUDGET {
            let oldest = (0..seen.entries.len())
                .min_by_key(|&i| seen.entries[i].used)
                .expect("over a bound, so not empty");
            seen.held -= seen.entries.swap_remove(oldest).bytes.len();
        }
        seen.clock += 1;
        seen.held += value.len();
        seen.entries.push(Entry {
            bytes: value.to_vec(),
            depth,
            used: seen.clock,
        });
    });
}

#[cfg(test)]
thread_local! {
    static HITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Forgets every value kept by this thread (and the count of values found).
#[cfg(test)]
pub(super) fn clear() {
    SEEN.with(|seen| *seen.borrow_mut() = Seen::default());
    HITS.set(0);
}

/// How many values this thread found since [`clear`].
#[cfg(test)]
pub(super) fn hits() -> usize {
    HITS.get()
}

/// How many values this thread keeps, and their bytes.
#[cfg(test)]
pub(super) fn held() -> (usize, usize) {
    SEEN.with(|seen| {
        let seen = seen.borrow();
        (seen.entries.len(), seen.held)
    })
}
