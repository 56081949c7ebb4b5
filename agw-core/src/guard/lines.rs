//! Inspecting JSON-lines responses (Anthropic's message batch results): one JSON object per
//! line, each read as [`Policy::inspect_response`] reads a response body.

use super::policy::{Decision, Verdict};
use super::response::walk;
use super::rule::Action;

/// The most matches over several lines one continued text of a JSON-lines body is masked at;
/// a body that needs more is refused.
const MAX_MASKS: usize = 256;
use super::{InspectError, Policy};
use crate::json::JsonError;

impl Policy {
    /// Inspects a JSON-lines response body (`GET /v1/messages/batches/{id}/results`): every
    /// line that is not blank must be one JSON object, inspected as
    /// [`inspect_response`](Policy::inspect_response) inspects a body — every string the model
    /// wrote, tool calls checked, signed reasoning never masked, identifiers skipped. Masks
    /// go inside each line's string values, so every line stays one valid JSON document and
    /// lines without a match keep their bytes; a rejecting rule in any line rejects the whole
    /// body. A line that is not a JSON object, or has a duplicate key, is an error naming the
    /// line: a body agw cannot read is not forwarded. Lines end in `\n` (a `\r` before it is
    /// whitespace to JSON); blank lines pass.
    ///
    /// A streamed JSON-lines body (Ollama's `/api/chat` and `/api/generate`, chat chunks,
    /// `{"text": …}` tokens, any format) carries a text in pieces, a line each: the strings
    /// of consecutive lines at the same JSON path (array indexes included: two choices are
    /// two texts) are also read joined, so a match split over lines is found (see
    /// `guard::leaves`). A refusing rule refuses the body, an audit rule reports it,
    /// a masking rule masks it across the lines (those lines' JSON is written anew); in
    /// signed reasoning (an Anthropic thinking delta) a masking rule refuses, and a match
    /// split over lines whose text normalising changes (so that its place in them is not
    /// known) refuses the body instead of passing it. Batch results (lines with a
    /// `custom_id`) are each their own request's, not joined.
    pub fn inspect_response_lines(&self, body: &[u8]) -> Result<Verdict, InspectError> {
        let mut hits = Vec::new();
        let edited = match self.across_lines(body, &mut hits)? {
            Some(Err(r)) => return Ok(Verdict::new(Decision::Reject(r), hits)),
            Some(Ok(edited)) => Some(edited),
            None => None,
        };
        let body: &[u8] = edited.as_deref().unwrap_or(body);
        let mut rewritten: Option<Vec<u8>> = edited.as_ref().map(|_| Vec::new());
        let mut at = 0;
        for (n, line) in body.split_inclusive(|&b| b == b'\n').enumerate() {
            let start = at;
            at += line.len();
            // A line forwarded as it came: copied only once an earlier line was rewritten.
            let keep = |out: &mut Option<Vec<u8>>, bytes: &[u8]| {
                if let Some(out) = out {
                    out.extend_from_slice(bytes);
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                keep(&mut rewritten, line);
                continue;
            }
            let walked = walk(line)
                .map_err(|e| InspectError(JsonError::Shape(format!("line {}: {e}", n + 1))))?;
            let mut verdict = self.decide_walked(line, walked);
            hits.append(&mut verdict.hits);
            match verdict.decision {
                Decision::Allow => keep(&mut rewritten, line),
                Decision::Reject(r) => return Ok(Verdict::new(Decision::Reject(r), hits)),
                Decision::Rewrite(masked) => {
                    let out = rewritten.get_or_insert_with(|| {
                        let mut out = Vec::with_capacity(body.len() + 64);
                        out.extend_from_slice(&body[..start]);
                        out
                    });
                    out.extend_from_slice(&masked);
                }
            }
        }
        let decision = match rewritten {
            Some(out) => Decision::Rewrite(out),
            None => Decision::Allow,
        };
        Ok(Verdict::new(decision, hits))
    }

    /// The pass over text continued from line to line (see
    /// [`inspect_response_lines`](Policy::inspect_response_lines)): `None` when no match
    /// spans lines, the body with such matches masked, or the rejection.
    #[allow(clippy::type_complexity)]
    fn across_lines(
        &self,
        body: &[u8],
        hits: &mut Vec<super::policy::Hit>,
    ) -> Result<Option<Result<Vec<u8>, super::policy::Rejection>>, InspectError> {
        use serde_json::Value;
        let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
        let mut parsed: Vec<Option<Value>> = Vec::with_capacity(lines.len());
        for (n, line) in lines.iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                parsed.push(None);
                continue;
            }
            let v: Value = serde_json::from_slice(line)
                .map_err(|e| InspectError(JsonError::Shape(format!("line {}: {e}", n + 1))))?;
            parsed.push(Some(v));
        }
        // Batch results are a response per line, each its request's own: not one text.
        if parsed
            .iter()
            .flatten()
            .any(|v| v.get("custom_id").is_some())
        {
            return Ok(None);
        }
        // The strings of every line by path, in order of first appearance: the pieces of each
        // path's text (line, normalised text, whether normalising left it as it was), and
        // whether it is signed reasoning.
        type Pieces = (String, bool, Vec<Piece>);
        let mut texts: Vec<Pieces> = Vec::new();
        let mut at_path: std::collections::HashMap<String, usize> = Default::default();
        for (n, v) in parsed.iter().enumerate() {
            let Some(v) = v else { continue };
            // Only strings where servers stream tokens are pieces of a text; a line with more
            // than a few is a document of its own (the regression round: records joined lost
            // their boundaries).
            let leaves: Vec<_> = super::leaves::leaves(v)
                .leaves
                .into_iter()
                .filter(|l| super::leaves::is_token_path(&l.pointer))
                .collect();
            if leaves.len() > super::leaves::MAX_PIECES {
                continue;
            }
            for leaf in leaves {
                let piece = Piece::new(n, leaf.text);
                match at_path.get(&leaf.pointer) {
                    Some(&i) => {
                        texts[i].1 |= leaf.signed;
                        texts[i].2.push(piece);
                    }
                    None => {
                        at_path.insert(leaf.pointer.clone(), texts.len());
                        texts.push((leaf.pointer, leaf.signed, vec![piece]));
                    }
                }
            }
        }
        let mut changed = vec![false; lines.len()];
        for (path, signed, mut pieces) in texts {
            let path = path.as_str();
            if pieces.len() < 2 {
                continue;
            }
            let hit = |m: &super::policy::TextMatch<'_>| super::policy::Hit {
                rule: m.rule.clone(),
                action: m.action.kind(),
                detector: m.detector,
                path: format!("{path} (across lines)"),
            };
            // One mask at a time (each moves the places of later matches); a text that needs
            // more than a bounded number refuses the body rather than passing the rest.
            let mut masks = 0;
            loop {
                let mut starts = Vec::with_capacity(pieces.len());
                let mut joined = Vec::new();
                for piece in &pieces {
                    starts.push(joined.len());
                    joined.extend_from_slice(&piece.norm);
                }
                let piece_of = |at: usize| starts.partition_point(|&s| s <= at) - 1;
                // What JSON escapes spell out over lines (`\u00` + `53ECRET`).
                if masks == 0
                    && let Some(rule) = self.escaped_match(&joined)
                {
                    return Ok(Some(Err(super::response::escaped_refusal(rule))));
                }
                let spanning: Vec<_> = self
                    .find_in_text(&joined)
                    .into_iter()
                    .filter(|m| piece_of(m.range.start) != piece_of(m.range.end - 1))
                    .collect();
                if let Some(r) = spanning.iter().find_map(|m| m.action.rejection(m.rule)) {
                    return Ok(Some(Err(r)));
                }
                let mask = spanning
                    .iter()
                    .find(|m| matches!(m.action, Action::Mask { .. }));
                if let (Some(m), true) = (mask, signed) {
                    // Signed reasoning is not rewritten: refused (seventh red-team review).
                    hits.push(hit(m));
                    let r = super::response::signed_reasoning_refusal(m.rule.clone());
                    return Ok(Some(Err(r)));
                }
                let Some(m) = mask else {
                    // Nothing (more) to mask: what is left is reported.
                    hits.extend(spanning.iter().map(hit));
                    break;
                };
                hits.push(hit(m));
                let (first, last) = (piece_of(m.range.start), piece_of(m.range.end - 1));
                masks += 1;
                if masks > MAX_MASKS {
                    return Ok(Some(Err(super::policy::Rejection {
                        rule: m.rule.clone(),
                        status: http::StatusCode::BAD_GATEWAY,
                        message: "The provider's streamed reply could not be masked where a \
                                  match runs over several lines."
                            .to_owned(),
                    })));
                }
                for i in first..=last {
                    let piece = &mut pieces[i];
                    // The match's part in this piece, in its normalised text, then in the
                    // text as the line has it (normalising folds `é`, drops zero-width
                    // characters: the twelfth session's differential test found such lines
                    // refused rather than masked).
                    let from = m.range.start.saturating_sub(starts[i]);
                    let to = (m.range.end - starts[i]).min(piece.norm.len());
                    let with = if i == first { m.placeholder() } else { "" };
                    let source = if from < to {
                        piece.map[from].start..piece.map[to - 1].end
                    } else {
                        continue;
                    };
                    piece.text.replace_range(source, with);
                    let line = piece.line;
                    *piece = Piece::new(line, std::mem::take(&mut piece.text));
                    if let Some(v) = parsed[line].as_mut().and_then(|v| v.pointer_mut(path)) {
                        *v = Value::String(piece.text.clone());
                    }
                    changed[line] = true;
                }
            }
        }
        if !changed.contains(&true) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(body.len() + 64);
        for (n, line) in lines.iter().enumerate() {
            match (&parsed[n], changed[n]) {
                (Some(v), true) => {
                    serde_json::to_writer(&mut out, v)
                        .map_err(|e| InspectError(JsonError::Shape(e.to_string())))?;
                    let ending = if line.ends_with(b"\r\n") {
                        &b"\r\n"[..]
                    } else if line.ends_with(b"\n") {
                        &b"\n"[..]
                    } else {
                        &b""[..]
                    };
                    out.extend_from_slice(ending);
                }
                _ => out.extend_from_slice(line),
            }
        }
        Ok(Some(Ok(out)))
    }
}

