//! JWT bearer tokens from an identity provider, verified against its JWKS.
//!
//! Only asymmetric algorithms are accepted — RS256, ES256 (P-256) and EdDSA (Ed25519) — and
//! each only with a key of its own type: `alg: none`, HS256 (which, verified with a public key
//! as the secret, is the classic algorithm-confusion forgery) and a header algorithm that does
//! not match the key are refused. `iss`, `aud`, `exp` (required) and `nbf` are checked with a
//! small leeway; the identity is `sub`, groups come from a configurable claim.

use super::store::BoxFuture;
use agw_core::provider::shown_url;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ring::signature;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The largest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The largest JWKS document accepted, in bytes.
pub const MAX_JWKS_LEN: usize = 256 * 1024;
/// The most keys a JWKS may hold.
pub const MAX_JWKS_KEYS: usize = 64;

/// Why a token was refused. The text is for logs; clients get a generic 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not RS256, ES256 or EdDSA (this includes `none` and HS256).
    #[error("algorithm `{0}` is not accepted")]
    Algorithm(String),
    /// No key in the JWKS matches `kid` and the algorithm.
    #[error("no matching key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` missing or past.
    #[error("token expired")]
    Expired,
    /// `nbf` in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name the configured audience.
    #[error("wrong audience")]
    Audience,
    /// No `sub` string, the name of callers without a credential
    /// ([`ANONYMOUS`](super::ANONYMOUS)), or one that is no name ([`is_name`]).
    #[error("no subject")]
    Subject,
    /// The configured team claim holds a string that is no name ([`is_name`]).
    #[error("the team claim is not a name")]
    Team,
    /// The JWKS has not been read yet (its URL did not answer since the start).
    #[error("the JWKS has not been fetched yet")]
    Unavailable,
}

/// A JWKS that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JWKS: {0}")]
pub struct JwksError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    /// The JWK's own `alg`, when it states one.
    alg: Option<String>,
    key: PublicKey,
}

