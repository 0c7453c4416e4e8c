//! Registry URL and credentials from a docker `config.json`, with BinderHub's defaults.
//!
//! Operators already hold a docker config for pushing (repo2docker mounts it), so the
//! edge reads the same JSON (a Spin variable) instead of a second credentials format.
//! "The first `auths` key" means the first in the document, so the keys are read in
//! document order rather than through a sorted map.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{RegistryAuth, RegistryError, parse_http_url};

/// The key `docker login` writes for Docker Hub.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
/// Where Docker Hub's v2 API lives.
const DOCKER_HUB_REGISTRY_URL: &str = "https://registry-1.docker.io";
/// Docker Hub's token service.
const DOCKER_HUB_TOKEN_URL: &str = "https://auth.docker.io/token?service=registry.docker.io";

/// Standard base64 that accepts `auth` values with or without padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The registry to check and how to authenticate to it, as BinderHub derives them.
///
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DockerConfigAuth {
    /// The registry's v2 API base URL.
    pub url: String,
    /// The `auths` key the credentials were taken from.
    pub auth_config_url: String,
    /// The username (empty when the entry has no `auth`).
    pub username: String,
    /// The password (empty when the entry has no `auth`); may contain `:`.
    pub password: String,
    /// A token service to ask before the manifest check (GCR, Docker Hub); `None` means
    /// "wait for the registry's 401 challenge".
    pub token_url: Option<String>,
}

impl fmt::Debug for DockerConfigAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfigAuth")
            .field("url", &self.url)
            .field("auth_config_url", &self.auth_config_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("token_url", &self.token_url)
            .finish()
    }
}

impl DockerConfigAuth {
    /// `(username, password)`, or `None` when the config holds no credentials.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        if self.username.is_empty() && self.password.is_empty() {
            None
        } else {
            Some((&self.username, &self.password))
        }
    }

    /// Basic auth with the credentials, or anonymous without any.
    pub fn auth(&self) -> RegistryAuth {
        match self.credentials() {
            Some((username, password)) => RegistryAuth::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            },
            None => RegistryAuth::Anonymous,
        }
    }
}

/// Reads a docker `config.json`: the registry is the first `auths` key (`https://` added
/// to a bare hostname; Docker Hub's v1 key means `https://registry-1.docker.io`), the
/// credentials are its base64 `auth` split at the first `:`, and GCR and Docker Hub get
/// their token URLs.
pub fn from_docker_config(json: &[u8]) -> Result<DockerConfigAuth, RegistryError> {
    from_docker_config_with_url(json, None)
}

/// Like [`from_docker_config`], with the registry URL set by configuration instead of taken
/// from the first `auths` key; the credentials are looked up for that URL (exact key, then
/// hostname, then Docker Hub's v1 key for `*.docker.io`).
pub fn from_docker_config_with_url(
    json: &[u8],
    url: Option<&str>,
) -> Result<DockerConfigAuth, RegistryError> {
    let file: DockerConfigFile = serde_json::from_slice(json).map_err(|e| {
        // Only the position or a fixed text: serde's data errors quote values, which may be
        // credentials.
        let reason = if e.is_data() {
            "expected a json object whose `auths` maps registry urls to objects".to_owned()
        } else {
            format!("not json (line {}, column {})", e.line(), e.column())
        };
        RegistryError::InvalidDockerConfig { reason }
    })?;
    let auths = file.auths.map(|a| a.0).unwrap_or_default();
    let url = match url {
        Some(url) => url.to_owned(),
        None => {
            let Some((first, _)) = auths.first() else {
                return Err(RegistryError::InvalidDockerConfig {
                    reason: "it has no `auths` entries; add the registry's credentials with \
                             `docker login <registry>` or set the registry url explicitly"
                        .to_owned(),
                });
            };
            default_url(first)
        }
    };
    let parsed = parse_http_url(&url, "registry url")?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let is_docker_io = host == "docker.io" || host.ends_with(".docker.io");

    let find = |key: &str| auths.iter().find(|(k, _)| k == key);
    let entry = find(&url).or_else(|| find(&host)).or_else(|| {
        if is_docker_io {
            auths.iter().find(|(k, _)| is_docker_hub_key(k))
        } else {
            None
        }
    });
    let auth_config_url = match entry {
        Some((key, _)) => key.clone(),
        None if is_docker_io => DOCKER_HUB_AUTH_KEY.to_owned(),
        None => url.clone(),
    };
    let (username, password) = match entry {
        Some((key, value)) => decode_entry(key, value)?,
        None => (String::new(), String::new()),
    };

    let token_url = if host == "gcr.io" || host.ends_with(".gcr.io") {
        Some(format!("https://{host}/v2/token?service={host}"))
    } else if is_docker_io {
        Some(DOCKER_HUB_TOKEN_URL.to_owned())
    } else {
        None
    };
    Ok(DockerConfigAuth {
        url,
        auth_config_url,
        username,
        password,
        token_url,
    })
}

