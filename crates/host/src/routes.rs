//! Spin's HTTP routing rules and the `spin-*` headers a component sees.
//!
//! A route is exact (`/cart`), has single-segment wildcards (`/user/:name`), or ends in a
//! trailing wildcard (`/badge/...`, which matches `/badge`, `/badge/` and everything below).
//! When several routes match, the most specific wins whatever the manifest order: segments
//! are compared left to right (a literal beats `:name`, which beats the end of a wildcard
//! prefix), and on a tie an exact route beats a wildcard one.

use std::fmt;

/// Why a route pattern was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid route `{route}`: {reason}")]
pub struct RouteError {
    route: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One parsed `[[trigger.http]]` route.
#[derive(Debug, Clone)]
struct Route {
    /// The route as written in the manifest.
    raw: String,
    /// The route with one trailing `/` removed, as Spin's `spin-matched-route` shows it.
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
    target: usize,
}

/// The routing table: built once, shared by every request.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// The route that matched a request path, with what Spin derives from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'r> {
    /// The index given with the route to [`Router::new`].
    pub target: usize,
    /// The route as written in the manifest (`spin-raw-component-route`).
    pub raw_route: &'r str,
    /// The route without a trailing slash (`spin-matched-route`).
    pub matched_route: &'r str,
    /// The part of the path below a trailing wildcard, or empty (`spin-path-info`).
    pub path_info: String,
    /// `:name` segments and the values they matched (`spin-path-match-<name>`).
    pub params: Vec<(&'r str, String)>,
}

impl RouteMatch<'_> {
    /// The route without its trailing wildcard (`spin-component-route`).
    pub fn component_route(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(self.raw_route)
    }
}

impl Router {
    /// Builds a router from `(route, target)` pairs; `target` is what a match hands back.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, usize)>) -> Result<Self, RouteError> {
        let routes = routes
            .into_iter()
            .map(|(raw, target)| parse(raw, target))
            .collect::<Result<_, _>>()?;
        Ok(Self { routes })
    }

    /// Finds the best route for `path` (no query string), or `None`: the caller answers 404.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let path_segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(Vec<u8>, &Route)> = None;
        for route in &self.routes {
            let Some(rank) = rank(route, &path_segments) else {
                continue;
            };
            if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                best = Some((rank, route));
            }
        }
        let (_, route) = best?;
        let params = route
            .segments
            .iter()
            .zip(&path_segments)
            .filter_map(|(segment, value)| match segment {
                Segment::Param(name) => Some((name.as_str(), (*value).to_owned())),
                Segment::Literal(_) => None,
            })
            .collect();
        let path_info = if route.wildcard {
            path_info(&path_segments[route.segments.len()..], path)
        } else {
            String::new()
        };
        Some(RouteMatch {
            target: route.target,
            raw_route: &route.raw,
            matched_route: &route.based,
            path_info,
            params,
        })
    }
}

