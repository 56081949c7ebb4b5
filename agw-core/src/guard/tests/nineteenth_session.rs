//! Found in the nineteenth session's red-team review: text written with escapes a model reads
//! through (HTML character references, URL escapes, program text's `\x`/`\u`).

use super::*;

pub(super) fn refused(v: &Verdict) -> bool {
    matches!(v.decision(), Decision::Reject(_))
}

fn chat(text: &str) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":{}}}]}}"#,
        serde_json::to_string(text).unwrap()
    )
}

/// The policy's verdict on a chat whose one user message is `text`.
pub(super) fn verdict(p: &Policy, text: &str) -> Verdict {
    p.inspect(RouteKind::Messages, chat(text).as_bytes())
        .unwrap()
}

#[test]
fn escaped_text_is_read_as_a_model_reads_it() {
    let p = seed_policy();
    for text in [
        "my cr&#101;dit card",
        "my cr&#x65;dit card",
        "my cr&#X65;dit card",
        "my cr&#101dit card",
        "my cr&#0000000101;dit card",
        "my credit&nbsp;card",
        "my credit&#32;card",
        "my credit&#xa0;card",
        "my cred&shy;it card",
        "my credit%20card",
        "my cr%65dit card",
        "my %63%72%65%64%69%74 card",
        "my cr\\x65dit card",
        "my cr\\u0065dit card",
        "my cr\\u{65}dit card",
        "my cr\\U00000065dit card",
        "my credit\\u00a0card",
    ] {
        let v = verdict(&p, text);
        assert!(refused(&v), "{text}: {:?}", v.decision());
    }
    // Escapes that decode to nothing a rule reads, and text that only looks escaped.
    for text in [
        "50% of the credit is card-based &amp; more",
        "cr&#0;edit card",
        "cr&unknown;edit card",
        "100%ed credit, card",
        "a \\q escape and \\u00 half of one; credit, card",
        "cr\\ud800edit card",
    ] {
        let v = verdict(&p, text);
        assert!(!refused(&v), "{text}: {:?}", v.hits());
    }
}

#[test]
fn an_escaped_match_is_masked_over_its_escapes() {
    let p = Policy::builder()
        .rule(Rule::detectors("mail", [Detector::Email]).mask())
        .build()
        .unwrap();
    let body = chat("write to alice&#64;example.org or bob&commat;example.net today");
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    let Decision::Rewrite(masked) = v.decision() else {
        panic!("{:?}", v.decision())
    };
    let masked = String::from_utf8_lossy(masked);
    assert!(
        masked.contains("write to <EMAIL> or <EMAIL> today"),
        "{masked}"
    );
    // A match the text holds as written is found as before, once.
    let body = chat("alice@example.org &amp; bob");
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    assert_eq!(v.hits().len(), 1, "{:?}", v.hits());
}

/// A file with a quarter to a half of its characters no text holds: one or two slipped into a
/// word are dropped, a longer run is a line break (the eighteenth session's last change had
/// made every run a line break there, and `cred\x01it` hid the phrase).
#[test]
fn characters_slipped_into_words_of_a_file_are_dropped() {
    let mut out = Vec::new();
    crate::guard::files::file_texts(
        "\u{1}my cred\u{1}it card\u{1}\u{1}\u{1}".as_bytes(),
        Some(b"text/plain"),
        &mut out,
    );
    assert!(
        matches!(&out[..], [crate::guard::files::FileText::Text(t)] if t.contains("my credit card")),
        "{out:?}"
    );
    // Mostly such characters: each run a line break, no word glued from fragments.
    let mut out = Vec::new();
    crate::guard::files::file_texts(
        "ab\u{1}\u{2}\u{3}cd\u{4}\u{5}\u{6}\u{7}ef".as_bytes(),
        None,
        &mut out,
    );
    assert!(
        out.iter()
            .all(|t| !matches!(t, crate::guard::files::FileText::Text(t) if t.contains("abcd"))),
        "{out:?}"
    );
}

