//! Provider specs as data: where requests go, how the key is sent, and what the provider speaks.
//!
//! # Example
//!
//! ```
//! use agw_core::provider::{Credentials, ProviderSpec, Secret};
//! use http::HeaderMap;
//!
//! let spec = ProviderSpec::anthropic()
//!     .with_base_url("http://127.0.0.1:9000")?
//!     .with_credentials(Credentials::Inject(Secret::new("sk-ant-gateway")));
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", "Bearer sk-client".parse()?);
//! spec.prepare_headers(&mut headers);
//! assert_eq!(headers["x-api-key"], "sk-ant-gateway");
//! assert!(headers.get("authorization").is_none()); // the client's credential never leaves
//! assert_eq!(headers["anthropic-version"], "2023-06-01");
//! assert_eq!(spec.upstream_uri("/v1/messages?beta=true")?, "http://127.0.0.1:9000/v1/messages?beta=true");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::route::RouteKind;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Uri};
use std::fmt;

/// The API family of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// Anthropic's API (`/v1/messages`, `/v1/messages/count_tokens`, `/v1/models`).
    Anthropic,
    /// OpenAI's API.
    OpenAi,
    /// Any server that speaks OpenAI's API: vLLM, Ollama, llama.cpp, LM Studio, ...
    OpenAiCompatible,
}

impl ProviderKind {
    /// The configuration name: `anthropic`, `openai`, `openai_compatible`.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai_compatible",
        }
    }

    /// The wire API of this provider's errors.
    pub fn api(self) -> crate::api::Api {
        match self {
            ProviderKind::Anthropic => crate::api::Api::Anthropic,
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => crate::api::Api::OpenAi,
        }
    }
}

/// How the provider expects its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthScheme {
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `Authorization: Bearer <key>` (OpenAI and compatibles).
    Bearer,
}

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself: use only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Whose credentials reach the provider.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// The gateway's key replaces whatever the client sent; the client's credential is never
    /// forwarded.
    Inject(Secret),
    /// The client's own key or OAuth bearer token is forwarded as is.
    #[default]
    Passthrough,
}

impl Credentials {
    /// `inject` or `passthrough`.
    pub fn mode(&self) -> &'static str {
        match self {
            Credentials::Inject(_) => "inject",
            Credentials::Passthrough => "passthrough",
        }
    }
}

/// A URL as an error or a log line shows it: a query or fragment (`?api_key=…`) as `?…`,
/// user-info as `***@`, which may hold credentials (sixth review).
///
/// ```
/// use agw_core::provider::shown_url;
/// assert_eq!(shown_url("https://u:pw@idp.example/jwks?token=t"), "https://***@idp.example/jwks?…");
/// ```
pub fn shown_url(url: &str) -> String {
    let (head, rest) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], "?…"),
        None => (url, ""),
    };
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let authority_end = head[after_scheme..]
        .find('/')
        .map_or(head.len(), |i| after_scheme + i);
    match head[after_scheme..authority_end].rfind('@') {
        Some(at) => format!(
            "{}***@{}{rest}",
            &head[..after_scheme],
            &head[after_scheme + at + 1..]
        ),
        None => format!("{head}{rest}"),
    }
}

/// The error for a base URL agw cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid base URL `{url}`: {reason}")]
pub struct InvalidBaseUrl {
    /// The URL.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// A provider: kind, base URL, credentials, default headers, and the route kinds it speaks.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    kind: ProviderKind,
    base: Uri,
    auth: AuthScheme,
    credentials: Credentials,
    default_headers: Vec<(HeaderName, HeaderValue)>,
    native: Vec<RouteKind>,
    /// The header [`Credentials::Inject`] sets, built once (marked sensitive); `None` when
    /// passing through, or when the key cannot be a header value (configuration checks that).
    injected: Option<(HeaderName, HeaderValue)>,
}

/// Whether a request header asks a server to read the request as another method or path, or
/// for another host, than the one agw classified, guarded and charged: method overrides
/// (`X-HTTP-Method-Override: POST` on a GET that agw let through uncharged), original or
/// rewritten URLs, forwarded hosts and prefixes. None of them is forwarded (black-box review).
pub fn is_rerouting_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    let b = n.as_bytes();
    // Read for every header of every request: most are ruled out by their first bytes
    // (`x-stainless-…`, `anthropic-…`, `content-type`), before any comparison.
    match b.first() {
        Some(b'x') => {}
        Some(b'f') => return matches!(n, "forwarded" | "front-end-https"),
        _ => return false,
    }
    let kind = match b {
        [_, b'-' | b'_', k, ..] => *k,
        _ => return false,
    };
    if !matches!(
        kind,
        b'h' | b'm' | b'o' | b'r' | b'f' | b'e' | b'u' | b'i' | b's'
    ) || (kind == b's' && b.len() != "x-scheme".len())
    {
        return false;
    }
    // `X_HTTP_METHOD_OVERRIDE` reaches a CGI or FastCGI server as the dashed name does (both
    // become `HTTP_X_HTTP_METHOD_OVERRIDE`): compared with underscores read as dashes.
    if n.contains('_') {
        return rerouting(&n.replace('_', "-"));
    }
    rerouting(n)
}

