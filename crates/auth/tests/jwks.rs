//! Tokens from issuers published as JWK Sets: key parsing, ES256/RS256 verification, key
//! selection, algorithm confusion, claim checks, and the file and HTTP sources.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use medledger_auth::{
    AUDIENCE, AuthError, Claims, DEV_ISSUER, IssuerKey, Jwk, JwkSet, JwksCache, JwksOptions,
    JwksSource, KeySet, RsaIssuerKey, TokenVerifier,
};
use p256::ecdsa::signature::Signer;
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000;
const IDP: &str = "https://idp.example";
const OTHER_IDP: &str = "https://other-idp.example";

// RSA key generation dominates this suite's run time: each key is made once and shared.
static RSA_A: LazyLock<RsaIssuerKey> =
    LazyLock::new(|| RsaIssuerKey::generate(2048).expect("rsa keygen"));
static RSA_B: LazyLock<RsaIssuerKey> =
    LazyLock::new(|| RsaIssuerKey::generate(2048).expect("rsa keygen"));

fn claims(iss: &str) -> Claims {
    Claims {
        iss: iss.into(),
        sub: "Practitioner/dr-1".into(),
        aud: AUDIENCE.into(),
        exp: NOW + 600,
        iat: NOW,
        scope: "user/*.cruds".into(),
        role: "practitioner".into(),
        fhir_user: Some("Practitioner/dr-1".into()),
        jti: "jti-1".into(),
        patient: None,
    }
}

fn set(keys: Vec<Jwk>) -> String {
    JwkSet { keys }.to_json()
}

fn b64_json(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).expect("json"))
}

/// An ES256 token over arbitrary header and payload JSON, for claims [`Claims`] cannot express.
fn es256_raw(key: &p256::ecdsa::SigningKey, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(payload));
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

/// A JWK for `key` written out by hand, independently of [`IssuerKey::jwk`].
fn hand_jwk(key: &p256::ecdsa::SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid,
        "x": B64.encode(point.x().expect("x")),
        "y": B64.encode(point.y().expect("y")),
    })
}

fn payload(iss: &str) -> Value {
    serde_json::to_value(claims(iss)).expect("json")
}

/// `token` with its header replaced by `header`, signature kept.
fn with_header(token: &str, header: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", b64_json(header), parts[1], parts[2])
}

#[test]
fn es256_and_rs256_tokens_from_a_jwks_verify() {
    let ec = IssuerKey::generate().with_kid("ec-1");
    let jwks = set(vec![ec.jwk("ec-1"), RSA_A.jwk("rsa-1")]);
    let v = TokenVerifier::from_jwks(IDP, &jwks).expect("jwks");

    let es = ec.sign(&claims(IDP));
    let rs = RSA_A.sign(&claims(IDP), Some("rsa-1"));
    assert_eq!(
        v.verify_at(&es, NOW).expect("es256").sub,
        "Practitioner/dr-1"
    );
    assert_eq!(v.verify_at(&rs, NOW).expect("rs256"), claims(IDP));
    // Expiry applies to RS256 tokens as to ES256 ones.
    assert_eq!(v.verify_at(&rs, NOW + 3600), Err(AuthError::Expired));
}

#[test]
fn a_hand_written_jwks_with_unknown_members_parses() {
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let mut jwk = hand_jwk(&key, "k");
    jwk["x5t"] = json!("ignored");
    // Padded base64url, as some publishers write it.
    let x = jwk["x"].as_str().expect("x").to_owned();
    jwk["x"] = json!(format!("{x}="));
    let jwks = json!({ "keys": [jwk], "extra": true }).to_string();
    let v = TokenVerifier::from_jwks(IDP, &jwks).expect("jwks");
    let t = es256_raw(&key, &json!({"alg": "ES256", "kid": "k"}), &payload(IDP));
    v.verify_at(&t, NOW).expect("valid");
}

