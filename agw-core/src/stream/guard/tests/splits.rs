//! Streamed masking equals non-streamed masking, whatever the split: each text below goes
//! through a mask rule of every built-in detector as one non-streamed response, and as
//! Anthropic text deltas and OpenAI chat chunks cut one character at a time, at every single
//! cut, and in random pieces of 1–30 characters. Found by the review of streamed masks (PEM
//! keys in `cat -n` output, long tokens, URL credentials, Git remotes).

use super::*;

pub(super) const RSA: &str = include_str!("../testdata/rsa.pem");
pub(super) const EC: &str = include_str!("../testdata/ec.pem");
pub(super) const ED25519: &str = include_str!("../testdata/ed25519.pem");
const OPENSSH: &str = include_str!("../testdata/openssh_ed25519.key");
const JWT: &str = include_str!("../testdata/rs256.jwt");

pub(super) fn mask_all() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("all", Detector::ALL).mask())
        .build()
        .unwrap()
}

/// The text of a non-streamed Messages response carrying `text`, as the response guard
/// leaves it.
pub(super) fn not_streamed(policy: &Policy, text: &str) -> String {
    let body = serde_json::json!({
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
    })
    .to_string();
    match policy
        .inspect_response(Api::Anthropic, body.as_bytes())
        .unwrap()
        .into_decision()
    {
        Decision::Allow => text.to_owned(),
        Decision::Rewrite(b) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            v["content"][0]["text"].as_str().unwrap().to_owned()
        }
        Decision::Reject(r) => panic!("rejected: {r:?}"),
    }
}

pub(super) fn chat_stream(pieces: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for p in pieces {
        s += &chat_chunk(serde_json::json!([{"index":0,"delta":{"content":p}}]));
    }
    s += &chat_chunk(serde_json::json!([{"index":0,"delta":{},"finish_reason":"stop"}]));
    s += "data: [DONE]\n\n";
    s.into_bytes()
}

/// The text a client reads from `pieces` streamed through `policy`, in `api`'s dialect.
pub(super) fn streamed(policy: &Policy, api: Api, window: usize, pieces: &[&str]) -> String {
    let input = match api {
        Api::Anthropic => anthropic_stream(pieces),
        Api::OpenAi => chat_stream(pieces),
    };
    let (out, rejected) = run(policy, api, window, &input, 1 << 20);
    assert!(!rejected, "{pieces:?}: {}", String::from_utf8_lossy(&out));
    text_of(&out)
}

/// `text` cut at the character boundaries `cuts`.
pub(super) fn cut<'a>(text: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain([&text.len()]) {
        if c > at {
            pieces.push(&text[at..c]);
            at = c;
        }
    }
    pieces
}

/// Random pieces of 1–30 characters (xorshift, seeded: the same pieces every run).
pub(super) fn random_cuts(text: &str, seed: u64) -> Vec<usize> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut cuts = Vec::new();
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let mut n = 0;
    while n < chars.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        n += 1 + (x % 30) as usize;
        if let Some(&c) = chars.get(n) {
            cuts.push(c);
        }
    }
    cuts
}

/// Every split of `text` (one character at a time, each single cut, random pieces) in both
/// dialects masks as the non-streamed response does; `expect` is that masking.
pub(super) fn check_splits(policy: &Policy, text: &str, expect: &str, windows: &[usize]) {
    assert_eq!(not_streamed(policy, text), expect, "not streamed");
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
    let mut splits: Vec<Vec<usize>> = vec![chars.clone(), vec![]];
    splits.extend(chars.iter().map(|&c| vec![c]));
    splits.extend((0..30).map(|seed| random_cuts(text, seed)));
    for &window in windows {
        for cuts in &splits {
            let pieces = cut(text, cuts);
            for api in [Api::Anthropic, Api::OpenAi] {
                let got = streamed(policy, api, window, &pieces);
                assert_eq!(got, expect, "window {window}, {api:?}, pieces {pieces:?}");
            }
        }
    }
}

