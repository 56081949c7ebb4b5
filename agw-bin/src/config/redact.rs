//! Masking secret-looking values in text meant for people: configuration errors, `agw check`
//! output and the `/config` admin page.
//!
//! A key pasted into the wrong field comes back in serde's "invalid type" or "unknown variant"
//! message, and a `--base-url http://user:pass@host` in an URL error; both must show where the
//! problem is without showing the value. Three nets, any of which masks:
//!
//! - the password (or a lone token) in the user-info part of a URL;
//! - anything agw's secret detectors recognise (Anthropic, OpenAI, AWS, GitHub, Slack, Google
//!   and Stripe keys, JWTs, PEM private keys), and known key prefixes glued to other text
//!   ([`agw_core::detect::credential_spans`]);
//! - a long random-looking token: 20 or more characters of `[A-Za-z0-9_+/=.-]` with both letters
//!   and digits (file paths, model names and field names do not look like that).
//!
//! # Example
//!
//! ```
//! use agw_bin::config::redact::secrets;
//!
//! assert_eq!(secrets("base URL `http://bob:hunter2@proxy:8080/`"), "base URL `http://bob:***@proxy:8080/`");
//! assert_eq!(secrets("unknown variant `sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123`"), "unknown variant `***`");
//! assert_eq!(secrets("listen: `nope` is not HOST:PORT"), "listen: `nope` is not HOST:PORT");
//! ```

use std::borrow::Cow;
use std::ops::Range;

/// What masked text says instead of a secret.
pub const MASK: &str = "***";

/// `text` with every secret-looking value replaced by [`MASK`].
pub fn secrets(text: &str) -> Cow<'_, str> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    url_passwords(text, &mut ranges);
    agw_core::detect::credential_spans(text, &mut ranges);
    random_tokens(text, &mut ranges);
    mask(text, ranges)
}

/// `text` with what agw's secret detectors recognise, and URL passwords, replaced by [`MASK`]:
/// for request paths and model names in the access log, which the random-token net of
/// [`secrets`] would mangle (`claude-sonnet-4-5-20250929` looks random).
pub fn known_secrets(text: &str) -> Cow<'_, str> {
    // Every secret the detectors know, and every card number, is longer than this.
    if text.len() < 12 {
        return Cow::Borrowed(text);
    }
    let mut ranges: Vec<Range<usize>> = Vec::new();
    url_passwords(text, &mut ranges);
    // The detectors, and a known key prefix anywhere (a key glued to a model name or a path
    // segment has no boundary for the detectors to find).
    agw_core::detect::credential_spans(text, &mut ranges);
    // And payment cards: a client can put one in a model name or a path, which the request
    // guard refuses where a rule asks, and the log line must not show either way (seventh
    // review: `model="card 4111…"` was logged as sent).
    let mut cards = Vec::new();
    agw_core::detect::DetectorSet::new([agw_core::detect::Detector::CreditCard])
        .find(text.as_bytes(), &mut cards);
    ranges.extend(cards.into_iter().map(|f| f.range));
    mask(text, ranges)
}

/// [`known_secrets`] for a request path: a secret written with percent-escapes
/// (`/v1/%41KIA…`, `sk%2Dant-…`), which the request guard reads decoded, is found in the
/// decoded path, and then the decoded path is what is shown, masked. Found by the sixth
/// review.
pub fn known_secrets_in_path(path: &str) -> Cow<'_, str> {
    if path.contains('%') {
        let decoded = agw_core::route::percent_decoded(path.as_bytes());
        let decoded = String::from_utf8_lossy(&decoded);
        if let Cow::Owned(masked) = known_secrets(&decoded) {
            return Cow::Owned(masked);
        }
    }
    known_secrets(path)
}

/// [`known_secrets`] for text that repeats from one request to the next, as model names do:
/// each thread keeps its last answer, so the access log does not run the detectors over the
/// same name on every line.
pub fn known_secrets_repeated(text: &str) -> Cow<'_, str> {
    thread_local! {
        /// The last text seen, and its masked form when it had to be masked.
        static LAST: Remembered = const { std::cell::RefCell::new((String::new(), None)) };
    }
    remembered(&LAST, text)
}