#[test]
fn kid_selects_the_key() {
    let k1 = IssuerKey::generate();
    let k2 = IssuerKey::generate();
    let jwks = set(vec![k1.jwk("k1"), k2.jwk("k2"), RSA_A.jwk("r1")]);
    let v = TokenVerifier::from_jwks(IDP, &jwks).expect("jwks");

    assert!(
        v.verify_at(&k2.sign_with_kid(&claims(IDP), Some("k2")), NOW)
            .is_ok()
    );
    assert!(
        v.verify_at(&k1.sign_with_kid(&claims(IDP), Some("k1")), NOW)
            .is_ok()
    );
    // Right key, but the header points at another one: the named key is the only one tried.
    assert_eq!(
        v.verify_at(&k2.sign_with_kid(&claims(IDP), Some("k1")), NOW),
        Err(AuthError::Signature)
    );
    // No kid: every key of the alg's type is tried.
    assert!(
        v.verify_at(&k2.sign_with_kid(&claims(IDP), None), NOW)
            .is_ok()
    );
    assert!(v.verify_at(&RSA_A.sign(&claims(IDP), None), NOW).is_ok());
}

#[test]
fn unknown_kid_is_refused() {
    let k1 = IssuerKey::generate();
    let v = TokenVerifier::from_jwks(IDP, &set(vec![k1.jwk("k1")])).expect("jwks");
    assert_eq!(
        v.verify_at(&k1.sign_with_kid(&claims(IDP), Some("k9")), NOW),
        Err(AuthError::Signature)
    );
    // A JWK published without a kid does not stand in for a kid it does not have.
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let mut jwk = hand_jwk(&key, "x");
    jwk.as_object_mut().expect("obj").remove("kid");
    let v = TokenVerifier::from_jwks(IDP, &json!({"keys": [jwk]}).to_string()).expect("jwks");
    let header = json!({"alg": "ES256"});
    assert!(
        v.verify_at(&es256_raw(&key, &header, &payload(IDP)), NOW)
            .is_ok()
    );
    let header = json!({"alg": "ES256", "kid": "k1"});
    assert_eq!(
        v.verify_at(&es256_raw(&key, &header, &payload(IDP)), NOW),
        Err(AuthError::Signature)
    );
}

#[test]
fn rs256_header_never_reaches_an_ec_key() {
    let ec = IssuerKey::generate();
    let v = TokenVerifier::from_jwks(IDP, &set(vec![ec.jwk("k")])).expect("jwks");
    let es = ec.sign_with_kid(&claims(IDP), Some("k"));
    assert!(v.verify_at(&es, NOW).is_ok());
    // The same token relabelled RS256, with and without the EC key's kid.
    for header in [json!({"alg": "RS256", "kid": "k"}), json!({"alg": "RS256"})] {
        assert_eq!(
            v.verify_at(&with_header(&es, &header), NOW),
            Err(AuthError::Signature),
            "{header}"
        );
    }
    // A genuine RS256 token from a key the issuer does not have.
    assert_eq!(
        v.verify_at(&RSA_A.sign(&claims(IDP), Some("k")), NOW),
        Err(AuthError::Signature)
    );
}

#[test]
fn a_header_claiming_rs256_over_an_ec_signature_is_refused() {
    // Signed by the issuer's own EC key over a header that says RS256: only a check of the key
    // type against `alg` stops this.
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let jwks = json!({"keys": [hand_jwk(&key, "k")]}).to_string();
    let v = TokenVerifier::from_jwks(IDP, &jwks).expect("jwks");
    let honest = es256_raw(&key, &json!({"alg": "ES256", "kid": "k"}), &payload(IDP));
    assert!(v.verify_at(&honest, NOW).is_ok());
    for header in [json!({"alg": "RS256", "kid": "k"}), json!({"alg": "RS256"})] {
        let lying = es256_raw(&key, &header, &payload(IDP));
        assert_eq!(
            v.verify_at(&lying, NOW),
            Err(AuthError::Signature),
            "{header}"
        );
    }
}

