//! Found in the twenty-first session's red-team review (F2): Anthropic reasoning blocks were
//! never read, so text in a thinking block that nothing verifies — one without a signature,
//! one outside an assistant turn, a `redacted_thinking` block's `data` there — reached an
//! Anthropic-compatible server's prompt unread. Signed reasoning in an assistant turn (Claude
//! Code's own) stays unread.

use super::*;

/// Whether "credit card" still reaches the provider: the request is allowed, or rewritten with
/// the phrase left in it.
fn reaches(p: &Policy, kind: RouteKind, body: &str) -> bool {
    let v = p.inspect(kind, body.as_bytes()).unwrap();
    match v.decision() {
        Decision::Allow => true,
        Decision::Rewrite(out) => String::from_utf8_lossy(out).contains("credit card"),
        Decision::Reject(_) => false,
    }
}

/// A conversation whose assistant turn is `assistant` (a message object), then a user turn.
fn after(assistant: &str) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}},{assistant},{{"role":"user","content":"go on"}}]}}"#
    )
}

#[test]
fn unsigned_or_misplaced_thinking_is_read() {
    let p = seed_policy();
    let signed = r#"{"type":"thinking","thinking":"my credit card","signature":"EqQBCkgIBxABGAIiQL+sig/=="}"#;
    let mut cases: Vec<(RouteKind, String)> = Vec::new();
    // Unsigned in an assistant turn: no signature, an empty one, one that is no string, in
    // any key order.
    for block in [
        r#"{"type":"thinking","thinking":"my credit card"}"#,
        r#"{"type":"thinking","thinking":"my credit card","signature":""}"#,
        r#"{"type":"thinking","thinking":"my credit card","signature":null}"#,
        r#"{"type":"thinking","thinking":"my credit card","signature":4111}"#,
        r#"{"type":"thinking","thinking":"my credit card","signature":["EqQB"]}"#,
        r#"{"type":"thinking","thinking":"my credit card","signature":{"s":"EqQB"}}"#,
        r#"{"signature":"","thinking":"my credit card","type":"thinking"}"#,
        r#"{"thinking":"my credit card","type":"thinking"}"#,
        // Signed once, and once not (parsers disagree on which one wins).
        r#"{"type":"thinking","thinking":"my credit card","signature":"EqQB","signature":""}"#,
        // Not the string it should be: a template prints it all the same.
        r#"{"type":"thinking","thinking":["my credit card"]}"#,
        r#"{"type":"thinking","thinking":{"text":"my credit card"},"signature":""}"#,
        // Escaped, and a key a case-insensitive parser takes.
        r#"{"type":"thinking","thinking":"my cr\u0065dit card"}"#,
        r#"{"type":"thinking","Thinking":"my credit card"}"#,
    ] {
        cases.push((
            RouteKind::Messages,
            after(&format!(
                r#"{{"role":"assistant","content":[{block},{{"type":"text","text":"ok"}}]}}"#
            )),
        ));
    }
    // Signed, but not in an assistant turn: a user, tool, system or a client's own role's
    // message (the role before or after the content), the top-level `system`, a tool result.
    for message in [
        format!(r#"{{"role":"user","content":[{signed},{{"type":"text","text":"hi"}}]}}"#),
        format!(r#"{{"content":[{signed},{{"type":"text","text":"hi"}}],"role":"user"}}"#),
        format!(r#"{{"content":[{signed}],"role":"system"}}"#),
        format!(r#"{{"role":"Assistant","content":[{signed}]}}"#),
        format!(r#"{{"role":"tool","content":[{signed}]}}"#),
        format!(r#"{{"content":[{signed}]}}"#),
        format!(
            r#"{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","content":[{signed}]}}]}}"#
        ),
        // Inside an assistant turn's server tool result: not a block of the turn's own.
        format!(
            r#"{{"role":"assistant","content":[{{"type":"web_search_tool_result","tool_use_id":"s","content":[{signed}]}}]}}"#
        ),
        r#"{"role":"user","content":[{"type":"redacted_thinking","data":"my credit card"}]}"#
            .to_owned(),
        r#"{"content":[{"data":"my credit card","type":"redacted_thinking"}],"role":"user"}"#
            .to_owned(),
    ] {
        cases.push((
            RouteKind::Messages,
            format!(r#"{{"model":"m","messages":[{message},{{"role":"user","content":"x"}}]}}"#),
        ));
        cases.push((
            RouteKind::Messages,
            format!(r#"{{"model":"m","messages":[{message}]}}"#),
        ));
    }
    for system in [
        signed.to_owned(),
        r#"{"type":"redacted_thinking","data":"my credit card"}"#.to_owned(),
    ] {
        cases.push((
            RouteKind::Messages,
            format!(
                r#"{{"model":"m","system":[{{"type":"text","text":"be brief"}},{system}],"messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
        ));
    }
    // The other routes that read Anthropic blocks.
    let user = format!(r#"{{"role":"user","content":[{signed},{{"type":"text","text":"hi"}}]}}"#);
    cases.push((
        RouteKind::CountTokens,
        format!(r#"{{"model":"m","messages":[{user}]}}"#),
    ));
    cases.push((
        RouteKind::MessageBatches,
        format!(
            r#"{{"requests":[{{"custom_id":"a","params":{{"model":"m","max_tokens":9,"messages":[{user}]}}}}]}}"#
        ),
    ));
    cases.push((
        RouteKind::Responses,
        format!(
            r#"{{"model":"m","input":[{{"role":"user","content":[{signed},{{"type":"input_text","text":"hi"}}]}}]}}"#
        ),
    ));
    cases.push((
        RouteKind::Responses,
        r#"{"model":"m","input":[{"role":"assistant","content":[{"type":"thinking","thinking":"my credit card"}]},{"role":"user","content":"go"}]}"#
            .to_owned(),
    ));
    // Chat completions: a reasoning part's `thinking` was read already; a redacted one's
    // `data` outside an assistant turn, and reasoning written as a list or an object, were not.
    for message in [
        r#"{"role":"user","content":[{"type":"redacted_thinking","data":"my credit card"}]}"#,
        r#"{"role":"assistant","content":"ok","reasoning_content":["my credit card"]}"#,
        r#"{"role":"assistant","content":"ok","reasoning":{"text":"my credit card"}}"#,
        r#"{"role":"assistant","content":"ok","reasoning_content":"my credit card"}"#,
        r#"{"role":"assistant","content":[{"type":"thinking","thinking":"my credit card","signature":"s"}]}"#,
    ] {
        cases.push((
            RouteKind::Completions,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}},{message},{{"role":"user","content":"go"}}]}}"#
            ),
        ));
    }
    for (kind, body) in &cases {
        serde_json::from_str::<serde_json::Value>(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(!reaches(&p, *kind, body), "{kind:?} unread: {body}");
    }
}

/// Claude Code's own traffic: signed reasoning in an assistant turn, and `redacted_thinking`
/// there, pass unread and untouched, whatever the key order (also when the role follows the
/// content), with a reasoning block's other fields.
#[test]
fn signed_thinking_in_an_assistant_turn_stays_unread() {
    let p = seed_policy();
    let mut cases: Vec<(RouteKind, String)> = Vec::new();
    for block in [
        r#"{"type":"thinking","thinking":"my credit card","signature":"EqQBCkgIBxABGAIiQL+sig/=="}"#,
        r#"{"signature":"EqQB","thinking":"my credit card","type":"thinking"}"#,
        r#"{"thinking":"my credit card","signature":"EqQB","type":"thinking"}"#,
        r#"{"type":"thinking","thinking":"t","signature":"s","citations":[{"cited_text":"credit card"}],"name":"credit card"}"#,
        r#"{"type":"redacted_thinking","data":"my credit card"}"#,
        r#"{"data":"my credit card","type":"redacted_thinking"}"#,
        // Neither is a thinking block's text: a redacted one's `thinking`, a thinking one's
        // `data`.
        r#"{"type":"redacted_thinking","data":"x","thinking":"my credit card"}"#,
        r#"{"type":"thinking","thinking":"t","signature":"s","data":"my credit card"}"#,
    ] {
        for message in [
            format!(r#"{{"role":"assistant","content":[{block},{{"type":"text","text":"ok"}}]}}"#),
            format!(r#"{{"content":[{block},{{"type":"text","text":"ok"}}],"role":"assistant"}}"#),
        ] {
            cases.push((RouteKind::Messages, after(&message)));
            cases.push((RouteKind::CountTokens, after(&message)));
            cases.push((
                RouteKind::MessageBatches,
                format!(
                    r#"{{"requests":[{{"custom_id":"a","params":{{"model":"m","max_tokens":9,"messages":[{{"role":"user","content":"hi"}},{message}]}}}}]}}"#
                ),
            ));
        }
    }
    cases.push((RouteKind::Messages, claude_code_body("notes", "thanks")));
    for (kind, body) in &cases {
        serde_json::from_str::<serde_json::Value>(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let v = p.inspect(*kind, body.as_bytes()).unwrap();
        assert_eq!(v.decision(), &Decision::Allow, "{kind:?}: {body}");
        assert!(v.hits().is_empty(), "{kind:?}: {body}");
    }
}

/// An unsigned thinking block is text like any other: a masking rule masks it in place, the
/// rest of the body byte for byte as sent. A signed one in the same turn is left as it is.
#[test]
fn unsigned_thinking_is_masked_in_place() {
    let p = mask_policy();
    let body = after(
        r#"{"role":"assistant","content":[{"type":"thinking","thinking":"card 4111 1111 1111 1111 ok","signature":""},{"type":"thinking","thinking":"card 4111111111111111","signature":"EqQB"},{"type":"text","text":"ok"}]}"#,
    );
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    let Decision::Rewrite(masked) = v.decision() else {
        panic!("{:?}", v.decision())
    };
    assert_only_spans_changed(&body, masked, &[("4111 1111 1111 1111", "<CREDIT_CARD>")]);
    assert_eq!(v.hits().len(), 1);
    assert_eq!(v.hits()[0].path, "messages[1].content[0].thinking");
}

/// A duplicate `thinking` or `data` in a reasoning block is refused, as a duplicate `type` is:
/// the block's text is the one a parser keeps, and parsers disagree on which.
#[test]
fn a_reasoning_block_with_two_texts_is_refused() {
    let p = seed_policy();
    for block in [
        r#"{"type":"thinking","thinking":"t","thinking":"my credit card","signature":"EqQB"}"#,
        r#"{"thinking":"t","type":"thinking","THINKING":"my credit card","signature":"EqQB"}"#,
        r#"{"type":"redacted_thinking","data":"x","data":"my credit card"}"#,
    ] {
        let body = after(&format!(r#"{{"role":"assistant","content":[{block}]}}"#));
        assert!(
            p.inspect(RouteKind::Messages, body.as_bytes()).is_err(),
            "{body}"
        );
    }
}

/// Signed reasoning read outside an assistant turn is marked sealed (a mask there would break
/// its signature); unsigned reasoning is not, and signed reasoning in its turn is not read.
#[test]
fn signed_reasoning_out_of_place_is_sealed() {
    let sealed = |body: &str| {
        let doc = crate::guard::extract::extract(RouteKind::Messages, body.as_bytes(), 0).unwrap();
        let out: Vec<String> = doc
            .sealed
            .iter()
            .flat_map(|r| doc.segs[r.clone()].iter())
            .map(|s| String::from_utf8_lossy(&doc.text[s.text.clone()]).into_owned())
            .collect();
        let read = doc.segs.len();
        doc.recycle();
        (out, read)
    };
    let user = |block: &str| {
        format!(
            r#"{{"messages":[{{"role":"user","content":[{block},{{"type":"text","text":"hi"}}]}}]}}"#
        )
    };
    let (out, _) = sealed(&user(
        r#"{"type":"thinking","thinking":"a secret","signature":"EqQB"}"#,
    ));
    assert_eq!(out, ["a secret"]);
    let (out, _) = sealed(&user(r#"{"type":"redacted_thinking","data":"ciphertext"}"#));
    assert_eq!(out, ["ciphertext"]);
    let (out, read) = sealed(&user(
        r#"{"type":"thinking","thinking":"a secret","signature":""}"#,
    ));
    assert!(out.is_empty());
    assert_eq!(read, 2);
    let (out, read) = sealed(
        r#"{"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"a secret","signature":"EqQB"}]}]}"#,
    );
    assert!(out.is_empty());
    assert_eq!(read, 0);
}

/// Sealed reasoning is never changed: a masking hit there refuses the request with a clear
/// message, and so does a rejecting hit in an earlier turn that would otherwise be removed
/// (a removed block fails its signature as a masked one does). Unsigned reasoning in the same
/// place is masked.
#[test]
fn sealed_reasoning_refuses_instead_of_changing() {
    let user = |block: &str| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{block},{{"type":"text","text":"hi"}}]}},{{"role":"assistant","content":"ok"}},{{"role":"user","content":"go on"}}]}}"#
        )
    };
    let mask = mask_policy();
    let body =
        user(r#"{"type":"thinking","thinking":"card 4111 1111 1111 1111","signature":"EqQB"}"#);
    let v = mask.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    let Decision::Reject(r) = v.decision() else {
        panic!("{:?}", v.decision())
    };
    assert_eq!(r.status, http::StatusCode::BAD_REQUEST);
    assert!(r.message.contains("Signed reasoning"), "{}", r.message);
    assert!(!r.message.contains("4111"), "{}", r.message);
    let body = user(r#"{"type":"thinking","thinking":"card 4111 1111 1111 1111","signature":""}"#);
    let v = mask.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{:?}", v.decision())
    };
    assert_only_spans_changed(&body, out, &[("4111 1111 1111 1111", "<CREDIT_CARD>")]);
    // An older user turn: a rejecting rule removes plain text there, but not sealed text.
    let seed = seed_policy();
    let body = user(r#"{"type":"redacted_thinking","data":"my credit card"}"#);
    let v = seed.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    assert!(
        matches!(v.decision(), Decision::Reject(_)),
        "{:?}",
        v.decision()
    );
    let body = user(r#"{"type":"text","text":"my credit card"}"#);
    let v = seed.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    assert!(
        matches!(v.decision(), Decision::Rewrite(_)),
        "{:?}",
        v.decision()
    );
}
