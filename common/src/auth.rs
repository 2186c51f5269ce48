//! Authentication: Ed25519-signed JWTs.
//!
//! Only svc-user holds a signing key; no shared secret exists. svc-user publishes the public half
//! of each key (a JWK) in the JetStream key-value bucket [`KEYS_BUCKET`], under its key id. Every
//! service (svc-user included) runs a [`Verifier`] that watches the bucket, so keys can be added
//! or rotated without restarts. A token is accepted only if it is EdDSA-signed by a known key and
//! carries `sub`, `role`, `iat`, `exp`, `iss` = [`ISSUER`] and `aud` = [`AUDIENCE`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use async_nats::jetstream::{self, kv};
use axum::{extract::FromRef, extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::event::Role;
use crate::http::{ApiError, Code};

pub const ISSUER: &str = "msa-shop/svc-user";
pub const AUDIENCE: &str = "msa-shop";
/// JetStream KV bucket holding the public verification keys (JWK JSON) by key id.
pub const KEYS_BUCKET: &str = "auth-keys";

/// The longest a token lives (svc-user's `TOKEN_TTL_SECS` is range-checked to it).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// The public half of a signing key, as a JWK (RFC 8037 OKP/Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
}

/// svc-user's private signing key. Its `Debug` never prints key material.
pub struct SigningKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key with a fresh key id.
    pub fn generate() -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_dalek(Uuid::now_v7().to_string(), key)
    }

    /// Restores a key persisted with [`SigningKey::to_pkcs8_der`].
    pub fn from_pkcs8_der(kid: String, der: &[u8]) -> anyhow::Result<Self> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
            .map_err(|e| anyhow::anyhow!("invalid Ed25519 key {kid}: {e}"))?;
        Ok(Self::from_dalek(kid, key))
    }

    fn from_dalek(kid: String, key: ed25519_dalek::SigningKey) -> Self {
        let der = key.to_pkcs8_der().expect("an Ed25519 key encodes as PKCS#8");
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        SigningKey { kid, key, encoding }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.key.to_pkcs8_der().expect("an Ed25519 key encodes as PKCS#8").as_bytes().to_vec()
    }

    pub fn public_jwk(&self) -> PublicJwk {
        PublicJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            kid: self.kid.clone(),
            x: URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
        }
    }

    /// Signs an access token for `sub` valid for `ttl`.
    /// A token for `sub` with `role`, valid for `ttl` (capped at [`MAX_TOKEN_TTL`], so `exp` can
    /// never overflow whatever a caller passes).
    pub fn issue(&self, sub: Uuid, role: Role, ttl: Duration) -> String {
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = ttl.min(MAX_TOKEN_TTL).as_secs() as i64;
        let claims = Claims { sub, role, iat, exp: iat.saturating_add(ttl), iss: ISSUER.into(), aud: AUDIENCE.into() };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).expect("EdDSA signing cannot fail")
    }
}

/// Why a token was refused. Every variant is a 401; the message never echoes the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token signed with an unsupported algorithm")]
    Algorithm,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = if e == AuthError::Missing { Code::Unauthenticated } else { Code::InvalidToken };
        ApiError::new(code, e.to_string()).with_header(axum::http::header::WWW_AUTHENTICATE, "Bearer")
    }
}

/// Verifies tokens against the public keys currently known. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<RwLock<KeySet>>,
    validation: Arc<Validation>,
    /// Tokens whose signature was checked, with what they say and the [`KeySet::generation`]
    /// they were checked against: a client sends the same token with every request, and an
    /// Ed25519 check costs more CPU than the rest of a typical request. Keyed by the whole token,
    /// so only that exact string hits; a hit counts only while the keys are those it was checked
    /// against (any change, a retirement above all, makes every token be checked again) and the
    /// token has not expired.
    verified: Arc<Mutex<HashMap<String, (Claims, u64)>>>,
}

/// The keys a verifier trusts, by key id, and a count of their changes.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    generation: u64,
}