#[test]
fn a_header_claiming_es256_over_an_rsa_signature_is_refused() {
    use rsa::signature::{SignatureEncoding, Signer as _};
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("keygen");
    let public = private.to_public_key();
    let jwk = json!({
        "kty": "RSA", "kid": "r",
        "n": B64.encode(public.n().to_bytes_be()),
        "e": B64.encode(public.e().to_bytes_be()),
    });
    let v = TokenVerifier::from_jwks(IDP, &json!({"keys": [jwk]}).to_string()).expect("jwks");
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
    let sign = |header: &Value| {
        let input = format!("{}.{}", b64_json(header), b64_json(&payload(IDP)));
        let sig = signer.sign(input.as_bytes()).to_vec();
        format!("{input}.{}", B64.encode(sig))
    };
    assert!(
        v.verify_at(&sign(&json!({"alg": "RS256", "kid": "r"})), NOW)
            .is_ok()
    );
    for header in [json!({"alg": "ES256", "kid": "r"}), json!({"alg": "ES256"})] {
        assert_eq!(
            v.verify_at(&sign(&header), NOW),
            Err(AuthError::Signature),
            "{header}"
        );
    }
}

#[test]
fn es256_header_never_reaches_an_rsa_key() {
    let v = TokenVerifier::from_jwks(IDP, &set(vec![RSA_A.jwk("r")])).expect("jwks");
    let rs = RSA_A.sign(&claims(IDP), Some("r"));
    assert!(v.verify_at(&rs, NOW).is_ok());
    for header in [json!({"alg": "ES256", "kid": "r"}), json!({"alg": "ES256"})] {
        assert_eq!(
            v.verify_at(&with_header(&rs, &header), NOW),
            Err(AuthError::Signature),
            "{header}"
        );
    }
    let ec = IssuerKey::generate();
    assert_eq!(
        v.verify_at(&ec.sign_with_kid(&claims(IDP), Some("r")), NOW),
        Err(AuthError::Signature)
    );
}

#[test]
fn a_keys_own_alg_is_respected() {
    // `alg` that does not fit the key type: such a key is unusable, not reinterpreted.
    let ec = IssuerKey::generate();
    let mut bad_ec = ec.jwk("e");
    bad_ec.alg = Some("RS256".into());
    let mut bad_rsa = RSA_A.jwk("r");
    bad_rsa.alg = Some("ES256".into());
    let mut hs = RSA_A.jwk("h");
    hs.alg = Some("HS256".into());
    let err = KeySet::from_jwks_json(&set(vec![bad_ec, bad_rsa, hs])).expect_err("unusable");
    let AuthError::Key(msg) = err else {
        panic!("expected a key error, got {err:?}")
    };
    assert!(msg.contains("no usable"), "{msg}");
    assert!(msg.contains("does not fit"), "{msg}");
    assert!(msg.contains("\"HS256\" is not supported"), "{msg}");
}

#[test]
fn hs256_and_none_are_refused() {
    let ec = IssuerKey::generate();
    let v = TokenVerifier::from_jwks(IDP, &set(vec![ec.jwk("k"), RSA_A.jwk("r")])).expect("jwks");
    let good = ec.sign_with_kid(&claims(IDP), Some("k"));
    for alg in [
        "HS256", "HS384", "HS512", "none", "None", "NONE", "ES384", "PS256", "es256",
    ] {
        let header = json!({"alg": alg, "kid": "k", "typ": "JWT"});
        assert_eq!(
            v.verify_at(&with_header(&good, &header), NOW),
            Err(AuthError::Algorithm),
            "{alg}"
        );
    }
    // `none` with the empty signature an attacker would send.
    let parts: Vec<&str> = good.split('.').collect();
    let none = format!("{}.{}.", b64_json(&json!({"alg": "none"})), parts[1]);
    assert_eq!(v.verify_at(&none, NOW), Err(AuthError::Algorithm));
    // No alg at all.
    assert_eq!(
        v.verify_at(&with_header(&good, &json!({"kid": "k"})), NOW),
        Err(AuthError::Malformed)
    );
}

