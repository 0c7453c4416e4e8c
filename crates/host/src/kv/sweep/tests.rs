use std::time::Duration;

use bindery_core::cache::{
    CacheTtl, CachedDelivery, CachedStatus, CachedToken, ImagePresence, LastStatus, encode,
};

use super::*;

const NOW: u64 = 1_800_000_000;

#[test]
fn the_sweep_keeps_expired_entries_as_long_as_the_edge_does() {
    assert_eq!(
        KvSweep::default().grace,
        Duration::from_secs(bindery_core::cache::EXPIRED_KEPT_SECONDS)
    );
}

#[test]
fn the_convention_reads_expires_at_and_keeps_whatever_does_not_follow_it() {
    let cases: [(&[u8], Option<u64>); 9] = [
        (br#"{"expires_at":5}"#, Some(5)),
        (
            br#"  {"a":{"expires_at":1},"expires_at":7,"b":[1]}"#,
            Some(7),
        ),
        (br#"{"nested":{"expires_at":1}}"#, None),
        (br#"{"expires_at":"5"}"#, None),
        (br#"{"expires_at":-5}"#, None),
        (br#"{"expires_at":5.5}"#, None),
        (br#"[{"expires_at":5}]"#, None),
        (b"not json", None),
        (b"", None),
    ];
    for (value, expected) in cases {
        assert_eq!(
            expires_at(value),
            expected,
            "{}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn every_entry_the_core_writes_follows_the_convention() {
    let ttl = CacheTtl::default();
    let token = CachedToken::from_registry_expiry("t".into(), NOW + 300, NOW, 30).expect("token");
    let entries = [
        (
            encode(&ImagePresence::present(NOW, &ttl, None)),
            ImagePresence::present(NOW, &ttl, None).expires_at,
        ),
        (
            encode(&ImagePresence::missing(NOW, &ttl)),
            ImagePresence::missing(NOW, &ttl).expires_at,
        ),
        (
            encode(&CachedStatus::new(
                LastStatus::Building,
                "i".into(),
                NOW,
                &ttl,
            )),
            CachedStatus::new(LastStatus::Building, "i".into(), NOW, &ttl).expires_at,
        ),
        (
            encode(&CachedDelivery::new(NOW, &ttl)),
            CachedDelivery::new(NOW, &ttl).expires_at,
        ),
        (encode(&token), token.expires_at),
    ];
    for (bytes, at) in entries {
        assert!(at > NOW, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(
            expires_at(&bytes),
            Some(at),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// Bytes the database's tables hold, from redb's own accounting.
fn stored_bytes(stores: &KvStores) -> u64 {
    let Backend::Redb(db) = &*stores.backend else {
        panic!("redb stores")
    };
    let txn = db.begin_write().expect("write txn");
    let stats = txn.stats().expect("stats");
    stats.stored_bytes()
}

fn file_size(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join(crate::kv::KV_FILE_NAME))
        .expect("kv file")
        .len()
}

/// Writes `count` distinct entries that expired at `expired_at`, as the edge's cache writes
/// them. In one transaction: one durable commit per entry would take a minute here.
fn fill(stores: &KvStores, round: u32, count: u32, expired_at: u64) {
    let ttl = CacheTtl {
        image_missing_seconds: 10,
        ..CacheTtl::default()
    };
    let Backend::Redb(db) = &*stores.backend else {
        panic!("redb stores")
    };
    let txn = db.begin_write().expect("write txn");
    {
        let mut table = txn.open_table(definition("default")).expect("table");
        for n in 0..count {
            // Like the "missing" entries a loop of random pins used to leave behind.
            let value = encode(&ImagePresence::missing(expired_at - 10, &ttl));
            let key = format!("v1/image/registry.example/binder-r{round}-{n:05}:{n:040x}");
            table
                .insert(key.as_str(), value.as_slice())
                .expect("insert");
        }
    }
    txn.commit().expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_expired_entries_are_swept_and_the_store_returns_near_its_empty_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = KvStores::open_redb(dir.path()).expect("open");
    let kept = br#"{"expires_at":99999999999}"#.to_vec();
    stores
        .set("default", "live", kept.clone())
        .await
        .expect("set");
    stores
        .set("default", "opaque", b"an app's own format".to_vec())
        .await
        .expect("set");
    let empty_bytes = stored_bytes(&stores);
    let empty_file = file_size(dir.path());

    // Table: (round, entries, when they expired, `now` of the sweep, grace, deleted).
    let rounds = [
        // Expired a minute ago, but within the grace: kept for revalidation.
        (0, 10_000, NOW - 60, NOW, Duration::from_secs(3600), 0),
        (0, 0, 0, NOW, Duration::ZERO, 10_000),
        // A second round reuses the freed pages: the file does not keep growing.
        (
            1,
            10_000,
            NOW - 7200,
            NOW,
            Duration::from_secs(3600),
            10_000,
        ),
    ];
    let mut full_file = 0;
    for (round, count, expired_at, now, grace, deleted) in rounds {
        if count > 0 {
            fill(&stores, round, count, expired_at);
            assert_eq!(stores.keys("default").expect("keys").len(), 10_002);
            full_file = full_file.max(file_size(dir.path()));
        }
        let report = stores.sweep_expired(now, grace).await.expect("sweep");
        assert_eq!(report.deleted, deleted, "round {round}");
        assert_eq!(report.scanned, 10_002, "round {round}");
    }
    assert_eq!(stores.keys("default").expect("keys"), ["live", "opaque"]);
    assert_eq!(stores.get("default", "live").expect("get"), Some(kept));
    let swept_bytes = stored_bytes(&stores);
    assert!(
        swept_bytes <= empty_bytes + 4096,
        "stored bytes after the sweep {swept_bytes} (empty: {empty_bytes})"
    );
    // redb keeps the file's pages for reuse; it does not grow past one round's size.
    let final_file = file_size(dir.path());
    assert!(
        final_file <= full_file * 3 / 2,
        "file {final_file} bytes after two rounds, {full_file} at the fullest of one (empty: {empty_file})"
    );
    // Reopened (a host restart), the database is compacted: the file is back near empty.
    drop(stores);
    let stores = KvStores::open_redb(dir.path()).expect("reopen");
    let reopened_file = file_size(dir.path());
    assert!(
        reopened_file <= empty_file * 2,
        "file {reopened_file} bytes after a restart (empty: {empty_file})"
    );
    assert_eq!(stores.keys("default").expect("keys"), ["live", "opaque"]);
    eprintln!(
        "kv file: empty {empty_file} B, one round of 10,000 {full_file} B, after two rounds and sweeps {final_file} B, reopened {reopened_file} B; stored bytes: empty {empty_bytes}, swept {swept_bytes}"
    );
}

#[tokio::test]
async fn the_memory_backend_is_swept_too() {
    let stores = KvStores::in_memory();
    stores
        .set("default", "old", br#"{"expires_at":1}"#.to_vec())
        .await
        .expect("set");
    stores
        .set(
            "default",
            "new",
            format!(r#"{{"expires_at":{}}}"#, NOW + 1).into_bytes(),
        )
        .await
        .expect("set");
    let report = stores
        .sweep_expired(NOW, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            scanned: 2,
            deleted: 1
        }
    );
    assert_eq!(stores.keys("default").expect("keys"), ["new"]);
}
