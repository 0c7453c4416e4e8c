//! The shape of launch and build ids, and of the event ids the edge relays.
//!
//! The worker hands out the ids (random, so it generates them: this crate does no I/O);
//! the edge carries them in the ids of the events it relays, `<launch id>:<worker event
//! number>`. A browser's EventSource reconnects by itself and sends the last id it saw,
//! so a reconnect goes straight back to the same launch's events, from where it stopped,
//! instead of starting a second launch (BinderHub's reconnects restarted builds:
//! binderhub#743). Both sides check an id's shape here before using it as a key.

/// The shortest id accepted, in bytes.
pub const ID_MIN_LEN: usize = 8;
/// The longest id accepted, in bytes.
pub const ID_MAX_LEN: usize = 64;
/// The most digits a worker event number has (a `u64`).
const MAX_EVENT_DIGITS: usize = 20;

/// Whether `id` has the shape of a launch or build id: 8–64 of `[A-Za-z0-9_-]`.
pub fn is_valid_id(id: &str) -> bool {
    (ID_MIN_LEN..=ID_MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The id of a relayed event: `<launch id>:<worker event number>`.
pub fn relay_id(launch_id: &str, event_id: &str) -> String {
    format!("{launch_id}:{event_id}")
}

/// Parses a relayed `Last-Event-ID` into (launch id, worker event number). Anything that
/// is not exactly such an id is ignored: the request then starts afresh.
pub fn parse_last_event_id(header: &str) -> Option<(String, String)> {
    let (launch, event) = header.rsplit_once(':')?;
    let event_ok = !event.is_empty()
        && event.len() <= MAX_EVENT_DIGITS
        && event.bytes().all(|b| b.is_ascii_digit());
    (is_valid_id(launch) && event_ok).then(|| (launch.to_string(), event.to_string()))
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
            "0f3c9a1b2c3d4e5f:123456789012345678901",
        ] {
            assert_eq!(parse_last_event_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_outside_the_alphabet_or_length_are_refused() {
        assert!(is_valid_id("0f3c9a1b2c3d4e5f0f3c9a1b2c3d4e5f"));
        assert!(is_valid_id("a_b-C_d-"));
        for bad in [
            "short",
            "",
            "../../etc/passwd",
            "a b c d e f",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
