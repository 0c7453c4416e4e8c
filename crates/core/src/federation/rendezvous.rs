//! Choosing a member, as the redirector does: weighted rendezvous hashing of the
//! repository (every ref of a GitHub repository lands on one member, so its image is
//! built and cached there only), or weighted random choice.

/// The redirector's load-balancing key of a request path (raw, as received): the path
/// lower-cased, and for `/build/gh...` without its last segment (the ref).
pub fn key(path: &str) -> String {
    let key = path.to_lowercase();
    if key.starts_with("/build/gh")
        && let Some((repository, _ref)) = key.rsplit_once('/')
    {
        return repository.to_owned();
    }
    key
}

/// blake2b with an 8-byte digest of `"<key>-<bucket>"`, read big-endian: the hash both
/// BinderHub (build nodes) and the redirector (members) rank with.
pub fn hash(key: &str, bucket: &str) -> u64 {
    use blake2::digest::{Update, VariableOutput};
    let mut digest = [0u8; 8];
    // An 8-byte output is always valid for blake2b, so neither call can fail.
    if let Ok(mut hasher) = blake2::Blake2bVar::new(8) {
        hasher.update(key.as_bytes());
        hasher.update(b"-");
        hasher.update(bucket.as_bytes());
        let _ = hasher.finalize_variable(&mut digest);
    }
    u64::from_be_bytes(digest)
}

/// The weighted rendezvous score of `bucket` for `key`: `weight / -ln(h / (2^64 - 1))`.
/// A weight of 0 scores 0 and never beats a positive weight.
pub fn score(key: &str, bucket: &str, weight: f64) -> f64 {
    let unit = hash(key, bucket) as f64 / u64::MAX as f64;
    let denominator = -unit.ln();
    if weight <= 0.0 {
        0.0
    } else if denominator <= 0.0 {
        // h = 2^64 - 1: the best score there is.
        f64::INFINITY
    } else {
        weight / denominator
    }
}

/// The index of the highest-scoring `(name, weight)` for `key`; `None` when the list is
/// empty. Ties keep the first.
pub fn rank(key: &str, buckets: &[(&str, f64)]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, (name, weight)) in buckets.iter().enumerate() {
        let s = score(key, name, *weight);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// Weighted random choice: the index `r` (uniform in `0..1`) falls on, each weight a
/// share of the line; `None` when no weight is positive.
pub fn weighted(weights: &[f64], r: f64) -> Option<usize> {
    let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if total <= 0.0 {
        return None;
    }
    let mut point = r.clamp(0.0, 1.0) * total;
    let mut last = None;
    for (i, w) in weights.iter().enumerate() {
        if *w <= 0.0 {
            continue;
        }
        last = Some(i);
        if point < *w {
            return Some(i);
        }
        point -= w;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(buckets: &[(&str, f64)]) -> Vec<usize> {
        let mut counts = vec![0; buckets.len()];
        for i in 0..100 {
            let k = format!("key-{i}");
            counts[rank(&k, buckets).expect("buckets")] += 1;
        }
        counts
    }

    #[test]
    fn the_redirectors_test_split_comes_out_exactly() {
        // mybinder.org-deploy test_rendezvous.py: 100 keys `key-0..key-99`.
        assert_eq!(split(&[("a", 1.0), ("b", 1.0)]), [52, 48]);
        assert_eq!(split(&[("a", 0.8), ("b", 0.2)]), [75, 25]);
        assert_eq!(split(&[("a", 0.8), ("b", 0.0)]), [100, 0]);
    }

    #[test]
    fn the_hash_is_blake2b_with_an_8_byte_digest() {
        // Python: int.from_bytes(hashlib.blake2b(b"key-0-a", digest_size=8).digest(), "big")
        assert_eq!(hash("key-0", "a"), 2_947_186_349_353_891_648);
        assert_eq!(
            hash("/build/gh/owner/repo", "hetzner-2i2c"),
            8_648_339_702_638_615_512
        );
    }

    #[test]
    fn every_ref_of_a_github_repository_has_one_key() {
        assert_eq!(key("/build/gh/Owner/Repo/main"), "/build/gh/owner/repo");
        assert_eq!(key("/build/gh/owner/repo/0123abc"), "/build/gh/owner/repo");
        // Other providers keep the whole path, as the redirector does.
        assert_eq!(key("/build/gl/Group%2FP/main"), "/build/gl/group%2fp/main");
        assert_eq!(key("/v2/gh/a/b/c"), "/v2/gh/a/b/c");
    }

    #[test]
    fn weighted_choice_follows_the_weights_and_skips_zero() {
        let weights = [1.0, 0.0, 3.0];
        assert_eq!(weighted(&weights, 0.0), Some(0));
        assert_eq!(weighted(&weights, 0.24), Some(0));
        assert_eq!(weighted(&weights, 0.26), Some(2));
        assert_eq!(weighted(&weights, 0.999), Some(2));
        assert_eq!(weighted(&weights, 1.0), Some(2));
        assert_eq!(weighted(&[0.0, 0.0], 0.5), None);
        assert_eq!(weighted(&[], 0.5), None);
        let mut counts = [0; 3];
        for i in 0..1000 {
            counts[weighted(&weights, f64::from(i) / 1000.0).expect("positive")] += 1;
        }
        assert_eq!(counts, [250, 0, 750]);
    }
}
