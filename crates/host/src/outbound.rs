//! Outbound HTTP: the `allowed_outbound_hosts` policy and the one pooled client.
//!
//! Each component gets the list its manifest entry allows, as `scheme://host[:port]`
//! patterns: `*` stands for any scheme, host or port, `*.example.org` for any subdomain, and
//! a missing port means the scheme's default, as in Spin. A refused call fails in the guest
//! with `HttpRequestDenied` and is logged. Allowed calls go through [`crate::client`].

use std::sync::Arc;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::client::OutboundClient;
use crate::variables::{VariableError, Variables};

/// Why an `allowed_outbound_hosts` entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The entry is not `scheme://host[:port]`.
    #[error("component `{component}`: allowed_outbound_hosts entry `{entry}`: {reason}")]
    Invalid {
        /// The component.
        component: String,
        /// The entry after template rendering.
        entry: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `{{ var }}` template in the entry could not be rendered.
    #[error(transparent)]
    Template(#[from] VariableError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.org`, stored as `.example.org`.
    Subdomain(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    /// `None` for `*`.
    scheme: Option<String>,
    host: HostPattern,
    /// `None` for `*`; a missing port is the scheme's default.
    port: Option<u16>,
}

/// The hosts one component may call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<Allowed>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHosts {
    /// Parses a component's entries, rendering `{{ var }}` templates from `vars`.
    pub fn parse(
        component: &str,
        entries: &[String],
        vars: &Variables,
    ) -> Result<Self, OutboundError> {
        let entries = entries
            .iter()
            .map(|entry| {
                let context = format!("component `{component}` allowed_outbound_hosts");
                let rendered = vars.render(&context, entry)?;
                parse_entry(rendered.expose()).map_err(|reason| OutboundError::Invalid {
                    component: component.to_owned(),
                    entry: entry.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Whether a request to `uri` (absolute: scheme and authority) is allowed.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let Some(port) = uri.port_u16().or_else(|| default_port(scheme)) else {
            return false;
        };
        self.entries.iter().any(|allowed| {
            let scheme_ok = allowed.scheme.as_deref().is_none_or(|s| s == scheme);
            let port_ok = match allowed.port {
                None => true,
                Some(p) => p == port,
            };
            let host_ok = match &allowed.host {
                HostPattern::Any => true,
                HostPattern::Subdomain(suffix) => {
                    host.ends_with(suffix.as_str()) && host.len() > suffix.len()
                }
                HostPattern::Exact(exact) => *exact == host,
            };
            scheme_ok && port_ok && host_ok
        })
    }
}

fn parse_entry(entry: &str) -> Result<Allowed, &'static str> {
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or("expected scheme://host[:port]")?;
    let scheme = match scheme {
        "*" => None,
        "http" | "https" => Some(scheme.to_owned()),
        _ => return Err("the scheme must be http, https or *"),
    };
    if rest.contains(['/', '?', '#', '@']) {
        return Err("only scheme://host[:port] is allowed: no path, query or user");
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 host needs its closing `]`")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("expected `:port` after `]`")?,
                ),
            ),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let host = host.to_ascii_lowercase();
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(domain) = host.strip_prefix("*.") {
        if domain.is_empty() || domain.contains('*') {
            return Err("a host wildcard is `*` or `*.domain`");
        }
        HostPattern::Subdomain(format!(".{domain}"))
    } else if host.is_empty() || host.contains('*') {
        return Err("a host wildcard is `*` or `*.domain`");
    } else if host == "self" || host.ends_with(".spin.internal") {
        return Err("service chaining is not supported by bindery-host");
    } else {
        HostPattern::Exact(host)
    };
    let port = match port {
        Some("*") => None,
        Some(port) => Some(
            port.parse::<u16>()
                .map_err(|_| "the port must be a number or *")?,
        ),
        None => match scheme.as_deref() {
            Some(scheme) => default_port(scheme),
            None => return Err("with scheme `*`, give a port (a number or *)"),
        },
    };
    Ok(Allowed { scheme, host, port })
}

/// The `wasi:http` hooks of one request: its component's policy and the shared client.
pub(crate) struct OutboundHooks {
    pub(crate) component: Arc<str>,
    pub(crate) allowed: Arc<AllowedHosts>,
    pub(crate) client: OutboundClient,
}

/// The URL as it may be logged: no user info, no query string.
fn loggable(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        if !self.allowed.allows(request.uri()) {
            tracing::warn!(
                component = %self.component,
                url = %loggable(request.uri()),
                "outbound request refused: the host is not in the component's allowed_outbound_hosts"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let client = self.client.clone();
        Box::new(async move {
            let response = client.send(request, options).await?;
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        AllowedHosts::parse("c", &entries, &Variables::default()).expect("valid entries")
    }

    #[test]
    fn requests_are_allowed_by_scheme_host_and_port() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "https://api.github.com/", false),
            (
                &["https://api.github.com"],
                "https://api.github.com/repos/x",
                true,
            ),
            (
                &["https://api.github.com"],
                "https://api.github.com:443/",
                true,
            ),
            (&["https://api.github.com"], "https://API.GitHub.com/", true),
            (&["https://api.github.com"], "http://api.github.com/", false),
            (
                &["https://api.github.com"],
                "https://api.github.com:8443/",
                false,
            ),
            (
                &["https://api.github.com"],
                "https://evil.com/?https://api.github.com",
                false,
            ),
            (&["http://127.0.0.1:8080"], "http://127.0.0.1:8080/x", true),
            (&["http://127.0.0.1:8080"], "http://127.0.0.1:8081/x", false),
            (&["http://127.0.0.1:*"], "http://127.0.0.1:8081/x", true),
            (&["http://127.0.0.1:*"], "http://127.0.0.1/x", true),
            (&["https://*.example.org"], "https://a.example.org/", true),
            (&["https://*.example.org"], "https://a.b.example.org/", true),
            (&["https://*.example.org"], "https://example.org/", false),
            (&["https://*.example.org"], "https://badexample.org/", false),
            (&["*://example.org:*"], "http://example.org:1234/", true),
            (&["https://*:*"], "https://anything.test:9/", true),
            (&["https://*"], "https://anything.test/", true),
            (&["https://*"], "https://anything.test:8443/", false),
            (&["http://[::1]:8080"], "http://[::1]:8080/", true),
        ];
        for (entries, url, expected) in cases {
            let uri: http::Uri = url.parse().expect("uri");
            assert_eq!(hosts(entries).allows(&uri), *expected, "{entries:?} {url}");
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        for entry in [
            "api.github.com",
            "ftp://x.org",
            "https://x.org/path",
            "https://user@x.org",
            "https://x.org:http",
            "https://a*.org",
            "https://*.",
            "*://x.org",
            "http://self",
            "http://worker.spin.internal",
        ] {
            let entries = vec![entry.to_owned()];
            assert!(
                AllowedHosts::parse("c", &entries, &Variables::default()).is_err(),
                "{entry}"
            );
        }
    }

    #[test]
    fn entries_render_templates_from_app_variables() {
        let defs = [(
            "worker_host".to_owned(),
            crate::manifest::VariableDef {
                default: Some("w.test:8080".into()),
                required: false,
                secret: false,
            },
        )]
        .into_iter()
        .collect();
        let vars = Variables::resolve_app(&defs, |_| None).expect("resolves");
        let allowed = AllowedHosts::parse("c", &["http://{{ worker_host }}".to_owned()], &vars)
            .expect("renders");
        assert!(allowed.allows(&"http://w.test:8080/api".parse().expect("uri")));
        let err = AllowedHosts::parse("c", &["http://{{ nope }}".to_owned()], &vars)
            .expect_err("undefined");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn logged_urls_carry_no_query_or_user_info() {
        let uri: http::Uri = "https://user:pw@api.test:8443/path?token=s3cret"
            .parse()
            .expect("uri");
        assert_eq!(loggable(&uri), "https://api.test:8443/path");
    }
}
