//! `cargo xtask bench`: throughput of the edge against a native server, measured in one run.
//!
//! For each case the same load (32 keep-alive connections driven from this process, 5 s
//! after a 2 s warm-up) hits a native hyper server that returns the edge's exact answer
//! bytes (its own process, one worker thread per CPU), then the release `bindery edge`
//! with a fresh component instance per request (its own process, one serving thread per
//! CPU). The two take turns three times and the round with the median ratio is reported:
//! requests/s, p50 and p99 latency, the server process's CPU time per request (steadier
//! than requests/s on a small, shared machine), and the edge/native ratio.
//! Goals (issue 3): badge >= 0.5x native, cached resolve >= 0.3x native.
//!
//! Federation mode (issue 14): a second edge with `federation` set in front of two
//! scripted members answers `/build/...` with its `307`; its ratio is reported beside the
//! badge's (no goal: the redirect reads the federation variable and the shared health
//! record, which the badge does not).
//!
//! A third case, the runtime floor, serves `crates/host/floor`, a component that reads
//! nothing and writes a fixed answer of a badge's length: the most any component reaches
//! in this host on this machine, which the two goals are read against.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bindery_system_tests::edge::Edge;
use bindery_system_tests::peer::{Answer, Peer};
use bindery_system_tests::registry::{Auth, Registry};
use bindery_system_tests::scratch;
use bindery_system_tests::sse::{Got, get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const CONNECTIONS: usize = 32;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(5);
/// Native and edge take turns this many times per case; the median round is reported, so
/// that a slow spell of a shared machine does not decide the ratio.
const ROUNDS: usize = 3;
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time the server process spent per request while measured (user + system).
    cpu_per_request: Duration,
}

/// User plus system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of them, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Drives `url` with keep-alive connections; returns throughput, latency percentiles and
/// the CPU time process `server` spent per request.
async fn load(url: &str, server: u32) -> Figures {
    let uri: hyper::Uri = url.parse().unwrap();
    let authority = uri.authority().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (uri, authority, stop, measuring) = (
            uri.clone(),
            authority.clone(),
            stop.clone(),
            measuring.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = hyper::Request::get(uri.clone())
                    .header("host", &authority)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let started = Instant::now();
                let resp = sender.send_request(req).await.unwrap();
                assert!(
                    resp.status().is_success() || resp.status().is_redirection(),
                    "{url_status}",
                    url_status = resp.status()
                );
                resp.into_body().collect().await.unwrap();
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed());
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu_before = cpu_time(server);
    tokio::time::sleep(MEASURE).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu = cpu_time(server).saturating_sub(cpu_before);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures {
        rps: all.len() as f64 / MEASURE.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
        cpu_per_request: cpu / u32::try_from(all.len().max(1)).unwrap(),
    }
}

/// The environment variable that turns this binary into the native baseline server: it
/// names a JSON file holding the body and headers to answer with.
const NATIVE_ANSWER: &str = "BINDERY_BENCH_NATIVE_ANSWER";

/// The native baseline: a hyper server answering every request with the same bytes, run as
/// its own process with one worker thread per CPU, as the edge runs. (Served from inside
/// this process it would share the load generator's runtime threads, an advantage no real
/// server has, and the comparison would no longer be like for like.)
struct Native {
    url: String,
    child: std::process::Child,
}

