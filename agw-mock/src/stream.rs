//! Streamed bodies: one body frame per SSE event, so each event reaches the client on its own;
//! with gzip, each frame is a `Z_SYNC_FLUSH`ed piece of one gzip member that decodes to whole
//! events.

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use tokio::sync::watch;

use super::server::Body;

/// Longest a `mock:hold` stream waits for a release.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(10);

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// What to stream, and how.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Complete SSE events, each sent as one frame.
    pub events: Vec<Bytes>,
    /// Wait for a release after sending the event at this index.
    pub hold_after: Option<usize>,
    /// Send an SSE comment between events.
    pub ping_comment: bool,
    pub gzip: bool,
}

/// Starts a task that feeds `plan` into the returned body. The task ends early if the client
/// goes away.
pub(crate) fn body(plan: Plan, mut release: watch::Receiver<u64>) -> Body {
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(4);
    tokio::spawn(async move {
        let mut gzip = plan.gzip.then(Gzip::new);
        let last = plan.events.len().saturating_sub(1);
        for (i, event) in plan.events.into_iter().enumerate() {
            let mut frames = vec![event];
            if plan.ping_comment && i < last {
                frames.push(Bytes::from_static(KEEP_ALIVE));
            }
            for frame in frames {
                let frame = match &mut gzip {
                    Some(gzip) => gzip.flush_chunk(&frame),
                    None => frame,
                };
                if tx.send_data(frame).await.is_err() {
                    return;
                }
            }
            if plan.hold_after == Some(i) {
                // Released, timed out, or the provider is gone: carry on either way.
                let _ = tokio::time::timeout(MAX_HOLD, release.changed()).await;
            }
        }
        if let Some(gzip) = gzip {
            let _ = tx.send_data(gzip.finish()).await;
        }
    });
    body.boxed_unsync()
}

/// A gzip member written piece by piece.
struct Gzip(GzEncoder<Vec<u8>>);

impl Gzip {
    fn new() -> Self {
        Self(GzEncoder::new(Vec::new(), Compression::fast()))
    }

    /// Compresses `data` and sync-flushes, returning every byte produced so far.
    fn flush_chunk(&mut self, data: &[u8]) -> Bytes {
        // Writing into a Vec cannot fail.
        self.0.write_all(data).expect("gzip into memory");
        self.0.flush().expect("gzip into memory");
        Bytes::from(std::mem::take(self.0.get_mut()))
    }

    /// The rest of the member: final block and trailer.
    fn finish(self) -> Bytes {
        Bytes::from(self.0.finish().expect("gzip into memory"))
    }
}

/// Gzips a whole body.
pub(crate) fn gzip_all(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}
