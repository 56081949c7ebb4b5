//! The twenty-fifth session's red team, on the detectors: a key wrapped by a shell's `\`
//! continuation or an OpenAI key wrapped over two lines was masked up to the break only, and
//! most of the key went upstream.

use super::twentysecond_redteam::{all_policy, prompt, sent};

const RANDOM: &str = "Xk3pQ9vR2mT7wL5nB8yC1dF4gH6jK0sA3zE9uI2oP7q-Z_";

#[test]
fn a_key_wrapped_by_a_continuation_or_over_lines_is_masked_whole() {
    let policy = all_policy(true);
    let random = RANDOM.repeat(4);
    let anthropic = format!("sk-ant-api03-{}AA", &random[..93]);
    let openai = format!("sk-proj-{}T3BlbkFJ{}", &random[..74], &random[80..154]);
    let legacy = format!("sk-{}T3BlbkFJ{}", &random[..20], &random[30..50]);
    for key in [&anthropic, &openai, &legacy] {
        for cut in [30, key.len() / 2, key.len() - 10] {
            for br in ["\\\n", "\\\r\n", "\n", "\r\n"] {
                let text = format!("export KEY={}{br}{}\nnext line", &key[..cut], &key[cut..]);
                let out = sent(&policy, &prompt(&text)).unwrap();
                assert!(!out.contains(&key[cut..]), "{cut} {br:?}: {out}");
                assert!(out.contains("next line"), "{out}");
            }
        }
    }
    // A whole OpenAI key, then a line of a variable: the line stays.
    let text = format!("OPENAI_API_KEY={openai}\nANOTHER_SETTING_NAME_HERE=1");
    let out = sent(&policy, &prompt(&text)).unwrap();
    assert!(out.contains("ANOTHER_SETTING_NAME_HERE=1"), "{out}");
    assert!(!out.contains(&openai[10..]), "{out}");
}

use super::twentyfourth_session::{hidden, untouched};

/// Labels set in Markdown's emphasis, a Markdown or HTML table, an HTML form's field, or on
/// the line above: values a label must name (nine-digit SSNs and SINs, a phone in one run, an
/// AWS secret key) went upstream unmasked.
#[test]
fn labels_in_markdown_tables_and_forms_name_their_values() {
    let policy = all_policy(true);
    let secret = "lxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN";
    for (text, value) in [
        ("**SSN:** 536228726", "536228726"),
        ("**SSN**: 536 22 8726", "536 22 8726"),
        ("**SIN:** 046454286", "046454286"),
        ("**Phone:** 4155552671", "4155552671"),
        ("_Mobile:_ 4155552671", "4155552671"),
        (
            r#"<input type="text" id="ssn" name="ssn" value="536 22 8726" />"#,
            "536 22 8726",
        ),
        (r#"<input name="ssn" value="536228726">"#, "536228726"),
        (
            r#"<input type="tel" name="phone" value="4155552671">"#,
            "4155552671",
        ),
        (r#"{"tax_id": "536228726"}"#, "536228726"),
        (
            r#"{"taxpayerIdentificationNumber": "536228726"}"#,
            "536228726",
        ),
        ("name,SIN\nJane,046454286", "046454286"),
        (
            "| aws_secret_access_key | lxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN |",
            secret,
        ),
        (
            "| Secret access key | lxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN |",
            secret,
        ),
        (
            "**AWS Secret Access Key:** lxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN",
            secret,
        ),
        (
            "- **Secret access key**: `lxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN`",
            secret,
        ),
        (
            "<tr><td>Secret access key</td><td>lxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN</td></tr>",
            secret,
        ),
        (
            "AWS Secret Access Key:\nlxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN",
            secret,
        ),
    ] {
        assert!(hidden(&policy, text, value), "{text}");
    }
    // Ids under other labels stay.
    for text in [
        "**Order:** 536228726",
        r#"<input name="zip" value="536228726">"#,
        "**Build**: 4155552671",
        "| checksum | lxob+Fi7ilfIiM9TIFz6cjaQs8Wvgj/ujBsdSosN |",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}
