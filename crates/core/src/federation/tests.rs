use super::*;

const MYBINDER: &str = include_str!("../../tests/data/federation-mybinder.json");

fn parse(text: &str) -> Result<FederationConfig, FederationConfigError> {
    FederationConfig::parse(text).map(|c| c.expect("a federation"))
}

fn refused(text: &str) -> String {
    parse(text).expect_err("refused").to_string()
}

#[test]
fn a_config_rendered_by_mybinders_chart_is_taken_unchanged() {
    let cfg = parse(MYBINDER).expect("mybinder's chart values");
    assert_eq!(cfg.load_balancer, LoadBalancer::Random);
    assert_eq!(
        cfg.check,
        CheckSettings {
            period: 15.0,
            jitter: 0.1,
            retries: 5,
            timeout: 5.0,
            failed_period: 90.0
        }
    );
    assert_eq!(cfg.pod_headroom, 10);
    // Not in the chart: the redirector's default.
    assert_eq!(cfg.host_cookie_age_hours, 4.0);
    // `null` members are gone, trailing slashes too.
    let names: Vec<&str> = cfg.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["bids-ovh", "hetzner-2i2c", "hetzner-gesis"]);
    assert_eq!(
        cfg.member("hetzner-gesis").expect("member").url,
        "https://gesis.mybinder.org"
    );
    assert_eq!(cfg.prime().expect("prime").name, "hetzner-2i2c");
    assert_eq!(
        cfg.member("bids-ovh").expect("member").health,
        "https://bids.mybinder.org/health"
    );
}

