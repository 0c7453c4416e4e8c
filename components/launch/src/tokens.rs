//! Build tokens at the edge: the secret they are signed with, minting on the `/v2` page
//! and the check on `/build` (`bindery_core::build_token` holds the format).
//!
//! An edge component instance lives for one request, so "a random secret per process", as
//! BinderHub has when none is configured, has nowhere to live in memory. With
//! `build_token_secret` empty, the first request that needs a secret generates one and
//! keeps it in the key-value store under a key of its own: every instance, and every host
//! that shares the store, then signs and checks with it. Hosts on separate stores must be
//! given one `build_token_secret`, which the warning logged at generation says.

use bindery_core::build_token::{
    self, BuildTokenError, Claims, GENERATED_SECRET_BYTES, StoredSecret,
};
use bindery_core::cache::build_token_secret_key;
use bindery_edge::config::EdgeConfig;
use bindery_edge::respond;
use http::Request;

use crate::env::Env;

/// The origin of a request as build tokens compare it: the host of its `Origin` header,
/// else its `Host` header, else the authority of its URI.
pub fn request_origin<B>(request: &Request<B>) -> Option<String> {
    let host = respond::header(request, "host")
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    build_token::request_origin(respond::header(request, "origin"), host.as_deref())
}

/// The secret's bytes: the configured one, else the one kept in the store, else a new one
/// stored there. `None` when there is none and none can be kept (no store): a token no
/// other instance could check is worth nothing.
pub fn secret<F>(cfg: &EdgeConfig, env: &Env<'_, F>) -> Option<Vec<u8>> {
    if let Some(configured) = &cfg.build_token.secret {
        // Validated when the variables were read.
        return build_token::parse_secret(configured.expose()).ok();
    }
    let key = build_token_secret_key();
    let stored = |env: &Env<'_, F>| {
        env.cache()
            .get_fresh::<StoredSecret>(&key, env.now())
            .and_then(|s| build_token::parse_secret(&s.hex).ok())
    };
    if let Some(secret) = stored(env) {
        return Some(secret);
    }
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    if let Err(e) = getrandom::fill(&mut bytes) {
        eprintln!("bindery-launch: no random source for a build token secret: {e}");
        return None;
    }
    env.cache().put(
        &key,
        &StoredSecret {
            hex: build_token::secret_hex(&bytes),
        },
    );
    eprintln!(
        "bindery-launch: warning: build_token_secret is empty; generated one and kept it in the \
         key-value store. Edge hosts that do not share this store must all be given the same \
         build_token_secret, or tokens minted on one fail on another"
    );
    // Read back what the store holds: when two instances generated at once, the one
    // written last is what every later request uses.
    stored(env)
}

/// The token the `/v2` page of `<provider>/<raw spec>` carries, if a secret is at hand.
pub fn mint<F>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    cfg: &EdgeConfig,
    env: &Env<'_, F>,
) -> Option<String> {
    let secret = secret(cfg, env)?;
    // A page the federation's redirector proxied from this prime: its event stream goes
    // to the federation, and from there to any member, with the federation's origin.
    let federation = crate::client::federation(request, cfg)
        .and_then(|url| build_token::request_origin(Some(&url), None));
    let claims = Claims {
        aud: build_token::audience(provider, raw_spec),
        origin: federation
            .or_else(|| request_origin(request))
            .unwrap_or_default(),
        exp: env.now().saturating_add(cfg.build_token.expires_seconds),
    };
    Some(build_token::mint(&secret, &claims))
}

/// Checks `token` for `<provider>/<raw spec>` and the request's origin (unless
/// `build_token_check_origin` is false).
pub fn check<F>(
    token: &str,
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    cfg: &EdgeConfig,
    env: &Env<'_, F>,
) -> Result<(), BuildTokenError> {
    let secret = secret(cfg, env).ok_or(BuildTokenError::Signature)?;
    let audience = build_token::audience(provider, raw_spec);
    let origin = build_token::verify(&secret, token, &audience, env.now())?;
    if cfg.build_token.check_origin {
        build_token::check_origin(origin.as_deref(), request_origin(request).as_deref())?;
    }
    Ok(())
}