/// Verified tokens remembered at most; beyond that the cache starts afresh (it refills itself
/// from the tokens in use).
const VERIFIED_CACHE: usize = 4096;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = self.keys.read().map(|k| k.keys.keys().cloned().collect()).unwrap_or_default();
        f.debug_struct("Verifier").field("kids", &kids).finish()
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        // Only EdDSA: `alg: none` and HMAC tokens fail before any key is looked at.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Verifier { keys: Default::default(), validation: Arc::new(validation), verified: Default::default() }
    }

    /// Trusts `jwk` (refused unless it is a well-formed Ed25519 JWK).
    pub fn insert(&self, jwk: &PublicJwk) -> anyhow::Result<()> {
        let key = decoding_key(jwk)?;
        self.change_keys(|keys| keys.insert(jwk.kid.clone(), key));
        Ok(())
    }

    pub fn remove(&self, kid: &str) {
        self.change_keys(|keys| keys.remove(kid));
    }

    /// How many keys it trusts: none until the key bucket has been read and holds svc-user's.
    pub fn key_count(&self) -> usize {
        self.keys.read().expect("verifier keys lock").keys.len()
    }

    /// Every change of the trusted keys goes through here: it starts a new generation, so no
    /// token verified against the old keys is taken from the cache any more.
    fn change_keys<R>(&self, change: impl FnOnce(&mut HashMap<String, DecodingKey>) -> R) -> R {
        let mut set = self.keys.write().expect("verifier keys lock");
        set.generation += 1;
        change(&mut set.keys)
    }

    /// Who `token` says the caller is, once it is verified ([`Verifier::verify`]).
    pub fn user(&self, token: &str) -> Result<AuthUser, AuthError> {
        let claims = self.verify(token)?;
        Ok(AuthUser { id: claims.sub, role: claims.role })
    }

    /// The token's claims, if its signature, algorithm, key, issuer, audience and expiry check
    /// out (a token seen before and not yet expired is not checked again: see `verified`).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let leeway = self.validation.leeway as i64;
        let generation = self.keys.read().expect("verifier keys lock").generation;
        if let Some((claims, checked_against)) = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(token)
            && *checked_against == generation
            && claims.exp + leeway > now
        {
            return Ok(claims.clone());
        }
        let (claims, generation) = self.check(token)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CACHE {
            verified.clear();
        }
        verified.insert(token.to_owned(), (claims.clone(), generation));
        Ok(claims)
    }

    /// The full check; also returns the generation of the key it was checked with.
    fn check(&self, token: &str) -> Result<(Claims, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `alg: none` and unknown algorithms fail to parse as an `Algorithm`.
            jsonwebtoken::errors::ErrorKind::Json(_) if token_alg(token).is_some() => AuthError::Algorithm,
            _ => AuthError::Malformed,
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Algorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let (key, generation) = {
            let set = self.keys.read().expect("verifier keys lock");
            (set.keys.get(&kid).cloned().ok_or(AuthError::UnknownKey)?, set.generation)
        };
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map(|data| (data.claims, generation))
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Loads every key in the [`KEYS_BUCKET`], then follows changes until `stop`. Returns once
    /// the initial load is done (at once if svc-user has not created the bucket yet: tokens are
    /// refused until it has); the watch runs on in a spawned task and, should it end or fail, is
    /// logged and established again, reloading every key from scratch so that nothing missed
    /// meanwhile (a retirement above all) is missed for good.
    pub async fn watch(&self, js: &jetstream::Context, stop: CancellationToken) -> anyhow::Result<()> {
        let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
        let (this, js) = (self.clone(), js.clone());
        tokio::spawn(async move { this.follow(js, stop, loaded_tx).await });
        // A first load slower than this (NATS electing a leader after a node's loss, say) does not
        // hold up the start either: the watch goes on loading, and tokens are refused until then.
        if tokio::time::timeout(Duration::from_secs(10), loaded_rx).await.is_err() {
            tracing::warn!("auth keys not loaded within 10 s; starting anyway, refusing tokens until they are");
        }
        Ok(())
    }

    async fn follow(&self, js: jetstream::Context, stop: CancellationToken, loaded: tokio::sync::oneshot::Sender<()>) {
        let mut loaded = Some(loaded);
        let mut delay = Duration::from_millis(200);
        loop {
            match self.load_and_follow(&js, &stop, &mut loaded).await {
                Ok(()) => return, // stopped
                Err(error) => {
                    let error = format!("{error:#}");
                    tracing::warn!(error, retry_in = ?delay, "auth key watch ended; establishing it again");
                }
            }
            // A missing bucket must not hold up the start: tokens are refused until it exists.
            if let Some(tx) = loaded.take() {
                let _ = tx.send(());
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            // Short: until svc-user has created the bucket, every token is refused here.
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// One life of the watch: every key as the bucket holds it now (replacing what the verifier
    /// knew), then each change, until `stop` (`Ok`) or the watch ends (`Err`).
    async fn load_and_follow(
        &self,
        js: &jetstream::Context,
        stop: &CancellationToken,
        loaded: &mut Option<tokio::sync::oneshot::Sender<()>>,
    ) -> anyhow::Result<()> {
        let bucket = js.get_key_value(KEYS_BUCKET).await?;
        // `Store::status` reports the bucket as it was when opened; ask the stream itself.
        let empty = js.get_stream(format!("KV_{KEYS_BUCKET}")).await?.info().await?.state.messages == 0;
        let mut watch = bucket.watch_with_history(">").await?;
        let mut snapshot = (!empty).then(HashMap::new);
        if empty {
            self.replace_all(HashMap::new());
            if let Some(tx) = loaded.take() {
                let _ = tx.send(());
            }
        }
        loop {
            let entry = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                e = watch.next() => e,
            };
            match entry {
                Some(Ok(entry)) => match snapshot.as_mut() {
                    Some(keys) => {
                        if let Some((kid, key)) = accepted(&entry) {
                            keys.insert(kid, key);
                        } else {
                            keys.remove(&entry.key);
                        }
                        if entry.delta == 0 {
                            self.replace_all(snapshot.take().unwrap_or_default());
                            if let Some(tx) = loaded.take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                    None => self.apply(&entry),
                },
                Some(Err(error)) => tracing::warn!(%error, "auth key watch error"),
                None => anyhow::bail!("the watch of the auth-keys bucket ended"),
            }
        }
    }

    fn replace_all(&self, keys: HashMap<String, DecodingKey>) {
        let n = keys.len();
        self.change_keys(|trusted| *trusted = keys);
        tracing::info!(keys = n, "auth keys loaded");
    }

    fn apply(&self, entry: &kv::Entry) {
        match accepted(entry) {
            Some((kid, key)) => {
                self.change_keys(|keys| keys.insert(kid.clone(), key));
                tracing::info!(kid, "auth key loaded");
            }
            // A deletion, or a value refused (and logged) by `accepted`: the entry names no key
            // this verifier trusts, whatever it trusted under that name before.
            None => {
                if self.change_keys(|keys| keys.remove(&entry.key)).is_some() {
                    tracing::info!(kid = %entry.key, "auth key removed");
                }
            }
        }
    }
}

/// The key an entry of the bucket carries, if it is one to trust: a put of a well-formed Ed25519
/// JWK whose own `kid` is the entry's key. A key stored under another name would be looked up
/// under its `kid` but removed under the entry's, so such an entry could replace a real key and
/// outlive its deletion: it is refused, loudly.
fn accepted(entry: &kv::Entry) -> Option<(String, DecodingKey)> {
    if !matches!(entry.operation, kv::Operation::Put) {
        return None;
    }
    let jwk = match serde_json::from_slice::<PublicJwk>(&entry.value) {
        Ok(jwk) => jwk,
        Err(error) => {
            tracing::error!(%error, key = %entry.key, "auth key refused: not a JWK");
            return None;
        }
    };
    if jwk.kid != entry.key {
        tracing::error!(key = %entry.key, kid = %jwk.kid, "auth key refused: its kid is not the key it is stored under");
        return None;
    }
    match decoding_key(&jwk) {
        Ok(key) => Some((jwk.kid, key)),
        Err(error) => {
            tracing::error!(%error, key = %entry.key, "auth key refused");
            None
        }
    }
}

/// The verification key of a well-formed Ed25519 JWK (`kty` OKP, `crv` Ed25519, `alg` EdDSA, a
/// 32-byte `x`).
fn decoding_key(jwk: &PublicJwk) -> anyhow::Result<DecodingKey> {
    anyhow::ensure!(jwk.kty == "OKP" && jwk.crv == "Ed25519", "key {} is not an Ed25519 key", jwk.kid);
    anyhow::ensure!(jwk.alg == "EdDSA", "key {} is not for EdDSA", jwk.kid);
    anyhow::ensure!(!jwk.kid.is_empty() && jwk.kid.len() <= 128, "key id of {} bytes", jwk.kid.len());
    let bytes = URL_SAFE_NO_PAD.decode(&jwk.x)?;
    anyhow::ensure!(bytes.len() == 32, "key {} has {} bytes, not 32", jwk.kid, bytes.len());
    Ok(DecodingKey::from_ed_der(&bytes))
}

/// The `alg` a token's header claims, if the header is readable JSON at all.
fn token_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let json: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    json.get("alg")?.as_str().map(str::to_owned)
}

/// The key bucket in `replicas` copies (as the event stream), created if missing.
pub async fn keys_bucket(js: &jetstream::Context, replicas: usize) -> anyhow::Result<kv::Store> {
    let config = kv::Config {
        bucket: KEYS_BUCKET.into(),
        description: "Public JWT verification keys (JWK) published by svc-user".into(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    let create = || async { js.create_or_update_key_value(config.clone()).await };
    use backon::Retryable;
    Ok(create.retry(crate::bus::startup_backoff()).await?)
}

/// Publishes a public key so every verifier learns it.
pub async fn publish_key(bucket: &kv::Store, jwk: &PublicJwk) -> anyhow::Result<()> {
    bucket.put(&jwk.kid, serde_json::to_vec(jwk)?.into()).await?;
    Ok(())
}

/// The authenticated caller. Extracting it from a request without a valid token is a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) { Ok(()) } else { Err(forbidden()) }
    }
}

/// 403 `FORBIDDEN`: the caller is known, but their role (or relation to the resource) may not do
/// this. The one way every service says so.
pub fn forbidden() -> ApiError {
    ApiError::new(Code::Forbidden, "your role may not do this")
}

impl<S> FromRequestParts<S> for AuthUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or(AuthError::Malformed)?;
        Ok(Verifier::from_ref(state).user(token.trim())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SigningKey, Verifier) {
        let key = SigningKey::generate();
        let verifier = Verifier::new();
        verifier.insert(&key.public_jwk()).unwrap();
        (key, verifier)
    }

    fn b64(json: serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    fn claims_json(key_exp_offset: i64, iss: &str, aud: &str) -> serde_json::Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        serde_json::json!({"sub": Uuid::now_v7(), "role": "ADMIN", "iat": now, "exp": now + key_exp_offset, "iss": iss, "aud": aud})
    }

    fn sign_raw(key: &SigningKey, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
    }

    #[test]
    fn a_token_it_issued_verifies_with_its_claims() {
        let (key, verifier) = setup();
        let sub = Uuid::now_v7();
        let claims = verifier.verify(&key.issue(sub, Role::Seller, Duration::from_secs(60))).unwrap();
        assert_eq!(
            (claims.sub, claims.role, claims.iss.as_str(), claims.aud.as_str()),
            (sub, Role::Seller, ISSUER, AUDIENCE)
        );
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn a_token_verified_before_is_refused_once_its_key_is_retired_or_it_expires() {
        let (key, verifier) = setup();
        let token = key.issue(Uuid::now_v7(), Role::Customer, Duration::from_secs(60));
        assert!(verifier.verify(&token).is_ok());
        assert!(verifier.verify(&token).is_ok(), "again, from the cache of verified tokens");
        verifier.remove(key.kid());
        assert_eq!(verifier.verify(&token), Err(AuthError::UnknownKey));

        // A token remembered while it was valid is checked anew once past its expiry (and the
        // leeway), and refused.
        let (key, verifier) = setup();
        let token = sign_raw(&key, claims_json(-120, ISSUER, AUDIENCE));
        let claims: Claims = serde_json::from_value(claims_json(-120, ISSUER, AUDIENCE)).unwrap();
        let generation = verifier.keys.read().unwrap().generation;
        verifier.verified.lock().unwrap().insert(token.clone(), (claims, generation));
        assert!(matches!(verifier.verify(&token), Err(AuthError::Invalid(m)) if m.contains("Expired")));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let (key, verifier) = setup();
        let token = sign_raw(&key, claims_json(-120, ISSUER, AUDIENCE));
        assert!(matches!(verifier.verify(&token), Err(AuthError::Invalid(m)) if m.contains("Expired")));
    }

    #[test]
    fn a_wrong_issuer_is_refused() {
        let (key, verifier) = setup();
        let token = sign_raw(&key, claims_json(60, "evil", AUDIENCE));
        assert!(matches!(verifier.verify(&token), Err(AuthError::Invalid(m)) if m.contains("Issuer")));
    }

    #[test]
    fn a_wrong_audience_is_refused() {
        let (key, verifier) = setup();
        let token = sign_raw(&key, claims_json(60, ISSUER, "someone-else"));
        assert!(matches!(verifier.verify(&token), Err(AuthError::Invalid(m)) if m.contains("Audience")));
    }

    #[test]
    fn a_token_missing_a_required_claim_is_refused() {
        let (key, verifier) = setup();
        let mut claims = claims_json(60, ISSUER, AUDIENCE);
        claims.as_object_mut().unwrap().remove("sub");
        assert!(matches!(verifier.verify(&sign_raw(&key, claims)), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn alg_none_is_refused() {
        let (key, verifier) = setup();
        let header = b64(serde_json::json!({"alg": "none", "typ": "JWT", "kid": key.kid()}));
        let token = format!("{header}.{}.", b64(claims_json(60, ISSUER, AUDIENCE)));
        assert_eq!(verifier.verify(&token), Err(AuthError::Algorithm));
    }

    #[test]
    fn an_hmac_token_is_refused_even_with_the_public_key_as_secret() {
        // The classic key-confusion attack: HS256 "signed" with the public key bytes.
        let (key, verifier) = setup();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid().to_owned());
        let secret = URL_SAFE_NO_PAD.decode(key.public_jwk().x).unwrap();
        let token =
            jsonwebtoken::encode(&header, &claims_json(60, ISSUER, AUDIENCE), &EncodingKey::from_secret(&secret))
                .unwrap();
        assert_eq!(verifier.verify(&token), Err(AuthError::Algorithm));
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let (key, verifier) = setup();
        let token = key.issue(Uuid::now_v7(), Role::Customer, Duration::from_secs(60));
        let (body, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 1;
        let forged = format!("{body}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert!(matches!(verifier.verify(&forged), Err(AuthError::Invalid(m)) if m.contains("Signature")));
    }

    #[test]
    fn a_token_signed_by_another_key_is_refused() {
        let (_, verifier) = setup();
        let stranger = SigningKey::generate();
        let token = stranger.issue(Uuid::now_v7(), Role::Admin, Duration::from_secs(60));
        assert_eq!(verifier.verify(&token), Err(AuthError::UnknownKey));
    }

    #[test]
    fn a_forged_kid_pointing_at_a_known_key_fails_the_signature() {
        let (key, verifier) = setup();
        let stranger = SigningKey::generate();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims_json(60, ISSUER, AUDIENCE), &stranger.encoding).unwrap();
        assert!(matches!(verifier.verify(&token), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (_, verifier) = setup();
        for token in ["", "abc", "a.b.c", "ey.ey.ey", "....."] {
            assert!(verifier.verify(token).is_err(), "{token:?} was accepted");
        }
    }

    #[test]
    fn a_removed_key_no_longer_verifies() {
        let (key, verifier) = setup();
        let token = key.issue(Uuid::now_v7(), Role::Customer, Duration::from_secs(60));
        verifier.remove(key.kid());
        assert_eq!(verifier.verify(&token), Err(AuthError::UnknownKey));
    }

    #[test]
    fn a_persisted_key_restores_to_the_same_key() {
        let key = SigningKey::generate();
        let restored = SigningKey::from_pkcs8_der(key.kid().to_owned(), &key.to_pkcs8_der()).unwrap();
        assert_eq!(restored.public_jwk(), key.public_jwk());
        assert!(!format!("{key:?}").contains(&key.public_jwk().x));
    }
}
