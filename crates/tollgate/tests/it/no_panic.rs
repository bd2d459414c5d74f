//! Random and adversarial input through the parsers that see untrusted
//! bytes: request bodies, SSE streams, auth headers. None may panic.

use rand::{Rng, SeedableRng};
use tollgate::config::Endpoint;
use tollgate::pipeline::SseSplitter;

fn corpus() -> Vec<Vec<u8>> {
    let seeds: &[&[u8]] = &[
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        br#"{"model":"m","prompt":["a",1,{"x":null}],"stream_options":{"include_usage":true}}"#,
        br#"{"model":"m","input":[[1,2,3]],"encoding_format":"base64"}"#,
        b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n",
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":1e99}}\r\n\r\n",
        br#"{"variables":{"a":"{{b}}","b":[1]},"stream":true,"max_tokens":3}"#,
        br#"{"object":"chat.completion","choices":[{"index":0,"message":{"content":"x","tool_calls":[{"id":"t"}]},"finish_reason":"stop"}],"usage":{}}"#,
        b"{\"provider\":\"p\",\"upstream_model\":\"m\",\"prompt_tokens\":1,\"completion_tokens\":2,\"cost\":0.5}\n{\"choices\":[]}",
    ];
    seeds.iter().map(|s| s.to_vec()).collect()
}

fn mutate(rng: &mut impl Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..8) {
        match rng.random_range(0..4) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            1 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v.truncate(i);
            }
            2 => {
                let i = rng.random_range(0..=v.len());
                let b = *b"{}[]\":,\n\r\\u0000data: "
                    .get(rng.random_range(0..22))
                    .unwrap_or(&b'x');
                v.insert(i, b);
            }
            _ => {
                let i = rng.random_range(0..=v.len());
                let j = rng.random_range(0..=v.len());
                let (a, b) = (i.min(j), i.max(j));
                let piece = v[a..b].to_vec();
                v.extend_from_slice(&piece);
            }
        }
    }
    v
}

#[test]
fn parsers_never_panic_on_mutated_input() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x70116a7e);
    let corpus = corpus();
    let prompts: tollgate::config::PromptsConfig = serde_json::from_value(serde_json::json!({
        "templates": [{"name": "t", "model": "m", "messages": [{"role": "user", "content": "{{a}} and {{ b }}"}]}]
    }))
    .unwrap();
    let templates = tollgate::prompts::Templates::build(&prompts).unwrap();
    let call = tollgate::prompts::PromptCall {
        name: "t".into(),
        version: None,
        label: None,
    };
    let template = templates.get(&call).unwrap();
    for round in 0..20_000 {
        let input = mutate(&mut rng, &corpus[round % corpus.len()]);
        // Prompt-template calls, stored cache entries (Redis bytes), their
        // SSE replay, and upstream events assembled into a cache entry.
        let _ = template.expand(&input);
        let _ = tollgate::cache::Entry::decode(&input);
        let _ = tollgate::cache::to_sse(&input, round % 2 == 0, true);
        let mut fill = tollgate::cache::StreamFill::new(Endpoint::Chat);
        fill.push(&String::from_utf8_lossy(&input));
        let _ = fill.finish(1, 1);
        for ep in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
            let _ = tollgate::pipeline::parse_request(ep, &input);
        }
        let mut s = SseSplitter::default();
        let mut at = 0;
        while at < input.len() {
            let n = rng.random_range(1..=input.len() - at);
            for ev in s.push(&input[at..at + n]) {
                let _ = ev.data();
            }
            at += n;
        }
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_bytes(&input[..input.len().min(64)]) {
            headers.insert(http::header::AUTHORIZATION, v.clone());
            headers.insert("x-api-key", v);
        }
        let _ = tollgate::auth::presented_key(&headers);
    }
}

