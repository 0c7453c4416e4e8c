//! Tests of loading the configuration from variables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use bindery_core::Secret;
use bindery_core::Spec;
use bindery_core::cache::CacheTtl;
use bindery_core::provider::ProviderSettings;

use super::parse::split_list;
use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<EdgeConfig, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    EdgeConfig::from_source(|name| Ok(map.get(name).cloned()))
}

/// A configuration from `pairs`, reading only the variables in `list`.
fn load_only(pairs: &[(&str, &str)], list: &[&str]) -> EdgeConfig {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    EdgeConfig::from_source(|name| {
        Ok(list
            .contains(&name)
            .then(|| map.get(name).map(|v| (*v).to_owned()))
            .flatten())
    })
    .unwrap()
}

#[test]
fn a_cached_resolve_reads_all_its_answer_depends_on() {
    // Every variable the resolve route reads, none at its default.
    let pairs = [
        (WORKER_URL, "http://worker.example.org:8585"),
        (WORKER_TOKEN, "worker-token"),
        (USE_REGISTRY, "false"),
        (REGISTRY_URL, "http://registry.example.org:5000"),
        (REGISTRY_USERNAME, "puller"),
        (REGISTRY_PASSWORD, "pw"),
        (IMAGE_PREFIX, "registry.example.org:5000/x-"),
        (GITHUB_TOKEN, "ghp_x"),
        (GITLAB_TOKEN, "glpat_x"),
        (BANNED_SPECS, "org/banned.*"),
        (ALLOWED_SPECS, "org/.*,zenodo/.*,hydroshare/.*"),
        (HIGH_QUOTA_SPECS, "org/big.*"),
        (BAN_NETWORKS, "192.0.2.0/24=a test network"),
        (TRUSTED_PROXIES, "10.0.0.0/8"),
        (GITHUB_API, "http://127.0.0.1:9001"),
        (GITLAB_API, "http://127.0.0.1:9002/api/v4"),
        (DOI_RESOLVER, "http://127.0.0.1:9003"),
        (FIGSHARE_API, "http://127.0.0.1:9004/v2"),
        (HYDROSHARE_BASE, "http://127.0.0.1:9005"),
        (REF_TTL_SECONDS, "7"),
        (IMAGE_PRESENT_TTL_SECONDS, "8"),
        (IMAGE_MISSING_TTL_SECONDS, "9"),
    ];
    let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names, RESOLVE_VARIABLES,
        "every resolve variable is set above"
    );
    assert!(
        CACHED_RESOLVE_VARIABLES
            .iter()
            .all(|n| RESOLVE_VARIABLES.contains(n))
    );
    let full = load_only(&pairs, RESOLVE_VARIABLES);
    let cached = load_only(&pairs, CACHED_RESOLVE_VARIABLES);

    assert_eq!(cached.image_prefix, full.image_prefix);
    assert_eq!(cached.ban_networks, full.ban_networks);
    assert_eq!(cached.trusted_proxies, full.trusted_proxies);
    assert!(!full.trusted_proxies.is_empty());
    let raws = ["org/banned-x/main", "org/repo/main", "other/repo/main"];
    for raw in raws {
        assert_eq!(
            cached.policy.is_banned(raw),
            full.policy.is_banned(raw),
            "{raw}"
        );
    }
    assert!(full.policy.is_banned(raws[0]) && full.policy.is_banned(raws[2]));
    assert!(!full.policy.is_banned(raws[1]));

    // A parsed spec is the same from either, for every provider: its repository URL,
    // resolved spec and ref URL, which the answer shows, come from it.
    let links = [
        "gh/org/repo/main",
        "gl/group/project/main",
        "gist/user/0123456789abcdef/main",
        "git/https%3A%2F%2Fexample.org%2Frepo.git/main",
        "zenodo/10.5281/zenodo.3242074",
        "figshare/10.6084/m9.figshare.9782777.v1",
        "hydroshare/142c59757ed54de1816777828c9716e7",
        "dataverse/10.7910/DVN/TJCLKP",
        "ckan/https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fx",
    ];
    for link in links {
        let from_full = Spec::parse_path(link, &full.providers).unwrap();
        let from_cached = Spec::parse_path(link, &cached.providers).unwrap();
        assert_eq!(from_cached, from_full, "{link}");
    }
    // The endpoints a miss needs are left at their defaults by the short list.
    assert_ne!(cached.providers.github_api, full.providers.github_api);
    assert_ne!(cached.ttl, full.ttl);
}