/// Each line numbered as `cat -n` (`     1\t`) or Claude Code's `Read` (`     1→`) writes it.
fn numbered(text: &str, sep: &str, first: usize) -> String {
    text.lines()
        .enumerate()
        .map(|(n, l)| format!("{:>6}{sep}{l}\n", n + first))
        .collect()
}

#[test]
fn pem_keys_in_numbered_output_mask_as_not_streamed() {
    let policy = mask_all();
    for key in [RSA, EC, ED25519, OPENSSH] {
        for (sep, first) in [("\t", 1), ("→", 15)] {
            let file = format!("config:\n\n{}  \n     \n", key.trim_end());
            let text = format!(
                "Here is the file:\n{}... (file truncated)\n\nDone.",
                numbered(&file, sep, first)
            );
            let expect = not_streamed(&policy, &text);
            assert!(expect.contains("<PEM_PRIVATE_KEY>"), "{expect}");
            for line in key.lines().skip(1) {
                assert!(!expect.contains(line), "{expect}");
            }
            check_splits(&policy, &text, &expect, &[256, 64]);
        }
    }
}

#[test]
fn plain_pem_keys_mask_as_not_streamed() {
    let policy = mask_all();
    for key in [RSA, EC, ED25519, OPENSSH] {
        let text = format!("The key:\n{key}\nKeep it safe.");
        let expect = "The key:\n<PEM_PRIVATE_KEY>\n\nKeep it safe.";
        check_splits(&policy, &text, expect, &[256, 32]);
        // Cut off before its end line: masked through its last base64 line.
        let cut_off: String = key.lines().take(5).map(|l| format!("{l}\n")).collect();
        let text = format!("{cut_off}\n(truncated)");
        check_splits(&policy, &text, "<PEM_PRIVATE_KEY>\n\n(truncated)", &[256]);
    }
}

/// Twenty-first session's red team: a key whose armor was changed or dropped went out
/// unmasked. Its body is found by what it decodes to, and held in a stream until its block
/// ends, as a PEM block is.
#[test]
fn key_bodies_without_their_armor_mask_as_not_streamed() {
    let policy = mask_all();
    for key in [RSA, EC, ED25519, OPENSSH] {
        let lines: Vec<&str> = key.lines().collect();
        let inner = &lines[1..lines.len() - 1];
        let body = inner.join("\n");
        let armors: &[&str] = if key == RSA {
            &[
                "",
                "----BEGIN RSA PRIVATE KEY----\n",
                "\u{2011}\u{2011}\u{2011}\u{2011}\u{2011}BEGIN PRIVATE KEY\u{2011}\u{2011}\u{2011}\u{2011}\u{2011}\n",
            ]
        } else {
            &[""]
        };
        for armor in armors {
            let text = format!("The key:\n{armor}{body}\nKeep it safe.");
            let expect = not_streamed(&policy, &text);
            assert!(expect.contains("<PEM_PRIVATE_KEY>"), "{expect}");
            for line in inner {
                assert!(!expect.contains(line), "{expect}");
            }
            let windows: &[usize] = if armor.is_empty() { &[256, 32] } else { &[64] };
            check_splits(&policy, &text, &expect, windows);
        }
    }
}

#[test]
fn long_tokens_are_held_until_they_end() {
    let policy = mask_all();
    assert!(JWT.len() > 500);
    let text = format!("Authorization: Bearer {JWT}\nThat is the token.");
    check_splits(
        &policy,
        &text,
        "Authorization: Bearer <JWT>\nThat is the token.",
        &[256, 16],
    );
    // Keys longer than a small window.
    let key = "sk-ant-api03-Xq3vB7mN2pL9kR4tY8wE1uI6oP0aS5dF3gH7jK2lZ9xC4vB8nM1qW6eR0tY3uI7oP2aS5dF9gH4jK8lZ1xC6vB0nM3qW7eR2tY5uI9oP4aAA";
    let text = format!("export ANTHROPIC_API_KEY={key} # mine");
    check_splits(
        &policy,
        &text,
        "export ANTHROPIC_API_KEY=<ANTHROPIC_KEY> # mine",
        &[256, 16],
    );
}