#[test]
fn empty_means_not_a_federation_and_defaults_are_the_redirectors() {
    assert_eq!(FederationConfig::parse("  "), Ok(None));
    let cfg = parse(r#"{"hosts": {"p": {"url": "http://127.0.0.1:8080", "prime": true}}}"#)
        .expect("minimal");
    assert_eq!(cfg.check, CheckSettings::default());
    assert_eq!(cfg.load_balancer, LoadBalancer::Rendezvous);
    assert_eq!(cfg.pod_headroom, 10);
    let p = &cfg.members[0];
    assert_eq!(
        (p.weight, p.health.as_str(), p.versions.as_str()),
        (
            1.0,
            "http://127.0.0.1:8080/health",
            "http://127.0.0.1:8080/versions"
        )
    );
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let cases = [
        ("[1]", "not the redirector's JSON"),
        ("{", "not the redirector's JSON"),
        (r#"{"hosts": {}}"#, "no member has `prime: true`"),
        (
            r#"{"hosts": {"a": {"url": "https://a.org"}}}"#,
            "no member has `prime: true`",
        ),
        (
            r#"{"load_balancer": "least", "hosts": {"a": {"url": "https://a.org", "prime": true}}}"#,
            "`load_balancer` is invalid",
        ),
        (
            r#"{"hosts": {"a": {"url": "ftp://a.org", "prime": true}}}"#,
            "`hosts.a.url` is invalid",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://u:p@a.org", "prime": true}}}"#,
            "no credentials",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://a.org/?x=1", "prime": true}}}"#,
            "query or fragment",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://a.org/x/../y", "prime": true}}}"#,
            "plain segments",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://a.org/%2e", "prime": true}}}"#,
            "plain segments",
        ),
        (
            r#"{"hosts": {"a": {"url": "/relative", "prime": true}}}"#,
            "`hosts.a.url` is invalid",
        ),
        (
            r#"{"hosts": {"a": {"prime": true}}}"#,
            "every member needs a url",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://a.org", "weight": -1, "prime": true}}}"#,
            "`hosts.a.weight` is invalid",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://a.org", "weight": "x", "prime": true}}}"#,
            "expected a number",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://a.org", "prime": "yes"}}}"#,
            "`hosts.a.prime` is invalid",
        ),
        (
            r#"{"hosts": {"a b": {"url": "https://a.org", "prime": true}}}"#,
            "a member name is",
        ),
        (
            r#"{"check": {"period": 0}, "hosts": {"a": {"url": "https://a.org", "prime": true}}}"#,
            "`check.period` is invalid",
        ),
        (
            r#"{"check": {"retries": 0}, "hosts": {"a": {"url": "https://a.org", "prime": true}}}"#,
            "`check.retries` is invalid",
        ),
        (
            r#"{"check": {"timeout": 1e999}, "hosts": {"a": {"url": "https://a.org", "prime": true}}}"#,
            "not the redirector's JSON",
        ),
        (
            r#"{"hosts": {"a": {"url": "https://a.org", "health": "file:///etc/passwd", "prime": true}}}"#,
            "`hosts.a.health` is invalid",
        ),
    ];
    for (text, expected) in cases {
        let message = refused(text);
        assert!(message.contains(expected), "{text}: {message}");
    }
}

#[test]
fn size_and_member_count_are_bounded() {
    let big = format!(
        r#"{{"pad": "{}", "hosts": {{"a": {{"url": "https://a.org", "prime": true}}}}}}"#,
        "x".repeat(config::MAX_CONFIG_BYTES)
    );
    assert!(refused(&big).contains("more than the 65536 allowed"));
    let many: Vec<String> = (0..=config::MAX_MEMBERS)
        .map(|i| format!(r#""m{i}": {{"url": "https://m{i}.org", "prime": true}}"#))
        .collect();
    let text = format!(r#"{{"hosts": {{{}}}}}"#, many.join(","));
    assert!(refused(&text).contains("33 members"));
    let long_url = format!("https://a.org/{}", "x".repeat(config::MAX_URL_BYTES));
    let text = format!(r#"{{"hosts": {{"a": {{"url": "{long_url}", "prime": true}}}}}}"#);
    assert!(refused(&text).contains("longer than"));
}

fn three() -> FederationConfig {
    parse(
        r#"{"check": {"jitter": 0},
            "hosts": {
              "a": {"url": "https://a.example", "weight": 1, "prime": true},
              "b": {"url": "https://b.example", "weight": 1},
              "c": {"url": "https://c.example", "weight": 1}}}"#,
    )
    .expect("valid")
}

#[test]
fn every_ref_of_a_repository_goes_to_one_member() {
    let cfg = three();
    let state = FederationState::new("f", 0);
    let member = |path: &str| {
        choose(&cfg, &state, path, None, 0.5)
            .expect("a member")
            .member
            .name
            .clone()
    };
    let first = member("/build/gh/owner/repo/main");
    for r in ["HEAD", "v1.0", "0123456789abcdef0123456789abcdef01234567"] {
        assert_eq!(member(&format!("/build/gh/Owner/Repo/{r}")), first);
    }
    // Repositories spread over the members.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        seen.insert(member(&format!("/build/gh/owner/repo-{i}/HEAD")));
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn a_cookie_naming_a_healthy_member_wins() {
    let cfg = three();
    let mut state = FederationState::new("f", 0);
    let path = "/build/gh/owner/repo/HEAD";
    let balanced = choose(&cfg, &state, path, None, 0.5)
        .expect("member")
        .member
        .name
        .clone();
    let other = ["a", "b", "c"]
        .into_iter()
        .find(|n| *n != balanced)
        .expect("another");
    let url = cfg.member(other).expect("member").url.clone();
    let chosen = choose(&cfg, &state, path, Some(&url), 0.5).expect("member");
    assert_eq!(
        (chosen.member.name.as_str(), chosen.reason),
        (other, Reason::Cookie)
    );
    // Unhealthy, or unknown: the balancer decides.
    let failed = Outcome::Failed {
        reason: "versions".into(),
        detail: String::new(),
    };
    state.record(&cfg.check, other, &failed, 0, 0.5);
    let chosen = choose(&cfg, &state, path, Some(&url), 0.5).expect("member");
    assert_eq!(chosen.reason, Reason::LoadBalancer);
    assert_ne!(chosen.member.name, other);
    let chosen = choose(&cfg, &state, path, Some("https://evil.example"), 0.5).expect("member");
    assert_eq!(chosen.reason, Reason::LoadBalancer);
}

#[test]
fn the_random_balancer_follows_the_weights() {
    let mut cfg = three();
    cfg.load_balancer = LoadBalancer::Random;
    cfg.members[1].weight = 0.0;
    cfg.members[2].weight = 3.0;
    let state = FederationState::new("f", 0);
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..100 {
        let c =
            choose(&cfg, &state, "/build/gh/a/b/c", None, f64::from(i) / 100.0).expect("member");
        *counts.entry(c.member.name.clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.get("a"), Some(&25));
    assert_eq!(counts.get("b"), None);
    assert_eq!(counts.get("c"), Some(&75));
}

#[test]
fn cookies_are_read_quoted_or_not_and_written_for_the_path() {
    assert_eq!(
        cookie_value("a=1; host=https://b.example"),
        Some("https://b.example")
    );
    assert_eq!(
        cookie_value(r#"host="https://b.example"; x=2"#),
        Some("https://b.example")
    );
    assert_eq!(cookie_value("hostx=1; xhost=2"), None);
    assert_eq!(
        set_cookie("https://b.example", "/build/gh/a/b/HEAD", 4.0),
        "host=https://b.example; Max-Age=14400; Path=/build/gh/a/b/HEAD"
    );
    assert_eq!(
        set_cookie("https://b.example", "/build/gh/a/b;Secure", 1.0),
        "host=https://b.example; Max-Age=3600; Path=/build/gh/a/b"
    );
}

#[test]
fn the_fingerprint_follows_the_text() {
    assert_eq!(
        fingerprint(MYBINDER),
        fingerprint(&format!(" {MYBINDER}\n"))
    );
    assert_ne!(fingerprint(MYBINDER), fingerprint("{}"));
    assert_eq!(fingerprint("{}").len(), 16);
}
