//! JWT verification: every accepted algorithm, and every refusal the auth layer relies on.
#![cfg(feature = "team")]

#[path = "team_support/mod.rs"]
mod support;

use agw_tower::auth::jwt::{self, JwkSet, JwtConfig, JwtError};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

const NOW: u64 = 1_800_000_000;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

struct Keys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
    jwks: serde_json::Value,
}

fn keys() -> Keys {
    let rng = SystemRandom::new();
    let der = STANDARD
        .decode(include_str!("fixtures/jwt_rsa2048.der.b64").trim())
        .unwrap();
    let rsa = RsaKeyPair::from_der(&der).unwrap();
    let ec_pk8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        ec_pk8.as_ref(),
        &rng,
    )
    .unwrap();
    let ed_pk8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(ed_pk8.as_ref()).unwrap();
    let comps = signature::RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let point = ec.public_key().as_ref();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64(&comps.n), "e": b64(&comps.e)},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])},
        {"kty": "OKP", "kid": "d1", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())},
        {"kty": "oct", "kid": "h1", "k": b64(b"a shared secret")},
    ]});
    Keys { rsa, ec, ed, jwks }
}

fn claims() -> serde_json::Value {
    json!({"iss": "https://idp.example", "aud": ["agw", "other"], "sub": "alice@example.com",
           "exp": NOW + 300, "nbf": NOW - 10, "groups": ["eng", "platform"]})
}

fn config() -> JwtConfig {
    let mut c = JwtConfig::new("https://idp.example", "agw");
    c.group_claim = Some("groups".into());
    c
}

fn token(k: &Keys, alg: &str, kid: &str, claims: &serde_json::Value) -> String {
    token_with(k, json!({"alg": alg, "typ": "JWT", "kid": kid}), claims)
}

fn token_with(k: &Keys, header: serde_json::Value, claims: &serde_json::Value) -> String {
    let alg = header["alg"].as_str().unwrap().to_owned();
    token_raw(k, &alg, &header.to_string(), &claims.to_string())
}

/// A token signed with `alg` over the header and claims exactly as written.
fn token_raw(k: &Keys, alg: &str, header: &str, claims: &str) -> String {
    let msg = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let rng = SystemRandom::new();
    let sig = match alg {
        "RS256" => {
            let mut sig = vec![0; k.rsa.public().modulus_len()];
            k.rsa
                .sign(&signature::RSA_PKCS1_SHA256, &rng, msg.as_bytes(), &mut sig)
                .unwrap();
            sig
        }
        "ES256" => k.ec.sign(&rng, msg.as_bytes()).unwrap().as_ref().to_vec(),
        "EdDSA" => k.ed.sign(msg.as_bytes()).as_ref().to_vec(),
        _ => unreachable!(),
    };
    format!("{msg}.{}", b64(&sig))
}

fn set(k: &Keys) -> JwkSet {
    JwkSet::parse(k.jwks.to_string().as_bytes()).unwrap()
}