fn parse(raw: &str, target: usize) -> Result<Route, RouteError> {
    let refuse = |reason| RouteError {
        route: raw.to_owned(),
        reason,
    };
    if !raw.starts_with('/') {
        return Err(refuse("a route must begin with `/`"));
    }
    let (prefix, wildcard) = match raw.strip_suffix("/...").or_else(|| raw.strip_suffix("/*")) {
        Some(prefix) => (prefix, true),
        None => (raw, false),
    };
    let segments = prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix(':') {
            Some("") => Err(refuse("a `:` segment needs a name")),
            Some(name) => Ok(Segment::Param(name.to_owned())),
            None if s == "..." || s.contains('*') => Err(refuse("a wildcard may only end a route")),
            None => Ok(Segment::Literal(s.to_owned())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let based = if raw.len() > 1 {
        raw.strip_suffix('/').unwrap_or(raw)
    } else {
        raw
    };
    Ok(Route {
        raw: raw.to_owned(),
        based: based.to_owned(),
        segments,
        wildcard,
        target,
    })
}

/// A route's specificity for this path, or `None` when it does not match. Greater is better.
fn rank(route: &Route, path: &[&str]) -> Option<Vec<u8>> {
    if path.len() < route.segments.len() || (!route.wildcard && path.len() != route.segments.len())
    {
        return None;
    }
    let mut rank = Vec::with_capacity(path.len() + 1);
    for (segment, value) in route.segments.iter().zip(path) {
        match segment {
            Segment::Literal(literal) if literal == value => rank.push(2),
            Segment::Literal(_) => return None,
            Segment::Param(_) => rank.push(1),
        }
    }
    // Segments swallowed by the trailing wildcard rank lowest; then exact beats wildcard.
    rank.resize(path.len(), 0);
    rank.push(u8::from(!route.wildcard));
    Some(rank)
}

/// The path below a wildcard prefix, keeping a trailing slash as Spin does.
fn path_info(rest: &[&str], path: &str) -> String {
    let trailing_slash = path.ends_with('/') && path.len() > 1;
    let mut info = String::new();
    for segment in rest {
        info.push('/');
        info.push_str(segment);
    }
    if trailing_slash || (rest.is_empty() && path == "/") {
        info.push('/');
    }
    info
}

impl fmt::Display for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes: Vec<&str> = self.routes.iter().map(|r| r.raw.as_str()).collect();
        write!(f, "{}", routes.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        Router::new(routes.iter().enumerate().map(|(i, r)| (*r, i))).expect("valid routes")
    }

    #[test]
    fn routes_match_as_spin_matches_them() {
        // (routes, path, expected route or None, expected spin-path-info)
        let cases: &[(&[&str], &str, Option<&str>, &str)] = &[
            (&["/foo"], "/foo", Some("/foo"), ""),
            (&["/foo"], "/foo/", Some("/foo"), ""),
            (&["/foo"], "/foo/bar", None, ""),
            (&["/foo"], "/", None, ""),
            (&["/foo/..."], "/foo", Some("/foo/..."), ""),
            (&["/foo/..."], "/foo/", Some("/foo/..."), "/"),
            (&["/foo/..."], "/foo/bar", Some("/foo/..."), "/bar"),
            (&["/foo/..."], "/foo/bar/", Some("/foo/..."), "/bar/"),
            (&["/foo/..."], "/foobar", None, ""),
            (&["/..."], "/", Some("/..."), "/"),
            (&["/..."], "/1/2/3", Some("/..."), "/1/2/3"),
            (&["/"], "/", Some("/"), ""),
            (&["/"], "/x", None, ""),
            // Exact beats wildcard, whatever the order.
            (&["/...", "/one"], "/one", Some("/one"), ""),
            (&["/one/...", "/one"], "/one", Some("/one"), ""),
            (&["/one", "/one/..."], "/one/", Some("/one"), ""),
            // The longest wildcard prefix wins, whatever the order.
            (
                &["/one/...", "/one/two/...", "/one/two/three/..."],
                "/one/two/three/four",
                Some("/one/two/three/..."),
                "/four",
            ),
            (
                &["/one/two/three/...", "/one/two/...", "/one/..."],
                "/one/two/three/four",
                Some("/one/two/three/..."),
                "/four",
            ),
            (
                &["/one/two/three/...", "/one/two/...", "/one/..."],
                "/one/two/x",
                Some("/one/two/..."),
                "/x",
            ),
            // A literal segment beats a named one.
            (
                &["/user/:name", "/user/admin"],
                "/user/admin",
                Some("/user/admin"),
                "",
            ),
            (
                &["/user/:name", "/user/admin"],
                "/user/ada",
                Some("/user/:name"),
                "",
            ),
            (
                &["/user/:name/...", "/..."],
                "/user/ada/repos",
                Some("/user/:name/..."),
                "/repos",
            ),
            (
                &["/badge.svg", "/status/..."],
                "/status/gh/org/repo.svg",
                Some("/status/..."),
                "/gh/org/repo.svg",
            ),
        ];
        for (routes, path, expected, info) in cases {
            let router = router(routes);
            let found = router.route(path);
            assert_eq!(
                found.as_ref().map(|m| m.raw_route),
                *expected,
                "{routes:?} {path}"
            );
            if let Some(found) = found {
                assert_eq!(found.path_info, *info, "{routes:?} {path}");
            }
        }
    }

    #[test]
    fn named_segments_are_captured() {
        let router = router(&["/1/:two/3", "/a/:b/:c/..."]);
        let m = router.route("/1/2/3").expect("matches");
        assert_eq!(m.params, vec![("two", "2".to_owned())]);
        let m = router.route("/a/x/y/z").expect("matches");
        assert_eq!(m.params, vec![("b", "x".to_owned()), ("c", "y".to_owned())]);
        assert_eq!(m.path_info, "/z");
    }

    #[test]
    fn component_route_drops_the_wildcard() {
        let router = router(&["/foo/...", "/...", "/bar/"]);
        let m = router.route("/foo/x").expect("matches");
        assert_eq!((m.matched_route, m.component_route()), ("/foo/...", "/foo"));
        let m = router.route("/x").expect("matches");
        assert_eq!((m.matched_route, m.component_route()), ("/...", ""));
        let m = router.route("/bar").expect("matches");
        assert_eq!((m.raw_route, m.matched_route), ("/bar/", "/bar"));
    }

    #[test]
    fn malformed_routes_are_refused() {
        for route in ["foo", "/a/.../b", "/a/:", "/a/*/b"] {
            assert!(Router::new([(route, 0)]).is_err(), "{route}");
        }
    }
}