/// [`known_secrets_repeated`] for identities (a token's `sub`, which an identity provider
/// chooses): remembered apart from model names, which alternate with them line by line.
/// Metrics redact such a label; the log line masks it (twelfth session's black-box review).
pub fn known_secrets_in_identity(text: &str) -> Cow<'_, str> {
    thread_local! {
        static LAST: Remembered = const { std::cell::RefCell::new((String::new(), None)) };
    }
    remembered(&LAST, text)
}

/// A thread's last text and its masked form, when it had to be masked.
type Remembered = std::cell::RefCell<(String, Option<String>)>;

fn remembered<'t>(last: &'static std::thread::LocalKey<Remembered>, text: &'t str) -> Cow<'t, str> {
    if text.len() < 16 {
        return Cow::Borrowed(text);
    }
    last.with_borrow_mut(|(seen, masked)| {
        if seen != text {
            *masked = match known_secrets(text) {
                Cow::Borrowed(_) => None,
                Cow::Owned(m) => Some(m),
            };
            seen.clear();
            seen.push_str(text);
        }
        match masked {
            None => Cow::Borrowed(text),
            Some(m) => Cow::Owned(m.clone()),
        }
    })
}

/// `text` with `ranges` (in any order, overlapping or not) replaced by [`MASK`].
fn mask(text: &str, mut ranges: Vec<Range<usize>>) -> Cow<'_, str> {
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    ranges.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        if r.end <= at {
            continue;
        }
        let start = r.start.max(at);
        // Detector ranges are byte ranges of valid UTF-8 text on character boundaries.
        out.push_str(&text[at..start]);
        if start == r.start || !out.ends_with(MASK) {
            out.push_str(MASK);
        }
        at = r.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// The password of each `scheme://user:password@host` (or the token of `scheme://token@host`).
fn url_passwords(text: &str, out: &mut Vec<Range<usize>>) {
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        let end = text[start..]
            .find(|c: char| c == '/' || c == '`' || c == '\'' || c == '"' || c.is_whitespace())
            .map_or(text.len(), |n| start + n);
        if let Some(at) = text[start..end].rfind('@') {
            let info = &text[start..start + at];
            match info.find(':') {
                Some(colon) => out.push(start + colon + 1..start + at),
                None if !info.is_empty() => out.push(start..start + at),
                None => {}
            }
        }
        from = end.max(start);
    }
}

fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_+/=.-".contains(&c)
}

