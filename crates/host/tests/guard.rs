//! Slow and hostile clients against the real app: the repository's `spin.toml` with the
//! real launch, badge and webhook components (`cargo xtask build`), behind real sockets.
//!
//! 1,100 connections announce a large webhook body and then trickle it a byte at a time.
//! The badge, asked from another address while they are all open, must answer at once, and
//! every trickling connection must be cut: `408` when its body deadline passes, `429` when
//! its address already has its share in flight, `503` when the webhook component has used
//! every instance it may, or closed. The deadline is 5 s here (10 s by default) so the test
//! runs in seconds; the process needs about 2,300 file descriptors (both ends of every
//! connection), which the default soft limit of 1,024 would not give: the test checks
//! `ulimit -n` up front and says what to raise.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bindery_host::{EngineLimits, HostConfig, KvBackend, RequestLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = 1_100;
const BODY_DEADLINE: Duration = Duration::from_secs(5);

/// The repository's app with small pools and the bounds under test.
fn real_app(data: &Path, requests: RequestLimits) -> HostConfig {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for wasm in ["bindery_launch", "bindery_badge", "bindery_webhook"] {
        let path = workspace.join(format!("target/wasm32-wasip2/wasm/{wasm}.wasm"));
        assert!(
            path.is_file(),
            "{} is missing: run `cargo xtask build`",
            path.display()
        );
    }
    let mut config = HostConfig::new(
        workspace.join("spin.toml"),
        "127.0.0.1:0".parse().expect("addr"),
        data,
    );
    config.kv = KvBackend::Memory;
    config.cache_dir = Some(support::shared_cache());
    config.limits = EngineLimits {
        max_instances: 64,
        ..EngineLimits::default()
    };
    config.requests = requests;
    config.drain_deadline = Duration::from_secs(5);
    config.env = Some(BTreeMap::from([(
        "SPIN_VARIABLE_GITHUB_WEBHOOK_SECRET".to_owned(),
        "hook-secret".to_owned(),
    )]));
    config
}

/// How one trickling connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    Status(u16),
    Closed,
}

/// A connection from `from` that announces a 100 kB push and sends a byte every 250 ms
/// until the host answers or hangs up (or `give_up` passes: then `None`). `sent` counts
/// the connections whose request head has gone out.
async fn trickle(
    host: SocketAddr,
    from: IpAddr,
    give_up: Duration,
    sent: Arc<AtomicUsize>,
) -> Option<Cut> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    let mut tcp = socket.connect(host).await.ok()?;
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: d\r\n\
         x-hub-signature-256: sha256={zero:064}\r\ncontent-length: 100000\r\n\r\n{{",
        zero = 0
    );
    tcp.write_all(head.as_bytes()).await.ok()?;
    sent.fetch_add(1, Ordering::SeqCst);
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    loop {
        let mut buf = [0u8; 512];
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(status(&answer).unwrap_or(Cut::Closed)),
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if let Some(cut) = status(&answer) {
                        return Some(cut);
                    }
                }
            },
            _ = ticks.tick() => {
                if started.elapsed() > give_up {
                    return None;
                }
                // A failed write means the host hung up; the read says how.
                let _ = tcp.write_all(b" ").await;
            }
        }
    }
}

fn status(answer: &[u8]) -> Option<Cut> {
    let text = std::str::from_utf8(answer).ok()?;
    let line = text
        .split("\r\n")
        .next()
        .filter(|_| text.contains("\r\n"))?;
    line.split(' ').nth(1)?.parse().ok().map(Cut::Status)
}

