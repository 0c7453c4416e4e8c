//! BinderHub's build and launch events, as the JSON objects its `/build` stream carries.
//!
//! Browsers, the BinderHub JS client and third-party tools all read this JSON, so the
//! field names, the phase spellings and the habit of ending messages with `"\n"` are kept
//! exactly as BinderHub emits them. Two foreign sources are mapped into events here too:
//! repo2docker's `--json-logs` lines and JupyterHub's spawn-progress events, both of which
//! BinderHub relays almost verbatim. Parsing is forgiving where BinderHub is (unknown
//! phases become `unknown`, non-JSON log lines are wrapped) and never panics.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Why a JSON text could not be read as an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The text is not a valid BinderHub event object.
    #[error("failed to parse build event json")]
    Event(#[source] serde_json::Error),
    /// The text is not a valid JupyterHub spawn-progress object.
    #[error("failed to parse hub progress event json")]
    HubProgress(#[source] serde_json::Error),
}

/// The phase of a build or launch, as named on the wire (lower-case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Queued: before the build pod starts, or a notice while waiting.
    Waiting,
    /// repo2docker is cloning or downloading the repository.
    Fetching,
    /// repo2docker is building the image.
    Building,
    /// The image is being pushed to the registry.
    Pushing,
    /// The image exists (found or freshly built); carries `imageName`.
    Built,
    /// JupyterHub is starting the server.
    Launching,
    /// The server is up; carries the `url` and `token`.
    Ready,
    /// Anything went wrong; the stream ends.
    Failed,
    /// A phase this code does not know, or a log line that was not JSON.
    Unknown,
}

impl Phase {
    /// Reads a phase name case-insensitively. repo2docker's `failure` means [`Phase::Failed`];
    /// any other unrecognised name is [`Phase::Unknown`].
    pub fn parse(name: &str) -> Phase {
        const NAMES: [(&str, Phase); 10] = [
            ("waiting", Phase::Waiting),
            ("fetching", Phase::Fetching),
            ("building", Phase::Building),
            ("pushing", Phase::Pushing),
            ("built", Phase::Built),
            ("launching", Phase::Launching),
            ("ready", Phase::Ready),
            ("failed", Phase::Failed),
            ("failure", Phase::Failed),
            ("unknown", Phase::Unknown),
        ];
        let name = name.trim();
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(Phase::Unknown, |&(_, phase)| phase)
    }

    /// The wire name of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Fetching => "fetching",
            Phase::Building => "building",
            Phase::Pushing => "pushing",
            Phase::Built => "built",
            Phase::Launching => "launching",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Unknown => "unknown",
        }
    }

    /// Whether a stream ends after this phase (`ready` or `failed`).
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Ready | Phase::Failed)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Phase {
    /// Lenient like the clients: any string is accepted, unknown names become `Unknown`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Phase::parse(&name))
    }
}

/// The message of `built` for an image found in the registry (BinderHub's).
const FOUND_BUILT: &str = "Found built image, launching...\n";
/// The message of `built` for an image just built (BinderHub's).
const BUILT: &str = "Built image, launching...\n";

/// One event of a `/build` stream.
///
/// Optional fields are left out of the JSON when `None`, so a plain progress event is
/// just `{"phase": …, "message": …}` as in BinderHub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Where the build or launch is.
    pub phase: Phase,
    /// Human-readable text; BinderHub's own messages end with `"\n"`.
    #[serde(default)]
    pub message: String,
    /// The HTTP status an error would have had (errors arrive on a 200 stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The image that was found or built (`built` events).
    #[serde(rename = "imageName", default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Push progress as repo2docker reports it, passed through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
    /// The server URL (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The server token (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The image the server runs (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The repository URL (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// A URL to the resolved ref (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binder_ref_url: Option<String>,
    /// The public base URL of this Binder (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binder_launch_host: Option<String>,
    /// `v2/<provider>/<spec>` as requested (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binder_request: Option<String>,
    /// `v2/<provider>/<resolved spec>` (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binder_persistent_request: Option<String>,
    /// The client address the launch was made for (`ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binder_client_ip: Option<String>,
    /// Bindery extension: a queued build's position in the queue (1 = next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
}