impl Jwk {
    fn alg(&self) -> Alg {
        match self.key {
            PublicKey::Rsa { .. } => Alg::Rs256,
            PublicKey::P256(_) => Alg::Es256,
            PublicKey::Ed25519(_) => Alg::EdDsa,
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            PublicKey::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            PublicKey::P256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(x) => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

/// The public keys of a JWKS document, parsed once.
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWKS (`{"keys":[...]}`). Keys of other types (symmetric `oct` keys among them)
    /// are skipped; a set that lists keys of which none is usable is an error (a document in
    /// another shape), while an empty list (`{"keys":[]}`) is a set with no keys: every key
    /// withdrawn, every token refused (black-box review: it was ignored, and the old keys kept
    /// verifying).
    ///
    /// # Errors
    ///
    /// Not JSON, too large, too many keys, or keys listed and none usable.
    pub fn parse(doc: &[u8]) -> Result<Self, JwksError> {
        if doc.len() > MAX_JWKS_LEN {
            return Err(JwksError(format!("larger than {MAX_JWKS_LEN} bytes")));
        }
        let v: Value = serde_json::from_slice(doc).map_err(|e| JwksError(e.to_string()))?;
        let list = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError("no `keys` array".into()))?;
        if list.len() > MAX_JWKS_KEYS {
            return Err(JwksError(format!("more than {MAX_JWKS_KEYS} keys")));
        }
        let b64 = |k: &Value, f: &str| {
            k.get(f)
                .and_then(Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        };
        let mut keys = Vec::new();
        for k in list {
            if k.get("use")
                .and_then(Value::as_str)
                .is_some_and(|u| u != "sig")
            {
                continue;
            }
            let key = match (
                k.get("kty").and_then(Value::as_str),
                k.get("crv").and_then(Value::as_str),
            ) {
                (Some("RSA"), _) => match (b64(k, "n"), b64(k, "e")) {
                    (Some(n), Some(e)) => PublicKey::Rsa { n, e },
                    _ => continue,
                },
                (Some("EC"), Some("P-256")) => match (b64(k, "x"), b64(k, "y")) {
                    (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                        let mut p = Vec::with_capacity(65);
                        p.push(4);
                        p.extend_from_slice(&x);
                        p.extend_from_slice(&y);
                        PublicKey::P256(p)
                    }
                    _ => continue,
                },
                (Some("OKP"), Some("Ed25519")) => match b64(k, "x") {
                    Some(x) if x.len() == 32 => PublicKey::Ed25519(x),
                    _ => continue,
                },
                _ => continue,
            };
            keys.push(Jwk {
                kid: k.get("kid").and_then(Value::as_str).map(str::to_owned),
                alg: k.get("alg").and_then(Value::as_str).map(str::to_owned),
                key,
            });
        }
        if keys.is_empty() && !list.is_empty() {
            return Err(JwksError(
                "no usable key (RSA, EC P-256 or OKP Ed25519 signing keys)".into(),
            ));
        }
        Ok(Self { keys })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`.
    pub subject: String,
    /// The group claim's strings.
    pub groups: Vec<String>,
    /// The team claim's string: the bearer's team for limits, budgets and access lists.
    pub team: Option<String>,
}

/// Issuer, audience, group claim and leeway.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The required `iss`.
    pub issuer: String,
    /// The audience `aud` must name.
    pub audience: String,
    /// The claim holding groups (a string or an array of strings); dots descend into objects
    /// (`realm_access.roles`).
    pub group_claim: Option<String>,
    /// The claim naming the bearer's team (a string; dots descend), as a key's `--team` does:
    /// team limits, budgets and access lists then apply to token holders too.
    pub team_claim: Option<String>,
    /// Allowed clock skew for `exp` and `nbf`.
    pub leeway: Duration,
}

impl JwtConfig {
    /// A config with the default leeway (60 s) and no group claim.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            group_claim: None,
            team_claim: None,
            leeway: Duration::from_secs(60),
        }
    }
}

/// Verifies a token against `keys` at `now` (Unix seconds).
///
/// # Errors
///
/// See [`JwtError`].
pub fn verify(
    token: &str,
    keys: &JwkSet,
    config: &JwtConfig,
    now: u64,
) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    // A header or claims naming a key twice is refused: which one counts is the parser's
    // choice (`{"alg":"none","alg":"ES256"}`, a `team` claim twice: eighth red-team review).
    let object = |b: Vec<u8>| {
        agw_core::json::unique_keys(&b).ok()?;
        serde_json::from_slice::<Value>(&b).ok()
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(object)
        .ok_or(JwtError::Malformed)?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Malformed)?;
    let alg = Alg::parse(alg_name).ok_or_else(|| JwtError::Algorithm(alg_name.to_owned()))?;
    if header.get("crit").is_some() {
        // Extensions the token says must be understood: agw understands none (RFC 7515,
        // 4.1.11: refuse).
        return Err(JwtError::Malformed);
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let msg = &token.as_bytes()[..h.len() + 1 + p.len()];
    let mut candidates = keys
        .keys
        .iter()
        .filter(|k| k.alg() == alg)
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg_name))
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .peekable();
    if candidates.peek().is_none() {
        return Err(JwtError::UnknownKey);
    }
    if !candidates.any(|k| k.verify(msg, &sig)) {
        return Err(JwtError::Signature);
    }
    // Only a verified payload is parsed.
    let claims: Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(object)
        .ok_or(JwtError::Malformed)?;
    let leeway = config.leeway.as_secs();
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(JwtError::Expired)?;
    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    // A token issued in the future (beyond the leeway) is not valid yet either.
    for claim in ["nbf", "iat"] {
        if let Some(t) = claims.get(claim) {
            let t = numeric_date(t).ok_or(JwtError::NotYetValid)?;
            if now.saturating_add(leeway) < t {
                return Err(JwtError::NotYetValid);
            }
        }
    }
    if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err(JwtError::Issuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == config.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&config.audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| is_name(s) && !s.eq_ignore_ascii_case(super::ANONYMOUS))
        .ok_or(JwtError::Subject)?
        .to_owned();
    let at = |path: &str| {
        let mut v = Some(&claims);
        for seg in path.split('.') {
            v = v.and_then(|v| v.get(seg));
        }
        v
    };
    let team = config
        .team_claim
        .as_deref()
        .and_then(at)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(|t| {
            if is_name(t) {
                Ok(t.to_owned())
            } else {
                Err(JwtError::Team)
            }
        })
        .transpose()?;
    let mut groups = Vec::new();
    if let Some(path) = &config.group_claim {
        match at(path) {
            Some(Value::String(g)) => groups.push(g.clone()),
            Some(Value::Array(list)) => {
                groups.extend(list.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
    }
    Ok(Claims {
        subject,
        groups,
        team,
    })
}

/// Whether a claim is a name an identity can carry: 1 to 256 bytes, no control or invisible
/// formatting character (zero-width ones, bidi controls, the soft hyphen, the BOM), no
/// whitespace at either end. `"anonymous "` would read as callers without a credential in
/// logs and metrics while counting apart from them, and a line break would split a log line
/// (twenty-first session's red team).
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.trim() == s
        && !s.chars().any(|c| {
            c.is_control()
                || matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
        })
}

/// A NumericDate (RFC 7519: seconds, possibly with a fraction), in whole seconds (the
/// fraction dropped: under a second, well within the leeway).
fn numeric_date(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v
        .as_f64()
        .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)?;
    Some(f as u64)
}

/// Where a JWKS comes from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A local file, re-read on refresh.
    File(PathBuf),
    /// An `https://` URL (plain `http://` only to a loopback address), fetched on refresh.
    Url(http::Uri),
    /// A fixed set (tests, embedding).
    Static(Bytes),
}

/// How often [`Jwks::spawn_refresh`] looks at a key file for a change.
const FILE_POLL: Duration = Duration::from_secs(1);

/// How long [`Jwks::spawn_refresh`] waits at most between tries of a JWKS URL that has not
/// answered yet (from one second, doubling).
const UNAVAILABLE_RETRY_MAX: Duration = Duration::from_secs(60);

/// A JWKS kept current: the verifier agw uses. Refreshed by [`Jwks::refresh`] (call it on a
/// timer, e.g. with [`Jwks::spawn_refresh`]) and on an unknown `kid`, at most once per
/// `min_refresh`. A failed refresh (a missing file, a document that does not parse, a URL
/// that does not answer) keeps the last good set; a document that parses and holds no keys
/// is the set: every token is refused.
#[derive(Debug)]
pub struct Jwks {
    source: JwksSource,
    config: JwtConfig,
    keys: RwLock<Arc<JwkSet>>,
    /// A set was read: until then every token is refused as [`JwtError::Unavailable`].
    loaded: AtomicBool,
    /// The failure last logged, so that a source failing the same way is logged once.
    failure: Mutex<Option<String>>,
    last_refresh: Mutex<Option<Instant>>,
    min_refresh: Duration,
    fetch_timeout: Duration,
}

impl Jwks {
    fn new(source: JwksSource, config: JwtConfig) -> Arc<Self> {
        Arc::new(Self {
            source,
            config,
            keys: RwLock::default(),
            loaded: AtomicBool::new(false),
            failure: Mutex::new(None),
            last_refresh: Mutex::new(None),
            min_refresh: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
        })
    }

    /// Loads the set once from `source`.
    ///
    /// # Errors
    ///
    /// The source cannot be read or does not parse.
    pub async fn load(source: JwksSource, config: JwtConfig) -> Result<Arc<Self>, JwksError> {
        let jwks = Self::new(source, config);
        jwks.refresh().await?;
        Ok(jwks)
    }

    /// As [`Jwks::load`], except that a URL that does not answer is no error: it is logged
    /// (one line naming the URL and the cause), tokens are refused as
    /// [`JwtError::Unavailable`] until a fetch succeeds, and [`Jwks::spawn_refresh`] tries
    /// again with a bounded backoff. A gateway starts while its identity provider is down, and
    /// its client keys keep working (black-box review: `agw serve` exited).
    ///
    /// # Errors
    ///
    /// A file that cannot be read or does not parse, or a URL agw would never fetch (plain
    /// `http` beyond loopback).
    pub async fn start(source: JwksSource, config: JwtConfig) -> Result<Arc<Self>, JwksError> {
        if let JwksSource::Url(uri) = &source {
            check_jwks_url(uri)?;
            let jwks = Self::new(source, config);
            let _ = jwks.refresh_logged().await;
            return Ok(jwks);
        }
        Self::load(source, config).await
    }

    /// Whether a set has been read (a JWKS URL may not have answered yet).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The source as a log names it: the file, or the URL without credentials.
    fn shown(&self) -> String {
        match &self.source {
            JwksSource::File(path) => path.display().to_string(),
            JwksSource::Url(uri) => shown_url(&uri.to_string()),
            JwksSource::Static(_) => "(static)".to_owned(),
        }
    }

    /// Re-reads the source now.
    ///
    /// # Errors
    ///
    /// As [`Jwks::load`]; the last good set stays.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let doc = match &self.source {
            JwksSource::File(path) => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| JwksError(format!("{}: {e}", path.display())))?,
            JwksSource::Url(uri) => tokio::time::timeout(self.fetch_timeout, fetch(uri.clone()))
                .await
                .map_err(|_| JwksError(format!("{}: timed out", shown_url(&uri.to_string()))))??,
            JwksSource::Static(b) => b.clone(),
        };
        let set =
            JwkSet::parse(&doc).map_err(|e| JwksError(format!("{}: {}", self.shown(), e.0)))?;
        let had_keys = !self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if set.is_empty() && (had_keys || !self.is_loaded()) {
            // Said when the set becomes empty, not at every refresh that finds it so.
            tracing::warn!(
                target: "agw",
                "JWKS {} holds no keys: every JWT is refused until keys are added",
                self.shown()
            );
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// [`Jwks::refresh`], logging a failure once (until the source reads again or fails
    /// differently), and the recovery.
    async fn refresh_logged(&self) -> Result<(), JwksError> {
        let r = self.refresh().await;
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        match &r {
            Err(e) if failure.as_deref() != Some(&e.0) => {
                if self.is_loaded() {
                    tracing::warn!(
                        target: "agw",
                        "JWKS not reloaded, the keys loaded before stay in use: {}",
                        e.0
                    );
                } else {
                    tracing::warn!(
                        target: "agw",
                        "JWKS unavailable, JWTs are refused until it is fetched (retrying): {}",
                        e.0
                    );
                }
                *failure = Some(e.0.clone());
            }
            Err(_) => {}
            Ok(()) => {
                if failure.take().is_some() {
                    tracing::info!(target: "agw", "JWKS {} read again", self.shown());
                }
            }
        }
        r
    }

    /// Refreshes every `every` in a background task (needs a tokio runtime). A file is also
    /// re-read within a second of changing (its size or modification time), as the key file
    /// is: a key removed from it stops verifying tokens then, not at the next period (tenth
    /// red-team review: for up to ten minutes). A URL not fetched yet is tried again after a
    /// second, then twice as long each time, up to a minute. A failure is logged once.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let file = match &self.source {
            JwksSource::File(path) => Some(path.clone()),
            _ => None,
        };
        let stamp = |path: &PathBuf| {
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.len(), m.modified().ok()))
        };
        // As the file stands now, not when the task first runs.
        let mut seen = file.as_ref().and_then(stamp);
        let mut backoff = Duration::from_secs(1);
        tokio::spawn(async move {
            let mut since = Duration::ZERO;
            loop {
                let loaded = match weak.upgrade() {
                    Some(jwks) => jwks.is_loaded(),
                    None => return,
                };
                let tick = if file.is_some() {
                    FILE_POLL.min(every)
                } else if !loaded {
                    backoff.min(every)
                } else {
                    every
                };
                tokio::time::sleep(tick).await;
                since += tick;
                let Some(jwks) = weak.upgrade() else { return };
                let now = file.as_ref().and_then(stamp);
                if since >= every || now != seen || !loaded {
                    since = Duration::ZERO;
                    // A change that did not read (a file being written) is tried again at
                    // the next look.
                    if jwks.refresh_logged().await.is_ok() {
                        seen = now;
                        backoff = Duration::from_secs(1);
                    } else {
                        backoff = (backoff * 2).min(UNAVAILABLE_RETRY_MAX);
                    }
                }
            }
        })
    }

    /// Verifies a token; an unknown key triggers one refresh (rate-limited) and a retry.
    ///
    /// # Errors
    ///
    /// See [`JwtError`].
    pub fn verify<'a>(
        &'a self,
        token: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Claims, JwtError>> {
        Box::pin(async move {
            match self.verify_now(token, now) {
                Err(JwtError::UnknownKey | JwtError::Unavailable) if self.may_refresh() => {
                    let _ = self.refresh_logged().await;
                    self.verify_now(token, now)
                }
                r => r,
            }
        })
    }

    fn verify_now(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        if !self.is_loaded() {
            return Err(JwtError::Unavailable);
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        verify(token, &keys, &self.config, now)
    }

    fn may_refresh(&self) -> bool {
        !matches!(self.source, JwksSource::Static(_))
            && self
                .last_refresh
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none_or(|t| t.elapsed() >= self.min_refresh)
    }
}

