//! Client identity: who is calling, from a gateway-issued key or an identity provider's JWT.
//!
//! [`AuthLayer`] reads the client's credential (`x-api-key`, or `Authorization: Bearer` as
//! Claude Code's `ANTHROPIC_AUTH_TOKEN` and the OpenAI SDK send it), resolves it with an
//! [`Authenticator`] to an [`Identity`] in the request extensions, and **removes both headers**
//! so a client credential never reaches the upstream (the provider layer adds the real key).
//! A request without a valid credential gets a provider-shaped 401 (Anthropic
//! `authentication_error`, OpenAI `invalid_api_key`); the message never echoes the credential.
//!
//! Keys look like `agw_` + 43 base64url characters (32 random bytes). Stores keep only their
//! SHA-256 ([`key::KeyHash`]), looked up by a hash prefix and compared in constant time.
//! [`AccessLayer`] then decides which identities may use a backend and which models.
//!
//! # Example
//!
//! ```
//! use agw_tower::body::Body;
//! use agw_tower::auth::{AuthLayer, Authenticator, FileKeyStore, Identity, KeyStore, key};
//! use std::sync::Arc;
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # async fn run() {
//! let store = FileKeyStore::in_memory();
//! let (secret, hash) = key::generate().unwrap();
//! store.insert(key::KeyRecord {
//!     name: "alice".into(), team: Some("platform".into()), hash: hash.to_hex(),
//!     created: 0, expires: None, revoked: false,
//! }).await.unwrap();
//! let auth = Arc::new(Authenticator::new().keys(Arc::new(store)));
//! let svc = tower::service_fn(|req: http::Request<String>| async move {
//!     assert!(req.headers().get("x-api-key").is_none()); // never forwarded
//!     let who = req.extensions().get::<Identity>().unwrap().clone();
//!     let body = Body::<http_body_util::Empty<bytes::Bytes>>::full(who.name.to_string());
//!     Ok::<_, std::convert::Infallible>(http::Response::new(body))
//! });
//! let mut svc = AuthLayer::new(auth).layer(svc);
//! let req = http::Request::post("/v1/messages").header("x-api-key", &secret).body(String::new()).unwrap();
//! let res = svc.call(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//! let req = http::Request::post("/v1/messages").header("x-api-key", "agw_wrong").body(String::new()).unwrap();
//! assert_eq!(svc.call(req).await.unwrap().status(), 401);
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
//! ```

mod access;
pub mod jwt;
pub mod key;
mod layer;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod store;

pub use access::{Access, AccessFuture, AccessLayer, AccessService, RequestFacts};
pub use layer::AuthLayer;
#[cfg(feature = "redis")]
pub use redis::RedisKeyStore;
pub use service::Auth;
pub use store::{BoxFuture, FileKeyStore, KeyStore, StoreError};

use http::{HeaderMap, HeaderName};
use std::sync::Arc;

/// The header Anthropic clients send their key in (a constant: no name parsed per request).
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// A gateway-issued key.
    Key,
    /// A JWT from the identity provider.
    Jwt,
    /// No credential (only with [`Authenticator::allow_unauthenticated`]).
    Anonymous,
}

/// Who is calling: put in the request extensions by [`AuthLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The key's name or the token's `sub` (shared: a request's report, limits and log line
    /// hold it without copying).
    pub name: Arc<str>,
    /// The key's team.
    pub team: Option<Arc<str>>,
    /// How the caller authenticated.
    pub kind: IdentityKind,
    /// The token's groups (empty for keys).
    pub groups: Vec<String>,
}

impl Identity {
    /// The caller of an unauthenticated request.
    pub fn anonymous() -> Self {
        Identity {
            name: ANONYMOUS.into(),
            team: None,
            kind: IdentityKind::Anonymous,
            groups: Vec::new(),
        }
    }
}