#[test]
fn url_credentials_keep_their_host() {
    let policy = mask_all();
    let token = "ghp_Zq8RkT2vWm4XyB7nP1sL9dF3gH6jK0aC5eQx";
    for (text, expect) in [
        (
            format!("git clone https://x-access-token:{token}@github.com/acme/api.git now"),
            "git clone https://x-access-token:<GITHUB_TOKEN>@github.com/acme/api.git now"
                .to_owned(),
        ),
        (
            "docker login https://deploy:s3cretPass@registry.acme.io/v2/ ok".to_owned(),
            "docker login https://deploy:<URL_PASSWORD>@registry.acme.io/v2/ ok".to_owned(),
        ),
        (
            "psql postgres://admin:password@2024!@db/app now".to_owned(),
            "psql postgres://admin:<URL_PASSWORD>@db/app now".to_owned(),
        ),
        (
            "set REDIS=redis://u:pass@wordZx9@cache:6379 ok".to_owned(),
            "set REDIS=redis://u:<URL_PASSWORD>@cache:6379 ok".to_owned(),
        ),
        (
            "DSN postgres://app:aB3/dE+fG9=@db:5432/app ok".to_owned(),
            "DSN postgres://app:<URL_PASSWORD>@db:5432/app ok".to_owned(),
        ),
        (
            "mail deploy@registry.acme.io today".to_owned(),
            "mail <EMAIL> today".to_owned(),
        ),
    ] {
        // (The window keeps the `https://` before the token as context.)
        check_splits(&policy, &text, &expect, &[256, 64]);
    }
}

/// Detectors whose decision depends on the text after a match: the stream holds the match
/// until that text is known.
#[test]
fn what_follows_a_match_is_known_before_it_is_decided() {
    let policy = mask_all();
    for (text, expect) in [
        (
            "origin  git@github.com:acme/platform.git (fetch)",
            "origin  git@github.com:acme/platform.git (fetch)",
        ),
        (
            "origin  git@github.com:~/platform.git",
            "origin  git@github.com:~/platform.git",
        ),
        ("alice@example.com:hunter2 leaked", "<EMAIL>:hunter2 leaked"),
        (
            "see icon@2x.png and x@self.weight",
            "see icon@2x.png and x@self.weight",
        ),
        ("mail alice@example.com.", "mail <EMAIL>."),
        (
            "card 4111 1111 1111 1111 0925 and 4111111111111111 12/25",
            "card <CREDIT_CARD> 0925 and <CREDIT_CARD> 12/25",
        ),
        (
            "key AKIAIOSFODNN7EXAMPLE1 no",
            "key AKIAIOSFODNN7EXAMPLE1 no",
        ),
    ] {
        check_splits(&policy, text, expect, &[256, 32]);
    }
}

/// A token still growing past `MAX_OPEN_MATCH` ends the stream: none of it goes out.
#[test]
fn a_secret_longer_than_the_limit_fails_closed() {
    let policy = mask_all();
    let payload = "aB3".repeat(MAX_OPEN_MATCH / 3 + 400);
    let token = format!("eyJhbGciOiJIUzI1NiJ9.eyJ{payload}");
    let text = format!("token: {token} end");
    let pieces: Vec<&str> = text
        .as_bytes()
        .chunks(500)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    for api in [Api::Anthropic, Api::OpenAi] {
        let input = match api {
            Api::Anthropic => anthropic_stream(&pieces),
            Api::OpenAi => chat_stream(&pieces),
        };
        let (out, rejected) = run(&policy, api, 256, &input, 1 << 20);
        let out = String::from_utf8(out).unwrap();
        assert!(rejected, "{api:?}");
        assert!(!out.contains("eyJ") && !out.contains("aB3aB3"), "{api:?}");
        assert!(out.contains("too long to check"), "{api:?}");
    }
}

