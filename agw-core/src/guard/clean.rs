//! Tool definitions a policy has already read and found nothing in, kept by their bytes (and
//! the depth they were found at, so that the nesting limit holds as a fresh scan checks it).
//!
//! The model reads a request's tool definitions (names, descriptions, schemas) like a system
//! prompt, and a client can put anything there: an MCP server's tool description is text from a
//! third party. So the guard reads them. But agentic clients send the same definitions on every
//! turn (Claude Code: 24 tools, 65 KB of a 76 KB first turn), and reading them each time would
//! double the cost of a turn. A definitions value a policy read and found no match in is kept
//! here, with the policy's id; the same bytes under the same policy are then known clean by one
//! comparison (the body's bytes at the value start with a kept value: no hash, so a different
//! value is never taken for a known one; a JSON container ends where its bytes end, so the
//! value there is the kept one, and where it ends is known without scanning it).
//! A value with a match is never kept: it is read, and acted on, every time.
//!
//! Per thread, no locking: up to [`ENTRIES`] values and [`BUDGET`] bytes, the least recently
//! used making room. Policy ids are never reused (a counter, not an address), so a value found
//! clean by a policy since replaced (a reload) is never taken as clean by the new one.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest value kept.
const MAX_LEN: usize = 256 * 1024;
/// Values kept per thread.
const ENTRIES: usize = 8;
/// Bytes kept per thread.
const BUDGET: usize = 1 << 20;

/// A new policy id.
pub(super) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A kept value: the policy, the depth it was found at, its bytes.
type Kept = (u64, usize, Box<[u8]>);

thread_local! {
    /// Most recently used first.
    static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// The length of the value `rest` starts with (a container found at `depth`), when policy `id`
/// read it before at that depth and found nothing in it.
pub(super) fn known_at(id: u64, depth: usize, rest: &[u8]) -> Option<usize> {
    if !matches!(rest.first(), Some(b'[' | b'{')) {
        return None;
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let i = kept
            .iter()
            .position(|(p, d, v)| *p == id && *d == depth && rest.starts_with(v))?;
        kept[..=i].rotate_right(1);
        Some(kept[0].2.len())
    })
}

/// Remembers that policy `id` found nothing in `value`, a container found at `depth`.
pub(super) fn keep(id: u64, depth: usize, value: &[u8]) {
    if value.len() > MAX_LEN || !matches!(value.first(), Some(b'[' | b'{')) {
        return;
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept
            .iter()
            .any(|(p, d, v)| *p == id && *d == depth && **v == *value)
        {
            return;
        }
        kept.insert(0, (id, depth, value.into()));
        let mut total = 0;
        let keep = kept
            .iter()
            .take(ENTRIES)
            .take_while(|(_, _, v)| {
                total += v.len();
                total <= BUDGET
            })
            .count();
        kept.truncate(keep.max(1));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_per_policy_and_depth_by_exact_bytes_and_least_recently_used_first() {
        let (a, b) = (next_id(), next_id());
        assert_ne!(a, b);
        keep(a, 1, b"[\"tools\"]");
        assert_eq!(known_at(a, 1, b"[\"tools\"],\"x\":1}"), Some(9));
        assert_eq!(
            known_at(b, 1, b"[\"tools\"]"),
            None,
            "another policy has not read it"
        );
        assert_eq!(
            known_at(a, 2, b"[\"tools\"]"),
            None,
            "found deeper: not known"
        );
        assert_eq!(known_at(a, 1, b"[\"tooms\"]"), None);
        assert_eq!(known_at(a, 1, b"[\"tools"), None);
        for i in 0..ENTRIES {
            keep(a, 1, format!("[{i}]").as_bytes());
        }
        assert_eq!(known_at(a, 1, b"[\"tools\"]"), None, "the oldest made room");
        assert_eq!(known_at(a, 1, b"[1]"), Some(3));
        // Too large, or not a container: never kept.
        let mut big = vec![b' '; MAX_LEN + 1];
        big[0] = b'[';
        keep(a, 1, &big);
        assert_eq!(known_at(a, 1, &big), None);
        keep(a, 1, b"\"s\"");
        assert_eq!(known_at(a, 1, b"\"s\""), None);
    }
}