/// Bearer tokens: the JWT shape check, header/claims parsing and the full
/// offline verification path against real keys, fed mutated valid tokens and
/// random segments. Nothing may panic; nothing mutated may verify.
#[test]
fn token_parsing_never_panics() {
    use std::sync::Arc;
    use std::time::Duration;

    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use tollgate::auth::jwks::{JwksCache, KeySet};
    use tollgate::auth::{jwt, Issuers, OidcIssuer};
    use tollgate::config::{ClaimsConfig, OidcConfig};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let cfg = OidcConfig {
        issuer: "https://idp.fuzz".into(),
        audiences: vec!["tollgate".into()],
        discovery: false,
        jwks_url: Some("http://127.0.0.1:9/jwks".into()),
        algorithms: ["RS256", "PS256", "ES256", "EdDSA"]
            .map(String::from)
            .to_vec(),
        leeway: Duration::from_secs(60),
        refresh: Duration::from_secs(600),
        unknown_kid_refresh: Duration::from_secs(10),
        claims: ClaimsConfig {
            groups: Some("realm_access.roles".into()),
            tenant: Some("org.tenant".into()),
            kind_claim: Some("gty".into()),
            ..ClaimsConfig::default()
        },
    };
    let cache = Arc::new(JwksCache::new(OidcIssuer::source(&cfg), &Default::default()).unwrap());
    cache.install(KeySet::parse(&read("jwks.json"), 1).unwrap().0);
    let mut issuers = Issuers::default();
    issuers.insert(OidcIssuer::new(&cfg, cache).unwrap());

    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": "https://idp.fuzz", "aud": ["tollgate"], "sub": "s",
        "exp": now + 600, "realm_access": {"roles": ["a", 1, null]}, "org": {"tenant": 7}, "gty": "x"});
    let mut seeds = Vec::new();
    for (alg, kid, key) in [
        (
            Algorithm::RS256,
            "test-rsa",
            EncodingKey::from_rsa_pem(&read("rsa.pem")).unwrap(),
        ),
        (
            Algorithm::ES256,
            "test-ec",
            EncodingKey::from_ec_pem(&read("ec.pem")).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            "test-ed",
            EncodingKey::from_ed_pem(&read("ed.pem")).unwrap(),
        ),
    ] {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        let t = jsonwebtoken::encode(&h, &claims, &key).unwrap();
        assert!(
            issuers.verify_offline(&t).is_ok(),
            "seed {alg:?} must verify"
        );
        seeds.push(t.into_bytes());
    }
    seeds.push(b"eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lkcC5mdXp6In0.".to_vec());

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x70c3e5);
    for round in 0..6_000 {
        let seed = &seeds[round % seeds.len()];
        let input = if round % 7 == 0 {
            // Random base64url segments, some of them valid JSON once decoded.
            let seg = |rng: &mut rand::rngs::StdRng| {
                let len = rng.random_range(0..40);
                (0..len)
                    .map(|_| {
                        *b"ABCDEFabcdef0123456789-_eyJ"
                            .get(rng.random_range(0..27))
                            .unwrap() as char
                    })
                    .collect::<String>()
            };
            format!("eyJ{}.{}.{}", seg(&mut rng), seg(&mut rng), seg(&mut rng)).into_bytes()
        } else {
            mutate(&mut rng, seed)
        };
        let Ok(text) = std::str::from_utf8(&input) else {
            continue;
        };
        let _ = jwt::looks_like_jwt(text);
        let _ = jwt::peek(text);
        if text.as_bytes() != seed.as_slice() {
            if let Ok(p) = issuers.verify_offline(text) {
                // A mutation can only verify if it left the signed bytes alone
                // (e.g. base64 padding quirks); the principal must then be the seed's.
                assert_eq!(&*p.subject, "s", "mutated token verified as someone else");
            }
        }
    }
}

#[test]
fn deeply_nested_bodies_are_refused_not_crashed() {
    let depth = 100_000;
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":{}1{}}}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    for ep in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
        assert!(tollgate::pipeline::parse_request(ep, body.as_bytes()).is_err());
    }
}

/// Config loading (YAML, `${ENV}` substitution, schema, cross-field checks)
/// and the guardrail scanners, fed mutations of a config that uses most
/// sections and of text full of detectable values. Nothing may panic.
#[test]
fn config_and_scanners_never_panic() {
    use std::sync::Arc;

    use tollgate::guardrails::{
        Builtin, DenyList, DetectorSet, DetectorSpec, Masker, StreamScanner,
    };

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00c0_ff19);
    let config = br#"server: { listen: "127.0.0.1:0", timeouts: { header_read: 2s } }
storage: { url: "sqlite://x.db" }
providers:
  - { name: p, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${HOME}", headers: { x-a: b } }
  - { name: q, kind: databricks, base_url: "http://h", auth: { type: client_credentials, client_id: c, client_secret: s } }
models:
  - { name: m, provider: p, price: { input_per_mtok: 1, output_per_mtok: 2 } }
virtual_models: [{ name: v, targets: [{ model: m }], strategy: priority }]
keys: [{ id: k, hash: "sha256:00", principal: a, models: ["*"] }]
limits: { rules: [{ name: r, match: { models: ["*"] }, per: [key], requests_per_minute: 5 }] }
guardrails: { policies: [{ name: g, stream_window: 64, detectors: { builtins: [email, phone], allow: { private_ips: true } } }] }
"#;
    let text = "Mail bob@example.com or +44 20 7946 0958, card 4111 1111 1111 1111, \
                IBAN DE89 3704 0044 0532 0130 00, host 10.0.0.1, key AKIAIOSFODNN7EXAMPLE, \
                a nerve agent in Grüße ✓"
        .as_bytes();
    let set = Arc::new(
        DetectorSet::new(&DetectorSpec {
            builtins: Builtin::ALL.to_vec(),
            deny_lists: vec![DenyList {
                name: "d".into(),
                terms: vec!["nerve agent".into()],
                whole_word: true,
            }],
            ..DetectorSpec::default()
        })
        .unwrap(),
    );
    for round in 0..1_000 {
        let input = mutate(&mut rng, config);
        if let Ok(s) = std::str::from_utf8(&input) {
            let _ = tollgate::config::parse_str(s);
        }
        let input = mutate(&mut rng, text);
        let s = String::from_utf8_lossy(&input);
        let found = set.scan(&s);
        let _ = Masker::default().mask(&s, &found);
        let mut scanner = StreamScanner::new(set.clone(), 16 + round % 64, true);
        let mut at = 0;
        while at < s.len() {
            let mut next = (at + rng.random_range(1..12)).min(s.len());
            while !s.is_char_boundary(next) {
                next += 1;
            }
            let _ = scanner.push(&s[at..next]);
            at = next;
        }
        let _ = scanner.finish();
    }
}
