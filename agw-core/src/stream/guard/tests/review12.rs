//! The twelfth session's reviews: a whole-word rule's match at the end of the text read so
//! far, Gemini parts, and the other stream findings of its black-box and differential tests.

use super::*;

/// A whole-word rule is decided on the words a client shows, not on where deltas end: `The
/// kill` then `er whale` is `killer`, which `kill` does not match (a delta's end had counted
/// as a word's end).
#[test]
fn a_whole_word_match_at_a_delta_end_waits_for_the_next_delta() {
    let reject = Policy::builder()
        .rule(
            Rule::literals("ww", ["kill"])
                .whole_word(true)
                .reject("blocked"),
        )
        .build()
        .unwrap();
    let mask = Policy::builder()
        .rule(Rule::literals("ww", ["kill"]).whole_word(true).mask())
        .build()
        .unwrap();
    for chunk in [1, 7, 1 << 20] {
        let passes = anthropic_stream(&["The kill", "er whale"]);
        let (out, rejected) = run(&reject, Api::Anthropic, 64, &passes, chunk);
        assert!(!rejected, "{chunk}");
        assert_eq!(out, passes);
        assert_eq!(run(&mask, Api::Anthropic, 64, &passes, chunk).0, passes);
        for ends in [
            &["The kill", " it"][..],
            &["The kill"],
            &["The kill", "", "!"],
        ] {
            let input = anthropic_stream(ends);
            assert!(
                run(&reject, Api::Anthropic, 64, &input, chunk).1,
                "{ends:?}"
            );
            let (out, _) = run(&mask, Api::Anthropic, 64, &input, chunk);
            let text = text_of(&out);
            assert!(!text.contains("kill") && text.starts_with("The "), "{text}");
        }
    }
}

/// A Gemini candidate's text parts are one text to a client (google-genai's `.text` joins
/// them, thought parts apart), wherever they sit in the events: a key split between part 0
/// of one event and part 1 of the next, behind a thought part or an empty part, is masked
/// (black-box review: read by position, it went out whole). A JSON list of the same chunks
/// (`:streamGenerateContent` without `alt=sse`) is read the same way.
#[test]
fn gemini_text_parts_are_one_text_whatever_their_positions() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap();
    let chunk = |parts: serde_json::Value| json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]});
    let cases = [
        vec![
            chunk(json!([{"text": "key AKIAIOSF"}])),
            chunk(json!([{"text": "pondering", "thought": true}, {"text": "ODNN7EXAMPLE ok"}])),
        ],
        vec![
            chunk(json!([{"text": "key AKIAIOSF"}])),
            chunk(json!([{"text": ""}, {"text": "ODNN7EXAMPLE ok"}])),
        ],
        vec![chunk(
            json!([{"text": "key AKIAIOSF"}, {"text": "hmm", "thought": true}, {"text": "ODNN7EXAMPLE ok"}]),
        )],
    ];
    let answer = |v: &serde_json::Value| -> String {
        let mut text = String::new();
        for part in v["candidates"][0]["content"]["parts"].as_array().unwrap() {
            if part["thought"] != json!(true) {
                text += part["text"].as_str().unwrap_or("");
            }
        }
        text
    };
    for events in cases {
        let input = super::review7::sse(events.iter().cloned());
        for split in [1, 9, input.len()] {
            let (out, rejected) = run(&policy, Api::OpenAi, 64, &input, split);
            assert!(!rejected);
            let mut got = String::new();
            let mut decoded = Vec::new();
            SseDecoder::new(1 << 20).push(&out, &mut decoded).unwrap();
            for e in &decoded {
                let data = fields(std::str::from_utf8(e).unwrap()).unwrap().data;
                got += &answer(&serde_json::from_str(&data).unwrap());
            }
            assert_eq!(got, "key <AWS_ACCESS_KEY> ok", "{split} {events:?}");
            // The thought stays as it was.
            assert_eq!(
                String::from_utf8(out).unwrap().contains("pondering"),
                events.iter().any(|e| e.to_string().contains("pondering"))
            );
        }
        // The chunks as one JSON list.
        let list = serde_json::to_vec(&events).unwrap();
        let verdict = policy.inspect_response(Api::OpenAi, &list).unwrap();
        let Decision::Rewrite(masked) = verdict.into_decision() else {
            panic!("not masked: {events:?}");
        };
        let masked: serde_json::Value = serde_json::from_slice(&masked).unwrap();
        let joined: String = masked.as_array().unwrap().iter().map(answer).collect();
        assert_eq!(joined, "key <AWS_ACCESS_KEY> ok", "{events:?}");
    }
}