/// Long runs of token characters with letters and digits, not paths or URLs.
fn random_tokens(text: &str, out: &mut Vec<Range<usize>>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !token_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && token_char(b[i]) {
            i += 1;
        }
        let run = &b[start..i];
        let looks_random = run.len() >= 20
            && run.iter().any(u8::is_ascii_digit)
            && run.iter().any(u8::is_ascii_alphabetic)
            && !matches!(run[0], b'/' | b'.')
            && !b[i..].starts_with(b"://")
            && run.iter().filter(|c| **c == b'/').count() < 2
            && run.iter().filter(|c| **c == b'.').count() < 3;
        if looks_random {
            out.push(start..i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret hidden behind percent-escapes in a path is masked in the decoded path (sixth
    /// review); a path without one is shown as sent.
    #[test]
    fn a_percent_encoded_secret_in_a_path_is_masked() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        for path in [
            "/v1/%41KIAIOSFODNN7EXAMPLE/x",
            "/v1/x/%67hp_0123456789abcdefghijABCDEFGHIJ012345",
            "/v1/x/sk%2Dant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
        ] {
            let shown = known_secrets_in_path(path);
            assert!(shown.contains(MASK), "{path}: {shown}");
            assert!(!shown.contains("KIAIOSFODNN7"), "{shown}");
            assert!(!shown.contains("0123456789abcdefghij"), "{shown}");
            assert!(!shown.contains("abcdefghijklmnopqrst"), "{shown}");
        }
        // Nothing hidden: the path as sent.
        assert_eq!(
            known_secrets_in_path("/v1/messages%3Fx"),
            "/v1/messages%3Fx"
        );
        assert_eq!(known_secrets_in_path(&format!("/v1/{key}")), "/v1/***");
        // agw's own key, its prefix in any case (seventeenth session's red-team review).
        for path in [
            "/v1/files/agw_bO_NL_CGXq2m7ZkR4vT9wYp3sLd8fHj6aEc1uVn0xIbQ",
            "/v1/files/AGW_bO_NL_CGXq2m7ZkR4vT9wYp3sLd8fHj6aEc1uVn0xIbQ",
            "/v1/files/Agw_bO_NL_CGXq2m7ZkR4vT9wYp3sLd8fHj6aEc1uVn0xIbQ",
        ] {
            assert_eq!(known_secrets_in_path(path), "/v1/files/***", "{path}");
        }
    }

    /// The per-thread memory answers as `known_secrets` would, for the same text twice and
    /// after a change either way.
    #[test]
    fn known_secrets_repeated_answers_as_known_secrets() {
        for text in [
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
            "claude-sonnet-eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
            "gpt-4o-mini-2024-07-18",
            "short",
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123",
        ] {
            assert_eq!(known_secrets_repeated(text), known_secrets(text), "{text}");
        }
        assert_eq!(
            known_secrets_repeated("claude-sonnet-eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"),
            "claude-sonnet-***"
        );
    }

    #[test]
    fn card_numbers_in_model_names_and_paths_are_masked() {
        for (text, card) in [
            ("card 4111111111111111", "4111111111111111"),
            ("claude-4111 1111 1111 1111", "4111 1111 1111 1111"),
            (
                "/v1/files/4111-1111-1111-1111/content",
                "4111-1111-1111-1111",
            ),
            ("4222222222222", "4222222222222"),
            ("4012888888881881", "4012888888881881"),
        ] {
            let masked = known_secrets(text);
            assert!(masked.contains(MASK), "{text}: {masked}");
            // The number as written, and any of its digit groups, are gone.
            assert!(
                !masked.contains(card) && !masked.contains("1111"),
                "{text}: {masked}"
            );
            assert_eq!(masked, text.replace(card, MASK), "{text}");
        }
        // Dates and versions in model names are not cards.
        for kept in ["claude-sonnet-4-5-20250929", "model-1234567890123-x"] {
            assert_eq!(known_secrets(kept), kept);
        }
    }

    #[test]
    fn known_secrets_keeps_model_names_and_paths() {
        for kept in [
            "claude-sonnet-4-5-20250929",
            "/v1/messages/count_tokens",
            "gpt-4o-mini-2024-07-18",
        ] {
            assert_eq!(known_secrets(kept), kept);
        }
        assert_eq!(
            known_secrets("/v1/AKIAIOSFODNN7EXAMPLE/messages"),
            "/v1/***/messages"
        );
        assert_eq!(
            known_secrets("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123"),
            "***"
        );
        // Found by the red-team review: keys glued to a model name or inside a path segment,
        // agw's own keys among them.
        for (text, masked) in [
            (
                "claude-sonnet-agw_kjnyQ0123456789abcdefghijKLMNOPQRSTUV",
                "claude-sonnet-***",
            ),
            (
                "/v1/foo/xsk-ant-api03-abcdefghijklmnopqrstuvwxyz0123/x",
                "/v1/foo/x***/x",
            ),
            (
                "claude-sonnet-eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
                "claude-sonnet-***",
            ),
        ] {
            assert_eq!(known_secrets(text), masked, "{text}");
        }
    }

    #[test]
    fn masks_what_looks_secret_and_keeps_the_rest() {
        let cases = [
            ("http://user:pass@host:1/x", "http://user:***@host:1/x"),
            ("https://tok3nvalue@host", "https://***@host"),
            ("https://host/path@x", "https://host/path@x"),
            (
                "invalid type: string \"sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345\", expected u16",
                "invalid type: string \"***\", expected u16",
            ),
            (
                "unknown variant `ghp_0123456789abcdefghijABCDEFGHIJ012345`",
                "unknown variant `***`",
            ),
            ("key AKIAIOSFODNN7EXAMPLE here", "key *** here"),
            ("a1b2c3d4e5f6g7h8i9j0k1l2", "***"),
            (
                "cannot read `/etc/agw/keys/anthropic-2026-11.txt`",
                "cannot read `/etc/agw/keys/anthropic-2026-11.txt`",
            ),
            (
                "model `claude-opus-4-6` is not allowed",
                "model `claude-opus-4-6` is not allowed",
            ),
            (
                "promptGuard.request[0].regex: unknown field `mathces`",
                "promptGuard.request[0].regex: unknown field `mathces`",
            ),
            ("listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080"),
        ];
        for (input, want) in cases {
            assert_eq!(secrets(input), want, "{input}");
        }
    }
}
