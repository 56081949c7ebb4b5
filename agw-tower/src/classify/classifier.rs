use super::{Backend, Classified};
use agw_core::api::{Api, ErrorBody, ErrorKind};
use agw_core::provider::ProviderSpec;
use agw_core::route::RouteTable;
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request};
use std::borrow::Cow;
use std::sync::Arc;

/// Turns a request into its [`Classified`] extension: the route table and the backend's
/// dialect. Every layer that classifies uses one, so all of them agree.
#[derive(Debug, Clone)]
pub struct Classifier {
    table: Arc<RouteTable>,
    api: Api,
    backend: Option<Arc<str>>,
    /// The backend's base URL's path (`/v1`), empty for none: see [`RouteTable::route_under`].
    base: Arc<str>,
}

impl Classifier {
    /// Classifies with `table`; `api` is the backend provider's dialect, used for kinds that
    /// imply none (models, passthrough).
    pub fn new(table: RouteTable, api: Api) -> Self {
        Self {
            table: Arc::new(table),
            api,
            backend: None,
            base: Arc::from(""),
        }
    }

    /// The default table for a provider ([`RouteTable::for_provider`]), its dialect and its
    /// base URL's path.
    pub fn for_provider(spec: &ProviderSpec) -> Self {
        Self::new(RouteTable::for_provider(spec.kind()), spec.kind().api())
            .base_path(spec.base_url().path())
    }

    /// Classifies a path no route names but the fallback as the upstream gets it, under the
    /// backend's base URL's path `path` (`/v1`): see [`RouteTable::route_under`].
    pub fn base_path(mut self, path: &str) -> Self {
        self.base = Arc::from(path.trim_end_matches('/'));
        self
    }

    /// Names the backend (a [`Backend`] extension on each request).
    pub fn backend(mut self, name: impl Into<Arc<str>>) -> Self {
        self.backend = Some(name.into());
        self
    }

    /// Replaces the route table.
    pub fn with_table(mut self, table: RouteTable) -> Self {
        self.table = Arc::new(table);
        self
    }

    /// The route table.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// The backend's dialect.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The route kind [`Classifier::classify`] gives a request for `path_and_query`
    /// ([`RouteKind::Passthrough`] for a path it would refuse): for a log line or a metric.
    pub fn kind_of(&self, path_and_query: &str) -> agw_core::route::RouteKind {
        self.table
            .route_under(&self.base, path_and_query)
            .map_or(agw_core::route::RouteKind::Passthrough, |r| r.0)
    }

