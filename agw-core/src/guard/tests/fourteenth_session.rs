//! Found in the fourteenth session's black-box review of the request side: a `file_data` that
//! is no file, URLs under keys agw did not know as URLs, and short fields skipped as "not text".

use super::*;
use serde_json::json;

fn secret_rule() -> Policy {
    Policy::builder()
        .rule(Rule::literals("secret", ["SECRET-1234"]).reject("blocked"))
        .build()
        .unwrap()
}

/// The first hit's path, or `None` when the request passes.
fn hit(policy: &Policy, kind: RouteKind, body: &serde_json::Value) -> Option<String> {
    let v = policy.inspect(kind, body.to_string().as_bytes()).unwrap();
    v.hits().first().map(|h| h.path.clone())
}

/// A `file_data` that is a URL (OpenRouter fetches a PDF's URL given there) or plain text is
/// read: it had been taken for base64, decoded to nothing, and passed unread. A real file in
/// base64 still passes, its bytes unread as text; a short base64 value whose bytes are no text
/// is read as written (a token is base64's alphabet).
#[test]
fn file_data_that_is_no_file_is_read() {
    let policy = secret_rule();
    let chat = |data: &str| {
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "f.pdf", "file_data": data}}]}]})
    };
    let responses = |data: &str| {
        json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_file", "filename": "f.pdf", "file_data": data}]}]})
    };
    for data in [
        "https://docs.example/r.pdf?k=SECRET-1234",
        "my SECRET-1234 here",
        "SECRET-1234",
    ] {
        assert!(
            hit(&policy, RouteKind::Completions, &chat(data)).is_some(),
            "{data}"
        );
        assert!(
            hit(&policy, RouteKind::Responses, &responses(data)).is_some(),
            "{data}"
        );
    }
    // Percent-escaped, as the server that fetches it decodes it (read as a URL, and as text
    // with its escapes written out: either reading may be the first to find it).
    let url = "https://docs.example/r.pdf?k=%53ECRET-1234";
    assert!(hit(&policy, RouteKind::Completions, &chat(url)).is_some());
    // A PDF in base64 (and as a data URL) is a file, not text.
    let pdf = "JVBERi0xLjcKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K";
    for data in [pdf.to_owned(), format!("data:application/pdf;base64,{pdf}")] {
        assert_eq!(hit(&policy, RouteKind::Completions, &chat(&data)), None);
        assert_eq!(hit(&policy, RouteKind::Responses, &responses(&data)), None);
    }
    // An AWS key as the whole value: base64's alphabet, read as written.
    let aws = Policy::builder()
        .rule(Rule::detectors("aws", [crate::detect::Detector::AwsAccessKey]).reject("no"))
        .build()
        .unwrap();
    assert!(hit(&aws, RouteKind::Completions, &chat("AKIAIOSFODNN7EXAMPLF")).is_some());
}

/// URLs a provider fetches under the keys its API names them (Gemini's `fileData.fileUri` in
/// both spellings, DashScope's `image`/`audio`/`video` parts, a chat file's `file_url`) are
/// read again percent-decoded: only agw's first list of URL keys had been. A URL anywhere else
/// — a search link in a tool result, resent with every later turn — is read as written (the
/// second round found `?q=credit+card` refusing every later turn when any URL-shaped string
/// was read decoded): its hit is removed from history like any other.
#[test]
fn urls_under_the_keys_providers_fetch_are_read_decoded() {
    let policy = secret_rule();
    let url = "https://files.example/a?k=%53ECRET-1234";
    let cases = [
        (
            RouteKind::Passthrough,
            json!({"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "application/pdf", "fileUri": url}}]}]}),
        ),
        (
            RouteKind::Passthrough,
            json!({"contents": [{"role": "user", "parts": [{"file_data": {"file_uri": url}}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "image": url}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "video", "video": [url]}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_url": url}}]}]}),
        ),
        (
            RouteKind::Passthrough,
            json!({"messages": [{"role": "user", "content": [{"type": "image", "imageUrl": url}]}]}),
        ),
    ];
    // (Read as a URL, and as text with its escapes written out: either may find it first.)
    for (kind, body) in cases {
        assert!(hit(&policy, kind, &body).is_some(), "{body}");
    }
    // A search link in an earlier tool result: the request goes on (nothing to remove as
    // written), with the seed rule too.
    let seed = Policy::builder()
        .rule(Rule::regex("credit-card", ["credit card"]).reject("Rejected"))
        .build()
        .unwrap();
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "search"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "WebFetch", "input": {"url": "https://www.google.com/search?q=credit+card+fees"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "https://www.google.com/search?q=credit+card+fees"}]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"}]});
    let v = seed
        .inspect(RouteKind::Messages, body.to_string().as_bytes())
        .unwrap();
    assert!(v.is_allow(), "{:?}", v.decision());
    // In prose, a URL's escapes are left as written: a mask rule masks what is written.
    let mask = Policy::builder()
        .rule(Rule::literals("secret", ["SECRET-1234"]).mask_with("###"))
        .build()
        .unwrap();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("see {url} and SECRET-1234")}]});
    let v = mask
        .inspect(RouteKind::Completions, body.to_string().as_bytes())
        .unwrap();
    assert!(
        matches!(v.decision(), Decision::Rewrite(_)),
        "{:?}",
        v.decision()
    );
}

/// Text that only starts with `data:` in a URL field is no data URL: read as text, not taken
/// for a file and dropped unread.
#[test]
fn a_url_field_that_only_starts_with_data_is_text() {
    let policy = secret_rule();
    for url in ["data: SECRET-1234", "DATA:SECRET-1234"] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]});
        assert!(
            hit(&policy, RouteKind::Completions, &body).is_some(),
            "{url}"
        );
    }
}

/// Short fields a lenient server's template may print (`status`, `format`, `detail`,
/// `media_type`, a `data` that is no base64) and the strings of a block agw knows but that are
/// no field of its type (an image's `text` or `title`) are read; identifiers, signatures and
/// ciphertexts are not.
#[test]
fn short_fields_and_stray_block_strings_are_read() {
    let policy = secret_rule();
    let cases = [
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi", "status": "SECRET-1234"}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi", "format": "SECRET-1234"}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "data": "my SECRET-1234"}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "media_type": "SECRET-1234"}]}]}),
        ),
        (
            RouteKind::Responses,
            json!({"model": "m", "input": [{"type": "message", "role": "user", "content": "hi", "detail": "SECRET-1234"}]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x.example/a.png"}, "title": "SECRET-1234"}]}]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "text": "SECRET-1234", "source": {"type": "url", "url": "https://x.example/a.png"}}]}]}]}),
        ),
        // Second round: a short `data` in base64's alphabet (a token), an `image_url`
        // object's other keys, an Anthropic source's `media_type` and other keys.
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi", "data": "SECRET-1234"}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.example/a.png", "detail": "SECRET-1234"}}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.example/a.png", "note": ["SECRET-1234"]}}]}]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "SECRET-1234", "data": "iVBORw0KGgo="}}]}]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x.example/a.pdf", "note": "SECRET-1234"}}]}]}),
        ),
    ];
    for (kind, body) in cases {
        assert!(hit(&policy, kind, &body).is_some(), "{body}");
    }
    let long = "U0VDUkVULTEyMzQ=".repeat(80);
    let unread = json!({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi", "data": long, "id": "toolu_1"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "SECRET-1234", "title": "SECRET-1234"}]},
        {"role": "user", "content": "hi"}]});
    assert_eq!(hit(&policy, RouteKind::Messages, &unread), None);
}
