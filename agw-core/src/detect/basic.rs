//! HTTP Basic credentials: `Authorization: Basic dXNlcjpwYXNz`, the base64 of `user:password`,
//! as `curl -v`, an HTTP log, a `.har` file or a proxy's config prints them (red team,
//! twenty-sixth session: only a URL's `user:password@` was read). Reported as a
//! [`UrlPassword`](super::Detector::UrlPassword): the same credential, written another way.
//!
//! Found by a search of its own for `asic ` (the automaton of prefixes holds the most literals
//! its prefilter takes), then the scheme's `B` or `b` at a word's start, one blank, and 8 to
//! [`MAX_TOKEN`] base64 characters (padded or not) that decode to printable text with a `:`
//! between a non-empty user and password.

use super::secrets::base64_prefix;
use super::{at, is_word};
use std::sync::OnceLock;

/// The longest token read.
const MAX_TOKEN: usize = 1024;
/// The shortest: `a:b` is `YTpi`, but eight characters (`user:pw`) is where a credential
/// starts to look like one.
const MIN_TOKEN: usize = 8;

fn finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(b"asic "))
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')
}

/// Where the token after the `asic ` at `a` starts, if `a` is one of the scheme's.
fn token_start(text: &[u8], a: usize) -> Option<usize> {
    let b = a.checked_sub(1)?;
    (matches!(text[b], b'B' | b'b') && (b == 0 || !is_word(text[b - 1]))).then_some(a + 5)
}

/// The base64 token at `s`: its end, padding included.
fn token_end(text: &[u8], s: usize) -> usize {
    let e = s + text[s..]
        .iter()
        .take(MAX_TOKEN + 1)
        .take_while(|&&b| is_b64(b))
        .count();
    e + text[e..].iter().take(2).take_while(|&&b| b == b'=').count()
}

/// The Basic credentials' tokens in `text`, as ranges.
pub(super) fn find(text: &[u8], mut each: impl FnMut(usize, usize)) {
    for a in finder().find_iter(text) {
        let Some(s) = token_start(text, a) else {
            continue;
        };
        let e = token_end(text, s);
        let digits = text[s..e].iter().take_while(|&&b| b != b'=').count();
        let padded = e - s > digits;
        if !(MIN_TOKEN..=MAX_TOKEN).contains(&digits)
            || (padded && !(e - s).is_multiple_of(4))
            || digits % 4 == 1
            || is_word(at(text, e))
            || matches!(at(text, e), b'+' | b'/' | b'=')
        {
            continue;
        }
        if credentials(&base64_prefix(&text[s..s + digits])) {
            each(s, e);
        }
    }
}

/// Whether `decoded` is `user:password`: printable ASCII or UTF-8 without controls, a `:`
/// with something on both sides.
fn credentials(decoded: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(decoded) else {
        return false;
    };
    if text.chars().any(char::is_control) {
        return false;
    }
    text.split_once(':')
        .is_some_and(|(user, password)| !user.is_empty() && !password.is_empty())
}

/// Where a token that text still to come may make one starts, at or after `from`: the text
/// ends inside it, or inside the scheme's `Basic ` before it.
pub(super) fn open(text: &[u8], from: usize) -> Option<usize> {
    let from = from.min(text.len());
    // The scheme cut: `B`, `Ba`, … `Basic` at the very end.
    let tail = &text[text.len().saturating_sub(5).max(from)..];
    for k in (1..=tail.len()).rev() {
        let t = &tail[tail.len() - k..];
        let s = text.len() - k;
        if b"basic "[..k].eq_ignore_ascii_case(t) && (s == 0 || !is_word(text[s - 1])) {
            return Some(s);
        }
    }
    // Only the last scheme can still be open: a token ends at the next blank.
    let window = text.len().saturating_sub(MAX_TOKEN + 6).max(from);
    let last = memchr::memmem::rfind(&text[window..], b"asic ").map(|a| window + a)?;
    let s = token_start(text, last)?;
    let e = token_end(text, s);
    (e == text.len() && e - s <= MAX_TOKEN).then_some(s - 6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detector;
    use crate::detect::tests::check;

    #[test]
    fn basic_credentials_are_found() {
        let cases: &[(&str, &[&str])] = &[
            // alice:S3cr3t-Pa55
            (
                "> Authorization: Basic YWxpY2U6UzNjcjN0LVBhNTU=\r\n",
                &["YWxpY2U6UzNjcjN0LVBhNTU="],
            ),
            (
                r#"{"headers": {"authorization": "basic YWxpY2U6UzNjcjN0LVBhNTU"}}"#,
                &["YWxpY2U6UzNjcjN0LVBhNTU"],
            ),
            // admin:hunter2
            (
                "curl -H 'Authorization: Basic YWRtaW46aHVudGVyMg==' https://x",
                &["YWRtaW46aHVudGVyMg=="],
            ),
            // No `:` in it, a user alone, prose, a word glued before, too short.
            ("Authorization: Basic aGVsbG8gd29ybGQ=", &[]),
            ("Authorization: Basic YWxpY2U6", &[]),
            ("Basic usage of the API is simple.", &[]),
            ("XBasic YWxpY2U6UzNjcjN0LVBhNTU=", &[]),
            ("Basic YTpi", &[]),
        ];
        for (text, expect) in cases {
            check(Detector::UrlPassword, text, expect);
        }
    }

    #[test]
    fn a_token_or_scheme_cut_at_the_end_is_open() {
        let text = b"Authorization: Basic YWxpY2U6UzNj";
        assert_eq!(open(text, 0), Some(15));
        assert_eq!(open(b"header: Bas", 0), Some(8));
        assert_eq!(
            open(b"Authorization: Basic YWxpY2U6UzNjcjN0LVBhNTU= ok", 0),
            None
        );
        assert_eq!(open(b"nothing here", 0), None);
    }
}
