//! What a body's `Content-Type` says it is, read one way by every layer that cares (the
//! response guard, the upstream's stream cut, usage accounting).

use http::header::CONTENT_TYPE;

/// What a response's `Content-Type` says it is: the media type, compared without case and
/// without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Json,
    EventStream,
    /// JSON lines, by any of the names in use (`application/jsonl`, `application/x-ndjson`,
    /// ...). Batch results come with others too: the route, not this, decides how they are read.
    JsonLines,
    /// A format that carries a model's output in a form agw does not read: AWS's binary event
    /// stream (Bedrock's `ConverseStream`, `InvokeModelWithResponseStream`), protocol buffers
    /// and gRPC (Google's `alt=proto`), JSONP scripts (`callback=`). Never passed unread where
    /// model output may come back (twelfth session's black-box review).
    Opaque,
    Other,
    /// More than one `Content-Type`: clients differ on which one counts (some read the first,
    /// some the last), so a body could be read one way by agw and another by the client.
    Conflicting,
}

/// The media types JSON lines are sent as (with the tenth red-team review's: a server's
/// `text/…` labels for the same records).
const JSON_LINES: [&str; 9] = [
    "application/jsonl",
    "application/x-jsonl",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/ndjson",
    "application/x-ndjson",
    "application/x-json-stream",
    "text/x-ndjson",
    "text/jsonl",
];

/// Formats a model's output comes in that agw does not read ([`Framing::Opaque`]).
const OPAQUE: [&str; 13] = [
    "application/vnd.amazon.eventstream",
    "application/x-amz-eventstream",
    "application/x-protobuf",
    "application/protobuf",
    "application/x-protobuffer",
    "application/x-google-protobuf",
    "application/vnd.google.protobuf",
    "text/javascript",
    "text/x-javascript",
    "text/ecmascript",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
];

/// Names JSON goes by besides `application/json` and `application/…+json` (tenth red-team
/// review: a JSON response labelled `text/json` passed a generic route unread).
const JSON: [&str; 3] = ["text/json", "text/x-json", "application/x-json"];

pub(crate) fn framing(headers: &http::HeaderMap) -> Framing {
    let mut all = headers.get_all(CONTENT_TYPE).iter();
    let first = all.next();
    if all.next().is_some() {
        return Framing::Conflicting;
    }
    let Some(value) = first.and_then(|v| v.to_str().ok()) else {
        return Framing::Other;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    if media.contains(',') {
        // A list in one header: clients differ on which one counts, as with two headers.
        return Framing::Conflicting;
    }
    if media.eq_ignore_ascii_case("text/event-stream") {
        Framing::EventStream
    } else if media.eq_ignore_ascii_case("application/json")
        || (ends_with_ignore_case(media, "+json") && starts_with_ignore_case(media, "application/"))
        || JSON.iter().any(|t| media.eq_ignore_ascii_case(t))
    {
        Framing::Json
    } else if JSON_LINES.iter().any(|t| media.eq_ignore_ascii_case(t)) {
        Framing::JsonLines
    } else if OPAQUE.iter().any(|t| media.eq_ignore_ascii_case(t))
        || starts_with_ignore_case(media, "application/grpc")
        || ends_with_ignore_case(media, "+proto")
        || ends_with_ignore_case(media, "+protobuf")
    {
        Framing::Opaque
    } else {
        Framing::Other
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the red-team review: with two `Content-Type` headers agw read the first and
    /// forwarded both.
    #[test]
    fn two_content_types_conflict() {
        let mut h = http::HeaderMap::new();
        h.append(CONTENT_TYPE, "text/plain".parse().unwrap());
        h.append(CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(framing(&h), Framing::Conflicting);
    }

    #[test]
    fn framing_reads_media_types_without_case_or_parameters() {
        for (value, want) in [
            ("application/json", Framing::Json),
            ("Application/JSON; charset=utf-8", Framing::Json),
            ("application/problem+json", Framing::Json),
            ("APPLICATION/VND.X+JSON", Framing::Json),
            ("text/event-stream", Framing::EventStream),
            ("Text/Event-Stream; charset=utf-8", Framing::EventStream),
            (" text/event-stream ;x=y", Framing::EventStream),
            ("application/x-ndjson", Framing::JsonLines),
            ("Application/JSONL; charset=utf-8", Framing::JsonLines),
            ("application/x-jsonl", Framing::JsonLines),
            ("application/octet-stream", Framing::Other),
            ("application/vnd.amazon.eventstream", Framing::Opaque),
            ("application/x-protobuf; charset=x", Framing::Opaque),
            ("application/grpc+proto", Framing::Opaque),
            ("Text/JavaScript; charset=utf-8", Framing::Opaque),
            ("text/ecmascript", Framing::Opaque),
            (
                "application/vnd.amazon.eventstream, application/json",
                Framing::Conflicting,
            ),
            ("text/event-stream, text/plain", Framing::Conflicting),
            ("application/binary", Framing::Other),
            ("text/plain", Framing::Other),
            ("text/json", Framing::Json),
            ("Text/X-JSON", Framing::Json),
            ("application/x-json; charset=utf-8", Framing::Json),
            ("text/x-ndjson", Framing::JsonLines),
            ("text/jsonx", Framing::Other),
            ("application/jsonx", Framing::Other),
            ("+json", Framing::Other),
            ("application+json", Framing::Other),
            ("application/+json", Framing::Json),
            ("appli/+json", Framing::Other),
            ("", Framing::Other),
        ] {
            let mut h = http::HeaderMap::new();
            h.insert(CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(framing(&h), want, "{value:?}");
        }
        assert_eq!(framing(&http::HeaderMap::new()), Framing::Other);
    }
}
