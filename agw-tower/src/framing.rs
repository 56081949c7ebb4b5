//! What a body's `Content-Type` says it is, read one way by every layer that cares (the
//! response guard, the upstream's stream cut, usage accounting).

use http::header::CONTENT_TYPE;

/// What a response's `Content-Type` says it is: the media type, compared without case and
/// without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Json,
    EventStream,
    Other,
}

pub(crate) fn framing(headers: &http::HeaderMap) -> Framing {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Framing::Other;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("text/event-stream") {
        Framing::EventStream
    } else if media.eq_ignore_ascii_case("application/json")
        || (media.len() > 5
            && media.is_char_boundary(media.len() - 5)
            && media[media.len() - 5..].eq_ignore_ascii_case("+json")
            && media[..media.len() - 5]
                .to_ascii_lowercase()
                .starts_with("application/"))
    {
        Framing::Json
    } else {
        Framing::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("text/plain", Framing::Other),
            ("text/json", Framing::Other),
            ("application/jsonx", Framing::Other),
            ("+json", Framing::Other),
            ("", Framing::Other),
        ] {
            let mut h = http::HeaderMap::new();
            h.insert(CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(framing(&h), want, "{value:?}");
        }
        assert_eq!(framing(&http::HeaderMap::new()), Framing::Other);
    }
}