/// The fifth review's detector changes stream as they mask in one piece: glued words that are
/// not keys, placeholders, upper-case names, diff timestamps and wide card joins pass (or
/// mask) alike; vendors' tokens are held until they end; an AWS secret key is held with its
/// label, which decides it.
#[test]
fn fifth_review_detectors_mask_as_not_streamed() {
    let policy = mask_all();
    let ant = "sk-ant-api03-Xq3vB7mN2pL9kR4tY8wE1uI6oP0aS5dF3gH7jK2lZ9xC4vB8nM1qW6eR0tY3uI7oP2aS5dF9gH4jK8lZ1xC6vB0nM3qW7eR2tY5uI9oP4aAA";
    let do_hex = "5f6ce8063d50a800bd375a96c54f9cea8aa19cf782323d3b4fd1fba8363f42b9";
    let secret = "rN9lHZOqqk8Fk2FJh/FgzKVmj1OWaKqd4scg2InW";
    let unchanged = [
        "cd ~/src/risk-ant-colonyoptimization2024 && make",
        "The task-ant-api03-1234567890abcdefghij was slow; desk-proj-managementdashboard2024",
        "ANTHROPIC_API_KEY=sk-ant-api03-YOUR_ANTHROPIC_API_KEY or sk-ant-api03-YourActualKeyGoesHere",
        "region=ASIAPACIFICNORTHEAST ok",
        "diff --git a/data.csv b/data.csv\n+20240515123045,ok\n-20240514093000,ok",
        "columns 4539    9458    0730    2151 and 4539 -9458 -0730 -2151 end",
        "hf_hub_download(repo_id) and secret=rN9lHZOqqk8Fk2FJh/FgzKVmj1OWaKqd4scg2InW ok",
    ];
    for text in unchanged {
        check_splits(&policy, text, text, &[256, 16]);
    }
    // Numbers are held within the window (32 bytes fit a card with wide joins).
    for (text, expect) in [
        (
            "card 4539  9458  0730  2151, or 4539 - 9458 - 0730 - 2151.",
            "card <CREDIT_CARD>, or <CREDIT_CARD>.",
        ),
        (
            "en 4539 \u{2013} 9458 \u{2013} 0730 \u{2013} 2151 ok",
            "en <CREDIT_CARD> ok",
        ),
    ] {
        check_splits(&policy, text, expect, &[256, 32]);
    }
    let masked = [
        (format!("task{ant} done"), "task<ANTHROPIC_KEY> done".to_owned()),
        (
            "npm npm_Zc1We1BC6l8hWbvYXBIQHOW3vTokFGF2Q5Ju, gl glpat-gOb-fAyGJMDE4i-9DQ1H.".to_owned(),
            "npm <NPM_TOKEN>, gl <GITLAB_TOKEN>.".to_owned(),
        ),
        (
            "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 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"
                .to_owned(),
            "<SENDGRID_KEY> <HUGGINGFACE_TOKEN>".to_owned(),
        ),
        (
            format!("do dop_v1_{do_hex} shp 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 x"),
            "do <DIGITALOCEAN_TOKEN> shp <SHOPIFY_TOKEN> x".to_owned(),
        ),
        (
            "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 whsec_1YtFuko4575cWDuofOFw9tftjMvGSFWR"
                .to_owned(),
            "<GROQ_KEY> <STRIPE_KEY>".to_owned(),
        ),
        (
            "xai-bPiO3AOriRcyWcAkwLRDPEFA0ou0wEW8R9Bh4Ub8IV2S4bmQZUIC7ivuQ5PAfvryeheReeR2Gjem586F;"
                .to_owned(),
            "<XAI_KEY>;".to_owned(),
        ),
        (
            "bot 4028896554:AAHJsD2RRMKl6CojT0jLiQXEzfuuoCzRHdY, db dapi890ddc8b8622c9fc4f7e4b7c0240125d-2."
                .to_owned(),
            "bot <TELEGRAM_BOT_TOKEN>, db <DATABRICKS_TOKEN>.".to_owned(),
        ),
        (
            "age AGE-SECRET-KEY-1QUYQJZSTPSXSURCSZYFPX9Q4ZCT3SXG6RVWP68SLYQSJYGEYY5NQ23P5FC or 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."
                .to_owned(),
            "age <AGE_SECRET_KEY> or <OPENROUTER_KEY>.".to_owned(),
        ),
    ];
    for (text, expect) in &masked {
        check_splits(&policy, text, expect, &[256, 16]);
    }
    // An AWS secret key is decided by its label, context read as far back as the window
    // reaches: a window that holds label and key (64 bytes here) masks it at every split.
    for (text, expect) in [
        (
            format!("[default]\naws_secret_access_key = {secret}\nregion = eu-west-1"),
            "[default]\naws_secret_access_key = <AWS_SECRET_KEY>\nregion = eu-west-1",
        ),
        (
            format!("{{\"SecretAccessKey\": \"{secret}\"}}"),
            "{\"SecretAccessKey\": \"<AWS_SECRET_KEY>\"}",
        ),
        (
            format!("- name: AWS_SECRET_KEY\n  value: {secret}\n"),
            "- name: AWS_SECRET_KEY\n  value: <AWS_SECRET_KEY>\n",
        ),
        (
            format!("aws configure set aws_secret_access_key {secret}"),
            "aws configure set aws_secret_access_key <AWS_SECRET_KEY>",
        ),
        // As AWS hands a key out (guard accuracy review): the console's page and CSV row, the
        // pair as tools print it, a `Read` of a Kubernetes env entry.
        (
            format!("Access key ID: AKIA4YDCVEKVHZLMUNBG\nSecret access key: {secret}\n"),
            "Access key ID: <AWS_ACCESS_KEY>\nSecret access key: <AWS_SECRET_KEY>\n",
        ),
        (
            format!("AKIA4YDCVEKVHZLMUNBG,{secret}\n"),
            // Both detectors read the pair: one mask over the id's and the pair's findings.
            "<AWS_ACCESS_KEY>\n",
        ),
        (
            format!("AKIA4YDCVEKVHZLMUNBG:{secret} ok"),
            "<AWS_ACCESS_KEY> ok",
        ),
        (
            format!("  2→- name: AWS_SECRET_ACCESS_KEY\n  3→  value: {secret}\n"),
            "  2→- name: AWS_SECRET_ACCESS_KEY\n  3→  value: <AWS_SECRET_KEY>\n",
        ),
        (
            "storage_key: 'DkdfrUnW5gcF+Ha6ili8GjHEAD6/Wj9KfzjsQGMrb9h+ImB+LK777pzNk8cL6j5IXAAjlsHUqJoUD/+Ydua+5Z=='"
                .to_owned(),
            "storage_key: '<AZURE_STORAGE_KEY>'",
        ),
        (
            format!("os.environ[\"AWS_SECRET_ACCESS_KEY\"] = \"{secret}\""),
            "os.environ[\"AWS_SECRET_ACCESS_KEY\"] = \"<AWS_SECRET_KEY>\"",
        ),
        (
            format!("<SecretAccessKey>{secret}</SecretAccessKey>"),
            "<SecretAccessKey><AWS_SECRET_KEY></SecretAccessKey>",
        ),
    ] {
        check_splits(&policy, &text, expect, &[256, 64]);
    }
}

/// A mask rule's regex under the default `whitespace_insensitive` (and look-alikes): the hold
/// point reads it as the engine does, so `credit` is held over the blank lines until `card`
/// decides it (review: `credit\n\n` went out, and the mask covered `card` alone).
#[test]
fn widened_regex_rules_hold_their_prefix() {
    let policy = Policy::builder()
        .rule(
            Rule::regex("cards", ["credit card"])
                .whitespace_insensitive(true)
                .confusables(true)
                .mask_with("[x]"),
        )
        .build()
        .unwrap();
    for (text, expect) in [
        ("my credit\n\ncard ok", "my [x] ok"),
        ("my \u{0441}redit  card ok", "my [x] ok"),
    ] {
        check_splits(&policy, text, expect, &[256, 16]);
    }
}