#[test]
fn tampered_claims_are_refused() {
    let ec = IssuerKey::generate();
    let v = TokenVerifier::from_jwks(IDP, &set(vec![ec.jwk("k"), RSA_A.jwk("r")])).expect("jwks");
    for token in [
        ec.sign_with_kid(&claims(IDP), Some("k")),
        RSA_A.sign(&claims(IDP), Some("r")),
    ] {
        assert!(v.verify_at(&token, NOW).is_ok());
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = payload(IDP);
        c["role"] = json!("admin");
        let forged = format!("{}.{}.{}", parts[0], b64_json(&c), parts[2]);
        assert_eq!(v.verify_at(&forged, NOW), Err(AuthError::Signature));
        // A truncated signature.
        let short = &token[..token.len() - 4];
        assert!(v.verify_at(short, NOW).is_err());
    }
}

#[test]
fn aud_may_be_an_array() {
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let jwks = json!({"keys": [hand_jwk(&key, "k")]}).to_string();
    let v = TokenVerifier::from_jwks(IDP, &jwks).expect("jwks");
    let header = json!({"alg": "ES256", "kid": "k"});
    let with_aud = |aud: Value| {
        let mut p = payload(IDP);
        p["aud"] = aud;
        es256_raw(&key, &header, &p)
    };
    let c = v
        .verify_at(&with_aud(json!(["fhir-api", AUDIENCE])), NOW)
        .expect("array naming us");
    assert_eq!(c.aud, AUDIENCE);
    assert!(v.verify_at(&with_aud(json!([AUDIENCE])), NOW).is_ok());
    assert_eq!(
        v.verify_at(&with_aud(json!(["fhir-api"])), NOW),
        Err(AuthError::Audience)
    );
    assert_eq!(
        v.verify_at(&with_aud(json!([])), NOW),
        Err(AuthError::Audience)
    );
    assert_eq!(
        v.verify_at(&with_aud(json!("fhir-api")), NOW),
        Err(AuthError::Audience)
    );
    assert_eq!(
        v.verify_at(&with_aud(json!(7)), NOW),
        Err(AuthError::Malformed)
    );
    assert_eq!(
        v.verify_at(&with_aud(json!([AUDIENCE, 7])), NOW),
        Err(AuthError::Malformed)
    );
    let mut p = payload(IDP);
    p.as_object_mut().expect("obj").remove("aud");
    assert_eq!(
        v.verify_at(&es256_raw(&key, &header, &p), NOW),
        Err(AuthError::Audience)
    );
}

#[test]
fn nbf_is_checked_with_leeway() {
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let jwks = json!({"keys": [hand_jwk(&key, "k")]}).to_string();
    let v = TokenVerifier::from_jwks(IDP, &jwks).expect("jwks");
    let header = json!({"alg": "ES256", "kid": "k"});
    let with_nbf = |nbf: Value| {
        let mut p = payload(IDP);
        p["nbf"] = nbf;
        es256_raw(&key, &header, &p)
    };
    let later = with_nbf(json!(NOW + 300));
    assert_eq!(v.verify_at(&later, NOW), Err(AuthError::Expired));
    assert!(v.verify_at(&later, NOW + 300).is_ok());
    // Within the clock-skew leeway.
    assert!(v.verify_at(&with_nbf(json!(NOW + 30)), NOW).is_ok());
    assert!(v.verify_at(&with_nbf(json!(NOW - 10)), NOW).is_ok());
    // Fractional NumericDate is rounded up, never earlier.
    assert_eq!(
        v.verify_at(&with_nbf(json!((NOW + 60) as f64 + 0.5)), NOW),
        Err(AuthError::Expired)
    );
    assert_eq!(
        v.verify_at(&with_nbf(json!("soon")), NOW),
        Err(AuthError::Malformed)
    );
}

#[test]
fn critical_header_extensions_are_refused() {
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let jwks = json!({"keys": [hand_jwk(&key, "k")]}).to_string();
    let v = TokenVerifier::from_jwks(IDP, &jwks).expect("jwks");
    let header = json!({"alg": "ES256", "kid": "k", "crit": ["exp"], "exp": 1});
    assert_eq!(
        v.verify_at(&es256_raw(&key, &header, &payload(IDP)), NOW),
        Err(AuthError::Malformed)
    );
}

