//! The twenty-fourth session's review: what the session's detectors find streams as it masks
//! in one piece — a URL-encoded Slack cookie, a card in a form's value, an Anthropic key wrapped
//! over two lines, a connection string's password (its other key after it, a quoted value
//! holding `;`). Each leaked in a stream before its hold-back pattern was widened.

use super::splits::{check_splits, mask_all};

#[test]
fn this_sessions_detectors_mask_as_not_streamed() {
    let policy = mask_all();
    let key = format!(
        "sk-ant-api03-{}AA",
        &"Xk3pQ9vR2mT7wL5nB8yC1dF4gH6jK0sA3zE9uI2oP7q-Z_".repeat(3)[..93]
    );
    let cases = [
        (
            "d=xoxd-ZYn9ZhyiA4uoRgnatmUdjAWtGSU8po%2B799Xk3pQ9vR2mT7wL5nB8yC1d%3D%3D; d-s=1"
                .to_owned(),
            "d=<SLACK_TOKEN>; d-s=1".to_owned(),
        ),
        (
            "card=4539+1488+0343+6467&x=1".to_owned(),
            "card=<CREDIT_CARD>&x=1".to_owned(),
        ),
        (
            format!("key:\n{}\n{}\nok", &key[..60], &key[60..]),
            "key:\n<ANTHROPIC_KEY>\nok".to_owned(),
        ),
        (
            "Password=hunter2x;Server=db\nok".to_owned(),
            "Password=<URL_PASSWORD>;Server=db\nok".to_owned(),
        ),
        (
            "Server=db;Uid=sa;Password='pa ss;word';x".to_owned(),
            "Server=db;Uid=sa;Password='<URL_PASSWORD>';x".to_owned(),
        ),
    ];
    for (text, expect) in &cases {
        check_splits(&policy, text, expect, &[256, 64]);
    }
}