fn rerouting(n: &str) -> bool {
    matches!(
        n,
        "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "x-original-method"
            | "x-original-url"
            | "x-original-uri"
            | "x-rewrite-url"
            | "x-forwarded-uri"
            | "x-forwarded-path"
            | "x-forwarded-prefix"
            | "x-forwarded-host"
            | "x-forwarded-server"
            | "x-forwarded-proto"
            | "x-forwarded-scheme"
            | "x-forwarded-port"
            | "x-original-host"
            | "x-host"
            | "x-forwarded-ssl"
            | "front-end-https"
            | "x-url-scheme"
            | "x-scheme"
            | "x-original-scheme"
            | "x-forwarded-url"
            | "x-forwarded-method"
            | "x-rewrite-uri"
            | "x-rewrite-path"
            | "x-original-request-uri"
            | "x-original-path"
            | "x-request-uri"
            | "x-override-url"
            | "x-middleware-subrequest"
            | "x-invoke-path"
            | "x-envoy-original-path"
            | "x-envoy-original-url"
            | "forwarded"
    )
}

/// Whether a request header can carry a client's credential: the standard ones
/// (`Authorization`, `Proxy-Authorization`, `Cookie`), the providers' key headers (`x-api-key`,
/// Azure's `api-key`, Google's `x-goog-api-key`, API gateways' `ocp-apim-subscription-key`), and
/// by their names' endings any other `…authorization`, `…authentication`, `…-key`, `…-token`,
/// `…-secret`, `…-password` or `…-credential(s)` header (`x-auth-token`,
/// `x-forwarded-authorization`, `x-amz-security-token`), and OpenAI's `OpenAI-Organization` and
/// `OpenAI-Project`, which choose the account billed. When agw injects its own key, none of
/// them is forwarded. (`Idempotency-Key` names a request, not a caller.)
pub fn is_credential_header(name: &HeaderName) -> bool {
    // The standard headers of nearly every request, answered by comparing the names' tags
    // before any name's text is compared with the endings below.
    use http::header::{
        ACCEPT, ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT,
    };
    if [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        ACCEPT,
        ACCEPT_ENCODING,
        USER_AGENT,
        HOST,
        CONNECTION,
    ]
    .contains(name)
    {
        return false;
    }
    let n = name.as_str();
    match n {
        "cookie" | "api-key" | "apikey" | "token" | "secret" | "password" | "x-auth" => true,
        // Bare names a client or another gateway may use for a credential (fifth review).
        "key" | "auth" | "credential" | "credentials" | "bearer" | "passwd" | "authtoken"
        | "accesstoken" | "x-authtoken" | "x-accesstoken" => true,
        // More a client may put a credential in (tenth review): a JWT, a personal access
        // token, a session, a request signature.
        "jwt" | "x-jwt" | "x-pat" | "x-passwd" | "x-bearer" | "x-session" | "session"
        | "sessionid" | "x-sessionid" | "x-signature" | "signature" => true,
        // They pick which account or project is billed: with agw's key, the gateway's
        // choice (Google's quota project: eighth review).
        "openai-organization"
        | "openai-project"
        | "x-goog-user-project"
        | "anthropic-organization"
        | "x-hf-bill-to" => true,
        // An identity a load balancer vouched for (AWS ALB's OIDC claims, a client
        // certificate forwarded by a TLS terminator), or a token in a WebSocket
        // subprotocol: twelfth session's black-box review.
        "x-amzn-oidc-data"
        | "x-amzn-oidc-identity"
        | "x-forwarded-client-cert"
        | "ssl-client-cert"
        | "x-ssl-client-cert"
        | "x-client-cert"
        | "sec-websocket-protocol" => true,
        "idempotency-key" => false,
        _ => {
            // `authorization2`, `x-api-key-2`: a numbered copy is the same credential.
            let n = match n.as_bytes().last() {
                Some(b'0'..=b'9') => n.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-'),
                _ => n,
            };
            n.ends_with("authorization")
                || n.ends_with("-assertion")
                || n.ends_with("-passphrase")
                || vouched(n)
                || n.ends_with("accesstoken")
                || n.ends_with("authentication")
                || n.ends_with("-password")
                || n.ends_with("-credential")
                || n.ends_with("-credentials")
                || n.ends_with("-key")
                || n.ends_with("_key")
                || n.ends_with("apikey")
                || n.ends_with("-token")
                || n.ends_with("_token")
                || n.ends_with("-secret")
                // `helicone-auth`, `x-goog-auth`: another gateway's or a proxy's credential.
                || n.ends_with("-auth")
                || n.ends_with("-jwt")
                || n.ends_with("-passwd")
                || n.ends_with("-bearer")
                // `x-api-key-2`, `x-apikey-old`: a key by any suffix (the `k` first: a
                // substring search per header of every request is not free).
                || (n.as_bytes().contains(&b'k') && (n.contains("api-key") || n.contains("apikey")))
        }
    }
}

