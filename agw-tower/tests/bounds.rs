//! The full stack is `Clone + Send + Sync` with an `Infallible` error, and its response future is
//! `Send` — what `axum::Router::layer` and hyper's server need.

use agw_core::api::Api;
use agw_core::guard::Policy;
use agw_core::provider::ProviderSpec;
use agw_core::route::RouteTable;
use agw_tower::body::Body;
use agw_tower::classify::ClassifyLayer;
use agw_tower::guard::RequestGuardLayer;
use agw_tower::provider::ProviderLayer;
use agw_tower::response::ResponseGuardLayer;
use agw_tower::upstream::{Upstream, UpstreamConfig};
use bytes::Bytes;
use http_body_util::Full;
use std::convert::Infallible;
use tower_layer::Layer;
use tower_service::Service;

fn assert_service<S, Req>(_: &S)
where
    S: Service<Req, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
}

#[tokio::test]
async fn the_stack_is_clone_send_sync_and_infallible() {
    let upstream: Upstream<Body<Body<Full<Bytes>>>> =
        Upstream::new(UpstreamConfig::new("test")).unwrap();
    let stack = ClassifyLayer::new(RouteTable::claude_code(), Api::Anthropic).layer(
        RequestGuardLayer::new(Policy::empty()).layer(
            ResponseGuardLayer::new(Policy::empty())
                .layer(ProviderLayer::new("test", ProviderSpec::anthropic()).layer(upstream)),
        ),
    );
    assert_service::<_, http::Request<Full<Bytes>>>(&stack);
}

#[tokio::test]
async fn the_built_stack_is_clone_send_sync_and_infallible() {
    let stack = agw_tower::stack::StackConfig::new("test", ProviderSpec::anthropic())
        .build::<Body<Body<Full<Bytes>>>>()
        .unwrap();
    assert_service::<_, http::Request<Full<Bytes>>>(&stack);
}