#[test]
fn each_algorithm_verifies_and_yields_subject_and_groups() {
    let k = keys();
    let set = set(&k);
    assert_eq!(set.len(), 3, "the oct key is skipped");
    for (alg, kid) in [("RS256", "r1"), ("ES256", "e1"), ("EdDSA", "d1")] {
        let t = token(&k, alg, kid, &claims());
        let c = jwt::verify(&t, &set, &config(), NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(c.subject, "alice@example.com");
        assert_eq!(c.groups, ["eng", "platform"]);
    }
}

/// `team_claim` gives a token holder a team, as a key's `--team` does, so team limits,
/// budgets and access lists hold for JWT callers too (found by the third red-team review:
/// without it, no team limit ever applied to them).
#[test]
fn the_team_claim_names_the_team() {
    let k = keys();
    let set = set(&k);
    let mut c = claims();
    c["org"] = json!({"team": "platform"});
    let t = token(&k, "RS256", "r1", &c);
    let mut with = config();
    with.team_claim = Some("org.team".into());
    assert_eq!(
        jwt::verify(&t, &set, &with, NOW).unwrap().team.as_deref(),
        Some("platform")
    );
    assert_eq!(jwt::verify(&t, &set, &config(), NOW).unwrap().team, None);
    // Not a string, or empty: no team.
    for v in [json!(["platform"]), json!("")] {
        let mut c = claims();
        c["org"] = json!({"team": v});
        let t = token(&k, "RS256", "r1", &c);
        assert_eq!(jwt::verify(&t, &set, &with, NOW).unwrap().team, None);
    }
}

#[test]
fn alg_none_is_refused() {
    let k = keys();
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let t = format!("{header}.{}.", b64(claims().to_string().as_bytes()));
    assert_eq!(
        jwt::verify(&t, &set(&k), &config(), NOW),
        Err(JwtError::Algorithm("none".into()))
    );
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    // The classic confusion: an HMAC keyed with the server's public key material.
    let k = keys();
    let comps = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.rsa.public());
    let header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"r1"}"#);
    let msg = format!("{header}.{}", b64(claims().to_string().as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &comps.n);
    let sig = ring::hmac::sign(&key, msg.as_bytes());
    let t = format!("{msg}.{}", b64(sig.as_ref()));
    assert_eq!(
        jwt::verify(&t, &set(&k), &config(), NOW),
        Err(JwtError::Algorithm("HS256".into()))
    );
}

#[test]
fn a_header_algorithm_that_does_not_match_the_key_is_refused() {
    let k = keys();
    // An EdDSA signature presented as ES256 for the Ed25519 key's kid: no ES256 key has it.
    let t = token(&k, "EdDSA", "d1", &claims());
    let (h, rest) = t.split_once('.').unwrap();
    let _ = h;
    let forged = format!("{}.{rest}", b64(br#"{"alg":"ES256","kid":"d1"}"#));
    assert_eq!(
        jwt::verify(&forged, &set(&k), &config(), NOW),
        Err(JwtError::UnknownKey)
    );
    // An RS256 token whose kid names the EC key.
    let t = token(&k, "RS256", "e1", &claims());
    assert_eq!(
        jwt::verify(&t, &set(&k), &config(), NOW),
        Err(JwtError::UnknownKey)
    );
}

#[test]
fn tampered_payload_and_wrong_key_fail_the_signature() {
    let k = keys();
    let t = token(&k, "ES256", "e1", &claims());
    let parts: Vec<&str> = t.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("mallory");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        jwt::verify(&forged, &set(&k), &config(), NOW),
        Err(JwtError::Signature)
    );
    // Signed by a key the JWKS does not hold.
    let other = keys();
    let t = token(&other, "EdDSA", "d1", &claims());
    assert_eq!(
        jwt::verify(&t, &set(&k), &config(), NOW),
        Err(JwtError::Signature)
    );
}

#[test]
fn time_issuer_audience_and_subject_are_checked() {
    let k = keys();
    let set = set(&k);
    let leeway = config().leeway.as_secs();
    let cases: Vec<(serde_json::Value, Result<(), JwtError>)> = vec![
        (json!({"exp": NOW - leeway - 1}), Err(JwtError::Expired)),
        (json!({"exp": NOW - 5}), Ok(())), // within the leeway
        (json!({"exp": null}), Err(JwtError::Expired)),
        (
            json!({"nbf": NOW + leeway + 10}),
            Err(JwtError::NotYetValid),
        ),
        (json!({"nbf": NOW + 5}), Ok(())),
        // Issued in the future (red-team review: it was accepted).
        (
            json!({"iat": NOW + leeway + 10}),
            Err(JwtError::NotYetValid),
        ),
        (json!({"iat": NOW - 100}), Ok(())),
        // NumericDates may carry a fraction (RFC 7519).
        (
            json!({"iat": (NOW - 100) as f64 + 0.5, "exp": (NOW + 600) as f64 + 0.25}),
            Ok(()),
        ),
        (
            json!({"iss": "https://evil.example"}),
            Err(JwtError::Issuer),
        ),
        (json!({"aud": "someone-else"}), Err(JwtError::Audience)),
        (json!({"aud": "agw"}), Ok(())),
        (json!({"sub": ""}), Err(JwtError::Subject)),
        // The name of callers without a credential: it would share their limits (sixth review).
        (json!({"sub": "anonymous"}), Err(JwtError::Subject)),
        (json!({"sub": "Anonymous"}), Err(JwtError::Subject)),
        // Names that read as another in a log or split its line (twenty-first session's red
        // team: `anonymous ` was an identity of its own that logged as anonymous).
        (json!({"sub": "anonymous "}), Err(JwtError::Subject)),
        (json!({"sub": " alice"}), Err(JwtError::Subject)),
        (json!({"sub": "\u{200b}anonymous"}), Err(JwtError::Subject)),
        (json!({"sub": "alice\nuser=admin"}), Err(JwtError::Subject)),
        (json!({"sub": "x".repeat(257)}), Err(JwtError::Subject)),
        // What identity providers issue.
        (json!({"sub": "auth0|64f1c2e9a1b2c3d4e5f60718"}), Ok(())),
        (json!({"sub": "alice@example.com"}), Ok(())),
        (json!({"sub": "Zoë Müller"}), Ok(())),
    ];
    for (patch, want) in cases {
        let mut c = claims();
        for (key, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(key);
            } else {
                c[key] = v.clone();
            }
        }
        let t = token(&k, "EdDSA", "d1", &c);
        let got = jwt::verify(&t, &set, &config(), NOW).map(drop);
        assert_eq!(got, want, "{patch}");
    }
}