/// Identities other proxies vouch for, and passwords by short names (twenty-fifth session's
/// red team): Google IAP's and Pomerium's users (their signed assertions end in `-assertion`),
/// Azure App Service's principal and client certificate, oauth2-proxy's and nginx
/// `auth_request`'s user headers, `x-pwd`, `x-otp`. Looked at only once a name matched nothing
/// cheaper: most of a request's headers are none of these.
fn vouched(n: &str) -> bool {
    match n.as_bytes().first() {
        Some(b'x') => {
            n.starts_with("x-ms-client-principal")
                || n.starts_with("x-auth-request-")
                || n.strip_prefix("x-forwarded-").is_some_and(|rest| {
                    matches!(rest, "user" | "email" | "preferred-username" | "groups")
                })
                || matches!(
                    n,
                    "x-arr-clientcert"
                        | "x-remote-user"
                        | "x-pwd"
                        | "x-otp"
                        | "x-goog-authenticated-user-email"
                        | "x-goog-authenticated-user-id"
                        | "x-pomerium-claim-email"
                )
        }
        Some(b'r' | b'p' | b'o') => matches!(n, "remote-user" | "pwd" | "passphrase" | "otp"),
        _ => false,
    }
}

/// Query parameter names that carry an API key: the client's own credential, which the URL
/// rules do not read (no rule reads one in a header either).
const KEY_PARAMS: [&str; 14] = [
    "key",
    "api_key",
    "apikey",
    "x_api_key",
    "access_token",
    "accesstoken",
    "auth",
    "auth_token",
    "authorization",
    "token",
    "subscription_key",
    "password",
    "secret",
    "client_secret",
];

/// More names a credential may travel under (tenth review): tokens of OAuth and of other
/// services, signatures (an Azure SAS's `sig`), an OAuth authorization `code`, a session.
/// Dropped with the others when agw injects its key, but read by the URL rules (`code` or
/// `session` may be anything).
///
/// With the twelfth session's: Google's legacy `oauth_token`, an AWS presigned URL's
/// `X-Amz-Security-Token`, `X-Amz-Credential` and `X-Amz-Signature`, and Google's
/// `userProject` (the project billed: the query form of `X-Goog-User-Project`).
///
/// With the twenty-fifth session's: passwords and one-time codes by short names, Google's
/// signed-URL `X-Goog-Credential` and `X-Goog-Signature`, a request's `hmac`, a `credential`.
const MORE_CREDENTIAL_PARAMS: [&str; 26] = [
    "pwd",
    "pass",
    "passphrase",
    "otp",
    "totp",
    "hmac",
    "credential",
    "x_goog_credential",
    "x_goog_signature",
    "oauth_token",
    "x_amz_security_token",
    "x_amz_credential",
    "x_amz_signature",
    "userproject",
    "user_project",
    "jwt",
    "id_token",
    "refresh_token",
    "private_token",
    "bearer",
    "passwd",
    "sig",
    "signature",
    "code",
    "session",
    "sessionid",
];

fn param_in(names: &[&str], name: &str) -> bool {
    // Any case, `-` for `_`; no allocation (every request's query is read).
    names.iter().any(|n| {
        n.len() == name.len()
            && n.bytes()
                .zip(name.bytes())
                .all(|(want, c)| want == c.to_ascii_lowercase() || (want == b'_' && c == b'-'))
    })
}

/// Whether a query parameter's name (percent-decoded, any case) can carry a client's
/// credential: Google's `key`, Azure API Management's `subscription-key`, the usual
/// `api_key`, `apikey`, `access_token`, `token`, `auth`, `password`, `secret` spellings, and
/// `jwt`, `id_token`, `sig`, `code`, `session` and the like. A short list, not a pattern:
/// query parameters of the APIs agw speaks (`beta`, `limit`, `after_id`, a page token) must
/// pass.
pub fn is_credential_param(name: &str) -> bool {
    param_in(&KEY_PARAMS, name) || param_in(&MORE_CREDENTIAL_PARAMS, name)
}