/// Why a request is not authenticated. Displayed for logs; clients get a fixed message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential header.
    #[error("no client credential")]
    Missing,
    /// A key that no store knows, or a malformed credential.
    #[error("unknown client key")]
    UnknownKey,
    /// A revoked or expired key (`name` is the key's name).
    #[error("key `{0}` is revoked or expired")]
    Invalid(String),
    /// A JWT that did not verify.
    #[error("token refused: {0}")]
    Jwt(#[from] jwt::JwtError),
    /// The key store failed: refused (fail closed).
    #[error("key store failed: {0}")]
    Store(#[from] StoreError),
    /// Two different agw credentials (one in `x-api-key`, another in `Authorization`, or a
    /// header given twice): agw cannot tell whose request it is.
    #[error("two different client credentials")]
    Conflicting,
}

/// Why agw refused a request's credential, in a response's extensions for the access log
/// (`cause=jwt_expired`): clients see one fixed message, operators need the reason (found
/// with Claude Code in the twelfth session: an expired token and a wrong audience looked the
/// same to developer and operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRefused(pub &'static str);

impl AuthError {
    /// The access log's `cause` for this refusal: `auth_missing`, `auth_unknown_key`,
    /// `auth_revoked_or_expired`, `auth_conflicting`, `auth_store`, or `jwt_…` naming what the
    /// token failed (`jwt_expired`, `jwt_audience`, `jwt_signature`, …).
    pub fn cause(&self) -> &'static str {
        use jwt::JwtError as J;
        match self {
            AuthError::Missing => "auth_missing",
            AuthError::UnknownKey => "auth_unknown_key",
            AuthError::Invalid(_) => "auth_revoked_or_expired",
            AuthError::Conflicting => "auth_conflicting",
            AuthError::Store(_) => "auth_store",
            AuthError::Jwt(e) => match e {
                J::Malformed => "jwt_malformed",
                J::Algorithm(_) => "jwt_algorithm",
                J::UnknownKey => "jwt_unknown_key",
                J::Signature => "jwt_signature",
                J::Expired => "jwt_expired",
                J::NotYetValid => "jwt_not_yet_valid",
                J::Issuer => "jwt_issuer",
                J::Audience => "jwt_audience",
                J::Subject => "jwt_subject",
                J::Team => "jwt_team",
                J::Unavailable => "jwt_jwks_unavailable",
            },
        }
    }

    /// A short reason for metrics: `missing`, `invalid`, `jwt` or `store`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::UnknownKey | AuthError::Invalid(_) | AuthError::Conflicting => "invalid",
            AuthError::Jwt(_) => "jwt",
            AuthError::Store(_) => "store",
        }
    }
}

type FailureHook = Arc<dyn Fn(&AuthError) + Send + Sync>;

/// Resolves credentials to identities. Build it once; share it in an `Arc`.
#[derive(Default)]
pub struct Authenticator {
    keys: Option<Arc<dyn KeyStore>>,
    jwt: Option<Arc<jwt::Jwks>>,
    allow_unauthenticated: bool,
    on_failure: Option<FailureHook>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys)
            .field("jwt", &self.jwt)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .finish_non_exhaustive()
    }
}

/// The name of every caller without a credential (where allowed). No key may be named so, and
/// a JWT whose subject is this name is refused: either would share their limits, budgets and
/// access (sixth review).
pub const ANONYMOUS: &str = "anonymous";

/// Headers some providers read credentials from, besides `x-api-key` and `Authorization`:
/// an agw key found in one is removed, never forwarded.
const OTHER_CREDENTIAL_HEADERS: [&str; 3] = ["x-goog-api-key", "api-key", "anthropic-api-key"];

/// The headers of Gemini-style (`x-goog-api-key`) and Azure-style (`api-key`) clients: an agw
/// credential in one is checked as one in `x-api-key` is (a provider key there is the client's
/// own, as in `x-api-key` where requests without a credential are allowed).
const CLIENT_KEY_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-goog-api-key"),
    HeaderName::from_static("api-key"),
];

