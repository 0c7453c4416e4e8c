//! Parsers of upstream answers that are not plain JSON: git's ref advertisement and the
//! timestamps that version data repositories.

use crate::validate::is_full_commit;

/// One advertised ref: commit id and full ref name (`refs/tags/v1^{}` for peeled tags).
pub type AdvertisedRef = (String, String);

/// Parses the answer to `GET <repo>/info/refs?service=git-upload-pack`.
///
/// `smart` is true when the content type says smart HTTP (pkt-lines); otherwise the body is
/// the dumb protocol's `<sha>\t<ref>` lines, which carry no `HEAD`.
pub fn parse_advertisement(body: &[u8], smart: bool) -> Result<Vec<AdvertisedRef>, String> {
    if !smart {
        let text = std::str::from_utf8(body)
            .map_err(|_| "the git server's ref list is not text".to_string())?;
        return Ok(text
            .lines()
            .filter_map(|line| {
                let (sha, name) = line.split_once('\t')?;
                is_full_commit(sha).then(|| (sha.to_string(), name.trim().to_string()))
            })
            .collect());
    }
    let mut refs = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let len = std::str::from_utf8(&rest[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| "the git server sent a malformed pkt-line".to_string())?;
        if len == 0 {
            rest = &rest[4..];
            continue;
        }
        if len < 4 || len > rest.len() {
            return Err("the git server sent a truncated pkt-line".into());
        }
        let line = &rest[4..len];
        rest = &rest[len..];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.starts_with(b"# service=") {
            continue;
        }
        // The first ref carries capabilities after a NUL.
        let line = line.split(|b| *b == 0).next().unwrap_or_default();
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        if let Some((sha, name)) = text.split_once(' ')
            && is_full_commit(sha)
            && name != "capabilities^{}"
        {
            refs.push((sha.to_string(), name.to_string()));
        }
    }
    Ok(refs)
}

/// Picks the commit for `wanted` the way `git ls-remote` would find it, preferring the
/// commit a tag points at over the tag object.
pub fn pick_ref(refs: &[AdvertisedRef], wanted: &str) -> Option<String> {
    let find = |name: &str| {
        refs.iter()
            .find(|(_, n)| n == name)
            .map(|(sha, _)| sha.clone())
    };
    if wanted == "HEAD" {
        return find("HEAD");
    }
    let tag = format!("refs/tags/{wanted}");
    find(wanted)
        .or_else(|| find(&format!("refs/heads/{wanted}")))
        .or_else(|| find(&format!("{tag}^{{}}")))
        .or_else(|| find(&tag))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+00:00]` as UTC into unix seconds, dropping
/// the fraction. Data repositories (HydroShare, CKAN) version records this way.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))
        .unwrap_or(text);
    let (date, time) = text.split_once(['T', ' '])?;
    let time = time.split('.').next()?;
    let num = |s: &str, len: usize| -> Option<u64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let mut t = time.split(':');
    let (hour, minute, second) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    if year < 1970 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year >= 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(s: &str) -> String {
        format!("{:04x}{s}", s.len() + 4)
    }

    #[test]
    fn smart_advertisement_yields_heads_tags_and_peeled_tags() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let body = format!(
            "{}0000{}{}{}{}0000",
            pkt("# service=git-upload-pack\n"),
            pkt(&format!(
                "{a} HEAD\0multi_ack symref=HEAD:refs/heads/main\n"
            )),
            pkt(&format!("{a} refs/heads/main\n")),
            pkt(&format!("{b} refs/tags/v1\n")),
            pkt(&format!("{c} refs/tags/v1^{{}}\n")),
        );
        let refs = parse_advertisement(body.as_bytes(), true).unwrap();
        assert_eq!(refs.len(), 4);
        assert_eq!(pick_ref(&refs, "HEAD"), Some(a.clone()));
        assert_eq!(pick_ref(&refs, "main"), Some(a));
        assert_eq!(
            pick_ref(&refs, "v1"),
            Some(c),
            "a tag resolves to the commit it points at"
        );
        assert_eq!(pick_ref(&refs, "nope"), None);
    }

    #[test]
    fn malformed_pkt_lines_are_errors_not_panics() {
        for body in ["zzzz", "00ff short", "0003", "\u{0}\u{0}\u{0}\u{0}"] {
            assert!(
                parse_advertisement(body.as_bytes(), true).is_err(),
                "{body:?}"
            );
        }
        assert_eq!(parse_advertisement(b"", true).unwrap(), vec![]);
    }

    #[test]
    fn dumb_ref_lists_parse_without_head() {
        let body = format!("{}\trefs/heads/main\n", "d".repeat(40));
        let refs = parse_advertisement(body.as_bytes(), false).unwrap();
        assert_eq!(pick_ref(&refs, "main"), Some("d".repeat(40)));
        assert_eq!(pick_ref(&refs, "HEAD"), None);
    }

    #[test]
    fn timestamps_parse_as_utc_dropping_fractions() {
        assert_eq!(
            parse_timestamp("2018-12-27T18:16:46.071815Z"),
            Some(1_545_934_606)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00"), Some(0));
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00+00:00"),
            Some(951_782_400)
        );
        for bad in [
            "",
            "2018-13-01T00:00:00",
            "yesterday",
            "2018-12-27",
            "2018-12-27T18:16",
            "1969-12-31T23:59:59",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