/// Whether a query's `name=value` pair names a credential ([`is_credential_param`]), its name
/// percent-decoded (decoded only when it has an escape: most have none).
///
/// Servers that also split a query at `;` read `a=1;key=…` as two pairs, and `+` decodes to a
/// space that some trim (`+key=`, `key+=`): a pair any of whose `;` parts names a credential,
/// blanks around its name removed, is one (tenth review).
pub fn is_credential_pair(pair: &str) -> bool {
    pair.split(';')
        .any(|part| part_name_is(part, is_credential_param))
}

/// Whether one `name=value` part of a pair (no `;` in it) names an API key
/// ([`KEY_PARAMS`]): the client's own credential, not read by the URL rules.
pub(crate) fn is_key_part(part: &str) -> bool {
    part_name_is(part, |n| param_in(&KEY_PARAMS, n))
}

/// Whether the name of one `name=value` part, percent-decoded and trimmed of blanks, is one
/// `names` picks.
///
/// Google reads every system parameter under a `$` too (`$key=` is `key=`: twelfth session's
/// black-box review), so a leading `$` is no part of the name.
fn part_name_is(part: &str, names: impl Fn(&str) -> bool) -> bool {
    let name = part.split('=').next().unwrap_or("");
    let alias = |n: &str| names(n.strip_prefix('$').unwrap_or(n));
    if name.contains(['%', '+']) {
        let name = crate::route::canonical::percent_decoded(name.as_bytes());
        let name = String::from_utf8_lossy(&name);
        alias(name.trim_matches(|c: char| c.is_whitespace() || c == '+'))
    } else {
        alias(name.trim())
    }
}

