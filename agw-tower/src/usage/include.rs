//! Asks an OpenAI chat stream for its usage when the client did not.
//!
//! A streamed chat completion reports its usage only with `stream_options.include_usage`,
//! which most clients do not set; agw would then charge limits and budgets the request's
//! whole output cap. [`IncludeUsageLayer`] adds `"stream_options":{"include_usage":true}` to
//! such a request as one splice of its body ([`agw_core::usage::ask_for_usage`]: the rest is
//! forwarded byte for byte, and a model rewrite further down edits the new body), and marks
//! the request with [`UsageChunkAdded`]; the [`UsageLayer`](super::UsageLayer) inside it
//! counts the usage chunk the upstream then sends and drops it from the stream to the client,
//! which sees what it asked for.
//!
//! Put it outside the usage layer, after the body stage (it reads the body the request guard
//! collected: [`Collected`](crate::limits::Collected)), and only in front of upstreams that
//! accept `stream_options` (OpenAI's API). A request it does not recognise as an OpenAI chat
//! stream, or whose body it does not edit, passes untouched.

use super::UsageChunkAdded;
use crate::auth::RequestFacts;
use crate::body::Body;
use crate::classify::Classified;
use crate::future::ResponseFuture;
use crate::limits::Collected;
use agw_core::api::{Api, ErrorBody, ErrorKind};
use agw_core::route::RouteKind;
use agw_core::usage::{UsageAsk, ask_for_usage};
use bytes::Bytes;
use http::{Request, Response};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Asks OpenAI chat streams for their usage. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct IncludeUsageLayer;

impl<S> Layer<S> for IncludeUsageLayer {
    type Service = IncludeUsage<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IncludeUsage { inner }
    }
}

/// Asks OpenAI chat streams for their usage. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct IncludeUsage<S> {
    inner: S,
}

impl<S, B, ResB> Service<Request<Body<B>>> for IncludeUsage<S>
where
    S: Service<Request<Body<B>>, Response = Response<ResB>>,
{
    type Response = Response<Body<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body<B>>) -> Self::Future {
        let class = Classified::of(&req, RouteKind::Passthrough);
        if class.kind == RouteKind::Completions
            && class.api == Api::OpenAi
            && class.upstream == Api::OpenAi
            && let Err(refused) = ask(&mut req)
        {
            return ResponseFuture::ready(crate::error::error_response(Api::OpenAi, &refused));
        }
        ResponseFuture::direct(self.inner.call(req), None)
    }
}

/// Edits a chat request that streams without asking for usage. A stream whose
/// `stream_options` or `include_usage` is given twice is refused with a 400: the upstream
/// takes one of the two, so no edit is sure to ask, and its usage would go uncounted.
fn ask<B>(req: &mut Request<Body<B>>) -> Result<(), ErrorBody> {
    RequestFacts::ensure(req);
    let streams = req
        .extensions()
        .get::<RequestFacts>()
        .is_some_and(|f| f.shape.stream);
    let Some(collected) = req.extensions().get::<Collected>().filter(|_| streams) else {
        return Ok(());
    };
    let edit = match ask_for_usage(&collected.plain) {
        UsageAsk::Edit(edit) => edit,
        UsageAsk::Asked | UsageAsk::Leave => return Ok(()),
        UsageAsk::Ambiguous => {
            return Err(ErrorBody::new(
                ErrorKind::InvalidRequest,
                "`stream_options` or its `include_usage` is given twice; give each once.",
            ));
        }
    };
    let body = Bytes::from(agw_core::edit::apply(&collected.plain, vec![edit]));
    crate::collect::set_length(req.headers_mut(), body.len());
    // What later stages read (a model rewrite) and what goes on: the same bytes.
    req.extensions_mut().insert(Collected {
        plain: body.clone(),
    });
    req.extensions_mut().insert(UsageChunkAdded);
    *req.body_mut() = Body::full(body);
    Ok(())
}
