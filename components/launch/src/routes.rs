//! The launch component's routes, parsed from the raw (still percent-encoded) request path:
//! specs must be read before any decoding, as BinderHub re-reads the raw path so that
//! `%2F` inside a GitLab namespace stays a part of the spec.

/// A request of the launch component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the home page.
    Home,
    /// `GET /v2/<provider>/<spec>`: the loading page.
    Loading {
        /// Provider prefix.
        provider: String,
        /// Raw spec, trailing slashes removed.
        spec: String,
    },
    /// `GET /build/<provider>/<spec>`: the event stream.
    Build {
        /// Provider prefix.
        provider: String,
        /// Raw spec, trailing slashes removed.
        spec: String,
    },
    /// `GET /api/v1/resolve/<provider>/<spec>`.
    Resolve {
        /// Provider prefix.
        provider: String,
        /// Raw spec, trailing slashes removed.
        spec: String,
    },
    /// `GET /repo/<user>/<repo>[/<path>]`: a Binder 1 link.
    Legacy {
        /// The path after `/repo/`.
        rest: String,
    },
    /// `GET /health`.
    Health,
    /// `GET /versions`.
    Versions,
    /// Anything else.
    NotFound,
}

fn provider_and_spec(rest: &str) -> Option<(String, String)> {
    let (provider, spec) = rest.split_once('/')?;
    let spec = spec.trim_end_matches('/');
    (!provider.is_empty() && !spec.is_empty()).then(|| (provider.to_string(), spec.to_string()))
}

/// Parses a raw path (no query string).
pub fn parse(path: &str) -> Route {
    let split = |prefix: &str| path.strip_prefix(prefix).and_then(provider_and_spec);
    if path == "/" || path.is_empty() {
        Route::Home
    } else if path == "/health" || path == "/health/" {
        Route::Health
    } else if path == "/versions" || path == "/versions/" {
        Route::Versions
    } else if let Some((provider, spec)) = split("/v2/") {
        Route::Loading { provider, spec }
    } else if let Some((provider, spec)) = split("/build/") {
        Route::Build { provider, spec }
    } else if let Some((provider, spec)) = split("/api/v1/resolve/") {
        Route::Resolve { provider, spec }
    } else if let Some(rest) = path.strip_prefix("/repo/") {
        Route::Legacy {
            rest: rest.to_string(),
        }
    } else {
        Route::NotFound
    }
}

/// The value of query parameter `name`, percent-decoded (`+` as space), if present.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths_map_to_routes_keeping_encoded_specs() {
        let cases = [
            ("/", Route::Home),
            ("/health", Route::Health),
            ("/versions", Route::Versions),
            (
                "/v2/gl/group%2Fproject/main/",
                Route::Loading {
                    provider: "gl".into(),
                    spec: "group%2Fproject/main".into(),
                },
            ),
            (
                "/build/gh/a/b/HEAD",
                Route::Build {
                    provider: "gh".into(),
                    spec: "a/b/HEAD".into(),
                },
            ),
            (
                "/api/v1/resolve/zenodo/10.5281/zenodo.1",
                Route::Resolve {
                    provider: "zenodo".into(),
                    spec: "10.5281/zenodo.1".into(),
                },
            ),
            (
                "/repo/a/b/x.ipynb",
                Route::Legacy {
                    rest: "a/b/x.ipynb".into(),
                },
            ),
            ("/v2/gh", Route::NotFound),
            ("/build/gh/", Route::NotFound),
            ("/elsewhere", Route::NotFound),
        ];
        for (path, route) in cases {
            assert_eq!(parse(path), route, "{path}");
        }
    }

    #[test]
    fn query_parameters_decode() {
        assert_eq!(
            query_param("urlpath=%2Flab%2Ftree%2Fa+b&x=1", "urlpath").as_deref(),
            Some("/lab/tree/a b")
        );
        assert_eq!(query_param("x=1", "urlpath"), None);
        assert_eq!(query_param("labpath", "labpath").as_deref(), Some(""));
    }
}