/// What a `ready` event carries besides its phase and message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadyInfo {
    /// The server URL.
    pub url: Option<String>,
    /// The server token.
    pub token: Option<String>,
    /// The image the server runs.
    pub image: Option<String>,
    /// The repository URL.
    pub repo_url: Option<String>,
    /// A URL to the resolved ref.
    pub binder_ref_url: Option<String>,
    /// The public base URL of this Binder.
    pub binder_launch_host: Option<String>,
    /// `v2/<provider>/<spec>` as requested.
    pub binder_request: Option<String>,
    /// `v2/<provider>/<resolved spec>`.
    pub binder_persistent_request: Option<String>,
    /// The client address the launch was made for.
    pub binder_client_ip: Option<String>,
}

impl Event {
    /// An event with a phase and a message and no other field.
    pub fn new(phase: Phase, message: impl Into<String>) -> Event {
        Event {
            phase,
            message: message.into(),
            status_code: None,
            image_name: None,
            progress: None,
            url: None,
            token: None,
            image: None,
            repo_url: None,
            binder_ref_url: None,
            binder_launch_host: None,
            binder_request: None,
            binder_persistent_request: None,
            binder_client_ip: None,
            queue_position: None,
        }
    }

    /// A `failed` event; the message gets the trailing `"\n"` BinderHub always adds.
    pub fn failed(status_code: Option<u16>, message: impl Into<String>) -> Event {
        let mut event = Event::new(Phase::Failed, with_newline(message.into()));
        event.status_code = status_code;
        event
    }

    /// A `built` event for `image`, worded as BinderHub does for a found or a fresh image.
    pub fn built(image: impl Into<String>, found: bool) -> Event {
        let message = if found { FOUND_BUILT } else { BUILT };
        let mut event = Event::new(Phase::Built, message);
        event.image_name = Some(image.into());
        event
    }

    /// The last event of a `build_only` request (BinderHub's API-only mode): `ready` with
    /// the image's name and no server, worded as BinderHub does for a found or a fresh
    /// image. It stands where a launch has `built`.
    pub fn build_only_done(image: impl Into<String>, found: bool) -> Event {
        let message = if found {
            "Done! Found built image\n"
        } else {
            "Done! Image built\n"
        };
        let mut event = Event::new(Phase::Ready, message);
        event.image_name = Some(image.into());
        event
    }

    /// For a `built` event: the `build_only` request's last event in its place
    /// ([`Event::build_only_done`]), found or built as the `built` event says.
    pub fn built_to_build_only_done(&self) -> Option<Event> {
        let image = self
            .image_name
            .clone()
            .filter(|_| self.phase == Phase::Built)?;
        Some(Event::build_only_done(image, self.message == FOUND_BUILT))
    }

    /// The `ready` event: `"server running at <url>\n"` plus every field of `info`.
    pub fn ready(info: ReadyInfo) -> Event {
        let message = match &info.url {
            Some(url) => format!("server running at {url}\n"),
            None => String::from("server running\n"),
        };
        Event {
            url: info.url,
            token: info.token,
            image: info.image,
            repo_url: info.repo_url,
            binder_ref_url: info.binder_ref_url,
            binder_launch_host: info.binder_launch_host,
            binder_request: info.binder_request,
            binder_persistent_request: info.binder_persistent_request,
            binder_client_ip: info.binder_client_ip,
            ..Event::new(Phase::Ready, message)
        }
    }

    /// Cuts the message to at most `max_bytes` (on a character boundary) and marks the cut
    /// with `" [line cut: N bytes]"` and a newline; returns whether it cut. A build's output
    /// line is held in memory and sent to every follower, so one endless line must not be.
    pub fn cut_message(&mut self, max_bytes: usize) -> bool {
        if self.message.len() <= max_bytes {
            return false;
        }
        let mut end = max_bytes;
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        let total = self.message.len();
        self.message.truncate(end);
        self.note_cut(total);
        true
    }

