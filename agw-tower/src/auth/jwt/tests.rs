//! A JWKS kept current: an empty set withdraws every key; a source that fails keeps the last
//! good set; a URL that does not answer at start refuses tokens until it does (black-box
//! review: `{"keys":[]}` was ignored, and an unreachable URL stopped `agw serve`).

use super::*;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::time::{SystemTime, UNIX_EPOCH};

struct Signer {
    key: Ed25519KeyPair,
    jwks: String,
}

fn signer() -> Signer {
    let rng = ring::rand::SystemRandom::new();
    let pk8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap();
    let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
    let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"d1","x":"{x}"}}]}}"#);
    Signer { key, jwks }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Signer {
    fn token(&self) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"d1"}"#);
        let claims = format!(
            r#"{{"iss":"i","aud":"a","sub":"alice","exp":{}}}"#,
            now() + 600
        );
        let msg = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let sig = URL_SAFE_NO_PAD.encode(self.key.sign(msg.as_bytes()));
        format!("{msg}.{sig}")
    }
}

fn config() -> JwtConfig {
    JwtConfig::new("i", "a")
}

const EMPTY: &str = r#"{"keys":[]}"#;

#[test]
fn an_empty_key_list_is_a_set_and_other_shapes_are_errors() {
    assert!(JwkSet::parse(EMPTY.as_bytes()).unwrap().is_empty());
    for doc in [
        "",
        "{}",
        r#"{"keys":{}}"#,
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
    ] {
        assert!(JwkSet::parse(doc.as_bytes()).is_err(), "{doc}");
    }
}

/// Waits up to five seconds for `verify` to give `want`.
async fn until(jwks: &Jwks, token: &str, want: Result<(), JwtError>) {
    let mut got = Ok(());
    for _ in 0..50 {
        got = jwks.verify(token, now()).await.map(drop);
        if got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("got {got:?}, want {want:?}");
}

#[tokio::test]
async fn a_jwks_file_emptied_refuses_every_token_and_a_broken_one_keeps_the_last_set() {
    let dir = std::env::temp_dir().join(format!("agw-jwks-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    let k = signer();
    let t = k.token();
    std::fs::write(&path, &k.jwks).unwrap();
    let jwks = Jwks::start(JwksSource::File(path.clone()), config())
        .await
        .unwrap();
    let refresher = jwks.spawn_refresh(Duration::from_secs(600));
    until(&jwks, &t, Ok(())).await;
    // Every key withdrawn: every token refused.
    std::fs::write(&path, EMPTY).unwrap();
    until(&jwks, &t, Err(JwtError::UnknownKey)).await;
    // The key back, then a hand edit that does not parse: the key stays.
    std::fs::write(&path, &k.jwks).unwrap();
    until(&jwks, &t, Ok(())).await;
    std::fs::write(&path, "{not json").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(jwks.verify(&t, now()).await.map(drop), Ok(()));
    // Removed: the key stays too (as the key file's keys do for a file that does not read).
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(jwks.verify(&t, now()).await.map(drop), Ok(()));
    refresher.abort();
    // A file that holds no keys at start is a set too: a restart keeps every key withdrawn.
    std::fs::write(&path, EMPTY).unwrap();
    let jwks = Jwks::start(JwksSource::File(path.clone()), config())
        .await
        .unwrap();
    assert_eq!(
        jwks.verify(&t, now()).await.map(drop),
        Err(JwtError::UnknownKey)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A JWKS server whose answer the test changes: a status and a body.
async fn idp(doc: Arc<Mutex<(u16, String)>>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (status, body) = doc.lock().unwrap().clone();
            async move { (http::StatusCode::from_u16(status).unwrap(), body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn a_jwks_url_serving_no_keys_refuses_every_token() {
    let k = signer();
    let t = k.token();
    let doc = Arc::new(Mutex::new((200, k.jwks.clone())));
    let addr = idp(doc.clone()).await;
    let url: http::Uri = format!("http://{addr}/jwks").parse().unwrap();
    let jwks = Jwks::start(JwksSource::Url(url), config()).await.unwrap();
    assert_eq!(jwks.verify(&t, now()).await.map(drop), Ok(()));
    *doc.lock().unwrap() = (200, EMPTY.to_owned());
    jwks.refresh().await.unwrap();
    assert_eq!(
        jwks.verify(&t, now()).await.map(drop),
        Err(JwtError::UnknownKey)
    );
    // A failed fetch, or a document in another shape, keeps the set it had.
    *doc.lock().unwrap() = (200, k.jwks.clone());
    jwks.refresh().await.unwrap();
    for broken in [(500, String::new()), (200, "<html>".to_owned())] {
        *doc.lock().unwrap() = broken;
        assert!(jwks.refresh().await.is_err());
        assert_eq!(jwks.verify(&t, now()).await.map(drop), Ok(()));
    }
}

#[tokio::test]
async fn a_jwks_url_that_does_not_answer_at_start_is_retried() {
    let k = signer();
    let t = k.token();
    let doc = Arc::new(Mutex::new((503, String::new())));
    let addr = idp(doc.clone()).await;
    let url: http::Uri = format!("http://{addr}/jwks").parse().unwrap();
    // `load` refuses; `start` starts, refusing tokens until the first fetch.
    assert!(
        Jwks::load(JwksSource::Url(url.clone()), config())
            .await
            .is_err()
    );
    let jwks = Jwks::start(JwksSource::Url(url), config()).await.unwrap();
    assert!(!jwks.is_loaded());
    assert_eq!(
        jwks.verify(&t, now()).await.map(drop),
        Err(JwtError::Unavailable)
    );
    let refresher = jwks.spawn_refresh(Duration::from_secs(600));
    *doc.lock().unwrap() = (200, k.jwks.clone());
    until(&jwks, &t, Ok(())).await;
    refresher.abort();
    // A URL agw would never fetch is still an error at start.
    let plain: http::Uri = "http://idp.example/jwks".parse().unwrap();
    assert!(Jwks::start(JwksSource::Url(plain), config()).await.is_err());
}