/// Whether a credential is meant as a JWT: a JWS in compact form (two dots), or anything that
/// starts as one (`eyJ`, a JSON header in base64url) and has a dot — a JWS with a segment too
/// many, a JWE (four dots). Those are refused as malformed tokens, not taken for a client's own
/// key (red-team rt4: they read "no client credential", and passed as anonymous where that is
/// allowed).
fn looks_like_jwt(cred: &str) -> bool {
    let dots = cred.bytes().filter(|&b| b == b'.').count();
    dots == 2 || (dots > 0 && cred.starts_with("eyJ"))
}

/// Whether `cred` holds an agw key's prefix (in any case) at its start or after a byte that is
/// none of a provider key's (see [`Authenticator::is_ours`]).
fn holds_key(cred: &str) -> bool {
    let b = cred.as_bytes();
    let prefix = key::KEY_PREFIX.as_bytes();
    b.windows(prefix.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(prefix)
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b"-_.".contains(&b[i - 1])))
    })
}

/// One credential header, read: absent, a value, or unreadable (refused).
type CredentialRead<'a> = Result<Option<&'a str>, AuthError>;

impl Authenticator {
    /// An authenticator that accepts nothing until given keys or a JWKS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts gateway-issued keys from `store`.
    pub fn keys(mut self, store: Arc<dyn KeyStore>) -> Self {
        self.keys = Some(store);
        self
    }

    /// Accepts JWTs verified against `jwks`.
    pub fn jwt(mut self, jwks: Arc<jwt::Jwks>) -> Self {
        self.jwt = Some(jwks);
        self
    }

    /// Lets requests *without* a credential through as [`Identity::anonymous`] (a presented
    /// but invalid credential is still refused).
    pub fn allow_unauthenticated(mut self, allow: bool) -> Self {
        self.allow_unauthenticated = allow;
        self
    }

    /// Calls `hook` for every refused request (log it — the error never holds the credential —
    /// and count it: `Metrics::auth_failure(err.reason())`).
    pub fn on_failure(mut self, hook: impl Fn(&AuthError) + Send + Sync + 'static) -> Self {
        self.on_failure = Some(Arc::new(hook));
        self
    }

    /// Whether `cred` is one agw verifies: an agw key (by its prefix, in any case: `AGW_…` is
    /// refused as an unknown key, not passed on), or a JWT-shaped token when JWTs are
    /// accepted. With [`Self::allow_unauthenticated`], any other credential is the client's
    /// own (a provider key brought along): the request goes on as anonymous and the credential
    /// is left in place (dropped by the provider layer when agw injects a key).
    ///
    /// An agw key anywhere in the credential after a byte no provider key has (`Bearer agw_…`
    /// sent as `x-api-key`, `"agw_…"` quoted, `key=agw_…`) is one too: refused as an unknown
    /// key, never passed on as the client's own (twenty-first session's red team: such shapes
    /// went upstream). Provider keys are letters, digits, `-`, `_` and `.` (and base64, which
    /// has no `_`), so none holds `agw_` that way.
    pub fn is_ours(&self, cred: &str) -> bool {
        holds_key(cred) || (self.jwt.is_some() && looks_like_jwt(cred))
    }

