//! `cargo xtask bench`: the worker's own costs, measured in one run against baselines of
//! the same run.
//!
//! - Launch overhead: from `POST /api/v1/launches` for an image that exists to the spawn
//!   request reaching JupyterHub (a scripted hub on loopback, which records when requests
//!   arrive), against a plain HTTP round trip to the same hub.
//! - Memory: the worker's resident set with 1,000 clients following one launch's event
//!   stream, against the same worker idle. Goal (issue 4): < 64 MiB.
//! - Memory under a loud build (issue 13): a repo2docker stand-in prints 400 MiB of output
//!   while five clients follow the launch; the worker's peak resident set, sampled every
//!   50 ms until the build ends. Goal: < 300 MiB (lines are cut at 16 KiB and each log
//!   keeps 4 MiB, head and tail).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bindery_system_tests::peer::{Answer, Peer, Seen};
use bindery_system_tests::proc::Proc;
use bindery_system_tests::sse::{get, send};
use bindery_system_tests::{free_port, scratch, workspace};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::mpsc;

const TOKEN: &str = "bench-worker-token";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const LAUNCHES: usize = 50;
const STREAMS: usize = 1000;
/// What the loud build prints.
const LOUD_BYTES: u64 = 400 * 1024 * 1024;
const LOUD_CLIENTS: usize = 5;

/// A repo2docker that prints [`LOUD_BYTES`] of 80-byte lines, one 1 MiB line, and succeeds.
fn loud_repo2docker(dir: &std::path::Path) -> std::path::PathBuf {
    let program = dir.join("loud-repo2docker");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nhead -c 1048576 /dev/zero | tr '\\0' 'x'; echo\nyes 'a line of build output, about eighty bytes long, printed again and again......' | head -c {LOUD_BYTES}\necho done\n"
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&program)
        .status()
        .unwrap();
    program
}

/// A JupyterHub that accepts every user and spawn; progress streams stay open (servers
/// never become ready), so launches keep their event logs live.
async fn hub(open: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>>) -> Peer {
    Peer::start(move |seen: &Seen| {
        let uri = seen.uri.as_str();
        match seen.method.as_str() {
            // No servers run on this hub (the worker counts them at start).
            "GET" if uri.contains("/users?") => Answer::json(200, &json!([])),
            "GET" if uri.ends_with("/progress") => {
                let (tx, rx) = mpsc::unbounded_channel();
                tx.send(
                    b"data: {\"progress\": 10, \"message\": \"Server requested\"}\n\n".to_vec(),
                )
                .unwrap();
                open.lock().unwrap().push(tx);
                Answer::Stream(
                    200,
                    vec![("content-type".into(), "text/event-stream".into())],
                    rx,
                )
            }
            "GET" => Answer::json(200, &json!({"version": "6.1.1"})),
            "POST" => Answer::json(201, &json!({})),
            _ => Answer::with(204, &[], ""),
        }
    })
    .await
}

fn launch_body(n: usize) -> Vec<u8> {
    launch_json(n, true)
}

