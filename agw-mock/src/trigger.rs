//! `mock:*` words in the last user turn, and the reply they ask for.
//!
//! Only the last message with role `user` is read, so a trigger steers one turn and does not
//! linger in the history of later requests.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

/// Longest `mock:delay_ms` honoured.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Id of the one tool call the mock ever makes (Anthropic shape).
pub(crate) const TOOL_USE_ID: &str = "toolu_mock_1";

/// Id of the one tool call the mock ever makes (OpenAI shape).
pub(crate) const TOOL_CALL_ID: &str = "call_mock_1";

pub(crate) const DEFAULT_TEXT: &str = "Hello from the mock provider.";
pub(crate) const TOOL_PREAMBLE: &str = "I'll read it.";
pub(crate) const RUN_PREAMBLE: &str = "I'll run it.";
pub(crate) const AFTER_TOOL_TEXT: &str = "I read the file.";

/// The text of the last user turn and whether it answers a tool call.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LastUserTurn {
    /// Text blocks (or the string content) in order.
    pub texts: Vec<String>,
    /// The turn carries a tool result (Anthropic `tool_result` block, OpenAI `tool` message).
    pub has_tool_result: bool,
    /// The tool result answers the mock's own tool call.
    pub answers_mock_tool: bool,
}

impl LastUserTurn {
    /// The last user message of an Anthropic Messages request.
    pub(crate) fn anthropic(request: &Value) -> Self {
        let mut turn = Self::default();
        let Some(message) = last_with_role(request, "user") else {
            return turn;
        };
        match message.get("content") {
            Some(Value::String(text)) => turn.texts.push(text.clone()),
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            if let Some(text) = block.get("text").and_then(Value::as_str) {
                                turn.texts.push(text.to_owned());
                            }
                        }
                        Some("tool_result") => {
                            turn.has_tool_result = true;
                            turn.answers_mock_tool |=
                                block.get("tool_use_id").and_then(Value::as_str)
                                    == Some(TOOL_USE_ID);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        turn
    }

    /// The last user message of an OpenAI Chat Completions request; `tool` messages after it
    /// are its tool results.
    pub(crate) fn openai(request: &Value) -> Self {
        let mut turn = Self::default();
        let Some(messages) = request.get("messages").and_then(Value::as_array) else {
            return turn;
        };
        let Some(last_user) = messages.iter().rposition(|m| role(m) == Some("user")) else {
            return turn;
        };
        match messages[last_user].get("content") {
            Some(Value::String(text)) => turn.texts.push(text.clone()),
            Some(Value::Array(parts)) => {
                for part in parts {
                    if part.get("type").and_then(Value::as_str) == Some("text")
                        && let Some(text) = part.get("text").and_then(Value::as_str)
                    {
                        turn.texts.push(text.to_owned());
                    }
                }
            }
            _ => {}
        }
        for message in &messages[last_user + 1..] {
            if role(message) == Some("tool") {
                turn.has_tool_result = true;
                turn.answers_mock_tool |=
                    message.get("tool_call_id").and_then(Value::as_str) == Some(TOOL_CALL_ID);
            }
        }
        turn
    }

    /// The last user input of an OpenAI Responses request (`input` as a string or a list of
    /// items); `function_call_output` items after it are its tool results.
    pub(crate) fn responses(request: &Value) -> Self {
        let mut turn = Self::default();
        match request.get("input") {
            Some(Value::String(text)) => turn.texts.push(text.clone()),
            Some(Value::Array(items)) => {
                let last_user = items.iter().rposition(|m| role(m) == Some("user"));
                if let Some(i) = last_user {
                    match items[i].get("content") {
                        Some(Value::String(text)) => turn.texts.push(text.clone()),
                        Some(Value::Array(parts)) => {
                            for part in parts {
                                if let Some(text) = part.get("text").and_then(Value::as_str) {
                                    turn.texts.push(text.to_owned());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                for item in &items[last_user.map_or(0, |i| i + 1)..] {
                    if item.get("type").and_then(Value::as_str) == Some("function_call_output") {
                        turn.has_tool_result = true;
                        turn.answers_mock_tool |=
                            item.get("call_id").and_then(Value::as_str) == Some(TOOL_CALL_ID);
                    }
                }
            }
            _ => {}
        }
        turn
    }

    /// All text of the turn, for trigger search.
    pub(crate) fn text(&self) -> String {
        self.texts.join("\n")
    }
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

fn last_with_role<'a>(request: &'a Value, wanted: &str) -> Option<&'a Value> {
    request
        .get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| role(m) == Some(wanted))
}

/// The `mock:*` words found in a text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Triggers {
    pub read: Option<String>,
    pub echo: bool,
    pub hold: bool,
    pub status: Option<StatusCode>,
    pub delay: Option<Duration>,
    pub gzip: bool,
    pub ping_comment: bool,
    /// `mock:tool=NAME:ARG`: a call of tool NAME with input `{"command": ARG}` (ARG runs to
    /// the end of the line).
    pub tool: Option<(String, String)>,
    /// `mock:think`: a thinking block (the last text block as its thinking) before the reply.
    pub think: bool,
    /// `mock:choices=N`: OpenAI chat answers with N identical choices (at most 4).
    pub choices: Option<u32>,
    /// `mock:content_type=VALUE`: the response's `Content-Type` (VALUE up to the end of the
    /// line).
    pub content_type: Option<String>,
    /// `mock:dup_key`: a JSON response whose first key is repeated (a decoy value first).
    pub dup_key: bool,
    /// `mock:trailing`: streamed text deltas carry bytes after their JSON.
    pub trailing: bool,
}

/// What follows `prefix` in `text`, up to the end of its line.
fn rest_of_line(text: &str, prefix: &str) -> Option<String> {
    let at = text.find(prefix)? + prefix.len();
    let rest = &text[at..];
    let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
    Some(rest[..end].trim_end().to_owned())
}

impl Triggers {
    pub(crate) fn parse(text: &str) -> Self {
        let mut triggers = Self::default();
        if let Some(spec) = rest_of_line(text, "mock:tool=")
            && let Some((name, arg)) = spec.split_once(':')
            && !name.is_empty()
        {
            triggers.tool = Some((name.to_owned(), arg.to_owned()));
        }
        triggers.content_type = rest_of_line(text, "mock:content_type=").filter(|c| !c.is_empty());
        for word in text.split_whitespace() {
            let Some(at) = word.find("mock:") else {
                continue;
            };
            let word = &word[at + "mock:".len()..];
            if let Some(path) = word.strip_prefix("read=") {
                if !path.is_empty() {
                    triggers.read = Some(path.to_owned());
                }
            } else if let Some(code) = word.strip_prefix("status=") {
                triggers.status = leading_number(code)
                    .and_then(|n| u16::try_from(n).ok())
                    .and_then(|n| StatusCode::from_u16(n).ok());
            } else if let Some(ms) = word.strip_prefix("delay_ms=") {
                triggers.delay =
                    leading_number(ms).map(|ms| Duration::from_millis(ms).min(MAX_DELAY));
            } else if word.starts_with("echo") {
                triggers.echo = true;
            } else if word.starts_with("hold") {
                triggers.hold = true;
            } else if word.starts_with("gzip") {
                triggers.gzip = true;
            } else if word.starts_with("ping_comment") {
                triggers.ping_comment = true;
            } else if word.starts_with("think") {
                triggers.think = true;
            } else if let Some(n) = word.strip_prefix("choices=") {
                triggers.choices = leading_number(n).map(|n| n.clamp(1, 4) as u32);
            } else if word.starts_with("dup_key") {
                triggers.dup_key = true;
            } else if word.starts_with("trailing") {
                triggers.trailing = true;
            }
        }
        triggers
    }
}

fn leading_number(s: &str) -> Option<u64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// What the assistant says back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Text(String),
    /// A short text, then a call of the `Read` tool on `path`.
    ReadTool {
        text: String,
        path: String,
    },
    /// A short text, then a call of tool `name` with input `{"command": command}`.
    Tool {
        text: String,
        name: String,
        command: String,
    },
}

impl Reply {
    pub(crate) fn choose(turn: &LastUserTurn, triggers: &Triggers) -> Self {
        if turn.has_tool_result && (turn.answers_mock_tool || triggers.read.is_some()) {
            return Self::Text(AFTER_TOOL_TEXT.to_owned());
        }
        if let Some(path) = &triggers.read {
            return Self::ReadTool {
                text: TOOL_PREAMBLE.to_owned(),
                path: path.clone(),
            };
        }
        if let Some((name, command)) = &triggers.tool {
            return Self::Tool {
                text: RUN_PREAMBLE.to_owned(),
                name: name.clone(),
                command: command.clone(),
            };
        }
        if triggers.echo
            && let Some(last) = turn.texts.last()
        {
            return Self::Text(last.clone());
        }
        Self::Text(DEFAULT_TEXT.to_owned())
    }

    /// The visible text of the reply.
    pub(crate) fn text(&self) -> &str {
        match self {
            Self::Text(text) | Self::ReadTool { text, .. } | Self::Tool { text, .. } => text,
        }
    }

    /// The tool input as JSON text, if the reply calls a tool.
    pub(crate) fn tool_input(&self) -> Option<String> {
        self.tool().map(|(_, input)| input.to_string())
    }

    /// The tool the reply calls and its input.
    pub(crate) fn tool(&self) -> Option<(&str, Value)> {
        match self {
            Self::Text(_) => None,
            Self::ReadTool { path, .. } => Some(("Read", serde_json::json!({ "file_path": path }))),
            Self::Tool { name, command, .. } => {
                Some((name, serde_json::json!({ "command": command })))
            }
        }
    }

    /// A plausible, deterministic output token count.
    pub(crate) fn output_tokens(&self) -> u64 {
        let words = self.text().split_whitespace().count() as u64;
        words + if self.tool_input().is_some() { 20 } else { 0 }
    }
}

/// Splits `text` into a few pieces at whitespace (two words each), as streamed deltas.
pub(crate) fn text_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                words += 1;
                in_word = false;
                if words == 2 {
                    pieces.push(&text[start..i]);
                    start = i;
                    words = 0;
                }
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() || pieces.is_empty() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits `s` into up to three pieces at char boundaries.
pub(crate) fn thirds(s: &str) -> Vec<&str> {
    let third = s.len().div_ceil(3).max(1);
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + third).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&s[start..end]);
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn triggers_table() {
        let cases: &[(&str, Triggers)] = &[
            ("hello", Triggers::default()),
            (
                "please mock:read=/tmp/a.txt now",
                Triggers {
                    read: Some("/tmp/a.txt".into()),
                    ..Default::default()
                },
            ),
            (
                "mock:echo",
                Triggers {
                    echo: true,
                    ..Default::default()
                },
            ),
            (
                "(mock:hold)",
                Triggers {
                    hold: true,
                    ..Default::default()
                },
            ),
            (
                "mock:status=400",
                Triggers {
                    status: Some(StatusCode::BAD_REQUEST),
                    ..Default::default()
                },
            ),
            ("mock:status=abc", Triggers::default()),
            (
                "run mock:tool=Bash:echo kubectl delete > /dev/null; touch /tmp/m\nnext line",
                Triggers {
                    tool: Some((
                        "Bash".into(),
                        "echo kubectl delete > /dev/null; touch /tmp/m".into(),
                    )),
                    ..Default::default()
                },
            ),
            (
                "mock:think mock:choices=9 mock:dup_key mock:trailing mock:content_type=Text/Event-Stream; charset=utf-8",
                Triggers {
                    think: true,
                    choices: Some(4),
                    dup_key: true,
                    trailing: true,
                    content_type: Some("Text/Event-Stream; charset=utf-8".into()),
                    ..Default::default()
                },
            ),
            (
                "mock:delay_ms=99999999",
                Triggers {
                    delay: Some(MAX_DELAY),
                    ..Default::default()
                },
            ),
            (
                "mock:gzip mock:ping_comment",
                Triggers {
                    gzip: true,
                    ping_comment: true,
                    ..Default::default()
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&Triggers::parse(text), want, "{text}");
        }
    }

    #[test]
    fn last_user_turn_anthropic() {
        let request = json!({"messages": [
            {"role": "user", "content": "first mock:read=/x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": TOOL_USE_ID}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": TOOL_USE_ID, "content": "file"},
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
            ]},
            {"role": "system", "content": "not a user"},
        ]});
        let turn = LastUserTurn::anthropic(&request);
        assert_eq!(turn.texts, ["a", "b"]);
        assert!(turn.has_tool_result && turn.answers_mock_tool);
        let reply = Reply::choose(&turn, &Triggers::parse(&turn.text()));
        assert_eq!(reply, Reply::Text(AFTER_TOOL_TEXT.into()));
    }

    #[test]
    fn last_user_turn_openai() {
        let request = json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "x mock:echo"}]},
            {"role": "assistant", "tool_calls": []},
            {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": "file"},
        ]});
        let turn = LastUserTurn::openai(&request);
        assert_eq!(turn.texts, ["x mock:echo"]);
        assert!(turn.answers_mock_tool);
    }

    #[test]
    fn replies() {
        let turn = |texts: &[&str]| LastUserTurn {
            texts: texts.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let choose = |t: LastUserTurn| Reply::choose(&t, &Triggers::parse(&t.text()));
        assert_eq!(choose(turn(&["hi"])), Reply::Text(DEFAULT_TEXT.into()));
        assert_eq!(
            choose(turn(&["a", "b mock:echo"])),
            Reply::Text("b mock:echo".into())
        );
        assert_eq!(
            choose(turn(&["mock:read=/etc/hosts"])),
            Reply::ReadTool {
                text: TOOL_PREAMBLE.into(),
                path: "/etc/hosts".into()
            }
        );
    }

    #[test]
    fn pieces_join_back() {
        for text in [
            "",
            "one",
            "Hello from the mock provider.",
            "  a  b c\n d ",
            "ééé ü",
        ] {
            assert_eq!(text_pieces(text).concat(), text);
            assert_eq!(thirds(text).concat(), text);
        }
        assert_eq!(
            text_pieces(DEFAULT_TEXT),
            ["Hello from", " the mock", " provider."]
        );
    }
}
