use super::Classified;
use agw_core::api::Api;
use agw_core::route::RouteTable;
use http::Request;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Inserts a [`Classified`] extension into each request. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Classify<S> {
    pub(super) inner: S,
    pub(super) table: Arc<RouteTable>,
    pub(super) api: Api,
}

impl<S, B> Service<Request<B>> for Classify<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let kind = self
            .table
            .classify(req.uri().path_and_query().map_or("/", |pq| pq.as_str()));
        let api = kind.api().unwrap_or(self.api);
        req.extensions_mut().insert(Classified { kind, api });
        self.inner.call(req)
    }
}