fn launch_json(n: usize, image_present: bool) -> Vec<u8> {
    let prefix = "127.0.0.1:5000/binder-";
    let slug = format!("org-repo{n}");
    json!({
        "provider": "gh", "spec": format!("org/repo{n}/main"), "repo_url": format!("https://github.com/org/repo{n}"),
        "resolved_ref": SHA, "resolved_spec": format!("org/repo{n}/{SHA}"),
        "image": bindery_core::image::image_name(prefix, &slug, SHA), "image_present": image_present,
        "build_slug": slug, "ref_url": format!("https://github.com/org/repo{n}/tree/{SHA}"),
        "launch_host": "http://127.0.0.1:3000/", "binder_request": format!("v2/gh/org/repo{n}/main"),
        "binder_persistent_request": format!("v2/gh/org/repo{n}/{SHA}"), "launch_path": "", "client_ip": "127.0.0.1",
    })
    .to_string()
    .into_bytes()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

fn percentile(mut v: Vec<Duration>, q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

#[tokio::main]
async fn main() {
    let dir = scratch("bench-worker");
    let open = Arc::new(Mutex::new(Vec::new()));
    let hub = hub(open.clone()).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let binary = workspace().join("target/release/bindery");
    let mut cmd = Command::new(&binary);
    cmd.arg("worker")
        .env("BINDERY_WORKER_TOKEN", TOKEN)
        .env("BINDERY_HUB_URL", format!("{}/", hub.url()))
        .env("BINDERY_HUB_API_TOKEN", "hub-token")
        .env("BINDERY_IMAGE_PREFIX", "127.0.0.1:5000/binder-")
        .env("BINDERY_WORKER_LISTEN", format!("127.0.0.1:{port}"))
        .env("BINDERY_REPO2DOCKER", loud_repo2docker(&dir))
        // The loud build names github.com, which this machine need not resolve: allowed by
        // name, it is never looked up.
        .env("BINDERY_ALLOWED_BUILD_HOSTS", "github.com")
        .env("RUST_LOG", "warn");
    let worker = Proc::spawn("bindery worker", &mut cmd, &dir.join("worker.log"));
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];

    // Baseline: a plain round trip to the hub from here.
    let mut direct = Vec::new();
    for _ in 0..LAUNCHES {
        let started = Instant::now();
        send(
            "POST",
            &format!("{}/hub/api/users/baseline", hub.url()),
            &[],
            Vec::new(),
        )
        .await;
        direct.push(started.elapsed());
    }

    // Launch overhead: POST to the worker → the spawn request at the hub.
    let mut overhead = Vec::new();
    for n in 0..LAUNCHES {
        let started = Instant::now();
        let accepted = send(
            "POST",
            &format!("{url}/api/v1/launches"),
            &headers,
            launch_body(n),
        )
        .await;
        assert_eq!(accepted.status, 202, "{}", accepted.text());
        let deadline = Instant::now() + Duration::from_secs(10);
        let spawned = loop {
            let seen = hub.seen();
            let spawns: Vec<&Seen> = seen
                .iter()
                .filter(|s| s.method == "POST" && s.uri.ends_with("/server"))
                .collect();
            if spawns.len() > n {
                break spawns[n].at;
            }
            assert!(Instant::now() < deadline, "no spawn request for launch {n}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        overhead.push(spawned.duration_since(started));
    }

    // Memory: 1,000 clients follow the first launch's (still open) event stream.
    let idle = rss_kib(worker.pid());
    let first = send(
        "POST",
        &format!("{url}/api/v1/launches"),
        &headers,
        launch_body(LAUNCHES),
    )
    .await;
    let id = first.json()["id"].as_str().unwrap().to_string();
    let mut clients = Vec::new();
    for _ in 0..STREAMS {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("{url}/api/v1/launches/{id}/events"))
            .header("authorization", &auth)
            .header("accept", "text/event-stream")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        // Wait for the first event so the stream is really being served.
        let _ = body.frame().await;
        clients.push((sender, body));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = rss_kib(worker.pid());
    let health = get(&format!("{url}/health"), &[]).await;
    drop(clients);

    let (loud_peak, loud_read, loud_secs) = loud_build(&url, &headers, worker.pid()).await;

    let (d50, d99) = (percentile(direct.clone(), 0.5), percentile(direct, 0.99));
    let (o50, o99) = (
        percentile(overhead.clone(), 0.5),
        percentile(overhead, 0.99),
    );
    println!(
        "bindery worker benchmark ({LAUNCHES} launches of present images, {STREAMS} event-stream clients)"
    );
    println!(
        "launch → hub spawn request: p50 {o50:.2?}, p99 {o99:.2?} | direct hub round trip: p50 {d50:.2?}, p99 {d99:.2?} | ratio p50 {:.1}",
        o50.as_secs_f64() / d50.as_secs_f64()
    );
    println!(
        "worker RSS: idle {:.1} MiB, with {STREAMS} open event streams {:.1} MiB (goal < 64 MiB: {}); /health answered under that load with {} (its checks include a container engine and a registry, which this benchmark does not run)",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0,
        if loaded < 64 * 1024 { "met" } else { "NOT met" },
        health.status
    );
    println!(
        "worker RSS under a build printing {} MiB followed by {LOUD_CLIENTS} clients: peak {:.1} MiB (goal < 300 MiB: {}); each client read {:.1} MiB in {loud_secs:.1} s",
        LOUD_BYTES / 1024 / 1024,
        loud_peak as f64 / 1024.0,
        if loud_peak < 300 * 1024 {
            "met"
        } else {
            "NOT met"
        },
        loud_read as f64 / 1024.0 / 1024.0 / LOUD_CLIENTS as f64,
    );
    drop(open);
    drop(worker);
}

/// Launches an image that the loud stand-in builds, with [`LOUD_CLIENTS`] clients reading
/// the launch's stream; samples the worker's RSS until the build ends. Returns the peak
/// (KiB), the bytes the clients read together, and the seconds the build took.
async fn loud_build(url: &str, headers: &[(&str, &str); 2], pid: u32) -> (u64, u64, f64) {
    let started = Instant::now();
    let loud = LAUNCHES + 1;
    let accepted = send(
        "POST",
        &format!("{url}/api/v1/launches"),
        headers,
        launch_json(loud, false),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let id = accepted.json()["id"].as_str().unwrap().to_string();
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..LOUD_CLIENTS {
        let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("{url}/api/v1/launches/{id}/events"))
            .header("authorization", headers[0].1)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let mut body = resp.into_body();
        let read = Arc::clone(&read);
        readers.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    read.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(sender);
        }));
    }
    let image =
        bindery_core::image::image_name("127.0.0.1:5000/binder-", &format!("org-repo{loud}"), SHA);
    let image: String = image
        .bytes()
        .map(|b| match b {
            b'/' => "%2F".to_owned(),
            b':' => "%3A".to_owned(),
            _ => (b as char).to_string(),
        })
        .collect();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        peak = peak.max(rss_kib(pid));
        let info = get(&format!("{url}/api/v1/builds?image={image}"), headers).await;
        let state = info.json()["state"].as_str().unwrap_or("").to_owned();
        if state == "succeeded" || state == "failed" {
            assert_eq!(state, "succeeded", "the loud build failed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the loud build took over 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    peak = peak.max(rss_kib(pid));
    for reader in readers {
        reader.abort();
    }
    (peak, read.load(std::sync::atomic::Ordering::Relaxed), secs)
}
