//! Signed test JWTs: the fixture keys (tests/fixtures/jwt), a JWKS server
//! for them, and `sign` for tokens from the test issuer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The issuer `sign` puts in `iss` (audience `tollgate`).
pub(crate) const ISSUER: &str = "https://idp.test.example";

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name),
    )
    .unwrap()
}

/// Serves the fixture JWKS at /jwks.
pub(crate) async fn jwks_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = String::from_utf8(fixture("jwks.json")).unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

pub(crate) fn sign(alg: Algorithm, claims: Value) -> String {
    let (kid, key) = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::RS384 => (
            "test-rsa",
            EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap(),
        ),
        Algorithm::ES256 => (
            "test-ec",
            EncodingKey::from_ec_pem(&fixture("ec.pem")).unwrap(),
        ),
        _ => (
            "test-ed",
            EncodingKey::from_ed_pem(&fixture("ed.pem")).unwrap(),
        ),
    };
    let now = jsonwebtoken::get_current_timestamp();
    let mut c = json!({"iss": ISSUER, "aud": "tollgate", "exp": now + 600, "iat": now});
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &c, &key).unwrap()
}
