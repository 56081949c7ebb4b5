//! Hop-by-hop header handling (RFC 9110 §7.6.1).

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there are none: one pass over the names costs less than seven removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    // Addressed to a proxy (agw), never to the provider: a corporate proxy's credential in a
    // client's environment went upstream with credentials passed through (seventeenth
    // session's second review).
    headers.remove(http::header::PROXY_AUTHORIZATION);
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE].contains(name)
        || name == "keep-alive"
        || name == "proxy-connection"
        || name == http::header::PROXY_AUTHORIZATION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_named_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-private".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("anthropic-beta", "a,b".parse().unwrap());
        h.insert("x-claude-code-session-id", "s".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["anthropic-beta", "x-claude-code-session-id"]);
        // Each hop-by-hop header alone is found and removed.
        for name in [
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
            "proxy-authorization",
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-kept", "1".parse().unwrap());
            h.insert(HeaderName::from_static(name), "v".parse().unwrap());
            strip_hop_by_hop(&mut h);
            assert_eq!(
                h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
                ["x-kept"],
                "{name}"
            );
        }
    }
}