/// `query` without the `name=value` pairs `drop` picks, or `None` when it picks none. The
/// others keep their order and bytes.
pub fn without_params(query: &str, drop: impl Fn(&str) -> bool) -> Option<String> {
    if !query.split('&').any(&drop) {
        return None;
    }
    Some(
        query
            .split('&')
            .filter(|p| !p.is_empty() && !drop(p))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

impl ProviderSpec {
    /// Anthropic at `https://api.anthropic.com`, `x-api-key`, `anthropic-version: 2023-06-01`
    /// when the client sent none; speaks Messages, CountTokens, Models and Passthrough.
    pub fn anthropic() -> Self {
        Self {
            kind: ProviderKind::Anthropic,
            base: Uri::from_static("https://api.anthropic.com"),
            auth: crate::dialect::anthropic::AUTH,
            credentials: Credentials::Passthrough,
            default_headers: vec![(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static("2023-06-01"),
            )],
            native: vec![
                RouteKind::Messages,
                RouteKind::CountTokens,
                RouteKind::MessageBatches,
                RouteKind::BatchResults,
                RouteKind::Complete,
                // Anthropic's OpenAI-compatible endpoint.
                RouteKind::Completions,
                RouteKind::Models,
                RouteKind::Passthrough,
                RouteKind::Unguarded,
            ],
            injected: None,
        }
    }

    /// OpenAI at `https://api.openai.com`, `Authorization: Bearer`; speaks Completions, Models and
    /// Passthrough.
    pub fn openai() -> Self {
        Self {
            kind: ProviderKind::OpenAi,
            base: Uri::from_static("https://api.openai.com"),
            auth: crate::dialect::openai_chat::AUTH,
            credentials: Credentials::Passthrough,
            default_headers: Vec::new(),
            native: vec![
                RouteKind::Completions,
                RouteKind::LegacyCompletions,
                RouteKind::Responses,
                RouteKind::Embeddings,
                RouteKind::StoredResponses,
                RouteKind::StoredCompletions,
                RouteKind::Models,
                RouteKind::Passthrough,
                RouteKind::Unguarded,
            ],
            injected: None,
        }
    }

    /// An OpenAI-compatible server at `base_url` (`http://` is fine for local servers).
    pub fn openai_compatible(base_url: &str) -> Result<Self, InvalidBaseUrl> {
        Self::for_kind(ProviderKind::OpenAiCompatible).with_base_url(base_url)
    }

    /// The spec for `kind` with its defaults.
    pub fn for_kind(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Anthropic => Self::anthropic(),
            ProviderKind::OpenAi => Self::openai(),
            ProviderKind::OpenAiCompatible => {
                let mut s = Self::openai();
                s.kind = ProviderKind::OpenAiCompatible;
                // These servers serve Anthropic's Messages too (vLLM, llama.cpp, Ollama,
                // LM Studio, LiteLLM): Claude Code works against them.
                s.native
                    .extend([RouteKind::Messages, RouteKind::CountTokens]);
                s
            }
        }
    }

    /// Overrides the base URL: `http` or `https`, a host, an optional port and an optional path
    /// prefix that is put before every request path. No query or fragment.
    pub fn with_base_url(mut self, url: &str) -> Result<Self, InvalidBaseUrl> {
        let bad = |reason: &str| InvalidBaseUrl {
            url: shown_url(url),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(bad("the scheme must be http:// or https://")),
        }
        if uri.authority().is_none_or(|a| a.host().is_empty()) {
            return Err(bad("a host is required"));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(bad("a base URL has no query or fragment"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad("put credentials in the key setting, not in the URL"));
        }
        self.base = uri;
        Ok(self)
    }

    /// Sets the credentials mode.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self.injected = self.injected_header();
        self
    }

    /// Sets how the key is sent.
    pub fn with_auth(mut self, auth: AuthScheme) -> Self {
        self.auth = auth;
        self.injected = self.injected_header();
        self
    }

    /// Whether the key (when injecting) can be sent: an HTTP header value cannot carry control
    /// characters such as a line break pasted with the key. Configuration loaders refuse such
    /// a key rather than forward requests without credentials.
    pub fn key_is_sendable(&self) -> bool {
        !matches!(self.credentials, Credentials::Inject(_)) || self.injected.is_some()
    }

    fn injected_header(&self) -> Option<(HeaderName, HeaderValue)> {
        let Credentials::Inject(key) = &self.credentials else {
            return None;
        };
        let (name, value) = match self.auth {
            AuthScheme::XApiKey => (
                HeaderName::from_static("x-api-key"),
                key.expose().to_owned(),
            ),
            AuthScheme::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose())),
        };
        let mut value = HeaderValue::try_from(value).ok()?;
        value.set_sensitive(true);
        Some((name, value))
    }

    /// Adds a header sent when the client did not send it.
    pub fn with_default_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.default_headers.retain(|(n, _)| *n != name);
        self.default_headers.push((name, value));
        self
    }

    /// The provider kind.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The base URL.
    pub fn base_url(&self) -> &Uri {
        &self.base
    }

    /// The credentials mode.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// How the key is sent.
    pub fn auth(&self) -> AuthScheme {
        self.auth
    }

    /// Whether the provider understands requests of `kind` without translation.
    pub fn speaks(&self, kind: RouteKind) -> bool {
        self.native.contains(&kind)
    }

    /// The upstream URI for a client's path and query: base URL + path prefix + path + query.
    pub fn upstream_uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let prefix = self.base.path().trim_end_matches('/');
        // A path that already starts with the base's (an SDK pointed at `agw/v1` in front of
        // `https://api.openai.com/v1`) is not prefixed again: `/v1/v1/…` is a 404 everywhere
        // (real-client review).
        let has_prefix = !prefix.is_empty()
            && path_and_query
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        // Nor is one whose first segment is the version the base ends with (`/v1/chat/…`
        // under OpenRouter's `/api/v1` or Groq's `/openai/v1`: red-team review).
        let version = prefix.rsplit('/').next().filter(|v| is_version(v));
        let overlap = version.and_then(|v| {
            let rest = path_and_query.strip_prefix('/')?;
            let (first, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
            first.eq_ignore_ascii_case(v).then_some(tail)
        });
        let pq = if has_prefix {
            path_and_query.to_owned()
        } else if let Some(tail) = overlap {
            format!("{prefix}{tail}")
        } else if path_and_query.starts_with('/') {
            format!("{prefix}{path_and_query}")
        } else {
            format!("{prefix}/{path_and_query}")
        };
        self.with_path(PathAndQuery::try_from(pq)?)
    }

    /// [`upstream_uri`](Self::upstream_uri) for a request's URI. Without a base path prefix
    /// (the usual case) the request's path and query are reused as they are, not re-parsed.
    /// With [`Credentials::Inject`], query parameters that carry a client's credential
    /// ([`is_credential_param`]: Google's `key`, Azure API Management's `subscription-key`,
    /// `api_key`, `access_token`, …) are dropped: the client's credential never goes upstream.
    pub fn rebase(&self, uri: &Uri) -> Result<Uri, http::Error> {
        if let (Credentials::Inject(_), Some(query)) = (&self.credentials, uri.query())
            && let Some(kept) = without_params(query, is_credential_pair)
        {
            let path = uri.path();
            let pq = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{kept}")
            };
            return self.upstream_uri(&pq);
        }
        match uri.path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') && self.base.path().len() <= 1 => {
                self.with_path(pq.clone())
            }
            pq => self.upstream_uri(pq.map_or("/", PathAndQuery::as_str)),
        }
    }

    fn with_path(&self, pq: PathAndQuery) -> Result<Uri, http::Error> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.base.scheme().cloned().unwrap_or(Scheme::HTTPS));
        parts.authority = self.base.authority().cloned();
        parts.path_and_query = Some(pq);
        Ok(Uri::from_parts(parts)?)
    }

    /// Applies credentials and default headers to a request's headers.
    ///
    /// With [`Credentials::Inject`], every credential header the client sent is removed and the
    /// gateway's key is set; with [`Credentials::Passthrough`] the client's are kept. Headers
    /// that would make the upstream read another method, path or host
    /// ([`is_rerouting_header`]) are removed either way.
    pub fn prepare_headers(&self, headers: &mut HeaderMap) {
        let inject = matches!(self.credentials, Credentials::Inject(_));
        // Names are collected first (a map cannot lose keys while iterated); nothing is
        // allocated when there is none.
        let found: Vec<HeaderName> = headers
            .keys()
            .filter(|n| is_rerouting_header(n) || (inject && is_credential_header(n)))
            .cloned()
            .collect();
        for name in &found {
            headers.remove(name);
        }
        if inject && let Some((name, value)) = &self.injected {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.default_headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// Whether a path segment names an API version: `v1`, `v2`, `v1beta`, `v1alpha1`.
fn is_version(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() >= 2
        && b[0].eq_ignore_ascii_case(&b'v')
        && b[1].is_ascii_digit()
        && b.iter().all(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_base_url_error_shows_no_credentials() {
        for (url, shown) in [
            (
                "http://127.0.0.1:1/v1?password=hunter2&api_key=topsecretvalue",
                "http://127.0.0.1:1/v1?…",
            ),
            (
                "https://bob:hunter2@api.example/v1",
                "https://***@api.example/v1",
            ),
            ("ftp://u:p@h/x#frag=secret", "ftp://***@h/x?…"),
        ] {
            let e = ProviderSpec::anthropic().with_base_url(url).unwrap_err();
            assert_eq!(e.url, shown, "{url}");
            let text = e.to_string();
            assert!(
                !text.contains("hunter2") && !text.contains("secret"),
                "{text}"
            );
        }
    }

    #[test]
    fn inject_drops_credential_query_parameters() {
        let inject = ProviderSpec::anthropic()
            .with_credentials(Credentials::Inject(Secret::new("gw")))
            .with_base_url("http://up:1")
            .unwrap();
        let passthrough = ProviderSpec::anthropic()
            .with_base_url("http://up:1")
            .unwrap();
        for (uri, rebased) in [
            (
                "/v1/messages?beta=true&key=CLIENT&api_key=C2",
                "http://up:1/v1/messages?beta=true",
            ),
            (
                "/v1/x?Subscription-Key=C&API%5FKEY=C2&access_token=C3",
                "http://up:1/v1/x",
            ),
            (
                "/v1/models?limit=10&after_id=m1",
                "http://up:1/v1/models?limit=10&after_id=m1",
            ),
            (
                "/v1/x?page_token=p&monkey=1&key",
                "http://up:1/v1/x?page_token=p&monkey=1",
            ),
            // Tenth review: more token names, `;` parts, names padded with `+` or blanks.
            (
                "/v1/x?jwt=a&id_token=b&refresh_token=c&private_token=d&sig=e&code=f&n=1",
                "http://up:1/v1/x?n=1",
            ),
            (
                "/v1/x?a=1;key=C&+key=C2&key+=C3&%20api_key%20=C4&b=2",
                "http://up:1/v1/x?b=2",
            ),
            // Twelfth session: Google's `$` aliases, `oauth_token` and `userProject`, an AWS
            // presigned URL's credentials.
            (
                "/v1beta/m:generateContent?$key=C&%24key=C2&$oauth_token=C3&alt=sse&$userProject=p",
                "http://up:1/v1beta/m:generateContent?alt=sse",
            ),
            (
                "/model/m/converse?X-Amz-Security-Token=t&X-Amz-Credential=c&X-Amz-Signature=s&X-Amz-Date=d",
                "http://up:1/model/m/converse?X-Amz-Date=d",
            ),
            // Twenty-fifth session's red team: passwords, one-time codes, Google's signed URL.
            (
                "/v1/x?pwd=p&pass=p2&otp=1&hmac=h&credential=c&X-Goog-Credential=g&X-Goog-Signature=s&X-Goog-Date=d",
                "http://up:1/v1/x?X-Goog-Date=d",
            ),
            (
                "/v1/x?$limit=5&dollar=1",
                "http://up:1/v1/x?$limit=5&dollar=1",
            ),
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(inject.rebase(&uri).unwrap().to_string(), rebased, "{uri}");
            // A client's own credential goes to the provider only when agw injects none.
            assert_eq!(
                passthrough.rebase(&uri).unwrap().to_string(),
                format!("http://up:1{uri}")
            );
        }
    }

    #[test]
    fn inject_replaces_every_client_credential() {
        for auth in [AuthScheme::XApiKey, AuthScheme::Bearer] {
            let spec = ProviderSpec::anthropic()
                .with_auth(auth)
                .with_credentials(Credentials::Inject(Secret::new("gw")));
            let mut h = HeaderMap::new();
            h.insert("x-api-key", "client".parse().unwrap());
            h.insert("authorization", "Bearer client".parse().unwrap());
            // Other providers' and gateways' credential headers, cookies, tokens.
            for name in [
                "proxy-authorization",
                "x-forwarded-authorization",
                "api-key",
                "x-goog-api-key",
                "anthropic-api-key",
                "openai-api-key",
                "x-anthropic-api-key",
                "ocp-apim-subscription-key",
                "cookie",
                "x-auth-token",
                "x-amz-security-token",
                "x-client-secret",
                "apikey",
                // Found by the red-team reviews.
                "openai-organization",
                "openai-project",
                "x-goog-user-project",
                "anthropic-organization",
                "authentication",
                "x-auth",
                "x-credential",
                "x-credentials",
                "x-password",
                // Found by the fifth review.
                "key",
                "auth",
                "credential",
                "credentials",
                "helicone-auth",
                "x-authtoken",
                "authtoken",
                "accesstoken",
                "bearer",
                "passwd",
                // Found by the tenth review.
                "x-jwt",
                "x-api-key-2",
                "x-passwd",
                "x-pat",
                "x-bearer",
                "x-session",
                "sessionid",
                "x-signature",
                "x-github-jwt",
                // Found by the twelfth session's review.
                "x-amzn-oidc-accesstoken",
                "x-amzn-oidc-data",
                "x-forwarded-client-cert",
                "ssl-client-cert",
                "sec-websocket-protocol",
                "authorization2",
                "x-api-key-3",
                "x-hf-bill-to",
                // Found by the twenty-fifth session's red team.
                "x-goog-iap-jwt-assertion",
                "x-pomerium-jwt-assertion",
                "x-ms-client-principal",
                "x-arr-clientcert",
                "x-forwarded-user",
                "x-forwarded-email",
                "x-auth-request-email",
                "x-pwd",
                "x-passphrase",
                "x-vendor-assertion",
            ] {
                h.append(name, "client".parse().unwrap());
                h.append(name, "client-too".parse().unwrap());
            }
            h.insert("anthropic-version", "2099-01-01".parse().unwrap());
            h.insert("anthropic-beta", "tools-2024".parse().unwrap());
            h.insert("idempotency-key", "req-1".parse().unwrap());
            h.insert("x-stainless-retry-count", "0".parse().unwrap());
            h.insert("x-claude-code-session-id", "s-1".parse().unwrap());
            spec.prepare_headers(&mut h);
            let all: Vec<_> = h.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            assert!(!all.iter().any(|s| s.contains("client")), "{all:?}");
            match auth {
                AuthScheme::XApiKey => assert_eq!(h["x-api-key"], "gw"),
                AuthScheme::Bearer => assert_eq!(h["authorization"], "Bearer gw"),
            }
            // The client's own version wins over the default; what names no caller stays.
            assert_eq!(h["anthropic-version"], "2099-01-01");
            assert_eq!(h["anthropic-beta"], "tools-2024");
            assert_eq!(h["idempotency-key"], "req-1");
            assert_eq!(h["x-stainless-retry-count"], "0");
            assert_eq!(h["x-claude-code-session-id"], "s-1");
            assert_eq!(h.len(), 6, "{all:?}");
        }
    }

    /// Found by a black-box review: `X-HTTP-Method-Override: POST` on a GET that agw guarded
    /// and charged as a GET reached the upstream; so did original-URL and forwarded-host
    /// headers. None is forwarded, whether agw injects its key or not.
    #[test]
    fn rerouting_headers_are_not_forwarded() {
        for spec in [
            ProviderSpec::anthropic(),
            ProviderSpec::anthropic().with_credentials(Credentials::Inject(Secret::new("gw"))),
        ] {
            let mut h = HeaderMap::new();
            for name in [
                "x-http-method-override",
                "x-http-method",
                "x-method-override",
                "x-original-method",
                "x-original-url",
                "x-original-uri",
                "x-rewrite-url",
                "x-forwarded-uri",
                "x-forwarded-path",
                "x-forwarded-prefix",
                "x-forwarded-host",
                "x-forwarded-server",
                "x-envoy-original-path",
                "forwarded",
                // Underscore spellings and more of the kind (black-box review round 3).
                "x_http_method_override",
                "x_original_url",
                "x_forwarded_host",
                "x-forwarded-ssl",
                "x-forwarded-url",
                "x-middleware-subrequest",
            ] {
                h.append(name, "client".parse().unwrap());
            }
            h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
            spec.prepare_headers(&mut h);
            let all: Vec<_> = h.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            assert!(!all.iter().any(|s| s.contains("client")), "{all:?}");
            assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        }
    }

    #[test]
    fn passthrough_keeps_client_credentials() {
        let spec = ProviderSpec::anthropic();
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer oauth-token".parse().unwrap());
        spec.prepare_headers(&mut h);
        assert_eq!(h["authorization"], "Bearer oauth-token");
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert!(h.get("x-api-key").is_none());
    }

    #[test]
    fn base_urls() {
        let s = ProviderSpec::openai_compatible("http://localhost:11434/").unwrap();
        assert_eq!(
            s.upstream_uri("/v1/models").unwrap(),
            "http://localhost:11434/v1/models"
        );
        let s = ProviderSpec::openai()
            .with_base_url("https://gw.example/api")
            .unwrap();
        assert_eq!(
            s.upstream_uri("/v1/chat/completions?x=1").unwrap(),
            "https://gw.example/api/v1/chat/completions?x=1"
        );
        // A path that already starts with the base's is not prefixed again (an SDK pointed
        // at `agw/v1` in front of `…/v1`); one that only starts with its letters is.
        let v1 = ProviderSpec::openai()
            .with_base_url("https://api.example/v1/")
            .unwrap();
        for (path, want) in [
            (
                "/v1/chat/completions",
                "https://api.example/v1/chat/completions",
            ),
            (
                "/chat/completions",
                "https://api.example/v1/chat/completions",
            ),
            ("/v1?x=1", "https://api.example/v1?x=1"),
            ("/v1beta/models", "https://api.example/v1/v1beta/models"),
            (
                "/V1/chat/completions",
                "https://api.example/v1/chat/completions",
            ),
        ] {
            assert_eq!(v1.upstream_uri(path).unwrap(), want, "{path}");
            assert_eq!(v1.rebase(&path.parse().unwrap()).unwrap(), want, "{path}");
        }
        // The version a longer base ends with is not repeated either.
        let api = ProviderSpec::openai()
            .with_base_url("https://openrouter.example/api/v1")
            .unwrap();
        for (path, want) in [
            (
                "/v1/chat/completions",
                "https://openrouter.example/api/v1/chat/completions",
            ),
            (
                "/chat/completions",
                "https://openrouter.example/api/v1/chat/completions",
            ),
            ("/v1", "https://openrouter.example/api/v1"),
            ("/v2/x", "https://openrouter.example/api/v1/v2/x"),
        ] {
            assert_eq!(api.upstream_uri(path).unwrap(), want, "{path}");
        }
        // `rebase` (what the proxy uses) agrees, with and without a path prefix, and keeps
        // only the request's path and query.
        let plain = ProviderSpec::anthropic()
            .with_base_url("http://127.0.0.1:9000")
            .unwrap();
        for (spec, uri, want) in [
            (&s, "/v1/models?a=1", "https://gw.example/api/v1/models?a=1"),
            (&s, "http://other:1/v1/x", "https://gw.example/api/v1/x"),
            (
                &plain,
                "/v1/messages?beta=true",
                "http://127.0.0.1:9000/v1/messages?beta=true",
            ),
            (
                &plain,
                "http://evil.example/v1/messages",
                "http://127.0.0.1:9000/v1/messages",
            ),
            (&plain, "*", "http://127.0.0.1:9000/*"),
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(spec.rebase(&uri).unwrap(), want, "{uri}");
        }
        for bad in [
            "ftp://x",
            "localhost:80",
            "http://",
            "http://h/?q=1",
            "http://u:p@h",
            "nonsense url",
        ] {
            assert!(
                ProviderSpec::anthropic().with_base_url(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials::Inject(Secret::new("sk-ant-real"));
        assert!(!format!("{c:?}").contains("sk-ant-real"));
        assert!(!format!("{}", Secret::new("x1")).contains("x1"));
    }

    #[test]
    fn native_kinds() {
        assert!(ProviderSpec::anthropic().speaks(RouteKind::CountTokens));
        assert!(!ProviderSpec::anthropic().speaks(RouteKind::Responses));
        assert!(ProviderSpec::openai().speaks(RouteKind::Completions));
        assert!(!ProviderSpec::openai().speaks(RouteKind::Messages));
        // OpenAI-compatible servers serve Anthropic's Messages too, read as Messages.
        let compatible = ProviderSpec::openai_compatible("http://localhost:8000").unwrap();
        assert!(compatible.speaks(RouteKind::Messages));
        assert!(compatible.speaks(RouteKind::CountTokens));
        assert!(!compatible.speaks(RouteKind::MessageBatches));
        let table = crate::route::RouteTable::for_provider(ProviderKind::OpenAiCompatible);
        assert_eq!(table.classify("/v1/messages"), RouteKind::Messages);
        assert_eq!(
            table.classify("/v1/chat/completions"),
            RouteKind::Completions
        );
        assert_eq!(
            table.classify("/v1/messages/batches"),
            RouteKind::Passthrough
        );
    }
}