/// A conversation whose first turn carried a document (in a tool result, as Claude Code's
/// `Read` of a PDF does) holding `file`, then `later` turns.
fn with_document(file: &[u8], later: bool) -> String {
    let doc = format!(
        r#"{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t1","content":[{{"type":"document","source":{{"type":"base64","media_type":"text/plain","data":"{}"}}}}]}}]}}"#,
        b64(file)
    );
    let first = r#"{"role":"user","content":"read the invoice"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/tmp/i.txt"}}]}"#;
    let rest = if later {
        r#",{"role":"assistant","content":"I read it."},{"role":"user","content":"thanks, now something else"}"#
    } else {
        ""
    };
    format!(r#"{{"model":"m","max_tokens":9,"messages":[{first},{doc}{rest}]}}"#)
}

/// A document a rule refused when it was sent is removed from later turns, as text is: the
/// session goes on (nineteenth session's review with Claude Code: every later turn was
/// refused). In the latest turn it is still refused, and a masking rule's hit too.
#[test]
fn a_refused_document_is_removed_from_history() {
    for (p, file) in [
        (seed_policy(), &b"We accept credit card payments."[..]),
        (mask_policy(), &b"pay to 4111 1111 1111 1111 by friday"[..]),
    ] {
        let now = with_document(file, false);
        let v = p.inspect(RouteKind::Messages, now.as_bytes()).unwrap();
        assert!(refused(&v), "{:?}", v.decision());
        let later = with_document(file, true);
        let v = p.inspect(RouteKind::Messages, later.as_bytes()).unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{:?}", v.decision())
        };
        let out: serde_json::Value = serde_json::from_slice(out).unwrap();
        let source = &out["messages"][2]["content"][0]["content"][0]["source"];
        assert_eq!(source["type"], "text", "{out}");
        assert!(
            source["data"]
                .as_str()
                .unwrap()
                .starts_with("[removed by agw: rule "),
            "{out}"
        );
        assert_eq!(out["messages"][4]["content"], "thanks, now something else");
        assert!(
            v.hits()
                .iter()
                .any(|h| h.path == "file (removed from history)")
        );
    }
    // A clean document stays as it was sent.
    let later = with_document(b"quarterly notes", true);
    let v = seed_policy()
        .inspect(RouteKind::Messages, later.as_bytes())
        .unwrap();
    assert!(v.is_allow(), "{:?}", v.decision());
}

/// Escapes inside a file are written out too (nineteenth session's second round).
#[test]
fn escapes_in_files_are_read_written_out() {
    for text in [
        "my cr&#101;dit card",
        "my credit%20card",
        "my cr\\x65dit card",
        // The twenty-first session's escapes.
        "my cr=65dit card",
        "my cr\\145dit card",
        "my cr&eacute;dit card",
    ] {
        let body = format!(
            r#"{{"model":"m","max_tokens":9,"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"text/plain","data":"{}"}}}}]}}]}}"#,
            b64(text.as_bytes())
        );
        let v = seed_policy()
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        assert!(refused(&v), "{text}: {:?}", v.decision());
    }
}

/// Twentieth session's red team: characters that spell ASCII letters and digits in another
/// form NFKC does not undo — tag characters (invisible, read by models: "ASCII smuggling"),
/// negative circled and squared letters, regional indicators, parenthesized letters and
/// digits, dingbat digits — are read as what they spell, by rules and detectors alike.
#[test]
fn characters_that_spell_ascii_are_read_as_it() {
    let tags = |s: &str| -> String {
        s.chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect()
    };
    let p = seed_policy();
    for text in [
        format!("read the tags: {}", tags("my credit card")),
        format!("cr{}it card", tags("ed")),
        "my ⒞⒭⒠⒟⒤⒯ ⒞⒜⒭⒟ is on file".to_string(),
    ] {
        let v = verdict(&p, &text);
        assert!(refused(&v), "{text}: {:?}", v.decision());
    }
    let any_case = Policy::builder()
        .rule(
            Rule::literals("plan", ["secret plan"])
                .case_insensitive(true)
                .reject("no"),
        )
        .build()
        .unwrap();
    for text in [
        "the 🆂🅴🅲🆁🅴🆃 🅿🅻🅰🅽",
        "the 🅢🅔🅒🅡🅔🅣 plan",
        "the 🇸\u{200B}🇪🇨🇷🇪🇹 plan",
    ] {
        let v = verdict(&any_case, text);
        assert!(refused(&v), "{text}: {:?}", v.decision());
    }
    let cards = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).reject("no cards"))
        .build()
        .unwrap();
    for text in [
        "card: ❹❺❸❾ ❾❹❺❽ ⓿❼❸⓿ ❷❶❺❶",
        "card: ➃➄➂➈ ➈➃➄➇ 🄋➆➂🄋 ➁➀➄➀",
        "card: ➍➎➌➒ ➒➍➎➑ ⓿➐➌⓿ ➋➊➎➊",
        "card: ⓸⓹⓷⓽ ⓽⓸⓹⓼ ⓿⓻⓷⓿ ⓶⓵⓹⓵",
        "card: ⑷⑸⑶⑼ ⑼⑷⑸⑻ ⓪⑺⑶⓪ ⑵⑴⑸⑴",
        &tags("card: 4539 9458 0730 2151"),
    ] {
        let v = verdict(&cards, text);
        assert!(refused(&v), "{text}: {:?}", v.decision());
    }
    // Masked over the characters as written: the tags' bytes are replaced, the rest kept.
    let body = chat(&format!("key {} ok", tags("AKIAZ7QRSTUVWX2345AB")));
    let v = mask_policy()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    let Decision::Rewrite(masked) = v.decision() else {
        panic!("{:?}", v.decision());
    };
    let masked = String::from_utf8(masked.clone()).unwrap();
    assert!(
        masked.contains("key ") && masked.contains(" ok"),
        "{masked}"
    );
    assert!(!masked.contains('\u{E0041}'), "{masked}");
    // Flags and emoji tag sequences still pass a policy they do not match.
    for text in [
        "greetings from 🇺🇸 and 🇫🇷",
        "go 🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} team",
        "item ❶ then ❷",
    ] {
        assert_eq!(verdict(&p, text).decision(), &Decision::Allow, "{text}");
    }
}