/// Token log probabilities are the response's text again, in pieces no rule reads whole:
/// agw refuses requests for them, and a provider that sends them unasked (chat chunks'
/// `logprobs`, Gemini's `logprobsResult`) ends the stream or fails the response (black-box
/// review: a masked key went out token by token beside its mask). What providers send when
/// none were asked for (`null`, `[]`, `{"content": null}`) passes.
#[test]
fn token_log_probabilities_a_response_carries_are_not_let_through() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::regex("secret", [r"SECRET-[0-9]+"]).mask())
        .build()
        .unwrap();
    let tokens = json!({"content": [{"token": "SECRET-", "logprob": -0.1, "bytes": [83], "top_logprobs": []}]});
    let chat = |logprobs: serde_json::Value| json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": logprobs, "finish_reason": null}]});
    let gemini = |result: serde_json::Value| json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "index": 0, "logprobsResult": result}]});
    let responses = |logprobs: serde_json::Value| json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "m", "delta": "hi", "logprobs": logprobs});
    let gemini_tokens = json!({"chosenCandidates": [{"token": "SECRET-", "logProbability": -0.1}]});
    for (event, refused) in [
        (chat(tokens.clone()), true),
        (chat(json!(null)), false),
        (chat(json!({"content": null, "refusal": null})), false),
        (gemini(gemini_tokens.clone()), true),
        (
            responses(json!([{"token": "SECRET-", "logprob": -0.1}])),
            true,
        ),
        (responses(json!([])), false),
        // Any case, any underscores (second round).
        (
            json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "LogprobsResult": gemini_tokens}]}),
            true,
        ),
        (
            json!({"choices": [{"index": 0, "delta": {"content": "hi"}, "log_probs": tokens}]}),
            true,
        ),
        // A token's own `logprob` (TGI sends one with every token) is no list of tokens.
        (
            json!({"token": {"id": 1, "text": "hi", "logprob": -0.1, "special": false}}),
            false,
        ),
        // Third round: token lists under other servers' names.
        (
            json!({"content": "hi", "completion_probabilities": [{"content": "SECRET-", "probs": []}]}),
            true,
        ),
        (
            json!({"token": {"id": 1, "text": "hi"}, "top_tokens": [{"id": 2, "text": "SECRET-"}]}),
            true,
        ),
    ] {
        let input = super::review7::sse([event.clone()]);
        let (out, rejected) = run(&policy, Api::OpenAi, 64, &input, 5);
        assert_eq!(rejected, refused, "{event}");
        assert!(!String::from_utf8(out).unwrap().contains("SECRET-"));
    }
    // The same in whole responses.
    let whole = [
        (
            json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": tokens}]}),
            true,
        ),
        (
            json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": null}]}),
            false,
        ),
        (
            json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "logprobsResult": gemini_tokens}]}),
            true,
        ),
        (
            json!({"output": [{"type": "message", "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}]}]}),
            false,
        ),
    ];
    for (body, refused) in whole {
        let got = policy.inspect_response(Api::OpenAi, body.to_string().as_bytes());
        assert_eq!(got.is_err(), refused, "{body}");
    }
}

/// A chat choice the request did not ask for ends the stream: clients that read
/// `choices[0]` of every chunk join whatever choice comes first, so choice 1's pieces beside
/// choice 0's reached them as one text, unread as one (black-box review).
#[test]
fn a_chat_choice_the_request_did_not_ask_for_ends_the_stream() {
    use serde_json::json;
    let chunk = |index: u64, text: &str| json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": index, "delta": {"content": text}, "finish_reason": null}]});
    let input = super::review7::sse([
        chunk(0, "card 4111 1111 "),
        chunk(1, "1111 1111 "),
        chunk(0, "done"),
    ]);
    let run_n = |n: Option<u64>| {
        let mut guard = StreamGuard::new(mask_cards(), Api::OpenAi, 64);
        if let Some(n) = n {
            guard = guard.with_choices(n);
        }
        let mut events = Vec::new();
        SseDecoder::new(1 << 20).push(&input, &mut events).unwrap();
        let mut out = Vec::new();
        for e in events {
            guard.event(e, &mut out);
        }
        guard.finish(&mut out);
        (
            String::from_utf8(out.concat()).unwrap(),
            guard.is_rejected(),
        )
    };
    let (out, rejected) = run_n(Some(1));
    assert!(rejected && !out.contains("1111 1111 1111"), "{out}");
    for n in [Some(2), None] {
        let (out, rejected) = run_n(n);
        assert!(!rejected, "{out}");
        assert!(out.contains("done"), "{out}");
    }
}

/// Text whose JSON escapes spell out what a rule refuses or masks (structured output a
/// client parses: `\u0053ECRET-12345` is `SECRET-12345` to `json.loads`) refuses the response
/// or ends the stream; it cannot be masked where it is written (black-box review: it passed
/// byte for byte). Escapes that hide nothing (code with `\n`) pass untouched.
#[test]
fn what_json_escapes_in_the_answer_spell_out_is_read() {
    let policy = Policy::builder()
        .rule(Rule::regex("secret", [r"SECRET-[0-9]+"]).mask())
        .rule(
            Rule::regex("phrase", ["forbidden phrase"])
                .whitespace_insensitive(true)
                .reject("no phrase"),
        )
        .build()
        .unwrap();
    for text in [
        r#"{"note":"\u0053ECRET-12345"}"#,
        r#"{"answer":"forbidden\u0020phrase"}"#,
        r#"{"answer":"forbidden\nphrase"}"#,
    ] {
        for split in [1, 5, text.len()] {
            let pieces: Vec<&str> = text
                .as_bytes()
                .chunks(split)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            let input = anthropic_stream(&pieces);
            let (out, rejected) = run(&policy, Api::Anthropic, 64, &input, 7);
            assert!(rejected, "{text} {split}");
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains("event: error"), "{out}");
        }
        let body = serde_json::json!({"content": [{"type": "text", "text": text}]}).to_string();
        let v = policy
            .inspect_response(Api::Anthropic, body.as_bytes())
            .unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{text}");
    }
    // Nothing hidden: passes as it was.
    let code = r#"printf("SECRET-\n"); // {"a":"\u00e9"}"#;
    let input = anthropic_stream(&[code]);
    assert_eq!(run(&policy, Api::Anthropic, 64, &input, 3), (input, false));
    let body = serde_json::json!({"content": [{"type": "text", "text": code}]}).to_string();
    assert!(
        policy
            .inspect_response(Api::Anthropic, body.as_bytes())
            .unwrap()
            .is_allow()
    );
    // An escape split over two lines or chunks (Ollama's JSON lines, Gemini's JSON list) is
    // read joined, as the client joins the text (second round).
    let line = |t: &str| {
        format!(
            "{}\n",
            serde_json::json!({"model": "m", "message": {"role": "assistant", "content": t}, "done": false})
        )
    };
    for (a, b) in [
        (r#"{"note":"\u0053"#, r#"ECRET-1"}"#),
        (r#"{"note":"\u0"#, r#"053ECRET-1"}"#),
        (r#"{"note":"\"#, r#"u0053ECRET-1"}"#),
    ] {
        let body = line(a) + &line(b);
        let v = policy.inspect_response_lines(body.as_bytes()).unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{body}");
        let list = serde_json::json!([
            {"candidates": [{"content": {"parts": [{"text": a}]}}]},
            {"candidates": [{"content": {"parts": [{"text": b}]}}]},
        ])
        .to_string();
        let v = policy
            .inspect_response(Api::OpenAi, list.as_bytes())
            .unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{list}");
    }
    // Escapes no parser reads as text are not decoded: `a\bab` is no `aab` (second round).
    let aa = Policy::builder()
        .rule(Rule::literals("aa", ["aa"]).mask())
        .build()
        .unwrap();
    for text in [r"a\bab", r"C:\Users\aa\x"] {
        let body = serde_json::json!({"content": [{"type": "text", "text": text}]}).to_string();
        let v = aa
            .inspect_response(Api::Anthropic, body.as_bytes())
            .unwrap();
        assert!(!matches!(v.decision(), Decision::Reject(_)), "{text}");
    }
    // A match written plainly is masked as ever.
    let plain = anthropic_stream(&["key SECRET-12345 \\n"]);
    let (out, rejected) = run(&policy, Api::Anthropic, 64, &plain, 3);
    assert!(
        !rejected && text_of(&out).contains("<MASKED>"),
        "{}",
        text_of(&out)
    );
}

/// A chat delta's strings agw has no reading for (OpenRouter's `reasoning_details`, a nested
/// field of a server's own) are read across chunks, as the OpenAI SDKs join them — by path,
/// list entries by their `index` (black-box review: `SECRET-` then `12345` passed, read one
/// chunk at a time).
#[test]
fn unknown_chat_delta_strings_are_read_across_chunks() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::regex("secret", [r"SECRET-[0-9]+"]).mask())
        .build()
        .unwrap();
    let chunk = |delta: serde_json::Value, finish: Option<&str>| json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let details = |text: &str| json!({"reasoning_details": [{"type": "reasoning.text", "text": text, "index": 0}]});
    let cases = [
        vec![
            chunk(
                json!({"role": "assistant", "content": "", "reasoning_details": [{"type": "reasoning.text", "text": "key SECRET-", "index": 0}]}),
                None,
            ),
            chunk(details("12345 ok"), None),
            chunk(json!({}), Some("stop")),
        ],
        vec![
            chunk(json!({"foo": {"bar": "key SECRET-"}}), None),
            chunk(json!({"foo": {"bar": "12345 ok"}}), None),
            chunk(json!({}), Some("stop")),
        ],
    ];
    // What the SDK's `accumulate_delta` makes of the deltas: strings joined by path.
    fn accumulate(acc: &mut serde_json::Value, delta: &serde_json::Value) {
        match (acc, delta) {
            (serde_json::Value::String(a), serde_json::Value::String(d)) => a.push_str(d),
            (acc @ serde_json::Value::Object(_), serde_json::Value::Object(d)) => {
                for (k, v) in d {
                    match acc.get_mut(k) {
                        Some(a) if k != "index" && k != "type" => accumulate(a, v),
                        _ => {
                            acc[k] = v.clone();
                        }
                    }
                }
            }
            (serde_json::Value::Array(a), serde_json::Value::Array(d)) => {
                for entry in d {
                    let i = entry["index"].as_u64().unwrap_or(0) as usize;
                    match a.get_mut(i) {
                        Some(e) => accumulate(e, entry),
                        None => a.push(entry.clone()),
                    }
                }
            }
            (acc, d) => *acc = d.clone(),
        }
    }
    for events in cases {
        let mut input = super::review7::sse(events.iter().cloned());
        input.extend_from_slice(b"data: [DONE]\n\n");
        for split in [1, 9, input.len()] {
            let (out, rejected) = run(&policy, Api::OpenAi, 64, &input, split);
            assert!(!rejected);
            let mut decoded = Vec::new();
            SseDecoder::new(1 << 20).push(&out, &mut decoded).unwrap();
            let mut acc = json!({});
            for e in &decoded {
                let data = fields(std::str::from_utf8(e).unwrap()).unwrap().data;
                if data == "[DONE]" {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&data).unwrap();
                accumulate(&mut acc, &v["choices"][0]["delta"]);
            }
            let all = acc.to_string();
            assert!(!all.contains("12345"), "{split}: {all}");
            assert!(all.contains("key <MASKED>"), "{split}: {all}");
        }
    }
}

/// The second round: a Gemini candidate is told by its `index`, not its position in a chunk
/// (SDKs build each by it), and thought parts split over parts or chunks are one text of
/// their own — in streams, JSON lists and single JSON responses alike.
#[test]
fn gemini_candidates_by_index_and_thoughts_are_texts_of_their_own() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::regex("secret", [r"SECRET-[0-9]+"]).mask())
        .build()
        .unwrap();
    let cand = |index: u64, parts: serde_json::Value| json!({"content": {"role": "model", "parts": parts}, "index": index});
    let interleaved = vec![
        json!({"candidates": [cand(1, json!([{"text": "here SEC"}]))]}),
        json!({"candidates": [cand(0, json!([{"text": "x"}]))]}),
        json!({"candidates": [cand(0, json!([{"text": "y"}])), cand(1, json!([{"text": "RET-123 ok"}]))]}),
    ];
    let thoughts = vec![json!({"candidates": [cand(0, json!([
        {"text": "my SECRET-", "thought": true},
        {"text": "answer"},
        {"text": "42 is", "thought": true},
    ]))]})];
    for events in [interleaved, thoughts] {
        let input = super::review7::sse(events.iter().cloned());
        for split in [1, 9, input.len()] {
            let (out, rejected) = run(&policy, Api::OpenAi, 64, &input, split);
            assert!(!rejected);
            let out = String::from_utf8(out).unwrap();
            assert!(
                !out.contains("RET-123") && !out.contains("\"42 is"),
                "{split}: {out}"
            );
        }
        // As a JSON list, and (one chunk) as a single response.
        let mut bodies = vec![serde_json::to_vec(&events).unwrap()];
        if events.len() == 1 {
            bodies.push(serde_json::to_vec(&events[0]).unwrap());
        }
        for body in bodies {
            let v = policy.inspect_response(Api::OpenAi, &body).unwrap();
            let Decision::Rewrite(out) = v.into_decision() else {
                panic!("not masked: {}", String::from_utf8_lossy(&body));
            };
            let out = String::from_utf8(out).unwrap();
            assert!(
                !out.contains("RET-123") && !out.contains("\"42 is"),
                "{out}"
            );
            assert!(out.contains("<MASKED>"), "{out}");
        }
    }
}

