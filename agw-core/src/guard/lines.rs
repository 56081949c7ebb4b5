//! Inspecting JSON-lines responses (Anthropic's message batch results): one JSON object per
//! line, each read as [`Policy::inspect_response`] reads a response body.

use super::policy::{Decision, Verdict};
use super::response::walk;
use super::{InspectError, Policy};
use crate::json::JsonError;

impl Policy {
    /// Inspects a JSON-lines response body (`GET /v1/messages/batches/{id}/results`): every
    /// line that is not blank must be one JSON object, inspected as
    /// [`inspect_response`](Policy::inspect_response) inspects a body — every string the model
    /// wrote, tool calls checked, reasoning read but never masked, identifiers skipped. Masks
    /// go inside each line's string values, so every line stays one valid JSON document and
    /// lines without a match keep their bytes; a rejecting rule in any line rejects the whole
    /// body. A line that is not a JSON object, or has a duplicate key, is an error naming the
    /// line: a body agw cannot read is not forwarded. Lines end in `\n` (a `\r` before it is
    /// whitespace to JSON); blank lines pass.
    pub fn inspect_response_lines(&self, body: &[u8]) -> Result<Verdict, InspectError> {
        let mut hits = Vec::new();
        let mut rewritten: Option<Vec<u8>> = None;
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
}

#[cfg(test)]
mod tests {
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
}
