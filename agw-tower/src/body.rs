//! The body type the layers produce: the inner body streamed as it is, or bytes agw holds.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Boxed error type used by the layers' bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// A body that is either the wrapped body `B`, streamed frame by frame, or a complete buffer
    /// (a collected request, a masked body, an error agw answers with).
    #[project = BodyProj]
    #[derive(Debug)]
    #[allow(missing_docs)] // Fields: the wrapped body; the bytes not yet sent.
    pub enum Body<B> {
        /// The wrapped body, untouched.
        Inner {
            #[pin]
            body: B,
        },
        /// A complete body held in memory.
        Full {
            data: Option<Bytes>,
        },
    }
}

impl<B> Body<B> {
    /// Wraps a body to be streamed as it is.
    pub fn inner(body: B) -> Self {
        Body::Inner { body }
    }

    /// A complete body.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Body::Full {
            data: (!data.is_empty()).then_some(data),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Body::Full { data: None }
    }
}

impl<B> http_body::Body for Body<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    // Inlined: a response passes through several of these (one per layer that can answer on
    // its own), and as calls each frame paid their prologues and the frame's copies.
    #[inline(always)]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            BodyProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            BodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    #[inline(always)]
    fn is_end_stream(&self) -> bool {
        match self {
            Body::Inner { body } => body.is_end_stream(),
            Body::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Inner { body } => body.size_hint(),
            Body::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
