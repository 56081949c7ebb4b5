//! Twenty-first session: escapes a model reads through that went upstream unread after the
//! nineteenth session's — HTML's other names (`&eacute;`, `&copf;`, `&lpar;`) and its legacy
//! ones without `;` (`&nbspcard`), octal (`\145`, `\0145`, `\o{145}`), JavaScript's `%u0065`,
//! URLs escaped twice (`%2563`), quoted-printable (`cr=65dit`, `cred=\nit`) and CSS's
//! (`\63 redit`, `\000063`).

use super::*;

use super::nineteenth_session::{refused, verdict};

/// The user message's text after the policy's rewrite, or `None` if it let the body through
/// unchanged or refused it.
fn rewritten(p: &Policy, text: &str) -> Option<String> {
    match verdict(p, text).into_decision() {
        Decision::Rewrite(body) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            Some(v["messages"][0]["content"].as_str().unwrap().to_owned())
        }
        _ => None,
    }
}

#[test]
fn every_escape_a_model_reads_through_is_read() {
    let p = seed_policy();
    for text in [
        // HTML: a letter's accented and mathematical forms, names for ASCII, legacy names.
        "my cr&eacute;dit card",
        "my cr&eacutedit card",
        "my &copf;&ropf;&eopf;&dopf;&iopf;&topf; card",
        "my cr&ecirc;dit c&aring;rd",
        "my &cscr;redit &cfr;ard",
        "my credit&nbspcard",
        "my credit&Tab;card",
        "my credit&emsp13;card",
        "my cred&NegativeThinSpace;it card",
        "my cr&#00000101;dit card",
        "my cr&#101dit card",
        // Octal, byte escapes of UTF-8, braces.
        "my cr\\145dit card",
        "my cr\\0145dit card",
        "my cr\\o{145}dit card",
        "my cr\\x{65}dit card",
        "my cr\\xc3\\xa9dit card",
        "my cr\\303\\251dit card",
        "my $'cr\\145dit card'",
        // URLs: JavaScript's `escape`, and escaped twice.
        "my cr%u0065dit card",
        "my %2563redit card",
        "my credit%2520card",
        // Quoted-printable.
        "my cr=65dit card",
        "my cred=\nit card",
        "my cred=\r\nit card",
        "my credit=20card",
        "my =63=72=65=64=69=74 card",
        "my cr=C3=A9dit card",
        // CSS.
        "my \\63 redit card",
        "my \\000063redit card",
        "my cr\\65 dit card",
        "my cr\\0065 dit card",
    ] {
        let v = verdict(&p, text);
        assert!(refused(&v), "{text:?}: {:?}", v.decision());
    }
}

#[test]
fn text_that_only_looks_escaped_is_not_refused() {
    let p = seed_policy();
    for text in [
        // Assignments, LaTeX, regular expressions, paths, names HTML has for other things.
        "credit=20 card",
        "limit: credit=50; card=3",
        "\\begin{credit} \\d card",
        "C:\\credit\\1\\card",
        "credit &amp card",
        "credit&alpha;card, credit&odot;card",
        "credit%2Xcard and credit%u12card",
        "credit=\n=card",
        "cred==\nit card",
        "credit\\x0card",
    ] {
        let v = verdict(&p, text);
        assert!(!refused(&v), "{text:?}: {:?}", v.hits());
    }
}

#[test]
fn secrets_written_with_escapes_are_masked_over_them() {
    let p = mask_policy();
    for text in [
        "key \\101KIAZ7QRSTUVWX2345AB here",
        "key \\0101KIAZ7QRSTUVWX2345AB here",
        "key &Aopf;KIAZ7QRSTUVWX2345AB here",
        "key AKIA&Zopf;7QRSTUVWX2345AB here",
        "key %u0041KIAZ7QRSTUVWX2345AB here",
        "key %2541KIAZ7QRSTUVWX2345AB here",
        "key =41KIAZ7QRSTUVWX2345AB here",
        "key \\41 KIAZ7QRSTUVWX2345AB here",
    ] {
        let out = rewritten(&p, text);
        assert_eq!(
            out.as_deref(),
            Some("key <AWS_ACCESS_KEY> here"),
            "{text:?}"
        );
    }
    for text in [
        "card 4111=201111=201111=201111 ok",
        "card \\064\\061\\061\\061 1111 1111 1111 ok",
        "card \\34 111 1111 1111 1111 ok",
        "card &#52;111&nbsp1111&nbsp1111&nbsp1111 ok",
    ] {
        let out = rewritten(&p, text).unwrap_or_else(|| format!("{:?}", verdict(&p, text)));
        assert!(
            out.starts_with("card <CREDIT_CARD>") && out.ends_with(" ok"),
            "{text:?}: {out:?}"
        );
    }
}

/// A number after `=` is a value, not quoted-printable: reading its first two digits as an
/// escape would leave the rest, which can be a card number where the whole is none.
#[test]
fn a_value_after_an_equals_sign_stays_a_number() {
    let p = mask_policy();
    // 18 digits that are no card (as written), whose last 16 are one.
    let number = "404111111111111111";
    assert!(verdict(&p, number).is_allow(), "{number}");
    assert!(rewritten(&p, "4111111111111111").is_some());
    for text in [
        format!("id={number}"),
        format!("?order={number}&x=1"),
        format!("n=40 {number}"),
    ] {
        let v = verdict(&p, &text);
        assert!(v.is_allow(), "{text}: {:?}", v.hits());
    }
}