#[test]
fn malformed_tokens_and_jwks_are_refused() {
    let k = keys();
    for t in ["", "a.b", "a.b.c.d", "!!!.e30.e30", &"x".repeat(20_000)] {
        assert!(jwt::verify(t, &set(&k), &config(), NOW).is_err(), "{t:.20}");
    }
    assert!(JwkSet::parse(b"{}").is_err());
    assert!(JwkSet::parse(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
}

#[tokio::test]
async fn jwks_refreshes_from_its_file_on_an_unknown_key() {
    let dir = support::temp_dir("jwks");
    let path = dir.join("jwks.json");
    let first = keys();
    std::fs::write(&path, first.jwks.to_string()).unwrap();
    let jwks = jwt::Jwks::load(jwt::JwksSource::File(path.clone()), config())
        .await
        .unwrap();
    let t = token(&first, "EdDSA", "d1", &claims());
    assert!(jwks.verify(&t, NOW).await.is_ok());
    // The IdP rotates: a new key with a new kid.
    let second = keys();
    let mut doc = second.jwks.clone();
    doc["keys"][2]["kid"] = json!("d2");
    std::fs::write(&path, doc.to_string()).unwrap();
    let t2 = token(&second, "EdDSA", "d2", &claims());
    // The first load counts as a refresh: within the minimum interval, no second one.
    assert_eq!(jwks.verify(&t2, NOW).await, Err(JwtError::UnknownKey));
    jwks.refresh().await.unwrap();
    assert!(jwks.verify(&t2, NOW).await.is_ok());
}

/// Found by the tenth red-team review: a key removed from the JWKS file verified tokens until
/// the next refresh period (ten minutes by default). The file is re-read within a second of
/// changing, as the key file is; the period still applies to an unchanged one.
#[tokio::test]
async fn a_key_removed_from_the_jwks_file_stops_verifying_within_seconds() {
    let dir = support::temp_dir("jwks-watch");
    let path = dir.join("jwks.json");
    let k = keys();
    std::fs::write(&path, k.jwks.to_string()).unwrap();
    let jwks = jwt::Jwks::load(jwt::JwksSource::File(path.clone()), config())
        .await
        .unwrap();
    let refresher = jwks.spawn_refresh(std::time::Duration::from_secs(600));
    let t = token(&k, "EdDSA", "d1", &claims());
    assert!(jwks.verify(&t, NOW).await.is_ok());
    // The Ed25519 key is revoked: removed from the file.
    let mut doc = k.jwks.clone();
    doc["keys"].as_array_mut().unwrap().remove(2);
    std::fs::write(&path, doc.to_string()).unwrap();
    let mut got = Ok(());
    for _ in 0..60 {
        got = jwks.verify(&t, NOW).await.map(drop);
        if got.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got, Err(JwtError::UnknownKey));
    // The others still verify.
    assert!(
        jwks.verify(&token(&k, "ES256", "e1", &claims()), NOW)
            .await
            .is_ok()
    );
    refresher.abort();
}

#[tokio::test]
async fn the_authenticator_takes_bearer_jwts_and_reports_refusals() {
    use agw_tower::auth::{Authenticator, IdentityKind};
    use std::sync::{Arc, Mutex};
    let k = keys();
    let jwks = jwt::Jwks::load(jwt::JwksSource::Static(k.jwks.to_string().into()), config())
        .await
        .unwrap();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = reasons.clone();
    let auth = Authenticator::new()
        .jwt(jwks)
        .on_failure(move |e| r.lock().unwrap().push(e.reason()));
    assert!(auth.requires_credentials());
    let now = agw_tower::auth::key::unix_now();
    let mut c = claims();
    c["exp"] = json!(now + 300);
    c["nbf"] = json!(now - 10);
    let mut h = http::HeaderMap::new();
    let bearer = format!("Bearer {}", token(&k, "ES256", "e1", &c));
    h.insert("authorization", bearer.parse().unwrap());
    let who = auth.authenticate_reported(&h, now).await.unwrap();
    assert_eq!(&*who.name, "alice@example.com");
    assert_eq!(who.kind, IdentityKind::Jwt);
    assert_eq!(who.groups, ["eng", "platform"]);
    // Expired: refused, reported as a JWT failure.
    c["exp"] = json!(now - 3600);
    let bearer = format!("Bearer {}", token(&k, "ES256", "e1", &c));
    h.insert("authorization", bearer.parse().unwrap());
    assert!(auth.authenticate_reported(&h, now).await.is_err());
    h.clear();
    assert!(auth.authenticate_reported(&h, now).await.is_err());
    assert_eq!(*reasons.lock().unwrap(), ["jwt", "missing"]);
}

/// Red-team rt4: a token with a segment too many (a valid JWT and `.x`), or a JWE, was taken
/// for no credential ("no client credential"), and for an anonymous caller where requests
/// without one are allowed. It is a malformed token: refused as an invalid credential.
#[tokio::test]
async fn a_token_with_the_wrong_number_of_segments_is_refused_as_malformed() {
    use agw_tower::auth::{AuthError, Authenticator};
    let k = keys();
    let now = agw_tower::auth::key::unix_now();
    let mut c = claims();
    c["exp"] = json!(now + 300);
    c["nbf"] = json!(now - 10);
    let good = token(&k, "ES256", "e1", &c);
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn";
    for allow in [false, true] {
        let jwks = jwt::Jwks::load(jwt::JwksSource::Static(k.jwks.to_string().into()), config())
            .await
            .unwrap();
        let auth = Authenticator::new().jwt(jwks).allow_unauthenticated(allow);
        for bad in [format!("{good}.x"), jwe.to_owned()] {
            for (header, value) in [
                ("authorization", format!("Bearer {bad}")),
                ("x-api-key", bad.clone()),
            ] {
                let mut h = http::HeaderMap::new();
                h.insert(header, value.parse().unwrap());
                let e = auth.authenticate(&h, now).await.unwrap_err();
                assert!(
                    matches!(e, AuthError::Jwt(JwtError::Malformed)),
                    "{allow} {header}: {e}"
                );
                assert_eq!(e.cause(), "jwt_malformed");
                // And never forwarded.
                auth.strip(&mut h);
                assert!(h.is_empty(), "{allow} {header}");
            }
        }
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {good}").parse().unwrap());
        assert!(auth.authenticate(&h, now).await.is_ok());
    }
}

#[tokio::test]
async fn jwks_from_a_url_and_only_https_beyond_loopback() {
    let k = keys();
    let doc = k.jwks.to_string();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { doc }
        }),
    );
    let addr = support::serve(app).await;
    let url = format!("http://{addr}/.well-known/jwks.json")
        .parse()
        .unwrap();
    let jwks = jwt::Jwks::load(jwt::JwksSource::Url(url), config())
        .await
        .unwrap();
    let t = token(&k, "RS256", "r1", &claims());
    assert!(jwks.verify(&t, NOW).await.is_ok());
    // Plain HTTP to anything but loopback is refused before any connection is made.
    let url = "http://idp.example/.well-known/jwks.json".parse().unwrap();
    let e = jwt::Jwks::load(jwt::JwksSource::Url(url), config())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only https"), "{e}");
    // A missing document is an error naming the URL.
    let url: http::Uri = format!("http://{addr}/nothing").parse().unwrap();
    let e = jwt::Jwks::load(jwt::JwksSource::Url(url), config())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/nothing"), "{e}");
}