/// One line's piece of a text continued over lines: the string as the line has it, and as
/// rules read it (normalised), with the source range of each normalised byte.
struct Piece {
    line: usize,
    text: String,
    norm: Vec<u8>,
    map: Vec<std::ops::Range<usize>>,
}

impl Piece {
    fn new(line: usize, text: String) -> Piece {
        let (mut norm, mut map) = (Vec::new(), Vec::new());
        crate::json::normalize_plain(&text, &mut norm, &mut map);
        Piece {
            line,
            text,
            norm,
            map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_MASKS;
    use crate::detect::Detector;
    use crate::guard::{ActionKind, Decision, Policy, Rule, ToolRule};

    /// Two results as Anthropic writes them: one succeeded (a Messages response), one errored.
    const RESULTS: &str = concat!(
        r#"{"custom_id":"req-1","result":{"type":"succeeded","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"my credit card is AKIAIOSFODNN7EXAMPLE"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":8}}}}"#,
        "\n",
        r#"{"custom_id":"req-2","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}}}"#,
        "\n",
    );

    fn mask() -> Policy {
        Policy::builder()
            .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
            .build()
            .unwrap()
    }

    #[test]
    fn masks_inside_each_line_and_keeps_the_others() {
        let v = mask().inspect_response_lines(RESULTS.as_bytes()).unwrap();
        assert_eq!(v.hits()[0].action, ActionKind::Mask);
        let Decision::Rewrite(out) = v.into_decision() else {
            panic!("not masked")
        };
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            RESULTS.replace("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
            "only the masked span changes"
        );
        for line in out.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn a_rejecting_rule_in_any_line_rejects_the_body() {
        let policy = Policy::builder()
            .rule(Rule::regex("cards", ["credit card"]).reject("no cards"))
            .build()
            .unwrap();
        let body = format!(
            "\n{}",
            RESULTS.lines().rev().collect::<Vec<_>>().join("\r\n")
        );
        for body in [RESULTS, &body] {
            match policy
                .inspect_response_lines(body.as_bytes())
                .unwrap()
                .into_decision()
            {
                Decision::Reject(r) => assert_eq!(&*r.rule, "cards"),
                other => panic!("{other:?}"),
            }
        }
        // Tool calls in a result are checked by the tool rules.
        let tools = Policy::builder()
            .tool_rule(ToolRule::new("no-bash", "Bash").reject("no Bash"))
            .build()
            .unwrap();
        let call = r#"{"custom_id":"a","result":{"type":"succeeded","message":{"content":[{"type":"tool_use","id":"t","name":"Bash","input":{"command":"ls"}}]}}}"#;
        let v = tools.inspect_response_lines(call.as_bytes()).unwrap();
        assert!(matches!(v.into_decision(), Decision::Reject(_)));
    }

    #[test]
    fn clean_and_blank_lines_pass_as_they_are() {
        let clean = RESULTS.replace("my credit card is AKIAIOSFODNN7EXAMPLE", "hello");
        for body in [
            clean.as_str(),
            "",
            "\n",
            "\r\n\r\n",
            &clean.replace('\n', "\r\n"),
        ] {
            let v = mask().inspect_response_lines(body.as_bytes()).unwrap();
            assert!(v.is_allow() && v.hits().is_empty(), "{body:?}");
        }
        // Identifiers are not text: a custom id is the client's own.
        let id = r#"{"custom_id":"AKIAIOSFODNN7EXAMPLE","result":{"type":"canceled"}}"#;
        assert!(
            mask()
                .inspect_response_lines(id.as_bytes())
                .unwrap()
                .is_allow()
        );
    }

    #[test]
    fn a_line_agw_cannot_read_fails_closed() {
        for (body, line) in [
            (format!("{RESULTS}not json\n"), "line 3"),
            (format!("{RESULTS}[1]\n"), "line 3"),
            (format!("{{\"a\":1,\"a\":2}}\n{RESULTS}"), "line 1"),
            // A pretty-printed document is not JSON lines.
            ("{\n  \"custom_id\": \"a\"\n}\n".to_owned(), "line 1"),
            // Two documents on one line.
            (RESULTS.replace('\n', " "), "line 1"),
            (RESULTS.replace('\n', "\r"), "line 1"),
        ] {
            let err = mask().inspect_response_lines(body.as_bytes()).unwrap_err();
            assert!(err.to_string().starts_with(line), "{body:?}: {err}");
        }
    }

    /// Found by the seventh red-team review: only Ollama's paths were joined, so a key sent
    /// as tokens in any other JSON-lines format passed.
    #[test]
    fn text_continued_at_any_path_is_read_joined() {
        use serde_json::json;
        let policy = Policy::builder()
            .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
            .build()
            .unwrap();
        let tokens = [" AK", "IA", "IOS", "FOD", "NN7", "EXA", "MPLE", " ok"];
        type Shape = fn(&str) -> serde_json::Value;
        let shapes: [(&str, Shape); 5] = [
            ("/text", |t| json!({"text": t})),
            ("/content", |t| json!({"content": t, "stop": false})),
            ("/delta", |t| json!({"delta": t})),
            (
                "/choices/0/delta/content",
                |t| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": t}}]}),
            ),
            (
                "/delta/text",
                |t| json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
            ),
        ];
        for (pointer, shape) in shapes {
            let body: String = tokens.iter().map(|t| format!("{}\n", shape(t))).collect();
            let v = policy.inspect_response_lines(body.as_bytes()).unwrap();
            let Decision::Rewrite(out) = v.into_decision() else {
                panic!("{pointer}: not masked")
            };
            let text: String = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.pointer(pointer).unwrap().as_str().unwrap().to_owned()
                })
                .collect();
            assert_eq!(text, " <AWS_ACCESS_KEY> ok", "{pointer}");
        }
        // Two choices are two texts.
        let body = "{\"choices\":[{\"delta\":{\"content\":\"AKIAIOSF\"}}]}\n{\"choices\":[{\"delta\":{\"content\":\"\"}},{\"delta\":{\"content\":\"ODNN7EXAMPLE\"}}]}\n";
        assert!(
            policy
                .inspect_response_lines(body.as_bytes())
                .unwrap()
                .is_allow()
        );
        // Signed reasoning split over lines: a mask rule's hit refuses.
        let body: String = tokens
            .iter()
            .map(|t| {
                let d = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": t}});
                format!("{d}\n")
            })
            .collect();
        match policy
            .inspect_response_lines(body.as_bytes())
            .unwrap()
            .into_decision()
        {
            Decision::Reject(r) => assert_eq!(r.status, http::StatusCode::BAD_REQUEST),
            other => panic!("{other:?}"),
        }
    }

    /// Found by the second red-team review: Ollama's streamed replies (`/api/chat`,
    /// `/api/generate`) were read line by line, so a card, a key or a refused phrase split
    /// over lines went out.
    #[test]
    fn text_continued_over_lines_is_read_joined() {
        let chat = |pieces: &[&str]| {
            let mut s = String::new();
            for p in pieces {
                s += &serde_json::json!({"model":"m","message":{"role":"assistant","content":p},"done":false}).to_string();
                s.push('\n');
            }
            s += "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true}\n";
            s
        };
        let policy = Policy::builder()
            .rule(Rule::regex("codes", ["launch codes"]).reject("no codes"))
            .rule(Rule::detectors("pii", [Detector::CreditCard, Detector::AwsAccessKey]).mask())
            .build()
            .unwrap();
        let body = chat(&[
            "card 4111 1111 ",
            "1111 1111 and AKIAIOSF",
            "ODNN7EXAMPLE; ok",
        ]);
        let v = policy.inspect_response_lines(body.as_bytes()).unwrap();
        let Decision::Rewrite(out) = v.into_decision() else {
            panic!("not masked")
        };
        let out = String::from_utf8(out).unwrap();
        let mut text = String::new();
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            text += v["message"]["content"].as_str().unwrap();
        }
        assert_eq!(text, "card <CREDIT_CARD> and <AWS_ACCESS_KEY>; ok", "{out}");
        // A refused phrase over lines refuses the body; so does `/api/generate`'s `response`.
        let body = chat(&["the launch ", "codes are"]);
        let generate = "{\"response\":\"the launch \",\"done\":false}\n{\"response\":\"codes\",\"done\":true}\n";
        for body in [body.as_str(), generate] {
            match policy
                .inspect_response_lines(body.as_bytes())
                .unwrap()
                .into_decision()
            {
                Decision::Reject(r) => assert_eq!(&*r.rule, "codes"),
                other => panic!("{other:?}"),
            }
        }
        // Reasoning without a signature is masked too (seventh red-team review).
        let thinking = "{\"message\":{\"thinking\":\"card 4111 1111 \"}}\n{\"message\":{\"thinking\":\"1111 1111\"}}\n";
        let v = policy.inspect_response_lines(thinking.as_bytes()).unwrap();
        let Decision::Rewrite(out) = v.into_decision() else {
            panic!("not masked")
        };
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("card <CREDIT_CARD>")
        );
        // More matches over lines than are masked one at a time: refused, not passed.
        let many: Vec<&str> = ["card 4111 1111 ", "1111 1111 and "].repeat(MAX_MASKS + 1);
        let v = policy
            .inspect_response_lines(chat(&many).as_bytes())
            .unwrap();
        assert!(matches!(v.into_decision(), Decision::Reject(_)));
        // Batch results are not continued text: unchanged.
        assert!(
            mask()
                .inspect_response_lines(
                    b"{\"custom_id\":\"a\",\"result\":{\"type\":\"canceled\"}}\n"
                )
                .unwrap()
                .is_allow()
        );
    }

    /// A match over lines is masked where normalising changes the text around it (`é`, a
    /// fullwidth letter, a zero-width character): the twelfth session's differential test
    /// found such lines refused (502) rather than masked.
    #[test]
    fn a_match_over_lines_is_masked_beside_text_normalising_changes() {
        let policy = Policy::builder()
            .rule(Rule::literals("cc", ["credit card"]).mask())
            .build()
            .unwrap();
        let lines = |pieces: &[&str]| -> String {
            pieces
                .iter()
                .map(|p| {
                    format!(
                        "{{\"model\":\"m\",\"message\":{{\"role\":\"assistant\",\"content\":{}}},\"done\":false}}\n",
                        serde_json::to_string(p).unwrap()
                    )
                })
                .collect()
        };
        for (pieces, want) in [
            (&["é cred", "it card"][..], "é <MASKED>"),
            (&["x credit", " card ÜÜ"], "x <MASKED> ÜÜ"),
            (&["ｄ cre\u{200b}d", "it card!"], "ｄ <MASKED>!"),
        ] {
            let body = lines(pieces);
            let v = policy.inspect_response_lines(body.as_bytes()).unwrap();
            let Decision::Rewrite(out) = v.into_decision() else {
                panic!("{pieces:?}: not masked")
            };
            let text: String = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["message"]["content"].as_str().unwrap().to_owned()
                })
                .collect();
            assert_eq!(text, want, "{pieces:?}");
        }
    }
}