    /// Marks the message as the first bytes of a line of `total` bytes: its line ending
    /// gives way to `" [line cut: N bytes]"` and a newline. (A reader that kept only the
    /// start of a long line says so with this.)
    pub fn note_cut(&mut self, total: usize) {
        if self.message.ends_with('\n') {
            self.message.pop();
        }
        self.message
            .push_str(&format!(" [line cut: {total} bytes]\n"));
    }

    /// The event as one line of JSON (what follows `data: ` on the stream).
    pub fn to_json(&self) -> String {
        // Serialising this struct cannot fail: every map key is a string. Should serde_json
        // ever refuse, a well-formed event still goes out rather than a panic or nothing.
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(r#"{"phase":"failed","message":"failed to encode event\n"}"#)
        })
    }

    /// Reads an event from JSON; `phase` is required, `message` defaults to empty.
    pub fn from_json(json: &str) -> Result<Event, EventError> {
        let value = parse_object(json).map_err(EventError::Event)?;
        Event::deserialize(value).map_err(EventError::Event)
    }
}

/// Maps one line of repo2docker's `--json-logs` output to an event.
///
/// A JSON object keeps its `message` exactly (missing or null means empty) and its
/// `progress`, and its `phase` goes through [`Phase::parse`]. Anything else, from a
/// stray `docker` line to garbage, becomes an `unknown` event whose message is the line
/// with one `"\n"` at the end, as BinderHub wraps such lines.
pub fn from_repo2docker_line(line: &str) -> Event {
    let bare = line
        .strip_suffix('\n')
        .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(bare) else {
        return Event::new(Phase::Unknown, format!("{bare}\n"));
    };
    let phase = match object.get("phase") {
        Some(Value::String(name)) => Phase::parse(name),
        _ => Phase::Unknown,
    };
    let message = match object.remove("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
    };
    let mut event = Event::new(phase, message);
    event.progress = object.remove("progress").filter(|p| !p.is_null());
    event
}

/// One event of JupyterHub's spawn-progress stream (`GET users/<name>/server/progress`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubProgress {
    /// Percent done, when the hub says.
    pub progress: Option<u32>,
    /// The hub's message (empty when absent).
    pub message: String,
    /// The server is ready: the launch is over.
    pub ready: bool,
    /// The spawn failed.
    pub failed: bool,
    /// The server's URL, sent with `ready`.
    pub url: Option<String>,
}

/// The wire shape, lenient about nulls and numeric types.
#[derive(Deserialize)]
struct RawHubProgress {
    #[serde(default)]
    progress: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    ready: Option<bool>,
    #[serde(default)]
    failed: Option<bool>,
    #[serde(default)]
    url: Option<String>,
}

/// Parses a JupyterHub spawn-progress event (the JSON after `data: `).
///
/// `progress` may be an integer or a float; out-of-range values are clamped to `0..=100`
/// and anything that is not a number is ignored. Unknown fields (`html_message`) are ignored.
pub fn from_hub_progress(json: &str) -> Result<HubProgress, EventError> {
    let value = parse_object(json).map_err(EventError::HubProgress)?;
    let raw = RawHubProgress::deserialize(value).map_err(EventError::HubProgress)?;
    let progress = raw.progress.as_ref().and_then(Value::as_f64).and_then(|p| {
        // The cast is exact: the value is finite and clamped to 0..=100 first.
        p.is_finite().then(|| p.clamp(0.0, 100.0).round() as u32)
    });
    Ok(HubProgress {
        progress,
        message: raw.message.unwrap_or_default(),
        ready: raw.ready.unwrap_or(false),
        failed: raw.failed.unwrap_or(false),
        url: raw.url,
    })
}

impl HubProgress {
    /// The `launching` event BinderHub relays for this progress message (verbatim plus
    /// `"\n"`). `ready` and `failed` are for the caller to act on; they do not change
    /// the phase, because BinderHub emits its own `ready` and `failed` events.
    pub fn to_event(&self) -> Event {
        Event::new(Phase::Launching, format!("{}\n", self.message))
    }
}