/// The registry URL BinderHub derives from an `auths` key.
fn default_url(key: &str) -> String {
    let url = if key.contains("://") {
        key.to_owned()
    } else {
        format!("https://{key}")
    };
    if is_docker_hub_key(&url) {
        DOCKER_HUB_REGISTRY_URL.to_owned()
    } else {
        url
    }
}

fn is_docker_hub_key(key: &str) -> bool {
    let key = key.trim_end_matches('/');
    key == DOCKER_HUB_AUTH_KEY.trim_end_matches('/') || key == "index.docker.io/v1"
}

/// Username and password from an `auths` entry's `auth` (empty when there is none, as with
/// a credential helper).
fn decode_entry(key: &str, entry: &Value) -> Result<(String, String), RegistryError> {
    let shown_key = crate::validate::shown(key);
    let Value::Object(entry) = entry else {
        return Err(RegistryError::InvalidDockerConfig {
            reason: format!("the `auths` entry {shown_key} is not an object"),
        });
    };
    let auth = match entry.get("auth") {
        None | Some(Value::Null) => return Ok((String::new(), String::new())),
        Some(Value::String(auth)) if auth.trim().is_empty() => {
            return Ok((String::new(), String::new()));
        }
        Some(Value::String(auth)) => auth.trim(),
        Some(_) => {
            return Err(RegistryError::InvalidDockerConfig {
                reason: format!("the `auth` of {shown_key} is not a string"),
            });
        }
    };
    let invalid = |what: &str| RegistryError::InvalidDockerConfig {
        reason: format!("the `auth` of {shown_key} {what}; expected base64 of `username:password`"),
    };
    let decoded = LENIENT_BASE64
        .decode(auth)
        .map_err(|_| invalid("is not valid base64"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| invalid("does not decode to utf-8 text"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| invalid("has no `:`"))?;
    Ok((username.to_owned(), password.to_owned()))
}

#[derive(Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: Option<OrderedAuths>,
}

/// The `auths` object with its keys in document order.
struct OrderedAuths(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedAuths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = OrderedAuths;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of registry entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedAuths, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(OrderedAuths(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn config(auths: &str) -> Vec<u8> {
        format!(r#"{{"auths": {auths}}}"#).into_bytes()
    }

    #[test]
    fn docker_hub_v1_key_maps_to_registry_1() {
        let json = config(&format!(
            r#"{{"https://index.docker.io/v1/": {{"auth": "{}"}}}}"#,
            b64("user:pass")
        ));
        let got = from_docker_config(&json).unwrap();
        assert_eq!(got.url, "https://registry-1.docker.io");
        assert_eq!(got.auth_config_url, "https://index.docker.io/v1/");
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("user", "pass")
        );
        assert_eq!(
            got.token_url.as_deref(),
            Some("https://auth.docker.io/token?service=registry.docker.io")
        );
    }

    #[test]
    fn gcr_gets_its_token_url() {
        let json = config(&format!(
            r#"{{"https://gcr.io": {{"auth": "{}"}}}}"#,
            b64("_json_key:{...}")
        ));
        let got = from_docker_config(&json).unwrap();
        assert_eq!(got.url, "https://gcr.io");
        assert_eq!(got.auth_config_url, "https://gcr.io");
        assert_eq!(
            got.token_url.as_deref(),
            Some("https://gcr.io/v2/token?service=gcr.io")
        );
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("_json_key", "{...}")
        );
        let got = from_docker_config(&config(r#"{"eu.gcr.io": {}}"#)).unwrap();
        assert_eq!(got.url, "https://eu.gcr.io");
        assert_eq!(got.auth_config_url, "eu.gcr.io");
        assert_eq!(
            got.token_url.as_deref(),
            Some("https://eu.gcr.io/v2/token?service=eu.gcr.io")
        );
    }

    #[test]
    fn first_key_in_document_order_wins_and_hostnames_get_https() {
        let json = config(&format!(
            r#"{{"zz.example.org": {{"auth": "{}"}}, "aa.example.org": {{"auth": "{}"}}}}"#,
            b64("z:1"),
            b64("a:2")
        ));
        let got = from_docker_config(&json).unwrap();
        assert_eq!(got.url, "https://zz.example.org");
        assert_eq!(got.auth_config_url, "zz.example.org");
        assert_eq!(got.credentials(), Some(("z", "1")));
        assert_eq!(got.token_url, None);
    }

    #[test]
    fn password_may_contain_colons_and_padding_is_optional() {
        let auth = b64("robot$ci:pa:ss:word").trim_end_matches('=').to_owned();
        let got = from_docker_config(&config(&format!(
            r#"{{"https://harbor.example.org": {{"auth": "{auth}"}}}}"#
        )))
        .unwrap();
        assert_eq!(got.credentials(), Some(("robot$ci", "pa:ss:word")));
        assert_eq!(
            got.auth(),
            RegistryAuth::Basic {
                username: "robot$ci".into(),
                password: "pa:ss:word".into()
            }
        );
    }

    #[test]
    fn an_entry_without_auth_gives_no_credentials() {
        let got =
            from_docker_config(&config(r#"{"https://r.example.org": {"email": "x"}}"#)).unwrap();
        assert_eq!(got.credentials(), None);
        assert_eq!(got.auth(), RegistryAuth::Anonymous);
    }

    #[test]
    fn an_explicit_url_looks_up_its_credentials() {
        let json = config(&format!(
            r#"{{"a.example.org": {{"auth": "{}"}}, "https://index.docker.io/v1/": {{"auth": "{}"}}}}"#,
            b64("a:1"),
            b64("hub:2")
        ));
        let got = from_docker_config_with_url(&json, Some("https://registry-1.docker.io")).unwrap();
        assert_eq!(got.auth_config_url, "https://index.docker.io/v1/");
        assert_eq!(got.credentials(), Some(("hub", "2")));
        let got = from_docker_config_with_url(&json, Some("https://other.example.org")).unwrap();
        assert_eq!(got.auth_config_url, "https://other.example.org");
        assert_eq!(got.credentials(), None);
        let got = from_docker_config_with_url(b"{}", Some("https://r.example.org")).unwrap();
        assert_eq!(got.url, "https://r.example.org");
    }

    #[test]
    fn unusable_configs_are_errors_that_never_show_secrets() {
        let secret = "topsecret";
        let cases = [
            b"{}".to_vec(),
            config("{}"),
            b"not json".to_vec(),
            b"[]".to_vec(),
            config(&format!(r#""{secret}""#)),
            config(&format!(r#"{{"r.example.org": "{secret}"}}"#)),
            config(r#"{"r.example.org": {"auth": "!!not base64!!"}}"#),
            config(&format!(
                r#"{{"r.example.org": {{"auth": "{}"}}}}"#,
                b64(secret)
            )),
            config(r#"{"r.example.org": {"auth": 42}}"#),
            config(&format!(
                r#"{{"r.example.org": {{"auth": "{}"}}}}"#,
                base64::engine::general_purpose::STANDARD.encode([0xff, b':', 0xfe])
            )),
            config(r#"{"": {}}"#),
            config(r#"{"ftp://r.example.org": {}}"#),
        ];
        for json in cases {
            let err = from_docker_config(&json).unwrap_err();
            assert!(
                matches!(
                    err,
                    RegistryError::InvalidDockerConfig { .. } | RegistryError::InvalidUrl { .. }
                ),
                "{err:?}"
            );
            assert!(!err.to_string().contains(secret), "{err}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let json = config(&format!(
            r#"{{"r.example.org": {{"auth": "{}"}}}}"#,
            b64("u:hunter2")
        ));
        let got = from_docker_config(&json).unwrap();
        assert!(!format!("{got:?}").contains("hunter2"));
    }
}