impl Native {
    /// Starts a native server answering with `answer`'s body and headers (but its own
    /// framing and date).
    fn start(name: &str, answer: &Got, dir: &std::path::Path) -> Native {
        let headers: Vec<(String, String)> = answer
            .headers
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "content-length" | "transfer-encoding" | "date" | "connection"
                )
            })
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body_file = dir.join(format!("native-{name}.body"));
        std::fs::write(&body_file, &answer.body).unwrap();
        let answer = dir.join(format!("native-{name}.json"));
        let json = serde_json::json!({"body_file": body_file, "headers": headers});
        std::fs::write(&answer, json.to_string()).unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(NATIVE_ANSWER, &answer)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        Native {
            url: line.trim().to_string(),
            child,
        }
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the native baseline server (see [`Native`]) until killed.
fn serve_native(answer: &str) {
    let answer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(answer).unwrap()).unwrap();
    let body = Bytes::from(std::fs::read(answer["body_file"].as_str().unwrap()).unwrap());
    let headers: Arc<Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>> = Arc::new(
        answer["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    hyper::header::HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes())
                        .unwrap(),
                    hyper::header::HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
                )
            })
            .collect(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("http://{}", listener.local_addr().unwrap());
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tcp.set_nodelay(true).unwrap();
            let (body, headers) = (body.clone(), headers.clone());
            tokio::spawn(async move {
                let service = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                    let (body, headers) = (body.clone(), headers.clone());
                    async move {
                        let mut resp = hyper::Response::new(Full::new(body));
                        for (k, v) in headers.iter() {
                            resp.headers_mut().insert(k.clone(), v.clone());
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
}

/// Loads `path` on the native server and on the edge in turn, [`ROUNDS`] times, and
/// reports the round with the median ratio; true when it meets `goal` (or there is none).
async fn compare(name: &str, path: &str, native: &Native, edge: &Edge, goal: Option<f64>) -> bool {
    let native_url = format!("{}{path}", native.url);
    let edge_url = format!("{}{path}", edge.url);
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let n = load(&native_url, native.child.id()).await;
        let e = load(&edge_url, edge.pid()).await;
        rounds.push((n, e));
    }
    rounds.sort_by(|a, b| (a.1.rps / a.0.rps).total_cmp(&(b.1.rps / b.0.rps)));
    let ratios: Vec<String> = rounds
        .iter()
        .map(|(n, e)| format!("{:.3}", e.rps / n.rps))
        .collect();
    let (n, e) = &rounds[ROUNDS / 2];
    let ok = report(name, n, e, goal);
    println!("{:<16} ratios of the rounds: {}", "", ratios.join(", "));
    ok
}

fn report(name: &str, native: &Figures, edge: &Figures, goal: Option<f64>) -> bool {
    let ratio = edge.rps / native.rps;
    let goal_text = goal.map_or(String::new(), |goal| format!(" (goal >= {goal})"));
    println!(
        "{name:<16} native {:>9.0} req/s (p50 {:>7.2?}, p99 {:>7.2?}, {:>6.1?} CPU/req) | edge {:>9.0} req/s (p50 {:>7.2?}, p99 {:>7.2?}, {:>6.1?} CPU/req) | ratio {ratio:.3}{goal_text}",
        native.rps,
        native.p50,
        native.p99,
        native.cpu_per_request,
        edge.rps,
        edge.p50,
        edge.p99,
        edge.cpu_per_request
    );
    goal.is_none_or(|goal| ratio >= goal)
}

fn main() {
    if let Ok(answer) = std::env::var(NATIVE_ANSWER) {
        return serve_native(&answer);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let dir = scratch("bench");
    let github = Peer::start(|_| Answer::json(200, &serde_json::json!({"sha": SHA}))).await;
    let registry = Registry::start(&dir.join("registry"), Auth::None).await;
    let prefix = format!("{}/binder-", registry.host);
    let image = bindery_core::image::image_name(&prefix, "org-repo", SHA);
    let split = bindery_core::image::split_image(&image);
    registry.push(&split.repository, &split.tag, true).await;
    let vars = vec![
        ("registry_url", registry.url.clone()),
        ("image_prefix", prefix),
        ("github_api", github.url()),
        ("extra_outbound_host", "http://127.0.0.1:*".to_string()),
        ("ref_ttl_seconds", "3600".to_string()),
    ];
    let edge = Edge::start_binary(&dir.join("edge"), &vars, "release").await;

    const BADGE: &str = "/badge_logo.svg";
    const RESOLVE: &str = "/api/v1/resolve/gh/org/repo/main";
    const FLOOR: &str = "/floor";
    let badge = get(&format!("{}{BADGE}", edge.url), &[]).await;
    let native_badge = Native::start("badge", &badge, &dir);

    let resolve_url = format!("{}{RESOLVE}", edge.url);
    let first = get(&resolve_url, &[]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let cached = get(&resolve_url, &[]).await;
    assert_eq!(cached.header("x-bindery-cache"), Some("hit"));
    assert_eq!(cached.header("x-bindery-image-cache"), Some("hit"));
    let native_resolve = Native::start("resolve", &cached, &dir);

    // The runtime's floor: a component that reads nothing and writes a fixed answer.
    let floor_wasm =
        bindery_system_tests::workspace().join("target/wasm32-wasip2/wasm/bindery_host_floor.wasm");
    let floor_manifest = dir.join("floor.toml");
    std::fs::write(
        &floor_manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"floor\"\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"floor\"\n\n[component.floor]\nsource = {:?}\n",
            floor_wasm.display().to_string()
        ),
    )
    .unwrap();
    let floor = Edge::start_manifest(&dir.join("floor"), &floor_manifest, &[], "release").await;
    let floor_answer = get(&format!("{}{FLOOR}", floor.url), &[]).await;
    assert_eq!(
        floor_answer.body.len(),
        badge.body.len(),
        "the floor answers a badge's length"
    );
    let native_floor = Native::start("floor", &floor_answer, &dir);

    // Federation mode: members that answer their checks, behind a federating edge.
    let member = || {
        Peer::start(|seen| match seen.uri.as_str() {
            "/versions" => Answer::json(200, &serde_json::json!({"binderhub": "bench"})),
            "/health" => Answer::json(200, &serde_json::json!({"ok": true, "checks": []})),
            _ => Answer::with(404, &[], ""),
        })
    };
    let (one, two) = (member().await, member().await);
    let federation = serde_json::json!({
        "load_balancer": "rendezvous",
        "hosts": {
            "one": {"url": one.url(), "weight": 1, "prime": true},
            "two": {"url": two.url(), "weight": 1},
        }
    });
    let fed = Edge::start_binary(
        &dir.join("federation"),
        &[
            ("federation", federation.to_string()),
            ("federation_outbound_host", "http://127.0.0.1:*".to_string()),
        ],
        "release",
    )
    .await;
    const REDIRECT: &str = "/build/gh/org/repo/HEAD";
    let redirect = get(&format!("{}{REDIRECT}", fed.url), &[]).await;
    assert_eq!(redirect.status, 307, "{}", redirect.text());
    let native_redirect = Native::start("redirect", &redirect, &dir);

    println!(
        "bindery edge benchmark: {CONNECTIONS} connections, {ROUNDS} alternating rounds of {MEASURE:?} per server and case after {WARMUP:?} warm-up, same machine, same run; median round shown"
    );
    let badge_ok = compare("badge", BADGE, &native_badge, &edge, Some(0.5)).await;
    let resolve_ok = compare("cached resolve", RESOLVE, &native_resolve, &edge, Some(0.3)).await;
    // No goal: the most any component reaches here, which the two ratios above are read
    // against.
    compare("runtime floor", FLOOR, &native_floor, &floor, None).await;
    floor.stop();
    // No goal: read beside the badge's ratio.
    compare("federation 307", REDIRECT, &native_redirect, &fed, None).await;
    assert!(
        one.count("/health") + two.count("/health") >= 2,
        "the members were checked while the redirects were served"
    );
    fed.stop();
    assert_eq!(github.count("/"), 1, "the benchmark ran from the cache");
    println!(
        "goals: badge {}, cached resolve {}",
        if badge_ok { "met" } else { "NOT met" },
        if resolve_ok { "met" } else { "NOT met" }
    );
    edge.stop();
}