    /// Classifies `req`: rewrites its URI to the canonical path, inserts [`Classified`] (and
    /// [`Backend`]) and returns it — or the provider-shaped error the client gets instead.
    pub fn classify<B>(&self, req: &mut Request<B>) -> Result<Classified, (Api, ErrorBody)> {
        if let Some(c) = req.extensions().get::<Classified>() {
            return Ok(*c);
        }
        let method = req.method();
        if method == Method::CONNECT || method == Method::TRACE {
            let err = ErrorBody::new(
                ErrorKind::MethodNotAllowed,
                format!("agw does not forward {method} requests"),
            );
            return Err((self.api, err));
        }
        let pq = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
        let (kind, path) = match self.table.route_under(&self.base, pq) {
            Ok(r) => r,
            Err(e) => {
                let err = ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    format!("agw refuses the path: {e}"),
                );
                return Err((self.api, err));
            }
        };
        if let Cow::Owned(path) = path {
            let canonical = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = PathAndQuery::try_from(canonical).ok();
            match Uri::from_parts(parts) {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => {
                    let err = ErrorBody::new(
                        ErrorKind::InvalidRequest,
                        "agw refuses the path: it has no forwardable canonical form",
                    );
                    return Err((self.api, err));
                }
            }
        }
        let api = kind.api().unwrap_or(self.api);
        let class = Classified {
            kind,
            api,
            upstream: api,
        };
        req.extensions_mut().insert(class);
        if let Some(name) = &self.backend {
            req.extensions_mut().insert(Backend(name.clone()));
        }
        Ok(class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agw_core::route::RouteKind;

    fn classify(c: &Classifier, method: Method, uri: &str) -> Result<(RouteKind, String), u16> {
        let mut req = Request::builder().method(method).uri(uri).body(()).unwrap();
        match c.classify(&mut req) {
            Ok(class) => {
                assert_eq!(req.extensions().get::<Classified>(), Some(&class));
                Ok((class.kind, req.uri().to_string()))
            }
            Err((_, e)) => Err(e.status().as_u16()),
        }
    }

    #[test]
    fn canonical_paths_are_classified_and_forwarded() {
        let c = Classifier::new(RouteTable::claude_code(), Api::Anthropic).backend("a");
        use RouteKind::*;
        for (uri, want) in [
            (
                "/v1/messages?beta=true",
                Ok((Messages, "/v1/messages?beta=true")),
            ),
            ("/v1/message%73", Ok((Messages, "/v1/messages"))),
            (
                "/v1/messages/?beta=true",
                Ok((Messages, "/v1/messages?beta=true")),
            ),
            ("//v1/messages", Ok((Messages, "/v1/messages"))),
            ("/v1/./messages", Ok((Messages, "/v1/messages"))),
            ("/V1/MESSAGES", Ok((Messages, "/V1/MESSAGES"))),
            ("/v1/messages;x", Ok((Messages, "/v1/messages"))),
            (
                "http://h:1/v1//messages",
                Ok((Messages, "http://h:1/v1/messages")),
            ),
            ("/v1/responses", Ok((Responses, "/v1/responses"))),
            ("/v1%2fmessages", Err(400)),
            ("/v1%2Fmessages", Err(400)),
        ] {
            let got = classify(&c, Method::POST, uri);
            let want = want.map(|(k, u)| (k, u.to_owned()));
            assert_eq!(got, want, "{uri}");
        }
        assert_eq!(classify(&c, Method::TRACE, "/v1/messages"), Err(405));
        assert_eq!(classify(&c, Method::CONNECT, "/"), Err(405));
    }

    /// Under a base URL with a path (`https://api.openai.com/v1`), a path no route names is
    /// classified as the provider gets it (`/chat/completions` is `/v1/chat/completions`) and
    /// forwarded as the client wrote it; a route the table names keeps its kind (review: such
    /// requests went upstream as passthroughs, the model pin and field rules skipped).
    #[test]
    fn paths_under_the_base_urls_path_are_classified_as_the_upstream_gets_them() {
        use RouteKind::*;
        let spec = ProviderSpec::openai()
            .with_base_url("http://up:1/v1/")
            .unwrap();
        let c = Classifier::for_provider(&spec);
        for (uri, want) in [
            ("/chat/completions", Completions),
            ("/responses?x=1", Responses),
            ("/embeddings", Embeddings),
            ("/v1/chat/completions", Completions),
            ("/v1/files", Passthrough),
            ("/files", Passthrough),
        ] {
            let path = uri.split('?').next().unwrap();
            let got = classify(&c, Method::POST, uri);
            assert_eq!(got, Ok((want, uri.to_owned())), "{path}");
            // What the access log and the metrics name it.
            assert_eq!(c.kind_of(uri), want, "{path}");
        }
        // A base whose path is the API's version (Gemini's OpenAI-compatible one, an Azure
        // deployment, a server's `/api`): the client's path is read after `/v1`.
        for base in [
            "http://up:1/v1beta/openai/",
            "http://up:1/openai/deployments/gpt-4o",
            "http://up:1/api",
        ] {
            let spec = ProviderSpec::openai().with_base_url(base).unwrap();
            let c = Classifier::for_provider(&spec);
            assert_eq!(c.kind_of("/chat/completions"), Completions, "{base}");
            assert_eq!(c.kind_of("/files"), Passthrough, "{base}");
        }
        let mut table = RouteTable::openai();
        table.insert("/chat/*", Unguarded).unwrap();
        let c = Classifier::new(table, Api::OpenAi).base_path("/v1");
        assert_eq!(
            classify(&c, Method::POST, "/chat/completions"),
            Ok((Unguarded, "/chat/completions".to_owned()))
        );
        // Without a base path too (DeepSeek's `/chat/completions`): the prompt kinds only.
        let c = Classifier::for_provider(&ProviderSpec::openai());
        assert_eq!(
            classify(&c, Method::POST, "/chat/completions"),
            Ok((Completions, "/chat/completions".to_owned()))
        );
        assert_eq!(c.kind_of("/models"), Passthrough);
        let mut table = RouteTable::openai();
        table.insert("/v1/files*", Unguarded).unwrap();
        let c = Classifier::new(table, Api::OpenAi);
        assert_eq!(c.kind_of("/files/f1/content"), Passthrough);
        assert_eq!(c.kind_of("/v1/files/f1/content"), Unguarded);
    }

    #[test]
    fn dialects_follow_the_kind_then_the_backend() {
        let c = Classifier::for_provider(&ProviderSpec::openai());
        let mut req = Request::post("/v1/files").body(()).unwrap();
        let class = c.classify(&mut req).unwrap();
        assert_eq!(
            (class.kind, class.api),
            (RouteKind::Passthrough, Api::OpenAi)
        );
        let c = Classifier::for_provider(&ProviderSpec::anthropic());
        let mut req = Request::post("/v1/chat/completions").body(()).unwrap();
        let class = c.classify(&mut req).unwrap();
        assert_eq!(
            (class.kind, class.api, class.upstream),
            (RouteKind::Completions, Api::OpenAi, Api::OpenAi)
        );
    }
}
