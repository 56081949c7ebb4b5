//! OpenAI Chat Completions shapes: `chat.completion`, `chat.completion.chunk` events, errors.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::trigger::{Reply, TOOL_CALL_ID, text_pieces, thirds};

/// What a reply needs besides its content.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub created: u64,
    pub prompt_tokens: u64,
    /// `stream_options.include_usage`: a last chunk with `usage` and no choices.
    pub include_usage: bool,
    /// How many identical choices (`mock:choices=N`); streamed as one chunk per choice.
    pub choices: u32,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    usage: Usage,
    system_fingerprint: Option<&'static str>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChoiceMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChoiceMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<&'static str>,
    choices: Vec<ChunkChoice<'a>>,
    /// Present (as `null` until the last chunk) only when usage was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: ChunkDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default, Clone)]
struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
}

fn finish_reason(reply: &Reply) -> &'static str {
    match reply {
        Reply::Text(_) => "stop",
        Reply::ReadTool { .. } | Reply::Tool { .. } => "tool_calls",
    }
}

/// The non-streaming response body.
pub(crate) fn completion(meta: Meta<'_>, reply: &Reply) -> Vec<u8> {
    let tool_calls = reply.tool().map(|(name, input)| {
        json!([{
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": { "name": name, "arguments": input.to_string() },
        }])
    });
    let completion = Completion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices: (0..meta.choices.max(1))
            .map(|index| Choice {
                index,
                message: ChoiceMessage {
                    role: "assistant",
                    content: Some(reply.text()),
                    refusal: None,
                    tool_calls: tool_calls.clone(),
                },
                logprobs: None,
                finish_reason: finish_reason(reply),
            })
            .collect(),
        usage: Usage::new(meta.prompt_tokens, reply.output_tokens()),
        system_fingerprint: None,
    };
    serde_json::to_vec(&completion).expect("completion serializes")
}

/// The streamed response: one `data:` event per item ending with `data: [DONE]`, and the index
/// of the first content delta (where `mock:hold` pauses).
pub(crate) fn chunks(meta: Meta<'_>, reply: &Reply) -> (Vec<Bytes>, usize) {
    let one = |index: u32, delta: ChunkDelta<'_>, finish_reason: Option<&'static str>| {
        let chunk = Chunk {
            id: meta.id,
            object: "chat.completion.chunk",
            created: meta.created,
            model: meta.model,
            system_fingerprint: None,
            choices: vec![ChunkChoice {
                index,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: meta.include_usage.then_some(None),
        };
        data(&chunk)
    };
    // One chunk per choice for each step, interleaved as a real n>1 stream.
    let event = |delta: ChunkDelta<'_>, finish_reason: Option<&'static str>| -> Bytes {
        let all: Vec<Bytes> = (0..meta.choices.max(1))
            .map(|i| one(i, delta.clone(), finish_reason))
            .collect();
        Bytes::from(all.concat())
    };
    let mut events = vec![event(
        ChunkDelta {
            role: Some("assistant"),
            content: Some(""),
            ..Default::default()
        },
        None,
    )];
    let first_delta = events.len();
    for content in text_pieces(reply.text()) {
        events.push(event(
            ChunkDelta {
                content: Some(content),
                ..Default::default()
            },
            None,
        ));
    }
    if let Some((name, input)) = reply.tool() {
        let arguments = input.to_string();
        let start = json!([{
            "index": 0,
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": { "name": name, "arguments": "" },
        }]);
        events.push(event(
            ChunkDelta {
                tool_calls: Some(start),
                ..Default::default()
            },
            None,
        ));
        for piece in thirds(&arguments) {
            let more = json!([{ "index": 0, "function": { "arguments": piece } }]);
            events.push(event(
                ChunkDelta {
                    tool_calls: Some(more),
                    ..Default::default()
                },
                None,
            ));
        }
    }
    events.push(event(ChunkDelta::default(), Some(finish_reason(reply))));
    if meta.include_usage {
        events.push(data(&Chunk {
            id: meta.id,
            object: "chat.completion.chunk",
            created: meta.created,
            model: meta.model,
            system_fingerprint: None,
            choices: Vec::new(),
            usage: Some(Some(Usage::new(meta.prompt_tokens, reply.output_tokens()))),
        }));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    (events, first_delta)
}

fn data(chunk: &Chunk<'_>) -> Bytes {
    let json = serde_json::to_string(chunk).expect("chunk serializes");
    Bytes::from(format!("data: {json}\n\n"))
}

/// An OpenAI error body.
pub(crate) fn error(message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "error": { "message": message, "type": "api_error", "param": null, "code": null },
    }))
    .expect("error serializes")
}
