//! What the stream holds past its window is what the detectors could still report, no more
//! and no less: base64 key blocks that run over the keys after them, addresses longer than
//! the window, and long benign base64 that only looks like the start of a token. Found by the
//! review of the open-match hold (`secrets::open`): each text streams, at every split, as it
//! is masked in one piece.

use super::splits::{EC, ED25519, check_splits, mask_all, not_streamed, streamed};
use super::*;

fn b64(data: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base64` without `-w0`: lines of 76 characters.
fn wrapped(data: &[u8]) -> String {
    let one = b64(data);
    let lines: Vec<&str> = one
        .as_bytes()
        .chunks(76)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    lines.join("\n")
}

/// Pseudo-random bytes (xorshift, seeded).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Base64 key blocks one after another: the finding of the first runs over every base64 line
/// after it, the second key's included, and the stream holds it from the first header.
#[test]
fn base64_keys_on_consecutive_lines_mask_as_not_streamed() {
    let policy = mask_all();
    let (k1, k2) = (b64(ED25519.as_bytes()), b64(EC.as_bytes()));
    let cert = b64(format!(
        "-----BEGIN CERTIFICATE-----\nMIIB{}\n-----END CERTIFICATE-----\n",
        "A".repeat(150)
    )
    .as_bytes());
    for (text, expect) in [
        (
            format!("$ for f in *.pem; do base64 -w0 $f; echo; done\n{k1}\n{k2}\n$ "),
            "$ for f in *.pem; do base64 -w0 $f; echo; done\n<PEM_PRIVATE_KEY>\n$ ".to_owned(),
        ),
        (
            format!(
                "$ base64 a.pem b.pem\n{}\n{}\n$ ",
                wrapped(ED25519.as_bytes()),
                wrapped(EC.as_bytes())
            ),
            "$ base64 a.pem b.pem\n<PEM_PRIVATE_KEY>\n$ ".to_owned(),
        ),
        (
            format!("{k1}\n{cert}\nDone."),
            "<PEM_PRIVATE_KEY>\nDone.".to_owned(),
        ),
    ] {
        check_splits(&policy, &text, &expect, &[256, 64]);
    }
}

/// Streamed one character at a time and in random pieces (every single cut of 17 KB would
/// take minutes): `text` comes out unchanged and the stream does not fail.
fn passes_unchanged(text: &str) {
    let policy = mask_all();
    assert_eq!(not_streamed(&policy, text), text, "not streamed");
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
    let mut splits = vec![chars];
    splits.extend((0..3).map(|seed| super::splits::random_cuts(text, seed)));
    for window in [256, 64] {
        for cuts in &splits {
            let pieces = super::splits::cut(text, cuts);
            for api in [Api::Anthropic, Api::OpenAi] {
                let got = streamed(&policy, api, window, &pieces);
                assert!(got == text, "window {window}, {api:?}: changed");
            }
        }
    }
}

/// Long base64 that holds a token's prefix at a boundary (`/` and `+` are one), or decodes
/// to a PEM block that is no private key, is held only while it could still be a secret: it
/// passes, where it used to be held to its end and fail the stream closed.
#[test]
fn long_benign_base64_is_not_held_to_its_end() {
    let size = MAX_OPEN_MATCH + 1024;
    // A JSON document in base64 (`eyJ…`, no dot: no JWT).
    let json = format!(
        "{{\"features\":{{{}\"end\":true}}}}",
        (0..size / 12)
            .map(|i| format!("\"f{i}\":1,"))
            .collect::<String>()
    );
    passes_unchanged(&format!(
        "The encoded config:\n\n{}\n\nDecode it with base64 -d.",
        b64(json.as_bytes())
    ));
    // An image whose base64 holds `/AKIA`, `+eyJ` and `/AIza`.
    let mut image = b64(&noise(size * 3 / 4, 7));
    image.replace_range(1000..1005, "/AKIA");
    image.replace_range(3000..3004, "+eyJ");
    image.replace_range(5000..5005, "/AIza");
    passes_unchanged(&format!("<img src=\"data:image/png;base64,{image}\"> done"));
    // Public keys and certificates in base64, one line.
    let body = wrapped(&noise(size * 3 / 4, 9));
    for label in ["PGP PUBLIC KEY BLOCK", "PUBLIC KEY", "CERTIFICATE"] {
        let block = format!("-----BEGIN {label}-----\n\n{body}\n-----END {label}-----\n");
        passes_unchanged(&format!("pubkey: {}\nok", b64(block.as_bytes())));
    }
}

/// Fixed-length keys and JWT headers inside base64 are held for their length, then released;
/// a real one at the end of such a run is still masked.
#[test]
fn tokens_in_base64_are_held_only_while_they_may_be_keys() {
    let policy = mask_all();
    let run = b64(&noise(300, 3));
    for (text, expect) in [
        (
            format!("{run}/AKIAIOSFODNN7EXAMPLE ok"),
            format!("{run}/<AWS_ACCESS_KEY> ok"),
        ),
        (
            format!("{run}/AKIAIOSFODNN7EXAMPLEX{run} ok"),
            format!("{run}/AKIAIOSFODNN7EXAMPLEX{run} ok"),
        ),
        (
            format!("x/AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe{run} ok"),
            format!("x/AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe{run} ok"),
        ),
    ] {
        assert_eq!(not_streamed(&policy, &text), expect);
        check_splits(&policy, &text, &expect, &[64]);
    }
}

/// An address longer than the window is held until it is decided (an address, an scp remote,
/// or neither).
#[test]
fn addresses_longer_than_the_window_mask_as_not_streamed() {
    let policy = mask_all();
    let long_local = format!("{}@example.com ok", "a".repeat(250));
    let remote = format!("{}git@github.com:acme/platform.git", "x".repeat(60));
    for (text, expect, windows) in [
        (
            "Contact alexandra.konstantinopoulou.procurement@eu-west.subsidiary.example.com.au for details.",
            "Contact <EMAIL> for details.",
            &[64, 32][..],
        ),
        (&long_local, "<EMAIL> ok", &[256, 64]),
        (&remote, &remote, &[64, 32]),
    ] {
        check_splits(&policy, text, expect, windows);
    }
}

/// A 16 KB JWT streamed one byte per event is held whole and masked, not refused or passed
/// in pieces; prose streamed the same way passes as it came.
#[test]
fn a_long_token_streamed_a_byte_at_a_time_is_masked_whole() {
    let policy = mask_all();
    let payload = b64(&noise(11 << 10, 5)).replace(['+', '/', '='], "x");
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJ{payload}.c2lnbmF0dXJlc2lnbmF0dXJl");
    let prose = "lorem ipsum dolor sit amet ".repeat(150);
    for (text, masked) in [(format!("tok: {jwt} ok"), true), (prose, false)] {
        let pieces: Vec<&str> = super::splits::cut(&text, &(1..text.len()).collect::<Vec<_>>());
        let input = anthropic_stream(&pieces);
        let (out, rejected) = run(&policy, Api::Anthropic, 256, &input, 1 << 20);
        let out = text_of(&out);
        assert!(!rejected, "{}", &text[..20]);
        if masked {
            assert_eq!(out, "tok: <JWT> ok");
        } else {
            assert_eq!(out, text);
        }
    }
}