/// Found by the red-team review: a token whose `crit` header names extensions agw does not
/// understand was accepted (RFC 7515, 4.1.11: it must be refused).
#[test]
fn a_critical_header_extension_is_refused() {
    let k = keys();
    let t = token_with(
        &k,
        json!({"alg": "EdDSA", "kid": "d1", "crit": ["exp-policy"], "exp-policy": "lax"}),
        &claims(),
    );
    assert_eq!(
        jwt::verify(&t, &set(&k), &config(), NOW),
        Err(JwtError::Malformed)
    );
}

/// A header or claims naming a key twice are refused: which one counts is a parser's choice
/// (eighth red-team review: the last `team` won, and `{"alg":"none","alg":"EdDSA"}` passed).
#[test]
fn a_key_named_twice_is_refused() {
    let k = keys();
    let body = claims().to_string();
    let ok = token_raw(&k, "EdDSA", r#"{"alg":"EdDSA","kid":"d1"}"#, &body);
    assert!(jwt::verify(&ok, &set(&k), &config(), NOW).is_ok());
    let twice_team = format!(
        r#"{},"team":"other","team":"platform"}}"#,
        &body[..body.len() - 1]
    );
    let nested = format!(
        r#"{},"org":{{"team":"a","team":"b"}}}}"#,
        &body[..body.len() - 1]
    );
    for (header, claims) in [
        (r#"{"alg":"none","alg":"EdDSA","kid":"d1"}"#, body.as_str()),
        (r#"{"alg":"EdDSA","kid":"d1"}"#, twice_team.as_str()),
        (r#"{"alg":"EdDSA","kid":"d1"}"#, nested.as_str()),
    ] {
        let t = token_raw(&k, "EdDSA", header, claims);
        assert_eq!(
            jwt::verify(&t, &set(&k), &config(), NOW),
            Err(JwtError::Malformed),
            "{header} {claims}"
        );
    }
}

/// A team claim that is no name (a control character, blanks at an end) refuses the token
/// rather than leaving its bearer without a team (and so outside the team's budget).
#[test]
fn a_team_claim_that_is_no_name_is_refused() {
    let k = keys();
    let mut config = config();
    config.team_claim = Some("team".into());
    for (team, want) in [
        (json!("platform"), Ok(Some("platform".to_owned()))),
        (json!("platform\n"), Err(JwtError::Team)),
        (json!(" platform"), Err(JwtError::Team)),
    ] {
        let mut c = claims();
        c["team"] = team.clone();
        let t = token(&k, "EdDSA", "d1", &c);
        let got = jwt::verify(&t, &set(&k), &config, NOW).map(|c| c.team);
        assert_eq!(got, want, "{team}");
    }
}
