//! Canonical request paths (see [`canonical_path`]).

use std::borrow::Cow;

/// Why a request path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Not an absolute path (`*`, an authority, a relative reference).
    #[error("the request path must start with `/`")]
    NotAbsolute,
    /// `%2F` or `%5C`: upstreams disagree on whether it separates segments.
    #[error("the request path contains an encoded slash or backslash (%2F, %5C)")]
    EncodedSlash,
    /// A raw `\`, which some servers take for `/`.
    #[error("the request path contains a backslash")]
    Backslash,
    /// A control or non-ASCII byte, raw or percent-encoded.
    #[error("the request path contains a control or non-ASCII byte")]
    Byte,
    /// `%` not followed by two hex digits.
    #[error("the request path contains a malformed percent-escape")]
    BadEscape,
    /// A `..` segment whose meaning upstreams disagree on: it carries a `;param`, or an empty
    /// segment or a `;param` comes before it (one upstream drops `;x` or `//` as empty, another
    /// keeps it as a segment for `..` to remove).
    #[error("the request path has a `..` segment after an empty segment or a `;param`")]
    AmbiguousDots,
}

/// Whether a decoded byte may stand for itself in a path segment (RFC 3986 `pchar` minus `%`
/// and `/`).
fn decodes(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `b` with its `%XX` escapes decoded and nothing else (`+` stays a `+`: a data URL's
/// base64 holds them; a query's `logprobs` check reads escapes only).
pub(crate) fn escapes_decoded(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |k: usize| b.get(k).copied().and_then(hex);
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `url` with its percent-escapes decoded and `+` read as a space (a query's form encoding);
/// an escape that is not two hex digits is kept as written.
///
/// ```
/// assert_eq!(agw_core::route::percent_decoded(b"a%5Fb+c%zz"), b"a_b c%zz");
/// ```
pub fn percent_decoded(url: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(url.len());
    let mut i = 0;
    while i < url.len() {
        match url[i] {
            b'%' => match (
                url.get(i + 1).and_then(|&c| hex(c)),
                url.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    match String::from_utf8_lossy(&out) {
        std::borrow::Cow::Borrowed(_) => out,
        std::borrow::Cow::Owned(s) => s.into_bytes(),
    }
}

/// Whether `path` is already canonical (the common case), checked without allocating: absolute,
/// and what [`resolve`] would give back unchanged.
fn is_canonical(path: &[u8]) -> bool {
    let end = path.len();
    if path.first() != Some(&b'/') || (end > 1 && path[end - 1] == b'/') {
        return false;
    }
    // One branch-free pass over byte pairs: bytes never in a canonical path (`%`, `;`, `\`,
    // space, controls, non-ASCII), empty segments, and segments starting with a dot.
    // (Written over two shifted slices so that it compiles to SIMD.)
    let (before, after) = (&path[..end - 1], &path[1..]);
    let (mut bad, mut dot) = (0u8, 0u8);
    for i in 0..after.len() {
        let (a, b) = (before[i], after[i]);
        let slash = u8::from(a == b'/');
        bad |= u8::from(b <= b' ')
            | u8::from(b >= 0x7f)
            | u8::from(b == b'%')
            | u8::from(b == b';')
            | u8::from(b == b'\\')
            | (slash & u8::from(b == b'/'));
        dot |= slash & u8::from(b == b'.');
    }
    if bad != 0 {
        return false;
    }
    // Rare: is one of the segments starting with a dot `.` or `..`?
    dot == 0
        || !path
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"/.")
            .any(|(i, _)| {
                let seg = path[i + 1..]
                    .split(|&b| b == b'/')
                    .next()
                    .unwrap_or_default();
                seg == b"." || seg == b".."
            })
}

/// The canonical form of a request path (without its query): one spelling for every path an
/// upstream would treat alike.
///
/// Upstreams decode and normalise paths before routing (Starlette/uvicorn servers decode
/// percent-escapes, many collapse slashes or ignore a trailing slash, some route without regard
/// to case or drop `;params`). A guard that classified the raw spelling would see
/// `/v1/message%73` as an unknown path while the upstream serves it as Messages. So agw
/// classifies, and forwards, the canonical form:
///
/// - percent-escapes of printable ASCII that may appear in a path are decoded (`%73` → `s`,
///   `%2E` → `.`); escapes of characters that may not (space, `%`, `?`, `#`, ...) stay escaped,
///   with upper-case hex;
/// - an encoded slash or backslash (`%2F`, `%5C`), a raw backslash, an encoded control or
///   non-ASCII byte, and a malformed escape are refused: no spelling of them is safe with every
///   upstream;
/// - `;params` are removed from every segment;
/// - `.` and `..` segments are resolved (never above the root), empty segments (`//`) and a
///   trailing slash are removed.
///
/// Case is kept (IDs in paths are case-sensitive); route matching ignores ASCII case instead.
///
/// # Example
///
/// ```
/// use agw_core::route::canonical_path;
///
/// assert_eq!(canonical_path("/v1/messages").unwrap(), "/v1/messages");
/// assert_eq!(canonical_path("//v1/./message%73/;x").unwrap(), "/v1/messages");
/// assert!(canonical_path("/v1%2fmessages").is_err());
/// ```
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    resolve(bytes).map(Cow::Owned)
}

/// The canonical form of an absolute path, built: escapes decoded, `;params` removed,
/// segments resolved (see [`canonical_path`]).
fn resolve(bytes: &[u8]) -> Result<String, PathError> {
    // Decode.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let c = h << 4 | l;
                if c == b'/' || c == b'\\' {
                    return Err(PathError::EncodedSlash);
                }
                if !(0x20..0x7f).contains(&c) {
                    return Err(PathError::Byte);
                }
                if decodes(c) {
                    decoded.push(c);
                } else {
                    decoded.push(b'%');
                    decoded.extend_from_slice(format!("{c:02X}").as_bytes());
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            0..0x20 | 0x7f.. => return Err(PathError::Byte),
            _ => decoded.push(b),
        }
        i += 1;
    }
    // Resolve segments. Upstreams agree on `..` only over plain segments: `/;x/..` and
    // `//..` pop a different segment in a server that strips `;params` or collapses slashes
    // than in one that does neither, so such a `..` is refused rather than guessed.
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut unclear = false;
    for raw in decoded[1..].split(|b| *b == b'/') {
        let mut parts = raw.splitn(2, |b| *b == b';');
        let seg = parts.next().unwrap_or_default();
        let param = parts.next().is_some();
        match seg {
            b".." if unclear || param => return Err(PathError::AmbiguousDots),
            b".." => {
                segments.pop();
            }
            b"" | b"." => unclear |= raw.is_empty() || param,
            s => {
                unclear |= param;
                segments.push(s);
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        // Only ASCII was pushed above.
        out.push_str(std::str::from_utf8(s).expect("ASCII"));
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_table() {
        for (path, want) in [
            ("/", Ok("/")),
            ("/v1/messages", Ok("/v1/messages")),
            ("/v1/message%73", Ok("/v1/messages")),
            ("/v1/messages/", Ok("/v1/messages")),
            ("//v1/messages", Ok("/v1/messages")),
            ("/v1//messages//", Ok("/v1/messages")),
            ("/v1/./messages", Ok("/v1/messages")),
            ("/v1/x/../messages", Ok("/v1/messages")),
            ("/../../v1/messages", Ok("/v1/messages")),
            ("/v1/%2e/messages", Ok("/v1/messages")),
            ("/v1/%2E%2E/v1/messages", Ok("/v1/messages")),
            ("/V1/MESSAGES", Ok("/V1/MESSAGES")),
            ("/v1/messages;x", Ok("/v1/messages")),
            ("/v1;a=b/messages;c", Ok("/v1/messages")),
            ("/v1/messages/..;x/messages", Err(PathError::AmbiguousDots)),
            ("/v1/x/../;2x/../completions", Err(PathError::AmbiguousDots)),
            ("/v1//../completions", Err(PathError::AmbiguousDots)),
            ("/v1/x;p/../completions", Err(PathError::AmbiguousDots)),
            ("/v1/./x/../messages", Ok("/v1/messages")),
            ("/v1/x/../messages;p", Ok("/v1/messages")),
            ("/v1/files/a%20b", Ok("/v1/files/a%20b")),
            ("/v1/files/a%3fb%25", Ok("/v1/files/a%3Fb%25")),
            ("/.", Ok("/")),
            ("/..", Ok("/")),
            ("/a.b/.c/..d", Ok("/a.b/.c/..d")),
            ("/v1%2fmessages", Err(PathError::EncodedSlash)),
            ("/v1%2Fmessages", Err(PathError::EncodedSlash)),
            ("/v1%5cmessages", Err(PathError::EncodedSlash)),
            ("/v1\\messages", Err(PathError::Backslash)),
            ("/v1/messages%00", Err(PathError::Byte)),
            ("/v1/m%C3%A9", Err(PathError::Byte)),
            ("/v1/m\u{e9}", Err(PathError::Byte)),
            ("/v1/messages%", Err(PathError::BadEscape)),
            ("/v1/messages%7", Err(PathError::BadEscape)),
            ("/v1/messages%zz", Err(PathError::BadEscape)),
            ("*", Err(PathError::NotAbsolute)),
            ("v1/messages", Err(PathError::NotAbsolute)),
            ("", Err(PathError::NotAbsolute)),
        ] {
            let got = canonical_path(path);
            assert_eq!(got.as_deref().map_err(|e| *e), want, "{path}");
        }
    }

    #[test]
    fn canonical_is_a_fixed_point_and_borrowed() {
        for path in ["/", "/v1/messages", "/a.b/.c/..d", "/v1/files/a%20b"] {
            let once = canonical_path(path).unwrap();
            let twice = canonical_path(&once).unwrap().into_owned();
            assert_eq!(once, twice, "{path}");
        }
        assert!(matches!(
            canonical_path("/v1/messages"),
            Ok(Cow::Borrowed(_))
        ));
        let odd = canonical_path("/v1/./x/../message%73;p/").unwrap();
        assert_eq!(canonical_path(&odd).unwrap(), odd);
    }

    /// The shortcut is sound: whatever it takes as canonical, the full canonicalisation gives
    /// back unchanged. (And it is not idle: among plain paths it takes every canonical one.)
    #[test]
    fn the_fast_path_agrees_with_the_full_canonicalisation() {
        // Every path over a small alphabet of the bytes that matter, up to 6 bytes after `/`.
        let alphabet = [b'/', b'.', b'?', b'a', b'%', b';', b' ', b'\\', b'2', b'F'];
        let mut taken = 0;
        for len in 0..=6u32 {
            for mut k in 0..alphabet.len().pow(len) {
                let mut t = vec![b'/'];
                for _ in 0..len {
                    t.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                let s = std::str::from_utf8(&t).unwrap();
                let resolved = resolve(&t);
                if is_canonical(&t) {
                    taken += 1;
                    assert_eq!(resolved.as_deref(), Ok(s), "{s:?}");
                } else if !t.iter().any(|b| matches!(b, b'%' | b' ')) {
                    // (`%20` stays `%20`, and a space is refused by the full path only.)
                    assert_ne!(
                        resolved.as_deref(),
                        Ok(s),
                        "{s:?} is canonical but not taken"
                    );
                }
            }
        }
        assert!(taken > 1000, "{taken}");
    }

    /// Starlette-like normaliser (the fuzz target `path` uses the same oracle): decode every
    /// escape, collapse slashes, drop the trailing one, case-fold; with `dots`, resolve them.
    fn oracle(path: &str, dots: bool) -> String {
        let b = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit()
            {
                out.push(u8::from_str_radix(&path[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        let decoded = String::from_utf8_lossy(&out).to_lowercase();
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

    #[test]
    fn every_spelling_an_upstream_routes_to_an_endpoint_classifies_as_it() {
        use crate::route::{RouteKind, RouteTable};
        let table = RouteTable::claude_code();
        let endpoints = [
            ("/v1/messages", RouteKind::Messages),
            ("/v1/messages/count_tokens", RouteKind::CountTokens),
            ("/v1/messages/batches", RouteKind::MessageBatches),
            ("/v1/complete", RouteKind::Complete),
            ("/v1/chat/completions", RouteKind::Completions),
            ("/v1/completions", RouteKind::LegacyCompletions),
            ("/v1/responses", RouteKind::Responses),
            ("/v1/embeddings", RouteKind::Embeddings),
        ];
        let mut checked = 0;
        for (endpoint, kind) in endpoints {
            let mut spellings = Vec::new();
            for i in 0..endpoint.len() {
                let (a, b) = endpoint.split_at(i);
                let c = b.as_bytes()[0];
                spellings.push(format!("{a}%{c:02x}{}", &b[1..]));
                spellings.push(format!("{a}%{c:02X}{}", &b[1..]));
                spellings.push(format!("{a}{}{}", b[..1].to_uppercase(), &b[1..]));
                spellings.push(format!("{a}/{b}"));
                spellings.push(format!("{a}/./{b}"));
                spellings.push(format!("{a}/x/../{b}"));
                spellings.push(format!("{a}/x/%2e%2E/{b}"));
                spellings.push(format!("{a};p{b}"));
                spellings.push(format!("{a}/;p/../{b}"));
                spellings.push(format!("{a}//../{b}"));
                spellings.push(format!("{a}/.;p/x/../{b}"));
                spellings.push(format!("{a}%2f{b}"));
                spellings.push(format!("{a}%25{b}"));
                spellings.push(format!("{a}%20{b}"));
            }
            spellings.push(format!("{endpoint}/"));
            spellings.push(format!("{endpoint}//"));
            spellings.push(endpoint.to_uppercase());
            spellings.push(format!("/{endpoint}"));
            for s in &spellings {
                for dots in [false, true] {
                    if oracle(s, dots) == endpoint {
                        checked += 1;
                        if let Ok((got, _)) = table.route(s) {
                            assert_eq!(got, kind, "{s} (dots: {dots})");
                        }
                    }
                }
                if let Ok(c) = canonical_path(s) {
                    assert_eq!(table.lookup(s), table.lookup(&c), "{s}");
                }
            }
        }
        assert!(checked > 500, "{checked}");
    }
}