    /// Removes the credentials that must not reach the provider: every agw credential, in
    /// either header; and, unless requests without one are allowed, both headers whatever they
    /// hold. What stays is a client's own provider key, where requests without an agw
    /// credential are allowed.
    pub fn strip(&self, headers: &mut HeaderMap) {
        // An unreadable header is refused by `authenticate`; it goes no further either.
        let goes =
            |read: CredentialRead<'_>| read.map_or(true, |c| c.is_some_and(|c| self.is_ours(c)));
        let (key, bearer) = if self.allow_unauthenticated {
            let (key, bearer) = Self::presented(headers);
            (goes(key), goes(bearer))
        } else {
            (true, true)
        };
        if key {
            headers.remove(X_API_KEY);
        }
        if bearer {
            headers.remove(http::header::AUTHORIZATION);
        }
        // Proxy credentials are addressed to a proxy, and agw is the proxy: never forwarded
        // (an agw key there in Basic form went upstream from a passthrough backend; sixth
        // review).
        headers.remove(http::header::PROXY_AUTHORIZATION);
        // A cookie holding an agw credential is dropped, the others kept (in every `cookie`
        // field: HTTP/2 clients send one per cookie; they are joined as HTTP/1.1 joins them).
        let ours = headers.get_all(http::header::COOKIE).iter().any(|v| {
            v.to_str()
                .map_or(true, |c| c.split(';').any(|c| self.is_ours_value(c)))
        });
        if ours {
            let kept: Vec<&str> = headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|c| c.split(';'))
                .map(str::trim)
                .filter(|c| !c.is_empty() && !self.is_ours_value(c))
                .collect();
            let kept = (!kept.is_empty())
                .then(|| http::HeaderValue::from_str(&kept.join("; ")).ok())
                .flatten();
            headers.remove(http::header::COOKIE);
            if let Some(v) = kept {
                headers.insert(http::header::COOKIE, v);
            }
        }
        // An agw key sent in another credential header (as a provider's SDK might put it) does
        // not go upstream either.
        for name in OTHER_CREDENTIAL_HEADERS {
            let ours = headers.get_all(name).iter().any(|v| {
                v.to_str().is_ok_and(|v| {
                    let v = v.trim();
                    let token = v
                        .split_once(' ')
                        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                        .map_or(v, |(_, t)| t.trim());
                    self.is_ours(token)
                })
            });
            if ours {
                headers.remove(name);
            }
        }
    }

    /// Whether a `name=value` pair (a cookie, a query parameter) carries an agw credential in
    /// its value, percent-decoded: a client key, or a token shaped like a JWT (`eyJ…`, two
    /// dots: not a version number such as `1.2.3`) where JWTs are accepted.
    fn is_ours_value(&self, pair: &str) -> bool {
        let raw = pair.split_once('=').map_or(pair, |(_, v)| v).trim();
        // Decoded only when there is something to decode (`?beta=true` on every Claude Code
        // request is read in place).
        let decoded;
        let value = if raw.contains(['%', '+']) {
            decoded = agw_core::route::percent_decoded(raw.as_bytes());
            String::from_utf8_lossy(&decoded)
        } else {
            std::borrow::Cow::Borrowed(raw)
        };
        let value = value.trim();
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or(value, |(_, t)| t.trim());
        self.is_ours(token)
            && (self.jwt.is_none() || !token.contains('.') || token.starts_with("eyJ"))
    }

    /// Removes query parameters that carry an agw credential (`?key=agw_…`, as Gemini-style
    /// clients send keys): on a backend that passes clients' credentials through, the provider
    /// would otherwise receive it (sixth review). Other parameters are kept as sent.
    pub fn strip_uri(&self, uri: &mut http::Uri) {
        let Some(kept) = uri
            .query()
            .and_then(|q| agw_core::provider::without_params(q, |p| self.is_ours_value(p)))
        else {
            return;
        };
        let mut target = uri.path().to_owned();
        if !kept.is_empty() {
            target.push('?');
            target.push_str(&kept);
        }
        let mut parts = std::mem::take(uri).into_parts();
        parts.path_and_query = target.parse().ok();
        if let Ok(u) = http::Uri::from_parts(parts) {
            *uri = u;
        } else {
            // Cannot happen (the path and the kept parameters were a valid URI); never
            // forward the credential if it did.
            *uri = http::Uri::from_static("/");
        }
    }

    /// Whether any credential is accepted (keys or JWT), for the startup check that refuses an
    /// open listener with an injected provider key.
    pub fn requires_credentials(&self) -> bool {
        !self.allow_unauthenticated && (self.keys.is_some() || self.jwt.is_some())
    }

    /// [`Authenticator::authenticate`], calling the failure hook on a refusal.
    ///
    /// # Errors
    ///
    /// As [`Authenticator::authenticate`].
    pub async fn authenticate_reported(
        &self,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Identity, AuthError> {
        let r = self.authenticate(headers, now).await;
        self.report(&r);
        r
    }

    /// [`Authenticator::authenticate_request`], calling the failure hook on a refusal.
    ///
    /// # Errors
    ///
    /// As [`Authenticator::authenticate`].
    pub async fn authenticate_request_reported(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now: u64,
    ) -> Result<Identity, AuthError> {
        let r = self.authenticate_request(headers, query, now).await;
        self.report(&r);
        r
    }

    fn report(&self, r: &Result<Identity, AuthError>) {
        if let (Err(e), Some(hook)) = (r, &self.on_failure) {
            hook(e);
        }
    }

    /// An agw credential in the other places clients put keys: `x-goog-api-key` and `api-key`
    /// (given twice with different values: unreadable), and a `key` query parameter
    /// (percent-decoded). A value that is not an agw credential is the client's own and not
    /// read. Two different agw credentials among them are [`AuthError::Conflicting`].
    fn presented_elsewhere<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
    ) -> Result<Option<std::borrow::Cow<'a, str>>, AuthError> {
        let mut found: Option<std::borrow::Cow<'a, str>> = None;
        let mut take = |cred: std::borrow::Cow<'a, str>| match &found {
            Some(f) if *f != cred => Err(AuthError::Conflicting),
            Some(_) => Ok(()),
            None => {
                found = Some(cred);
                Ok(())
            }
        };
        for name in &CLIENT_KEY_HEADERS {
            let mut values = headers.get_all(name).iter();
            let Some(first) = values.next() else {
                continue;
            };
            let ours = |v: &'a http::HeaderValue| -> Option<&'a str> {
                v.to_str().ok().map(str::trim).filter(|v| self.is_ours(v))
            };
            if values.any(|v| v != first && ours(v).is_some()) {
                return Err(AuthError::Conflicting);
            }
            if let Some(v) = ours(first) {
                take(std::borrow::Cow::Borrowed(v))?;
            }
        }
        // Most requests have no query, or none that names `key` (`?beta=true`): nothing decoded.
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let Some(("key", raw)) = pair.split_once('=') else {
                continue;
            };
            let value = if raw.contains(['%', '+']) {
                let decoded = agw_core::route::percent_decoded(raw.as_bytes());
                std::borrow::Cow::Owned(String::from_utf8_lossy(&decoded).trim().to_owned())
            } else {
                std::borrow::Cow::Borrowed(raw.trim())
            };
            if self.is_ours(&value) {
                take(value)?;
            }
        }
        Ok(found)
    }

    /// [`Authenticator::authenticate`] of a request's headers and query: its credential may
    /// also be an agw key in `x-goog-api-key`, `api-key` or a `key` query parameter, as
    /// Gemini- and Azure-style clients send theirs (the same credential in two places is one;
    /// two different ones are refused).
    ///
    /// # Errors
    ///
    /// As [`Authenticator::authenticate`].
    pub async fn authenticate_request(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now: u64,
    ) -> Result<Identity, AuthError> {
        self.authenticate_in(headers, query, now).await
    }

    /// Both credential headers, read: `x-api-key`, and the token of `Authorization: Bearer`.
    /// A header given twice with different values is unreadable: which value a server takes
    /// is its choice, and the other would go unchecked.
    fn presented(headers: &HeaderMap) -> (CredentialRead<'_>, CredentialRead<'_>) {
        let one = |name: &http::header::HeaderName| {
            let mut values = headers.get_all(name).iter();
            let first = values.next();
            match first {
                Some(f) if values.any(|v| v != f) => Err(AuthError::Conflicting),
                _ => Ok(first),
            }
        };
        let key = one(&X_API_KEY).and_then(|v| {
            v.map_or(Ok(None), |v| match v.to_str().map(str::trim) {
                Ok(k) if !k.is_empty() => Ok(Some(k)),
                _ => Err(AuthError::UnknownKey),
            })
        });
        let bearer = one(&http::header::AUTHORIZATION).and_then(|v| {
            v.map_or(Ok(None), |v| {
                let v = v.to_str().map_err(|_| AuthError::UnknownKey)?.trim();
                match v.split_once(' ') {
                    Some((scheme, token))
                        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                    {
                        Ok(Some(token.trim()))
                    }
                    _ => Err(AuthError::UnknownKey),
                }
            })
        });
        (key, bearer)
    }

    /// Resolves the credential in `headers` at `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// See [`AuthError`].
    pub async fn authenticate(&self, headers: &HeaderMap, now: u64) -> Result<Identity, AuthError> {
        self.authenticate_in(headers, None, now).await
    }

    async fn authenticate_in(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now: u64,
    ) -> Result<Identity, AuthError> {
        // An agw credential in either header is the one checked: a client's own provider key
        // in the other (a developer's `ANTHROPIC_API_KEY` beside `ANTHROPIC_AUTH_TOKEN=agw_…`)
        // does not hide it, and is never forwarded when agw injects its own.
        let (key, bearer) = Self::presented(headers);
        let (key, bearer) = (key?, bearer?);
        let elsewhere = self.presented_elsewhere(headers, query)?;
        let ours = |c: &Option<&str>| c.is_some_and(|c| self.is_ours(c));
        let cred = match (ours(&key), ours(&bearer)) {
            // Two agw credentials: the same one twice, or a request agw cannot attribute.
            (true, true) if key != bearer => return Err(AuthError::Conflicting),
            (true, _) => key,
            (false, true) => bearer,
            (false, false) => None,
        };
        let cred = match (cred, elsewhere.as_deref()) {
            (Some(c), Some(e)) if c != e => return Err(AuthError::Conflicting),
            (Some(c), _) | (None, Some(c)) => Some(c),
            // None of ours: a client's own credential is as good as none (left for the
            // provider: see [`Self::is_ours`]): anonymous where that is allowed, else refused
            // as missing, with the message that says what to send (it had been refused as an
            // unknown agw key: fourteenth review's client check).
            (None, None) if self.allow_unauthenticated => return Ok(Identity::anonymous()),
            (None, None) => None,
        };
        let cred = cred.ok_or(AuthError::Missing)?;
        if cred.starts_with(key::KEY_PREFIX) {
            let Some(store) = &self.keys else {
                return Err(AuthError::UnknownKey);
            };
            let hash = key::KeyHash::of(cred);
            let record = store.lookup(hash).await?.ok_or(AuthError::UnknownKey)?;
            // The store compared hashes in constant time; check again: a store may be remote.
            if !record.key_hash().is_some_and(|h| h.ct_eq(&hash)) {
                return Err(AuthError::UnknownKey);
            }
            // A key named like callers without a credential (a key file edited by hand, a
            // Redis record; `agw keys create` refuses the name) would share their limits,
            // budgets and access: refused as a revoked key is (sixth review).
            if !record.is_valid_at(now) || record.name.eq_ignore_ascii_case(ANONYMOUS) {
                return Err(AuthError::Invalid(record.name.to_string()));
            }
            return Ok(Identity {
                name: record.name,
                team: record.team,
                kind: IdentityKind::Key,
                groups: Vec::new(),
            });
        }
        if let Some(jwks) = &self.jwt
            && looks_like_jwt(cred)
        {
            if cred.bytes().filter(|&b| b == b'.').count() != 2 {
                return Err(AuthError::Jwt(jwt::JwtError::Malformed));
            }
            let claims = jwks.verify(cred, now).await?;
            return Ok(Identity {
                name: claims.subject.into(),
                team: claims.team.map(Into::into),
                kind: IdentityKind::Jwt,
                groups: claims.groups,
            });
        }
        Err(AuthError::UnknownKey)
    }
}
