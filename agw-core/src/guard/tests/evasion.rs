//! The audit's two evasion classes through a whole policy: whitespace controls that must read as
//! word breaks, and look-alike letters that `confusables` must fold.

use super::*;

/// The audited rule: `credit card` with every widening option.
fn widened() -> Rule {
    Rule::regex("credit-card", ["credit card"])
        .whitespace_insensitive(true)
        .confusables(true)
        .case_insensitive(true)
}

fn policy(rule: Rule) -> Policy {
    Policy::builder().rule(rule).build().unwrap()
}

fn body(content: &str) -> String {
    format!(r#"{{"messages":[{{"role":"user","content":"{content}"}}]}}"#)
}

/// Every whitespace character (Unicode White_Space, which `\s` is, and U+001C–U+001F, which
/// Python's `str.isspace` adds), as an escape and raw.
fn every_whitespace() -> Vec<String> {
    let s = regex::Regex::new(r"^\s$").unwrap();
    let mut out = Vec::new();
    for c in (0..0x3001u32).filter_map(char::from_u32) {
        if s.is_match(c.encode_utf8(&mut [0; 4])) || ('\u{1C}'..='\u{1F}').contains(&c) {
            out.push(format!("\\u{:04x}", u32::from(c)));
            if !c.is_ascii() {
                out.push(c.to_string());
            }
        }
    }
    out.extend([r"\t", r"\n", r"\r", r"\f"].map(String::from));
    out
}

#[test]
fn every_whitespace_character_is_a_word_break() {
    let all = every_whitespace();
    // 29 characters escaped, the 19 non-ASCII ones raw too, and the short escapes.
    assert_eq!(all.len(), 29 + 19 + 4, "{all:?}");
    let widened = policy(widened());
    let plain = policy(Rule::regex("credit-card", ["credit card"]));
    for ws in &all {
        let text = format!("credit{ws}card");
        assert!(rejected(&widened, &body(&text)), "{text:?}");
        // Without `whitespace_insensitive` the pattern's space matches what reads as a space
        // (blanks, U+001F) and not what reads as a line break, like `\n`.
        let mut one = Vec::new();
        crate::json::decode(ws.as_bytes(), true, &mut one).unwrap();
        assert!(
            matches!(&one[..], b" " | b"\t" | b"\n" | b"\r"),
            "{ws:?} reads {one:?}"
        );
        assert_eq!(rejected(&plain, &body(&text)), one == b" ", "{text:?}");
        // A word broken by whitespace is two words.
        let broken = format!("cre{ws}dit card");
        assert!(!rejected(&widened, &body(&broken)), "{broken:?}");
    }
    // Other controls and format characters are still removed, and join what they split.
    for raw in [
        r"credit\u0000card",
        r"credit\bcard",
        r"credit\u001bcard",
        "credit\u{9f}card",
        r"credit\u200bcard",
    ] {
        assert!(!rejected(&widened, &body(raw)), "{raw:?}");
        let joined = raw.replace("credit", "cre").replace("card", "dit card");
        assert!(rejected(&plain, &body(&joined)), "{joined:?}");
    }
}

#[test]
fn whitespace_controls_are_masked_with_their_match() {
    let masker = policy(widened().mask_with("[cc]"));
    let text = r"a credit\fcard, credit\u000b\u0085 card; credit\u001fcard. credit\u2028card";
    let Decision::Rewrite(out) = decision(&masker, &body(text)) else {
        panic!("not masked")
    };
    assert_eq!(
        String::from_utf8(out).unwrap(),
        body("a [cc], [cc]; [cc]. [cc]")
    );
    // Without `whitespace_insensitive`, only a blank reads as the pattern's space.
    let plain = policy(Rule::literals("cc", ["credit card"]).mask_with("[cc]"));
    let text = "credit\u{85}card credit\\u001fcard credit\u{3000}card credit\\fcard";
    let Decision::Rewrite(out) = decision(&plain, &body(text)) else {
        panic!("not masked")
    };
    assert_eq!(
        String::from_utf8(out).unwrap(),
        body("credit\u{85}card [cc] [cc] credit\\fcard")
    );
}

/// The audit's look-alikes and one of each class, raw and where it matters escaped.
const LOOK_ALIKES: &[&str] = &[
    "x сredit card",
    "crеdit card",
    "credit cаrd",
    "credıt card",
    r"cred\u0131t card",
    "credit cɑrd",
    "ᴄredit card",
    "Ꮳredit card",
    "credit carᏧ",
    "ᏟᎡᎬᎠᎥᎢ ᏟᎪᎡᎠ",
    "ꮯredit card",
    "ꓚꓣꓰꓓꓲꓔ ꓚꓮꓣꓓ",
    "ᴄʀᴇᴅɪᴛ ᴄᴀʀᴅ",
    "creԁit caʀd",
    "ϲredit card",
    "𝐜redit card",
    "сrеdit\\u0085саrd",
    // The second review: letters with a stroke, bar or hook.
    "cređit card",
    "crediŧ card",
    "ȼredit card",
    "crɇdit card",
    "credɨt card",
    "credit cⱥrd",
    "ƈredit card",
    "cɽedit card",
    "credit carɖ",
    "credit caɍd",
    "ȻREDIT CARD",
    "CREDIT CARĐ",
];

#[test]
fn look_alikes_of_every_class_are_caught() {
    let widened = policy(widened());
    let confusables = policy(Rule::regex("credit-card", ["credit card"]).confusables(true));
    let plain = policy(Rule::regex("credit-card", ["credit card"]));
    for text in LOOK_ALIKES {
        assert!(rejected(&widened, &body(text)), "{text:?}");
        if !text.contains("𝐜") {
            // Only NFKC's mathematical letters are caught without the option.
            assert!(!rejected(&plain, &body(text)), "{text:?}");
        }
    }
    // A look-alike matches the letter of its own case; `case_insensitive` makes it either.
    for (text, want) in [
        ("ᴄredit card", true),
        ("credit carᏧ", true),
        ("Ꮯredit card", false),
        ("ᏟREDIT CARD", false),
    ] {
        assert_eq!(rejected(&confusables, &body(text)), want, "{text:?}");
    }
    // Not look-alikes: other letters, symbols and digits, and words of the look-alikes'
    // own scripts.
    for text in [
        "crεdit card",
        "credit c∪rd",
        "cr3dit card",
        "credit-card",
        "kredit kart",
        "Кредитная карта",
        "πιστωτική κάρτα",
        "kredi kartı",
        "credit\u{2801}card",
    ] {
        assert!(!rejected(&widened, &body(text)), "{text:?}");
    }
}

#[test]
fn look_alikes_are_masked_exactly() {
    let masker = policy(widened().mask_with("[cc]"));
    let text = r"my credıt cɑrd, ᴄredit carᏧ and cred\u0131t\f\u0441ard.";
    let Decision::Rewrite(out) = decision(&masker, &body(text)) else {
        panic!("not masked")
    };
    assert_eq!(
        String::from_utf8(out).unwrap(),
        body("my [cc], [cc] and [cc].")
    );
}
