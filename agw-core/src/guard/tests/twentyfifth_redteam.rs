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