/// Parses JSON that must be an object: serde would otherwise also fill a struct from an
/// array (`["ready"]`), which no sender means.
fn parse_object(json: &str) -> Result<Value, serde_json::Error> {
    match serde_json::from_str::<Value>(json)? {
        object @ Value::Object(_) => Ok(object),
        _ => Err(serde::de::Error::custom("expected a json object")),
    }
}

fn with_newline(mut message: String) -> String {
    if !message.ends_with('\n') {
        message.push('\n');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_only_ends_with_binderhubs_ready_in_place_of_built() {
        let done = Event::built("p/i:1", false)
            .built_to_build_only_done()
            .unwrap();
        assert_eq!(
            done.to_json(),
            r#"{"phase":"ready","message":"Done! Image built\n","imageName":"p/i:1"}"#
        );
        let found = Event::built("p/i:1", true)
            .built_to_build_only_done()
            .unwrap();
        assert_eq!(found, Event::build_only_done("p/i:1", true));
        assert_eq!(found.message, "Done! Found built image\n");
        assert!(found.phase.is_terminal());
        assert_eq!(
            Event::new(Phase::Building, "x").built_to_build_only_done(),
            None
        );
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary_and_says_how_long_it_was() {
        let cases: [(&str, usize, Option<&str>); 4] = [
            ("short\n", 16, None),
            ("exactly16bytes!\n", 16, None),
            ("abcdefghij", 4, Some("abcd [line cut: 10 bytes]\n")),
            // `é` is two bytes: the cut backs off to the boundary before it.
            ("aé-rest", 2, Some("a [line cut: 8 bytes]\n")),
        ];
        for (message, max, expected) in cases {
            let mut event = Event::new(Phase::Building, message);
            let cut = event.cut_message(max);
            assert_eq!(cut, expected.is_some(), "{message}");
            assert_eq!(event.message, expected.unwrap_or(message), "{message}");
        }
    }
    use serde_json::json;

    fn full_ready() -> Event {
        Event::ready(ReadyInfo {
            url: Some("https://hub.example.org/user/binder-examples-octave-abc/".into()),
            token: Some("tok123".into()),
            image: Some(
                "registry.example.org/binder-binder-2dexamples-2doctave-03025a:1479e02".into(),
            ),
            repo_url: Some("https://github.com/binder-examples/octave".into()),
            binder_ref_url: Some("https://github.com/binder-examples/octave/tree/1479e02".into()),
            binder_launch_host: Some("https://mybinder.org/".into()),
            binder_request: Some("v2/gh/binder-examples/octave/HEAD".into()),
            binder_persistent_request: Some("v2/gh/binder-examples/octave/1479e02".into()),
            binder_client_ip: Some("192.0.2.7".into()),
        })
    }

    #[test]
    fn phase_names_parse_case_insensitively_with_failure_as_failed() {
        let cases = [
            ("waiting", Phase::Waiting),
            ("Fetching", Phase::Fetching),
            ("BUILDING", Phase::Building),
            ("pushing", Phase::Pushing),
            ("built", Phase::Built),
            ("launching", Phase::Launching),
            ("Ready", Phase::Ready),
            ("failed", Phase::Failed),
            ("failure", Phase::Failed),
            ("FAILURE", Phase::Failed),
            ("unknown", Phase::Unknown),
            (" ready ", Phase::Ready),
            ("", Phase::Unknown),
            ("exploding", Phase::Unknown),
            ("readyy", Phase::Unknown),
        ];
        for (name, want) in cases {
            assert_eq!(Phase::parse(name), want, "{name:?}");
        }
    }

    #[test]
    fn only_ready_and_failed_are_terminal() {
        let all = [
            Phase::Waiting,
            Phase::Fetching,
            Phase::Building,
            Phase::Pushing,
            Phase::Built,
            Phase::Launching,
            Phase::Ready,
            Phase::Failed,
            Phase::Unknown,
        ];
        for phase in all {
            assert_eq!(
                phase.is_terminal(),
                matches!(phase, Phase::Ready | Phase::Failed)
            );
            assert_eq!(Phase::parse(phase.as_str()), phase);
        }
    }

    #[test]
    fn a_plain_event_serialises_to_phase_and_message_only() {
        let event = Event::new(Phase::Waiting, "Waiting for build to start...\n");
        assert_eq!(
            event.to_json(),
            r#"{"phase":"waiting","message":"Waiting for build to start...\n"}"#
        );
    }

    #[test]
    fn the_built_event_names_its_image_field_image_name_in_camel_case() {
        let event = Event::built("r/img:abc", true);
        let value: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            value,
            json!({"phase": "built", "message": "Found built image, launching...\n", "imageName": "r/img:abc"})
        );
        assert_eq!(
            Event::built("r/img:abc", false).message,
            "Built image, launching...\n"
        );
    }

    #[test]
    fn failed_events_end_with_one_newline_and_carry_the_status_code() {
        let event = Event::failed(Some(429), "Rate limit exceeded. Try again in 60 seconds.");
        assert_eq!(
            event.message,
            "Rate limit exceeded. Try again in 60 seconds.\n"
        );
        let value: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(value["status_code"], json!(429));
        assert_eq!(value["phase"], json!("failed"));
        assert_eq!(Event::failed(None, "already\n").message, "already\n");
        assert!(!Event::failed(None, "x").to_json().contains("status_code"));
    }

    #[test]
    fn the_ready_event_has_exactly_binderhubs_field_set() {
        let value: Value = serde_json::from_str(&full_ready().to_json()).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "binder_client_ip",
                "binder_launch_host",
                "binder_persistent_request",
                "binder_ref_url",
                "binder_request",
                "image",
                "message",
                "phase",
                "repo_url",
                "token",
                "url",
            ]
        );
        assert_eq!(
            value["message"],
            json!("server running at https://hub.example.org/user/binder-examples-octave-abc/\n")
        );
        assert_eq!(value["phase"], json!("ready"));
    }

    #[test]
    fn events_round_trip_through_json() {
        let mut queued = Event::new(Phase::Waiting, "Queued\n");
        queued.queue_position = Some(3);
        let mut pushing = Event::new(Phase::Pushing, "");
        pushing.progress = Some(json!({"layer1": {"current": 10, "total": 20}}));
        let events = [
            full_ready(),
            Event::built("img:1", false),
            Event::failed(Some(500), "Failed to launch image img:1"),
            queued,
            pushing,
            Event::new(Phase::Unknown, "ünïcode \u{1F600}\n"),
        ];
        for event in events {
            assert_eq!(Event::from_json(&event.to_json()).unwrap(), event);
        }
    }

    #[test]
    fn none_fields_are_left_out_of_the_json() {
        let json = Event::new(Phase::Launching, "Launching server...\n").to_json();
        for field in [
            "status_code",
            "imageName",
            "progress",
            "url",
            "token",
            "queue_position",
            "null",
        ] {
            assert!(!json.contains(field), "{field} in {json}");
        }
    }

    #[test]
    fn from_json_accepts_unknown_phases_and_refuses_non_events() {
        let odd = Event::from_json(r#"{"phase":"Exploding","extra":1}"#).unwrap();
        assert_eq!(odd, Event::new(Phase::Unknown, ""));
        let cases = [
            "",
            "null",
            "[]",
            r#"{"message":"no phase"}"#,
            r#"{"phase":1}"#,
            "{",
            r#"["ready", "msg"]"#,
            r#"{"phase":"ready","status_code":70000}"#,
        ];
        for json in cases {
            assert!(Event::from_json(json).is_err(), "{json:?}");
        }
    }

    #[test]
    fn repo2docker_lines_map_to_events() {
        let cases: [(&str, Phase, &str); 12] = [
            (
                r#"{"phase": "building", "message": "Step 1/3 : FROM x\n"}"#,
                Phase::Building,
                "Step 1/3 : FROM x\n",
            ),
            (
                r#"{"phase": "fetching", "message": "Cloning"}"#,
                Phase::Fetching,
                "Cloning",
            ),
            (
                r#"{"phase": "failure", "message": "boom\n"}"#,
                Phase::Failed,
                "boom\n",
            ),
            (
                r#"{"phase": "failed", "message": "boom\n"}"#,
                Phase::Failed,
                "boom\n",
            ),
            (r#"{"phase": "Building"}"#, Phase::Building, ""),
            (
                r#"{"phase": "building", "message": null}"#,
                Phase::Building,
                "",
            ),
            (r#"{"message": "no phase\n"}"#, Phase::Unknown, "no phase\n"),
            (r#"{"phase": 7, "message": 12}"#, Phase::Unknown, "12"),
            (
                "Step 2/3 : RUN make",
                Phase::Unknown,
                "Step 2/3 : RUN make\n",
            ),
            ("plain line\r\n", Phase::Unknown, "plain line\n"),
            ("", Phase::Unknown, "\n"),
            ("\u{0}\u{ff}{{{\"", Phase::Unknown, "\u{0}\u{ff}{{{\"\n"),
        ];
        for (line, phase, message) in cases {
            let event = from_repo2docker_line(line);
            assert_eq!(
                (event.phase, event.message.as_str()),
                (phase, message),
                "{line:?}"
            );
        }
    }

    #[test]
    fn repo2docker_json_that_is_not_an_object_is_wrapped_as_unknown() {
        for line in ["42", "\"text\"", "[1,2]", "null", "true"] {
            assert_eq!(
                from_repo2docker_line(line),
                Event::new(Phase::Unknown, format!("{line}\n"))
            );
        }
    }

    #[test]
    fn repo2docker_push_progress_is_passed_through() {
        let line = r#"{"phase": "pushing", "message": "", "progress": {"abc": {"current": 1, "total": 2}}}"#;
        let event = from_repo2docker_line(line);
        assert_eq!(event.phase, Phase::Pushing);
        assert_eq!(
            event.progress,
            Some(json!({"abc": {"current": 1, "total": 2}}))
        );
    }

    #[test]
    fn hub_progress_events_parse_leniently() {
        let cases: [(&str, HubProgress); 5] = [
            (
                r#"{"progress": 50, "message": "Server requested"}"#,
                HubProgress {
                    progress: Some(50),
                    message: "Server requested".into(),
                    ..Default::default()
                },
            ),
            (
                r#"{"progress": 100, "ready": true, "message": "Server ready at /user/x/", "url": "/user/x/", "html_message": "<a>"}"#,
                HubProgress {
                    progress: Some(100),
                    message: "Server ready at /user/x/".into(),
                    ready: true,
                    failed: false,
                    url: Some("/user/x/".into()),
                },
            ),
            (
                r#"{"failed": true, "message": "Spawn failed: timeout"}"#,
                HubProgress {
                    failed: true,
                    message: "Spawn failed: timeout".into(),
                    ..Default::default()
                },
            ),
            (
                r#"{"progress": 33.6, "message": null}"#,
                HubProgress {
                    progress: Some(34),
                    ..Default::default()
                },
            ),
            (
                r#"{"progress": -5e300, "ready": null}"#,
                HubProgress {
                    progress: Some(0),
                    ..Default::default()
                },
            ),
        ];
        for (json, want) in cases {
            assert_eq!(from_hub_progress(json).unwrap(), want, "{json}");
        }
        assert_eq!(
            from_hub_progress(r#"{"progress": "x"}"#).unwrap().progress,
            None
        );
        for bad in ["", "[]", "nope", r#"{"ready": "yes"}"#] {
            assert!(from_hub_progress(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hub_progress_is_relayed_as_launching_with_a_newline() {
        let progress =
            from_hub_progress(r#"{"message": "2024-01-01T00:00:00Z [Normal] Pulling image"}"#)
                .unwrap();
        assert_eq!(
            progress.to_event(),
            Event::new(
                Phase::Launching,
                "2024-01-01T00:00:00Z [Normal] Pulling image\n"
            )
        );
    }

    #[test]
    fn errors_read_in_lower_case_without_a_period() {
        let err = Event::from_json("{").unwrap_err().to_string();
        assert_eq!(err, "failed to parse build event json");
    }
}