#[test]
fn small_rsa_keys_are_rejected() {
    let small = RsaIssuerKey::generate(1024).expect("keygen");
    let err = KeySet::from_jwk_set(&JwkSet {
        keys: vec![small.jwk("small")],
    })
    .expect_err("1024-bit key");
    let AuthError::Key(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("1024 bits is below the 2048-bit minimum"),
        "{msg}"
    );
    assert!(TokenVerifier::from_jwks(IDP, &set(vec![small.jwk("small")])).is_err());

    // Next to a good key, the small one is skipped and its tokens refused.
    let keys =
        KeySet::from_jwks_json(&set(vec![small.jwk("small"), RSA_A.jwk("big")])).expect("set");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.skipped().len(), 1);
    let v = TokenVerifier::default().with_issuer(IDP, keys);
    assert_eq!(
        v.verify_at(&small.sign(&claims(IDP), Some("small")), NOW),
        Err(AuthError::Signature)
    );
    assert_eq!(
        v.verify_at(&small.sign(&claims(IDP), None), NOW),
        Err(AuthError::Signature)
    );
    assert!(
        v.verify_at(&RSA_A.sign(&claims(IDP), Some("big")), NOW)
            .is_ok()
    );
}

#[test]
fn unusable_keys_are_skipped_and_an_empty_result_fails() {
    let ec = IssuerKey::generate();
    let mut enc = RSA_B.jwk("enc");
    enc.key_use = Some("enc".into());
    let mut wrap = ec.jwk("wrap");
    wrap.key_ops = Some(vec!["wrapKey".into()]);
    let mut p384 = ec.jwk("p384");
    p384.crv = Some("P-384".into());
    let mut off_curve = ec.jwk("off");
    off_curve.y = off_curve.x.clone();
    let mut private = serde_json::to_value(ec.jwk("private")).expect("json");
    private["d"] = json!("AAAA");
    let mut entries: Vec<Value> = [enc, wrap, p384, off_curve]
        .into_iter()
        .map(|k| serde_json::to_value(k).expect("json"))
        .collect();
    entries.extend([
        private,
        json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "ed"}),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
        json!({"kty": "RSA", "kid": "no-e", "n": "AQAB"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "bad-b64", "x": "!!", "y": "??"}),
        json!({"kty": 5}),
        json!("not an object"),
    ]);
    let only_bad = json!({ "keys": entries }).to_string();
    let err = KeySet::from_jwks_json(&only_bad).expect_err("nothing usable");
    assert!(
        matches!(err, AuthError::Key(ref m) if m.contains("no usable")),
        "{err:?}"
    );

    entries.push(serde_json::to_value(ec.jwk("good")).expect("json"));
    let keys = KeySet::from_jwks_json(&json!({ "keys": entries }).to_string()).expect("one good");
    assert_eq!(keys.kids().collect::<Vec<_>>(), [Some("good")]);
    assert_eq!(keys.skipped().len(), 11, "{:?}", keys.skipped());
    let skipped = keys.skipped().join("\n");
    for why in [
        "use \"enc\" is not sig",
        "key_ops does not include verify",
        "crv \"P-384\" is not supported",
        "not a point on P-256",
        "private key material",
        "kty \"OKP\" is not supported",
        "missing e",
        "not base64url",
    ] {
        assert!(skipped.contains(why), "{why} in {skipped}");
    }

    for doc in ["", "[]", "{}", r#"{"keys": {}}"#, r#"{"keys": []}"#] {
        assert!(
            matches!(KeySet::from_jwks_json(doc), Err(AuthError::Key(_))),
            "{doc:?}"
        );
    }
}

