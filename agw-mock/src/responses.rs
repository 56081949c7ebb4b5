//! OpenAI Responses API shapes: the `response` object and its SSE event sequence.

use bytes::Bytes;
use serde_json::{Value, json};

use super::trigger::{Reply, TOOL_CALL_ID, text_pieces, thirds};

/// What a reply needs besides its content.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub created: u64,
    pub input_tokens: u64,
}

fn message_item(text: &str) -> Value {
    json!({
        "type": "message",
        "id": "msg_mock_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

fn call_item(name: &str, arguments: &str) -> Value {
    json!({
        "type": "function_call",
        "id": "fc_mock_1",
        "call_id": TOOL_CALL_ID,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    })
}

fn response(meta: Meta<'_>, reply: &Reply, status: &str, output: Vec<Value>) -> Value {
    json!({
        "id": meta.id,
        "object": "response",
        "created_at": meta.created,
        "status": status,
        "model": meta.model,
        "output": output,
        "usage": {
            "input_tokens": meta.input_tokens,
            "output_tokens": reply.output_tokens(),
            "total_tokens": meta.input_tokens + reply.output_tokens(),
        },
    })
}

fn output(reply: &Reply) -> Vec<Value> {
    let mut output = vec![message_item(reply.text())];
    if let Some((name, input)) = reply.tool() {
        output.push(call_item(name, &input.to_string()));
    }
    output
}

/// The non-streaming response body.
pub(crate) fn body(meta: Meta<'_>, reply: &Reply) -> Vec<u8> {
    serde_json::to_vec(&response(meta, reply, "completed", output(reply))).expect("serializes")
}

/// The streamed response, and the index of the first text delta (where `mock:hold` pauses).
pub(crate) fn events(meta: Meta<'_>, reply: &Reply) -> (Vec<Bytes>, usize) {
    let mut events = Vec::new();
    let mut push = |mut data: Value| {
        let ty = data["type"].as_str().unwrap_or("").to_owned();
        data["sequence_number"] = json!(events.len());
        events.push(Bytes::from(format!("event: {ty}\ndata: {data}\n\n")));
    };
    push(
        json!({"type": "response.created", "response": response(meta, reply, "in_progress", vec![])}),
    );
    let mut item = message_item("");
    item["content"] = json!([]);
    item["status"] = json!("in_progress");
    push(json!({"type": "response.output_item.added", "output_index": 0, "item": item}));
    push(
        json!({"type": "response.content_part.added", "item_id": "msg_mock_1", "output_index": 0,
        "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    let first_delta = 3;
    for delta in text_pieces(reply.text()) {
        push(
            json!({"type": "response.output_text.delta", "item_id": "msg_mock_1",
            "output_index": 0, "content_index": 0, "delta": delta}),
        );
    }
    push(
        json!({"type": "response.output_text.done", "item_id": "msg_mock_1", "output_index": 0,
        "content_index": 0, "text": reply.text()}),
    );
    push(
        json!({"type": "response.content_part.done", "item_id": "msg_mock_1", "output_index": 0,
        "content_index": 0, "part": {"type": "output_text", "text": reply.text(), "annotations": []}}),
    );
    push(
        json!({"type": "response.output_item.done", "output_index": 0, "item": message_item(reply.text())}),
    );
    if let Some((name, input)) = reply.tool() {
        let arguments = input.to_string();
        let mut item = call_item(name, "");
        item["status"] = json!("in_progress");
        push(json!({"type": "response.output_item.added", "output_index": 1, "item": item}));
        for delta in thirds(&arguments) {
            push(
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_mock_1",
                "output_index": 1, "delta": delta}),
            );
        }
        push(
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_mock_1",
            "output_index": 1, "arguments": arguments}),
        );
        push(
            json!({"type": "response.output_item.done", "output_index": 1, "item": call_item(name, &arguments)}),
        );
    }
    push(
        json!({"type": "response.completed", "response": response(meta, reply, "completed", output(reply))}),
    );
    (events, first_delta)
}
