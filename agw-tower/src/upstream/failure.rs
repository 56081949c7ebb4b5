//! Telling upstream failures apart: refused, DNS, TLS, timeouts, resets.

use std::error::Error as StdError;

/// Why a request to the upstream failed; in the response extensions of the error agw answers
/// with (and named in its message), for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpstreamFailure {
    /// Nothing listens at the upstream's address (TCP connection refused).
    Refused,
    /// The upstream's host name could not be resolved.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// No TCP connection within the connect timeout.
    ConnectTimeout,
    /// No response headers within the response timeout.
    ResponseTimeout,
    /// The upstream sent nothing for the stream idle timeout in the middle of a body.
    IdleTimeout,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// agw is shutting down and its grace period for open requests ran out.
    Shutdown,
    /// The upstream refused the key agw injects for it (401).
    KeyRefused,
    /// agw had no file descriptor free for the upstream's socket (its open-file limit): a
    /// 529 with `retry-after`, which clients retry.
    NoDescriptors,
    /// The upstream answered with a redirect (a 3xx with a `Location`, or any 3xx but `304
    /// Not Modified`): never passed on, as a client following it would send its request
    /// around the gateway and show the answer unguarded (nineteenth session's red team).
    Redirect,
    /// Anything else (a protocol error, ...).
    Other,
}

impl UpstreamFailure {
    /// A short snake_case name for logs.
    pub fn name(self) -> &'static str {
        match self {
            UpstreamFailure::Refused => "refused",
            UpstreamFailure::Dns => "dns",
            UpstreamFailure::Tls => "tls",
            UpstreamFailure::ConnectTimeout => "connect_timeout",
            UpstreamFailure::ResponseTimeout => "response_timeout",
            UpstreamFailure::IdleTimeout => "idle_timeout",
            UpstreamFailure::Reset => "reset",
            UpstreamFailure::Shutdown => "shutdown",
            UpstreamFailure::KeyRefused => "key_refused",
            UpstreamFailure::NoDescriptors => "no_descriptors",
            UpstreamFailure::Redirect => "redirect",
            UpstreamFailure::Other => "other",
        }
    }

    /// What a person reads: the cause, without addresses or secrets.
    pub fn describe(self) -> &'static str {
        match self {
            UpstreamFailure::Refused => "the connection was refused",
            UpstreamFailure::Dns => "its host name could not be resolved",
            UpstreamFailure::Tls => "the TLS handshake failed",
            UpstreamFailure::ConnectTimeout => "the connection timed out",
            UpstreamFailure::ResponseTimeout => "it did not answer in time",
            UpstreamFailure::IdleTimeout => "it went silent in the middle of the response",
            UpstreamFailure::Reset => "the connection was reset",
            UpstreamFailure::Shutdown => "agw is shutting down and its grace period ran out",
            UpstreamFailure::KeyRefused => "it refused the gateway's API key",
            UpstreamFailure::NoDescriptors => {
                "agw has no file descriptor free for the connection (its open-file limit)"
            }
            UpstreamFailure::Redirect => {
                "it answered with a redirect, which agw does not follow or pass on"
            }
            UpstreamFailure::Other => "the request failed",
        }
    }

    /// Classifies a client error by walking its causes.
    pub fn of(err: &(dyn StdError + 'static)) -> UpstreamFailure {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
        let mut found = UpstreamFailure::Other;
        while let Some(e) = cur {
            if e.downcast_ref::<rustls::Error>().is_some() {
                return UpstreamFailure::Tls;
            }
            // An `io::Error` hides the error it wraps from `source()`: descend with `get_ref`.
            let mut next = e.source();
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as K;
                // EMFILE, ENFILE (the same numbers on Linux and macOS).
                if matches!(io.raw_os_error(), Some(23 | 24)) {
                    return UpstreamFailure::NoDescriptors;
                }
                match io.kind() {
                    K::ConnectionRefused => return UpstreamFailure::Refused,
                    K::TimedOut => return UpstreamFailure::ConnectTimeout,
                    K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::UnexpectedEof => found = UpstreamFailure::Reset,
                    _ => {}
                }
                if let Some(inner) = io.get_ref() {
                    next = Some(inner);
                }
            }
            if let Some(h) = e.downcast_ref::<hyper::Error>()
                && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
            {
                found = UpstreamFailure::Reset;
            }
            // hyper-util's connect errors say what failed only in their text.
            let text = e.to_string();
            if text.starts_with("dns error") {
                return UpstreamFailure::Dns;
            }
            if text.contains("connect timeout") || text.contains("timed out") {
                return UpstreamFailure::ConnectTimeout;
            }
            cur = next;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::UpstreamFailure;

    /// Out of descriptors (EMFILE, ENFILE), however deep in the error's causes: its own cause,
    /// which the upstream service answers with a 529 and `retry-after` (seventeenth session's
    /// second review: a 502 logged `other`).
    #[test]
    fn running_out_of_descriptors_is_told_apart() {
        for errno in [23, 24] {
            let io = std::io::Error::from_raw_os_error(errno);
            assert_eq!(UpstreamFailure::of(&io), UpstreamFailure::NoDescriptors);
            let wrapped = std::io::Error::other(std::io::Error::from_raw_os_error(errno));
            assert_eq!(
                UpstreamFailure::of(&wrapped),
                UpstreamFailure::NoDescriptors
            );
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(UpstreamFailure::of(&refused), UpstreamFailure::Refused);
        assert_eq!(UpstreamFailure::NoDescriptors.name(), "no_descriptors");
    }
}
