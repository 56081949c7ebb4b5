//! The twenty-fourth session: values set in prose's and Markdown's punctuation. A number
//! followed by an em dash and a word (`123-45-6789—keep it safe`), by an en dash (which the
//! guard reads as `-`), a value in Markdown's underscore emphasis (`_4111 1111 1111 1111_`), a
//! key after an en dash, an address glued to a word by one: each went upstream unread.

use super::twentysecond_redteam::{all_policy, prompt, sent};

const VALUES: &[&str] = &[
    "123-45-6789",
    "+1 415-555-0132",
    "(415) 555-0132",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111111",
    "alice@example.com",
    "AKIAIOSFODNN7EXAMPLE",
    "DE89 3704 0044 0532 0130 00",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
];

/// Before and after the value.
const SETTINGS: &[(&str, &str)] = &[
    ("", "—keep it safe"),
    ("", "―keep it safe"),
    ("", "–call me"),
    ("", "\u{2011}thanks"),
    ("", "-please"),
    ("", "—So"),
    ("_", "_"),
    ("__", "__"),
    ("_", "_."),
    ("–", ""),
    ("— ", " —"),
    ("**", "**"),
    ("“", "”"),
];

#[test]
fn values_in_prose_and_markdown_punctuation_are_found() {
    let policy = all_policy(true);
    let mut leaked = vec![];
    for value in VALUES {
        for (before, after) in SETTINGS {
            let text = format!("my value is {before}{value}{after} and more");
            let out = sent(&policy, &prompt(&text)).unwrap();
            if out.contains(value) {
                leaked.push(text);
            }
        }
    }
    assert!(leaked.is_empty(), "sent unmasked: {leaked:#?}");
}

/// What still goes on with a number or a key, and so is not it: a part number's suffix, an
/// identifier glued by `_` or `-` to a word, a longer run of key characters.
#[test]
fn suffixes_and_glued_identifiers_are_still_no_values() {
    let policy = all_policy(true);
    for text in [
        "part no. 536-22-8726-B",
        "part no. 536-22-8726-b",
        "part no. 536-22-8726-A2",
        "part no. 536-22-8726-REV",
        "Order #4000123412341234-A shipped",
        "row id_4111111111111111 and x_4111111111111111_y",
        "cache key build-AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6QX",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q-x9Yz",
    ] {
        let body = prompt(text);
        assert_eq!(
            sent(&policy, &body).as_deref(),
            Some(body.as_str()),
            "{text}"
        );
    }
}
