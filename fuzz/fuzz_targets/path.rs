//! Request path canonicalisation and classification, against upstream-style normalisers.
//!
//! The input is a guarded endpoint's path (or arbitrary text) with edits an attacker would
//! try: percent-escapes (either hex case, of any byte), case changes, repeated slashes, `.` and
//! `x/..` segments, `;params`, a trailing slash, a prefix, a query.
//!
//! 1. **Oracles.** Two normalisers stand for the upstreams agw fronts: Starlette-like (decode
//!    every percent-escape, collapse slashes, strip the trailing slash, case-fold) and the same
//!    with dot segments resolved (Go's `path.Clean`, nginx). When either maps the path to a
//!    guarded endpoint, agw must refuse the path or classify it as that endpoint's kind.
//! 2. **Canonical form.** `canonical_path` never panics; its output is a fixed point, starts
//!    with `/`, has no empty, `.` or `..` segment and no trailing slash; the path and its
//!    canonical form classify alike.
#![no_main]

use agw_core::route::{RouteKind, RouteTable, canonical_path};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const ENDPOINTS: &[(&str, RouteKind)] = &[
    ("/v1/messages", RouteKind::Messages),
    ("/v1/messages/count_tokens", RouteKind::CountTokens),
    ("/v1/messages/batches", RouteKind::MessageBatches),
    ("/v1/complete", RouteKind::Complete),
    ("/v1/chat/completions", RouteKind::Completions),
    ("/v1/completions", RouteKind::LegacyCompletions),
    ("/v1/responses", RouteKind::Responses),
    ("/v1/embeddings", RouteKind::Embeddings),
];

#[derive(Debug, Arbitrary)]
enum Edit {
    /// Percent-encode the byte at a position (upper- or lower-case hex).
    Encode(u8, bool),
    /// Insert a percent-escape of any byte.
    Escape(u8, u8),
    /// Upper-case the byte at a position.
    Upper(u8),
    /// Insert `/` at a position.
    Slash(u8),
    /// Insert `/.` at a position.
    Dot(u8),
    /// Insert `/x/..` at a position.
    Up(u8, bool),
    /// Insert `;param` at a position.
    Param(u8, String),
    /// Insert a character at a position.
    Char(u8, char),
}

#[derive(Debug, Arbitrary)]
struct Input {
    endpoint: u8,
    raw: Option<String>,
    edits: Vec<Edit>,
    trailing_slash: bool,
    query: bool,
}

fn at(s: &str, pos: u8) -> usize {
    let mut i = usize::from(pos) % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn build(input: &Input) -> String {
    let mut s = match &input.raw {
        Some(r) => r.clone(),
        None => ENDPOINTS[usize::from(input.endpoint) % ENDPOINTS.len()]
            .0
            .to_owned(),
    };
    for e in input.edits.iter().take(16) {
        match e {
            Edit::Encode(p, upper) => {
                let i = at(&s, *p);
                if let Some(c) = s[i..].chars().next() {
                    let mut enc = String::new();
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        enc.push_str(&if *upper {
                            format!("%{b:02X}")
                        } else {
                            format!("%{b:02x}")
                        });
                    }
                    s.replace_range(i..i + c.len_utf8(), &enc);
                }
            }
            Edit::Escape(p, b) => s.insert_str(at(&s, *p), &format!("%{b:02x}")),
            Edit::Upper(p) => {
                let i = at(&s, *p);
                if let Some(c) = s[i..].chars().next() {
                    s.replace_range(i..i + c.len_utf8(), &c.to_uppercase().to_string());
                }
            }
            Edit::Slash(p) => s.insert(at(&s, *p), '/'),
            Edit::Dot(p) => s.insert_str(at(&s, *p), "/."),
            Edit::Up(p, enc) => s.insert_str(at(&s, *p), if *enc { "/x/%2e%2E" } else { "/x/.." }),
            Edit::Param(p, v) => {
                let v: String = v
                    .chars()
                    .filter(|c| *c != '/' && *c != '?')
                    .take(8)
                    .collect();
                s.insert_str(at(&s, *p), &format!(";{v}"));
            }
            Edit::Char(p, c) => s.insert(at(&s, *p), *c),
        }
    }
    if input.trailing_slash {
        s.push('/');
    }
    if input.query {
        s.push_str("?beta=true");
    }
    s
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex digits are ASCII");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Starlette-like: decode everything, collapse slashes, strip the trailing one, case-fold;
/// with `dots`, also resolve `.` and `..`.
fn oracle(path: &str, dots: bool) -> String {
    let decoded = String::from_utf8_lossy(&percent_decode(path)).to_lowercase();
    let mut segs: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" => {}
            "." if dots => {}
            ".." if dots => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("/{}", segs.join("/"))
}

fn table() -> &'static RouteTable {
    static T: OnceLock<RouteTable> = OnceLock::new();
    T.get_or_init(RouteTable::claude_code)
}

fuzz_target!(|input: Input| {
    let target = build(&input);
    let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p);

    // 1. Oracles.
    for dots in [false, true] {
        let seen = oracle(path, dots);
        if let Some((_, kind)) = ENDPOINTS.iter().find(|(e, _)| *e == seen) {
            if let Ok((got, _)) = table().route(&target) {
                assert_eq!(
                    got, *kind,
                    "{target:?} is {seen} to an upstream (dots: {dots})"
                );
            }
        }
    }

    // 2. Canonical form.
    if let Ok(canonical) = canonical_path(path) {
        assert!(canonical.starts_with('/'));
        assert_eq!(canonical_path(&canonical).unwrap(), canonical, "{target:?}");
        if canonical.len() > 1 {
            assert!(!canonical.ends_with('/'), "{canonical}");
            for seg in canonical[1..].split('/') {
                assert!(!matches!(seg, "" | "." | ".."), "{canonical}");
            }
        }
        assert_eq!(
            table().lookup(path),
            table().lookup(&canonical),
            "{target:?}"
        );
    }
});
