//! Event ids of the relayed stream: `<launch id>:<worker event number>`.
//!
//! A browser's EventSource reconnects by itself and sends the last id it saw. Carrying the
//! worker's launch id in every id lets a reconnect go straight back to the same launch's
//! events, from where it stopped, instead of starting a second launch (BinderHub's
//! reconnects restarted builds: binderhub#743).

/// Formats the id of a relayed event.
pub fn relay_id(launch_id: &str, event_id: &str) -> String {
    format!("{launch_id}:{event_id}")
}

/// Parses a `Last-Event-ID` header into (launch id, worker event number). Anything that
/// is not exactly such an id is ignored: the request then starts afresh.
pub fn parse_last_event_id(header: &str) -> Option<(String, String)> {
    let (launch, event) = header.rsplit_once(':')?;
    let launch_ok = (8..=64).contains(&launch.len())
        && launch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let event_ok =
        !event.is_empty() && event.len() <= 20 && event.bytes().all(|b| b.is_ascii_digit());
    (launch_ok && event_ok).then(|| (launch.to_string(), event.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_round_trip_and_garbage_is_ignored() {
        let id = relay_id("0f3c9a1b2c3d4e5f", "17");
        assert_eq!(
            parse_last_event_id(&id),
            Some(("0f3c9a1b2c3d4e5f".into(), "17".into()))
        );
        for bad in [
            "",
            "17",
            "short:1",
            "0f3c9a1b2c3d4e5f:",
            "0f3c9a1b2c3d4e5f:x",
            "../../etc/passwd0:1",
            "0f3c9a1b2c3d4e5f:1\n",
        ] {
            assert_eq!(parse_last_event_id(bad), None, "{bad:?}");
        }
    }
}
