use super::{AuthError, Authenticator};
use crate::body::Body;
use crate::classify::Classified;
use crate::error::error_response;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::route::RouteKind;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Authenticates requests. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Auth<S> {
    pub(super) inner: S,
    pub(super) auth: Arc<Authenticator>,
}

/// The message a client sees for a refused credential (never the credential or the reason).
/// A key store that does not answer is a 503, not a 401: clients retry a 5xx (Claude Code
/// takes a 401 for a wrong key and stops).
pub(crate) fn unauthorized(err: &AuthError) -> ErrorBody {
    let message = match err {
        // Claude Code shows its own "Invalid API key" instead of a 401's message that names
        // the `x-api-key` header (real-client review): the message names the settings.
        AuthError::Missing => {
            "agw: no client credential: set your agw key as the client's API key \
             (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, apiKeyHelper, or an SDK's api_key)"
        }
        AuthError::Store(_) => {
            return ErrorBody::new(
                ErrorKind::Internal,
                "agw: the key store is unavailable; try again shortly",
            )
            .with_status(http::StatusCode::SERVICE_UNAVAILABLE);
        }
        AuthError::Conflicting => {
            "agw: two different agw credentials (an API key header and a bearer token, or one \
             header twice): send one"
        }
        AuthError::Jwt(super::jwt::JwtError::Unavailable) => {
            "agw: tokens cannot be checked yet: the identity provider's keys (JWKS) have not \
             been fetched; agw keys still work. Try again shortly"
        }
        _ => "agw: invalid client credential (unknown, revoked or expired key, or a refused token)",
    };
    ErrorBody::new(ErrorKind::Authentication, message)
}

impl<S, B, ResB> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<Body<ResB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone is ready; `self.inner` takes its place (tower's ready-service idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let api = Classified::of(&req, RouteKind::Passthrough).api;
            let result = auth
                .authenticate_request_reported(
                    req.headers(),
                    req.uri().query(),
                    super::key::unix_now(),
                )
                .await;
            // Whatever the outcome, an agw credential goes no further (a client's own provider
            // key, where requests without an agw credential are allowed, is the provider's).
            auth.strip(req.headers_mut());
            auth.strip_uri(req.uri_mut());
            match result {
                Ok(identity) => {
                    req.extensions_mut().insert(identity.clone());
                    let mut res = inner.call(req).await?;
                    // An answer made before the usage layer (a guard's or a limit's refusal)
                    // names who called, for logs and metrics; the usage report names the
                    // caller of the rest.
                    if res.extensions().get::<crate::usage::Reported>().is_none() {
                        res.extensions_mut().insert(identity);
                    }
                    Ok(res.map(Body::inner))
                }
                Err(e) => {
                    let mut res = error_response(api, &unauthorized(&e));
                    if matches!(e, AuthError::Store(_)) {
                        // As the limit store's 503: clients wait a second, not their default.
                        res.headers_mut().insert(
                            http::header::RETRY_AFTER,
                            http::HeaderValue::from_static("1"),
                        );
                    }
                    res.extensions_mut().insert(super::AuthRefused(e.cause()));
                    Ok(res)
                }
            }
        })
    }
}
