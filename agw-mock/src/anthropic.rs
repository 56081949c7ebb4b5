//! Anthropic Messages API shapes: the message JSON, its SSE event sequence, errors, models.
//!
//! Structs rather than `json!` so that keys come out in the real API's order (`type` first).

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::trigger::{Reply, TOOL_USE_ID, text_pieces, thirds};

/// What a reply needs besides its content.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub input_tokens: u64,
    /// A thinking block to put before the reply (`mock:think`).
    pub thinking: Option<&'a str>,
}

/// The signature the mock gives its thinking blocks.
const SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'static str,
    },
    ToolUse {
        id: &'static str,
        name: &'a str,
        input: Value,
    },
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

impl Usage {
    fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: Message<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopDelta,
        usage: Usage,
    },
    MessageStop,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(
    clippy::enum_variant_names,
    reason = "the variants serialize to the API's delta type names"
)]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::Ping => "ping",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
        }
    }

    fn to_sse(&self) -> Bytes {
        let data = serde_json::to_string(self).expect("event serializes");
        Bytes::from(format!("event: {}\ndata: {data}\n\n", self.name()))
    }
}

fn stop_reason(reply: &Reply) -> &'static str {
    match reply {
        Reply::Text(_) => "end_turn",
        Reply::ReadTool { .. } | Reply::Tool { .. } => "tool_use",
    }
}

fn tool_block(name: &str, input: Value) -> Block<'_> {
    Block::ToolUse {
        id: TOOL_USE_ID,
        name,
        input,
    }
}

/// The non-streaming response body.
pub(crate) fn message(meta: Meta<'_>, reply: &Reply) -> Vec<u8> {
    let mut content = Vec::new();
    if let Some(thinking) = meta.thinking {
        content.push(Block::Thinking {
            thinking,
            signature: SIGNATURE,
        });
    }
    content.push(Block::Text { text: reply.text() });
    if let Some((name, input)) = reply.tool() {
        content.push(tool_block(name, input));
    }
    let message = Message {
        id: meta.id,
        kind: "message",
        role: "assistant",
        model: meta.model,
        content,
        stop_reason: Some(stop_reason(reply)),
        stop_sequence: None,
        usage: Usage::new(meta.input_tokens, reply.output_tokens()),
    };
    serde_json::to_vec(&message).expect("message serializes")
}

/// The streamed response: one SSE event per item, and the index of the first text delta
/// (where `mock:hold` pauses).
pub(crate) fn events(meta: Meta<'_>, reply: &Reply) -> (Vec<Bytes>, usize) {
    let start = Message {
        id: meta.id,
        kind: "message",
        role: "assistant",
        model: meta.model,
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: Usage::new(meta.input_tokens, 1),
    };
    let mut events = vec![Event::MessageStart { message: start }.to_sse()];
    let mut index = 0;
    if let Some(thinking) = meta.thinking {
        let content_block = Block::Thinking {
            thinking: "",
            signature: "",
        };
        events.push(
            Event::ContentBlockStart {
                index,
                content_block,
            }
            .to_sse(),
        );
        for thinking in text_pieces(thinking) {
            let delta = Delta::ThinkingDelta { thinking };
            events.push(Event::ContentBlockDelta { index, delta }.to_sse());
        }
        let delta = Delta::SignatureDelta {
            signature: SIGNATURE,
        };
        events.push(Event::ContentBlockDelta { index, delta }.to_sse());
        events.push(Event::ContentBlockStop { index }.to_sse());
        index += 1;
    }
    events.push(
        Event::ContentBlockStart {
            index,
            content_block: Block::Text { text: "" },
        }
        .to_sse(),
    );
    events.push(Event::Ping.to_sse());
    let first_delta = events.len();
    for text in text_pieces(reply.text()) {
        events.push(
            Event::ContentBlockDelta {
                index,
                delta: Delta::TextDelta { text },
            }
            .to_sse(),
        );
    }
    events.push(Event::ContentBlockStop { index }.to_sse());
    index += 1;
    if let Some((name, input)) = reply.tool() {
        // As the real API: the block starts with an empty input, which arrives as JSON pieces.
        let input = input.to_string();
        let block = tool_block(name, Value::Object(Default::default()));
        events.push(
            Event::ContentBlockStart {
                index,
                content_block: block,
            }
            .to_sse(),
        );
        for partial_json in std::iter::once("").chain(thirds(&input)) {
            let delta = Delta::InputJsonDelta { partial_json };
            events.push(Event::ContentBlockDelta { index, delta }.to_sse());
        }
        events.push(Event::ContentBlockStop { index }.to_sse());
    }
    let delta = StopDelta {
        stop_reason: stop_reason(reply),
        stop_sequence: None,
    };
    let usage = Usage::new(meta.input_tokens, reply.output_tokens());
    events.push(Event::MessageDelta { delta, usage }.to_sse());
    events.push(Event::MessageStop.to_sse());
    (events, first_delta)
}

/// An Anthropic error body.
pub(crate) fn error(kind: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "error",
        "error": { "type": kind, "message": message },
    }))
    .expect("error serializes")
}

/// `GET /v1/models`, in a shape both the Anthropic and the OpenAI SDKs accept.
pub(crate) fn models() -> Vec<u8> {
    const MODELS: &[(&str, &str, &str, u64, &str)] = &[
        (
            "claude-sonnet-4-5",
            "Claude Sonnet 4.5",
            "2025-09-29T00:00:00Z",
            1_759_104_000,
            "anthropic",
        ),
        (
            "claude-haiku-4-5",
            "Claude Haiku 4.5",
            "2025-10-15T00:00:00Z",
            1_760_486_400,
            "anthropic",
        ),
        (
            "claude-opus-4-1",
            "Claude Opus 4.1",
            "2025-08-05T00:00:00Z",
            1_754_352_000,
            "anthropic",
        ),
        (
            "gpt-4o-mini",
            "GPT-4o mini",
            "2024-07-18T00:00:00Z",
            1_721_260_800,
            "openai",
        ),
    ];
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, display_name, created_at, created, owned_by)| {
            serde_json::json!({
                "id": id,
                "type": "model",
                "display_name": display_name,
                "created_at": created_at,
                "object": "model",
                "created": created,
                "owned_by": owned_by,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": MODELS[0].0,
        "last_id": MODELS[MODELS.len() - 1].0,
        "object": "list",
    }))
    .expect("models serialize")
}
