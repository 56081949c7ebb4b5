//! Usage counting of a streamed reply, N times, for counting instructions per event under
//! callgrind (deterministic, unlike time on a shared machine): what the usage layer's body
//! does with every event of a stream it forwards.
//!
//! ```sh
//! cargo build --release -p agw-benches --example usage_instr
//! for n in 20 40; do valgrind --tool=callgrind target/release/examples/usage_instr $n [chat]; done
//! ```
//!
//! (instructions at 40 − at 20) / (20 × 204) is the cost of one event: an Anthropic stream of
//! 200 text deltas, or with `chat` an OpenAI chat stream of 200 chunks (usage chunk, `[DONE]`).

use agw_benches::*;
use agw_core::api::Api;
use agw_core::stream::SseDecoder;
use agw_core::usage::UsageCounter;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let chat = std::env::args().nth(2).is_some_and(|a| a == "chat");
    let (api, events) = if chat {
        (Api::OpenAi, chat_stream())
    } else {
        (Api::Anthropic, messages_stream())
    };
    let wire: Vec<u8> = events.concat();
    let mut output = 0;
    for _ in 0..n {
        // In 512-byte reads, as a body's frames come.
        let mut dec = SseDecoder::new(1 << 20);
        let mut counter = UsageCounter::new(api);
        let mut evs = Vec::new();
        for chunk in wire.chunks(512) {
            dec.push(chunk, &mut evs).expect("a bench stream decodes");
            for e in evs.drain(..) {
                counter.event(&e);
            }
        }
        output += counter.usage().map_or(0, |u| u.output);
    }
    println!("events {} output {output}", events.len());
}

fn messages_stream() -> Vec<bytes::Bytes> {
    let mut events = reply_stream(200, false);
    events.push(bytes::Bytes::from_static(
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1200}}\n\n",
    ));
    events.push(bytes::Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    events
}

fn chat_stream() -> Vec<bytes::Bytes> {
    let chunk = |delta: &str| {
        bytes::Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ))
    };
    let mut events = vec![chunk(r#"{"role":"assistant","content":"","refusal":null}"#)];
    for i in 0..200 {
        events.push(chunk(&format!(r#"{{"content":" values {i}"}}"#)));
    }
    events.push(bytes::Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":600,\"total_tokens\":619}}\n\n",
    ));
    events.push(bytes::Bytes::from_static(b"data: [DONE]\n\n"));
    events
}