/// Whether agw fetches a JWKS from `uri`: `https://`, or plain `http://` to a loopback
/// address only (a key set fetched in the clear could be anyone's).
///
/// # Errors
///
/// Any other scheme, named with the URL (its credentials hidden).
pub fn check_jwks_url(uri: &http::Uri) -> Result<(), JwksError> {
    let loopback = uri.host().is_some_and(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(JwksError(format!(
            "{}: only https URLs (or http to a loopback address)",
            shown_url(&uri.to_string())
        ))),
    }
}

async fn fetch(uri: http::Uri) -> Result<Bytes, JwksError> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let err =
        |e: &dyn std::fmt::Display| JwksError(format!("{}: {e}", shown_url(&uri.to_string())));
    check_jwks_url(&uri)?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    // The root cause (connection refused, a name that does not resolve, a certificate
    // refused), not hyper's "client error (Connect)".
    let res = client
        .get(uri.clone())
        .await
        .map_err(|e| err(&format_args!("cannot fetch: {}", root_cause(&e))))?;
    if !res.status().is_success() {
        return Err(err(&res.status()));
    }
    let body = Limited::new(res.into_body(), MAX_JWKS_LEN)
        .collect()
        .await
        .map_err(|e| err(&e))?;
    Ok(body.to_bytes())
}

/// The innermost error of `e`'s chain, which names what went wrong.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod shown_tests {
    #[test]
    fn a_jwks_url_in_an_error_has_no_credentials() {
        let uri: http::Uri = "https://jwksuser:jwkspassw0rd@idp.example:8443/jwks?access_token=tok"
            .parse()
            .unwrap();
        let s = agw_core::provider::shown_url(&uri.to_string());
        assert_eq!(s, "https://***@idp.example:8443/jwks?…");
    }
}

#[cfg(test)]
mod tests;
