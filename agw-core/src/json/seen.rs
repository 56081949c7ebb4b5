//! Large values skipped recently, kept by their bytes so that the same value is recognised with
//! one comparison instead of being scanned again.
//!
//! Agentic clients send the same large unread values on every turn: Claude Code's tool schemas
//! (tens of kilobytes, most of a first turn), earlier turns' thinking blocks. A skip only finds
//! where a value ends and checks that its brackets nest; both depend on nothing but the value's
//! own bytes (and the depth it starts at), so bytes equal to a value skipped before end where
//! it ended. The comparison is exact (`==` on the bytes, no hash), so a different value is never
//! taken for a known one.
//!
//! Per thread (no locking), a few entries, each bounded: at most [`ENTRIES`] ×
//! [`MAX_LEN`] bytes per thread.

use std::cell::RefCell;

/// Smallest value worth keeping: below this, scanning costs about what a lookup does.
pub(super) const MIN_LEN: usize = 2048;
/// Largest value kept.
pub(super) const MAX_LEN: usize = 256 * 1024;
/// Values kept per thread.
const ENTRIES: usize = 4;

#[derive(Default)]
struct Entry {
    bytes: Vec<u8>,
    /// The deepest nesting inside the value (the value's own brackets count as 1).
    depth: usize,
    /// When this entry was last stored or found (a per-thread counter).
    used: u64,
}

#[derive(Default)]
struct Seen {
    entries: [Entry; ENTRIES],
    clock: u64,
}

thread_local! {
    static SEEN: RefCell<Seen> = RefCell::default();
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
            n != 0
                && rest.len() >= n
                && rest[n - 8..n] == e.bytes[n - 8..]
                && rest[..n] == e.bytes[..]
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

/// Keeps `value` (skipped, its nesting `depth` deep), replacing the entry unused the longest.
pub(super) fn keep(value: &[u8], depth: usize) {
    if !(MIN_LEN..=MAX_LEN).contains(&value.len()) {
        return;
    }
    let _ = SEEN.try_with(|seen| {
        let Ok(mut seen) = seen.try_borrow_mut() else {
            return;
        };
        seen.clock += 1;
        let now = seen.clock;
        let entry = seen
            .entries
            .iter_mut()
            .min_by_key(|e| e.used)
            .expect("ENTRIES > 0");
        entry.bytes.clear();
        entry.bytes.extend_from_slice(value);
        // A kept buffer far larger than its value (a big value replaced by a small one) is
        // given back.
        if entry.bytes.capacity() > 2 * value.len() {
            entry.bytes.shrink_to_fit();
        }
        entry.depth = depth;
        entry.used = now;
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