#[test]
fn each_issuer_accepts_only_its_own_keys() {
    let ec_a = IssuerKey::generate();
    let v = TokenVerifier::default()
        .with_issuer(
            IDP,
            KeySet::from_jwks_json(&set(vec![ec_a.jwk("a")])).expect("a"),
        )
        .with_issuer(
            OTHER_IDP,
            KeySet::from_jwks_json(&set(vec![RSA_B.jwk("b")])).expect("b"),
        );
    assert_eq!(v.issuers().collect::<Vec<_>>(), [IDP, OTHER_IDP]);

    assert!(
        v.verify_at(&ec_a.sign_with_kid(&claims(IDP), Some("a")), NOW)
            .is_ok()
    );
    assert!(
        v.verify_at(&RSA_B.sign(&claims(OTHER_IDP), Some("b")), NOW)
            .is_ok()
    );
    // Each issuer's key signing for the other.
    assert_eq!(
        v.verify_at(&ec_a.sign_with_kid(&claims(OTHER_IDP), Some("a")), NOW),
        Err(AuthError::Signature)
    );
    assert_eq!(
        v.verify_at(&RSA_B.sign(&claims(IDP), Some("b")), NOW),
        Err(AuthError::Signature)
    );
    assert_eq!(
        v.verify_at(&RSA_B.sign(&claims(IDP), None), NOW),
        Err(AuthError::Signature)
    );
    // An issuer nobody trusts.
    assert_eq!(
        v.verify_at(&RSA_B.sign(&claims("https://evil.example"), Some("b")), NOW),
        Err(AuthError::Audience)
    );
}

#[test]
fn the_dev_issuer_and_a_jwks_issuer_side_by_side() {
    // How a service adds an external issuer next to `medledger dev`'s PEM-configured key.
    let dev = IssuerKey::generate();
    let v = TokenVerifier::new(DEV_ISSUER, dev.verifying_key()).with_issuer(
        IDP,
        KeySet::from_jwks_json(&set(vec![RSA_A.jwk("r")])).expect("set"),
    );
    let dev_token = dev.mint("Patient/p1", "patient", "patient/*.rs", NOW, 600);
    assert_eq!(v.verify_at(&dev_token, NOW).expect("dev").sub, "Patient/p1");
    // A PEM-configured key has no published kid, so it takes whatever kid the issuer stamps.
    let relabelled = dev.clone().with_kid("issuer-chose-this");
    let c = claims(DEV_ISSUER);
    assert!(v.verify_at(&relabelled.sign(&c), NOW).is_ok());
    assert!(v.verify_at(&dev.sign_with_kid(&c, None), NOW).is_ok());
    assert!(
        v.verify_at(&RSA_A.sign(&claims(IDP), Some("r")), NOW)
            .is_ok()
    );
    // The dev key is not trusted for the external issuer.
    assert_eq!(
        v.verify_at(&dev.sign(&claims(IDP)), NOW),
        Err(AuthError::Signature)
    );
}

#[test]
fn file_source() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("jwks.json");
    let ec = IssuerKey::generate();
    std::fs::write(&path, set(vec![ec.jwk("f1")])).expect("write");

    let keys = KeySet::from_jwks_file(&path).expect("file");
    let v = TokenVerifier::default().with_issuer(IDP, keys);
    assert!(
        v.verify_at(&ec.sign_with_kid(&claims(IDP), Some("f1")), NOW)
            .is_ok()
    );

    let missing = KeySet::from_jwks_file(&dir.path().join("nope.json")).expect_err("missing");
    assert!(
        matches!(missing, AuthError::Key(ref m) if m.contains("nope.json")),
        "{missing:?}"
    );
    std::fs::write(dir.path().join("bad.json"), "{").expect("write");
    let bad = KeySet::from_jwks_file(&dir.path().join("bad.json")).expect_err("bad");
    assert!(
        matches!(bad, AuthError::Key(ref m) if m.contains("bad.json")),
        "{bad:?}"
    );
    assert_eq!(
        JwksSource::parse(path.to_str().expect("utf8")),
        JwksSource::File(path)
    );
    assert_eq!(
        JwksSource::parse("http://idp/jwks"),
        JwksSource::Url("http://idp/jwks".into())
    );
}