/// Third round: clients that read `candidates[0]` (or `choices[0]`) of each chunk join
/// whatever comes first, so a candidate past what the request asked for, or two with one
/// index in one event, ends the stream; a `thought` that is neither true nor false (which a
/// lenient SDK may read either way) is not read.
#[test]
fn candidates_clients_read_by_position_and_odd_thoughts_end_the_stream() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::regex("secret", [r"SECRET-[0-9]+"]).mask())
        .build()
        .unwrap();
    let cand = |index: u64, text: &str| json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": index});
    let run_with = |events: Vec<serde_json::Value>, n: Option<u64>| {
        let input = super::review7::sse(events);
        let mut guard = StreamGuard::new(policy.clone(), Api::OpenAi, 64);
        if let Some(n) = n {
            guard = guard.with_candidates(n);
        }
        let mut decoded = Vec::new();
        SseDecoder::new(1 << 20).push(&input, &mut decoded).unwrap();
        let mut out = Vec::new();
        for e in decoded {
            guard.event(e, &mut out);
        }
        guard.finish(&mut out);
        (
            String::from_utf8(out.concat()).unwrap(),
            guard.is_rejected(),
        )
    };
    let two = vec![
        json!({"candidates": [cand(0, "here SEC")]}),
        json!({"candidates": [cand(1, "RET-123 ok")]}),
    ];
    let (out, rejected) = run_with(two.clone(), Some(1));
    assert!(rejected && !out.contains("RET-123"), "{out}");
    let (_, rejected) = run_with(two, Some(2));
    assert!(!rejected);
    let twice = vec![json!({"candidates": [cand(0, "I will kill"), cand(0, "er whale")]})];
    assert!(run_with(twice, None).1);
    for thought in [json!(1), json!("true")] {
        let odd = vec![
            json!({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": thought}]}, "index": 0}]}),
        ];
        assert!(run_with(odd, None).1);
        let body = json!({"candidates": [{"content": {"parts": [{"text": "a"}, {"text": "hmm", "thought": thought}]}}]});
        assert!(
            policy
                .inspect_response(Api::OpenAi, body.to_string().as_bytes())
                .is_err()
        );
    }
    // The same checks for whole responses and lists.
    let list = json!([{"candidates": [cand(0, "here SEC")]}, {"candidates": [cand(1, "RET-1")]}]);
    assert!(crate::usage::unasked_candidates(
        list.to_string().as_bytes(),
        1
    ));
    assert!(!crate::usage::unasked_candidates(
        list.to_string().as_bytes(),
        2
    ));
    assert_eq!(
        crate::usage::candidate_count(br#"{"generationConfig":{"candidateCount":3}}"#),
        3
    );
    assert_eq!(crate::usage::candidate_count(br#"{"contents":[]}"#), 1);
}

/// OpenRouter's `reasoning_details` of a Claude model are signed (`format: "anthropic-…"`, a
/// `signature`): never rewritten, as a changed text would fail its signature when the client
/// sends it back; a mask rule's hit there ends the stream, as in Anthropic thinking (third
/// round: the text was masked and the signature kept).
#[test]
fn signed_reasoning_details_are_never_rewritten() {
    use serde_json::json;
    let chunk = |details: serde_json::Value| json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"reasoning_details": details}, "finish_reason": null}]});
    let signed = |text: &str| json!([{"type": "reasoning.text", "text": text, "format": "anthropic-claude-v1", "index": 0}]);
    let input = super::review7::sse([
        chunk(signed("key AKIAIOSF")),
        chunk(signed("ODNN7EXAMPLE ok")),
        chunk(
            json!([{"type": "reasoning.text", "signature": "c2ln", "format": "anthropic-claude-v1", "index": 0}]),
        ),
    ]);
    let (out, rejected) = run(&mask_cards(), Api::OpenAi, 64, &input, 7);
    let out = String::from_utf8(out).unwrap();
    assert!(rejected && !out.contains("ODNN7EXAMPLE"), "{out}");
    assert!(out.contains("signed reasoning"), "{out}");
}