#[test]
fn nothing_declared_loads_with_defaults() {
    let cfg = load(&[]).unwrap();
    assert_eq!(cfg.providers, ProviderSettings::default());
    assert_eq!(cfg.ttl, CacheTtl::default());
    assert!(cfg.prebuild_specs.is_empty());
    assert!(!cfg.policy.is_banned("a/b/c"));
    assert!(cfg.ban_networks.is_empty());
    assert!(cfg.public_url.is_none());
    assert!(cfg.badge_base_url.is_none());
    assert!(cfg.cors_allow_origin.is_none());
    assert_eq!(cfg.frame_ancestors.as_str(), "'self'");
    assert!(
        cfg.use_registry,
        "images are looked up in the registry by default"
    );
    assert!(!load(&[(USE_REGISTRY, "False")]).unwrap().use_registry);
}

#[test]
fn the_federation_settings_load_and_a_bad_one_is_named() {
    let cfg = load(&[
        (BADGE_BASE_URL, "https://mybinder.org/"),
        (CORS_ALLOW_ORIGIN, "*"),
        (ABOUT_MESSAGE, "<p>Run by the lab</p>"),
    ])
    .unwrap();
    assert_eq!(cfg.badge_base_url.as_deref(), Some("https://mybinder.org"));
    assert_eq!(cfg.cors_allow_origin, Some(CorsOrigins::Any));
    assert_eq!(cfg.about_message.as_deref(), Some("<p>Run by the lab</p>"));
    for (name, raw) in [
        (CORS_ALLOW_ORIGIN, "https://a.org\r\nx-evil: 1"),
        (CORS_ALLOW_ORIGIN, "https://a.org/path"),
        (BADGE_BASE_URL, "mybinder.org"),
    ] {
        let err = load(&[(name, raw)]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn missing_values_are_named_by_the_getters() {
    let cfg = load(&[(WORKER_URL, "http://127.0.0.1:8585/"), (WORKER_TOKEN, "  ")]).unwrap();
    let err = cfg.worker().unwrap_err();
    assert!(
        err.to_string().contains("`worker_token` is not set"),
        "{err}"
    );
    let err = cfg.registry().unwrap_err();
    assert!(err.to_string().contains("`registry_url`"), "{err}");
    let err = cfg.image_prefix().unwrap_err();
    assert!(err.to_string().contains("`image_prefix`"), "{err}");

    let cfg = load(&[(WORKER_URL, "http://127.0.0.1:8585/"), (WORKER_TOKEN, "t")]).unwrap();
    let worker = cfg.worker().unwrap();
    assert_eq!(worker.url, "http://127.0.0.1:8585");
    assert_eq!(worker.token.expose(), "t");
}

#[test]
fn values_are_parsed() {
    let cfg = load(&[
        (REGISTRY_URL, "http://127.0.0.1:5000"),
        (REGISTRY_USERNAME, "puller"),
        (REGISTRY_PASSWORD, "pw"),
        (IMAGE_PREFIX, "127.0.0.1:5000/binder-"),
        (GITHUB_API, "http://127.0.0.1:9000/"),
        (REF_TTL_SECONDS, "5"),
        (IMAGE_MISSING_TTL_SECONDS, "0"),
        (PREBUILD_SPECS, "binder-examples/.*, other/"),
        (BANNED_SPECS, "evil/.*"),
        (BAN_NETWORKS, "10.0.0.0/8=the lab\n192.168.0.1=home"),
        (TRUSTED_PROXIES, "172.16.0.0/12, 192.0.2.1"),
        (PUBLIC_URL, "https://binder.example.org/"),
        (GITHUB_TOKEN, "ghp"),
        (FRAME_ANCESTORS, "'self'  https://*.jupyter.org"),
    ])
    .unwrap();
    assert_eq!(
        cfg.registry().unwrap().credentials,
        Some(bindery_core::registry::Credentials::new("puller", "pw")),
        "basic credentials"
    );
    assert_eq!(cfg.image_prefix().unwrap(), "127.0.0.1:5000/binder-");
    assert_eq!(cfg.providers.github_api, "http://127.0.0.1:9000");
    assert_eq!(cfg.providers.github_host, "github.com", "repo hosts stay");
    assert_eq!(cfg.ttl.ref_seconds, 5);
    assert_eq!(cfg.ttl.image_missing_seconds, 0);
    assert_eq!(cfg.ttl.image_present_seconds, 21_600);
    assert!(cfg.prebuild_specs.matches("Binder-Examples/octave/HEAD"));
    assert!(cfg.prebuild_specs.matches("other/x/main"));
    assert!(!cfg.prebuild_specs.matches("x/binder-examples/main"));
    assert!(cfg.policy.is_banned("EVIL/x/main"));
    let ip = "10.1.2.3".parse().unwrap();
    assert_eq!(cfg.ban_networks.matching(ip), Some("the lab"));
    for (proxy, trusted) in [
        ("172.20.0.1", true),
        ("192.0.2.1", true),
        ("10.1.2.3", false),
    ] {
        let proxy = proxy.parse().unwrap();
        assert_eq!(
            cfg.trusted_proxies.matching(proxy).is_some(),
            trusted,
            "{proxy}"
        );
    }
    assert_eq!(
        cfg.public_url.as_deref(),
        Some("https://binder.example.org")
    );
    assert_eq!(cfg.frame_ancestors.as_str(), "'self' https://*.jupyter.org");
    assert_eq!(
        cfg.credentials.github_token.as_ref().map(Secret::expose),
        Some("ghp")
    );
}

#[test]
fn lists_split_on_newlines_when_there_are_any() {
    assert_eq!(split_list("a, b,,c "), ["a", "b", "c"]);
    assert_eq!(split_list("a{1,3}\n b \n\n"), ["a{1,3}", "b"]);
    assert!(split_list(" ").is_empty());
}

#[test]
fn malformed_values_name_their_variable() {
    let cases: &[(&str, &str)] = &[
        (WORKER_URL, "127.0.0.1:8585"),
        (WORKER_URL, "ftp://host"),
        (REGISTRY_URL, "http://host/?q"),
        (USE_REGISTRY, "none"),
        (GITLAB_API, "not a url"),
        (REF_TTL_SECONDS, "-1"),
        (IMAGE_PRESENT_TTL_SECONDS, "1h"),
        (PREBUILD_SPECS, "a)|(b"),
        (BANNED_SPECS, "("),
        (ALLOWED_SPECS, "["),
        (HIGH_QUOTA_SPECS, "x{"),
        (BAN_NETWORKS, "10.0.0.0/8"),
        (BAN_NETWORKS, "nonsense=label"),
        (TRUSTED_PROXIES, "10.0.0.0/8,proxy.example.org"),
        (TRUSTED_PROXIES, "10.0.0.0/33"),
        (IMAGE_PREFIX, "binder-"),
        (PUBLIC_URL, "binder.example.org"),
        (FRAME_ANCESTORS, "'self'; script-src *"),
        (FRAME_ANCESTORS, "'self'\nx-evil: 1"),
        (FRAME_ANCESTORS, "'unsafe-inline'"),
    ];
    for (name, raw) in cases {
        let err = load(&[(name, raw)]).unwrap_err();
        assert!(
            err.to_string().contains(&format!("`{name}`")),
            "{name}={raw}: {err}"
        );
    }
}

#[test]
fn secrets_never_show() {
    let cfg = load(&[
        (WORKER_TOKEN, "tok-SECRET"),
        (REGISTRY_PASSWORD, "pw-SECRET"),
        (GITHUB_WEBHOOK_SECRET, "gh-SECRET"),
        (GITLAB_WEBHOOK_SECRET, "gl-SECRET"),
        (GITHUB_TOKEN, "ght-SECRET"),
        (GITLAB_TOKEN, "glt-SECRET"),
    ])
    .unwrap();
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    let err = load(&[(WORKER_URL, "https://user:SECRET@host")]).unwrap_err();
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[test]
fn provider_failures_are_reported_with_the_name() {
    let err = EdgeConfig::from_source(|name| {
        if name == GITHUB_TOKEN {
            Err(ConfigError::Provider {
                name,
                reason: "vault down".into(),
            })
        } else {
            Ok(None)
        }
    })
    .unwrap_err();
    assert!(err.to_string().contains("`github_token`"), "{err}");
}

#[test]
fn every_variable_is_listed_once_and_component_lists_are_known() {
    let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), VARIABLES.len());
    for list in [BADGE_VARIABLES, WEBHOOK_VARIABLES, LAUNCH_VARIABLES] {
        for name in list {
            assert!(names.contains(name), "{name}");
        }
    }
    // The resolve route reads a part of what the launch component declares, and
    // leaves out only what it never uses.
    let left_out: Vec<&str> = LAUNCH_VARIABLES
        .iter()
        .copied()
        .filter(|name| !RESOLVE_VARIABLES.contains(name))
        .collect();
    assert_eq!(
        left_out,
        [
            PUBLIC_URL,
            // A federation member's settings (issue 14): links, CORS, the about page.
            BADGE_BASE_URL,
            CORS_ALLOW_ORIGIN,
            ABOUT_MESSAGE,
            FRAME_ANCESTORS,
            // `/build`'s brakes (issue 12): the resolve API mints and counts nothing.
            BUILD_TOKEN_SECRET,
            BUILD_TOKEN_EXPIRES_SECONDS,
            BUILD_TOKEN_CHECK_ORIGIN,
            BUILD_RATE_LIMIT,
            BUILD_RATE_PERIOD_SECONDS,
            // `/build?build_only=true` (issue 14).
            ALLOW_BUILD_ONLY,
            // Read first by every request of the component; a federation proxies the
            // resolve API to its prime.
            FEDERATION,
        ]
    );
    assert!(
        RESOLVE_VARIABLES
            .iter()
            .all(|n| LAUNCH_VARIABLES.contains(n))
    );
}