#[tokio::test]
async fn file_source_cache_reloads() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("jwks.json");
    let old = IssuerKey::generate();
    std::fs::write(&path, set(vec![old.jwk("old")])).expect("write");
    let cache = JwksCache::load(JwksSource::File(path.clone()), JwksOptions::default())
        .await
        .expect("load");
    let v = TokenVerifier::default().with_shared_issuer(IDP, cache.keys());
    let old_token = old.sign_with_kid(&claims(IDP), Some("old"));
    assert!(v.verify_at(&old_token, NOW).is_ok());

    std::fs::write(&path, set(vec![RSA_A.jwk("new")])).expect("write");
    cache.refresh().await.expect("refresh");
    assert!(
        v.verify_at(&RSA_A.sign(&claims(IDP), Some("new")), NOW)
            .is_ok()
    );
    assert_eq!(v.verify_at(&old_token, NOW), Err(AuthError::Signature));

    // A broken file keeps the last good set.
    std::fs::write(&path, "not json").expect("write");
    assert!(cache.refresh().await.is_err());
    assert!(
        v.verify_at(&RSA_A.sign(&claims(IDP), Some("new")), NOW)
            .is_ok()
    );

    let err = JwksCache::load(
        JwksSource::File(dir.path().join("absent.json")),
        JwksOptions::default(),
    )
    .await
    .expect_err("absent");
    assert!(matches!(err, AuthError::Key(_)));
}

/// A JWKS endpoint on 127.0.0.1 whose response the test sets.
#[derive(Clone)]
struct Endpoint {
    response: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
}