/// `GET /badge.svg` from `from` on a new connection: the status and how long it took.
async fn badge(host: SocketAddr, from: IpAddr) -> (u16, Duration) {
    let started = Instant::now();
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    let mut tcp: TcpStream = socket.connect(host).await.expect("connect");
    tcp.write_all(
        format!("GET /badge.svg HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer)).await;
    let code = match status(&answer) {
        Some(Cut::Status(code)) => code,
        _ => 0,
    };
    (code, started.elapsed())
}

/// The soft limit on open files, from `/proc` (Linux); `None` elsewhere.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_webhook_bodies_leave_the_badge_answering_and_are_cut() {
    if let Some(limit) = open_files_limit() {
        assert!(
            limit >= 2 * FLOOD as u64 + 200,
            "this test opens both ends of {FLOOD} connections: raise `ulimit -n` to 4096 (it is {limit})"
        );
    }
    let limits = RequestLimits {
        body_deadline: BODY_DEADLINE,
        max_requests_per_client: 20,
        reserved_instances: 8,
    };
    let badge_client: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
    // (case, how many addresses the flood comes from, what must have cut some of it)
    let cases: [(&str, u8, &[u16]); 2] = [
        // One address: its share is held until the deadline (408), the rest refused (429).
        ("one address", 1, &[408, 429]),
        // 110 addresses of 10 connections, each under its share: the webhook takes what
        // the others' reservation leaves (408 at the deadline), the rest is 503.
        ("many addresses", 110, &[408, 503]),
    ];
    for (case, addresses, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = bindery_host::bind(real_app(dir.path(), limits))
            .await
            .expect("the real app starts");
        let host = support::RunningHost::serve(host);
        let addr = host.addr;
        assert_eq!(badge(addr, badge_client).await.0, 200, "{case}: before");

        let flood_started = Instant::now();
        let sent = Arc::new(AtomicUsize::new(0));
        let flood: Vec<_> = (0..FLOOD)
            .map(|n| {
                let from = Ipv4Addr::new(127, 0, 1, 1 + (n % usize::from(addresses)) as u8);
                let sent = Arc::clone(&sent);
                tokio::spawn(trickle(addr, from.into(), Duration::from_secs(60), sent))
            })
            .collect();
        // Every request head has gone out before the badge is asked.
        while sent.load(Ordering::SeqCst) < FLOOD {
            assert!(
                flood_started.elapsed() < Duration::from_secs(30),
                "{case}: the flood connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let heads_sent = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (during, took) = badge(addr, badge_client).await;
        // The held connections are cut at the earliest a body deadline after their head.
        let all_open = heads_sent.elapsed() < BODY_DEADLINE;
        assert_eq!(during, 200, "{case}: the badge answers during the flood");
        assert!(
            took < Duration::from_secs(3),
            "{case}: the badge answered at once ({took:?})"
        );
        assert!(
            all_open,
            "{case}: the badge was asked while the flood was open"
        );

        let mut cuts = BTreeMap::<Cut, usize>::new();
        for task in flood {
            let cut = task.await.expect("trickle task");
            *cuts.entry(cut.unwrap_or(Cut::Status(0))).or_default() += 1;
        }
        let cut_within = flood_started.elapsed();
        eprintln!("{case}: {cuts:?} within {cut_within:?}");
        assert!(
            !cuts.contains_key(&Cut::Status(0)),
            "{case}: every trickling connection is cut within a minute: {cuts:?}"
        );
        for code in expected {
            assert!(
                cuts.contains_key(&Cut::Status(*code)),
                "{case}: some connections got {code}: {cuts:?}"
            );
        }
        assert!(
            cuts.keys()
                .all(|cut| matches!(cut, Cut::Closed | Cut::Status(408 | 429 | 503))),
            "{case}: only 408, 429, 503 or a hang-up: {cuts:?}"
        );
        // The instances and the shares came back: a whole push is answered (its signature
        // is wrong), from the flood's own address too.
        assert_eq!(badge(addr, badge_client).await.0, 200, "{case}: after");
        let push = support::send(
            addr,
            "POST",
            "/hooks/github",
            "{}",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-hub-signature-256", "sha256=00"),
            ],
        )
        .await;
        let (after, body) = support::read(push).await;
        assert!(
            (400..500).contains(&after) && after != 408 && after != 429,
            "{case}: a push after the flood: {after} {body}"
        );
        host.stop().await;
    }
}