impl Endpoint {
    fn set(&self, status: u16, body: String) {
        *self.response.lock().expect("lock") = (status, body);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn serve(status: u16, body: String) -> (Endpoint, String) {
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    async fn jwks(State(ep): State<Endpoint>) -> impl axum::response::IntoResponse {
        ep.hits.fetch_add(1, Ordering::SeqCst);
        let (status, body) = ep.response.lock().expect("lock").clone();
        (
            StatusCode::from_u16(status).expect("status"),
            [(header::CONTENT_TYPE, "application/jwk-set+json")],
            body,
        )
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        r#"{"keys":[]}"#
    }

    let ep = Endpoint {
        response: Arc::new(Mutex::new((status, body))),
        hits: Arc::new(AtomicUsize::new(0)),
    };
    let app = axum::Router::new()
        .route("/jwks", get(jwks))
        .route("/slow", get(slow))
        .with_state(ep.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (ep, format!("http://{addr}"))
}

#[tokio::test]
async fn url_source_picks_up_a_rotation_on_refresh() {
    let old = IssuerKey::generate();
    let (ep, base) = serve(200, set(vec![old.jwk("2024")])).await;
    let cache = JwksCache::load(
        JwksSource::Url(format!("{base}/jwks")),
        JwksOptions::default(),
    )
    .await
    .expect("first fetch");
    let v = TokenVerifier::default().with_shared_issuer(IDP, cache.keys());
    let old_token = old.sign_with_kid(&claims(IDP), Some("2024"));
    let new_token = RSA_B.sign(&claims(IDP), Some("2025"));
    assert!(v.verify_at(&old_token, NOW).is_ok());
    assert_eq!(v.verify_at(&new_token, NOW), Err(AuthError::Signature));

    // The issuer publishes the new key next to the old, then drops the old one.
    ep.set(200, set(vec![old.jwk("2024"), RSA_B.jwk("2025")]));
    cache.refresh().await.expect("refresh");
    assert!(v.verify_at(&old_token, NOW).is_ok());
    assert!(v.verify_at(&new_token, NOW).is_ok());
    ep.set(200, set(vec![RSA_B.jwk("2025")]));
    cache.refresh().await.expect("refresh");
    assert_eq!(v.verify_at(&old_token, NOW), Err(AuthError::Signature));
    assert!(v.verify_at(&new_token, NOW).is_ok());
    // Clones of the verifier share the live set.
    assert!(v.clone().verify_at(&new_token, NOW).is_ok());

    // Failed refreshes (server error, garbage, a set with nothing usable) keep the last good set.
    for (status, body) in [
        (500, "oops".to_owned()),
        (200, "<html>".to_owned()),
        (200, r#"{"keys":[]}"#.to_owned()),
    ] {
        ep.set(status, body);
        let err = cache.refresh().await.expect_err("bad refresh");
        assert!(
            matches!(err, AuthError::Key(ref m) if m.contains(&base)),
            "{err:?}"
        );
        assert!(v.verify_at(&new_token, NOW).is_ok());
    }
    assert_eq!(ep.hits(), 6);
}

#[tokio::test]
async fn spawned_refresher_rotates_and_stops() {
    let old = IssuerKey::generate();
    let (ep, base) = serve(200, set(vec![old.jwk("old")])).await;
    let options = JwksOptions {
        refresh_interval: Duration::from_millis(50),
        retry_interval: Duration::from_millis(20),
        ..JwksOptions::default()
    };
    let cache = JwksCache::load(JwksSource::Url(format!("{base}/jwks")), options)
        .await
        .expect("first fetch");
    let v = TokenVerifier::default().with_shared_issuer(IDP, cache.keys());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = cache.spawn_refresher(async move {
        let _ = stopped.await;
    });

    let new = IssuerKey::generate();
    let new_token = new.sign_with_kid(&claims(IDP), Some("new"));
    ep.set(200, set(vec![new.jwk("new")]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while v.verify_at(&new_token, NOW).is_err() {
        assert!(Instant::now() < deadline, "rotation not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        v.verify_at(&old.sign_with_kid(&claims(IDP), Some("old")), NOW),
        Err(AuthError::Signature)
    );

    // The endpoint failing: the refresher keeps retrying and the last good set stays.
    ep.set(503, String::new());
    let hits = ep.hits();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ep.hits() < hits + 3 {
        assert!(Instant::now() < deadline, "refresher stopped retrying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(v.verify_at(&new_token, NOW).is_ok());

    stop.send(()).expect("refresher alive");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("refresher stops")
        .expect("no panic");
    let after = ep.hits();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ep.hits(), after, "refresher still fetching after shutdown");
}

#[tokio::test]
async fn url_source_first_fetch_must_succeed() {
    let (ep, base) = serve(500, String::new()).await;
    let url = JwksSource::Url(format!("{base}/jwks"));
    let err = JwksCache::load(url.clone(), JwksOptions::default())
        .await
        .expect_err("500");
    assert!(
        matches!(err, AuthError::Key(ref m) if m.contains("500")),
        "{err:?}"
    );

    // Too large.
    ep.set(200, set(vec![RSA_A.jwk("r")]));
    let small = JwksOptions {
        max_bytes: 64,
        ..JwksOptions::default()
    };
    let err = JwksCache::load(url.clone(), small)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, AuthError::Key(ref m) if m.contains("larger than")),
        "{err:?}"
    );
    JwksCache::load(url, JwksOptions::default())
        .await
        .expect("fits the default limit");

    // Slower than the timeout.
    let quick = JwksOptions {
        timeout: Duration::from_millis(300),
        ..JwksOptions::default()
    };
    let started = Instant::now();
    let err = JwksCache::load(JwksSource::Url(format!("{base}/slow")), quick)
        .await
        .expect_err("timeout");
    assert!(matches!(err, AuthError::Key(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Nothing listening.
    let port = medledger_test_utils::ports::free_port();
    let err = JwksCache::load(
        JwksSource::Url(format!("http://127.0.0.1:{port}/jwks")),
        JwksOptions::default(),
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, AuthError::Key(_)), "{err:?}");
}

#[tokio::test]
async fn other_schemes_are_refused_up_front() {
    for url in ["ftp://127.0.0.1/jwks", "file:///etc/jwks.json", "not a url"] {
        let err = JwksCache::load(JwksSource::Url(url.into()), JwksOptions::default())
            .await
            .expect_err(url);
        assert!(
            matches!(err, AuthError::Key(ref m) if m.contains("JWKS URL")),
            "{url}: {err:?}"
        );
    }
    let zero = JwksOptions {
        refresh_interval: Duration::ZERO,
        ..JwksOptions::default()
    };
    assert!(
        JwksCache::load(JwksSource::Url("http://127.0.0.1:9/".into()), zero)
            .await
            .is_err()
    );
}

#[test]
fn verifier_and_cache_can_be_shared_across_tasks() {
    // Services keep the verifier in shared router state and hand the cache to a spawned task.
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<TokenVerifier>();
    shareable::<JwksCache>();
    shareable::<KeySet>();
}
