//! Server-sent events: an encoder and an incremental decoder.
//!
//! Bindery speaks SSE on both sides: the edge sends BinderHub's `/build` stream to
//! browsers, the worker serves numbered build and launch events that the edge replays
//! with `Last-Event-ID`, and the worker reads JupyterHub's spawn-progress stream. All
//! three must agree with browsers' `EventSource`, so the decoder follows the WHATWG HTML
//! "event stream interpretation" rules to the letter (line endings, BOM, the single space
//! after the colon, `id` and `retry` handling, discarding an unfinished event at the end).
//!
//! The decoder reads from the network, so it is built for hostile input: it never panics,
//! looks at each byte once whatever the chunking, and bounds its memory. An over-long
//! line or event is dropped and reported as [`SseMessage::Overflow`], and decoding carries
//! on with the next event.

/// BinderHub's keepalive comment, sent every 25 s on an idle stream.
pub const KEEPALIVE: &str = ":keepalive\n\n";

/// After the last event of a `/build` stream (`ready` or `failed`), the edge keeps the
/// stream open until the client closes it, for at most this many keepalives, one every
/// [`LINGER_INTERVAL`]: clients such as `@jupyterhub/binderhub-client` report a stream
/// that ends before they close it as a failure, even after `ready`. BinderHub holds it
/// 60 s; a few seconds is enough for a client to close, and an edge instance held by a
/// client that never closes is free again after [`LINGER_KEEPALIVES`] ×
/// [`LINGER_INTERVAL`]. Each keepalive is also how the edge learns that the client
/// left: the write fails, and the stream ends at once.
pub const LINGER_KEEPALIVES: u32 = 5;

/// The interval of the keepalives after the last event (see [`LINGER_KEEPALIVES`]).
pub const LINGER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The decoder's default bound on a line and on an event's data, in bytes.
pub const DEFAULT_LIMIT: usize = 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One event to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The event id (becomes the client's `Last-Event-ID`); dropped if it holds CR, LF or NUL.
    pub id: Option<String>,
    /// The event type; dropped if it holds CR or LF. Clients default it to `message`.
    pub event: Option<String>,
    /// The payload; line breaks (LF, CRLF, CR) become LF at the receiving end.
    pub data: String,
    /// The client's reconnection delay in milliseconds.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An event carrying only `data`.
    pub fn new(data: impl Into<String>) -> SseEvent {
        SseEvent {
            data: data.into(),
            ..SseEvent::default()
        }
    }

    /// The same event with an id.
    pub fn with_id(mut self, id: impl Into<String>) -> SseEvent {
        self.id = Some(id.into());
        self
    }

    /// The same event with an event type.
    pub fn with_event(mut self, event: impl Into<String>) -> SseEvent {
        self.event = Some(event.into());
        self
    }

    /// The same event with a reconnection delay.
    pub fn with_retry(mut self, millis: u64) -> SseEvent {
        self.retry = Some(millis);
        self
    }
}

/// Frames one event: `id:`, `event:`, `retry:` when set, one `data:` line per line of
/// data, and the blank line that dispatches it.
///
/// A field that cannot be framed (an id holding a line break or NUL, an event type holding
/// a line break) is left out rather than emitted broken.
pub fn encode(event: &SseEvent) -> String {
    let mut out = String::with_capacity(event.data.len() + 16);
    if let Some(id) = event
        .id
        .as_deref()
        .filter(|id| !id.contains(['\r', '\n', '\0']))
    {
        push_field(&mut out, "id", id);
    }
    if let Some(kind) = event
        .event
        .as_deref()
        .filter(|kind| !kind.contains(['\r', '\n']))
    {
        push_field(&mut out, "event", kind);
    }
    if let Some(retry) = event.retry {
        push_field(&mut out, "retry", &retry.to_string());
    }
    for line in lines(&event.data) {
        push_field(&mut out, "data", line);
    }
    out.push('\n');
    out
}

/// Frames a comment, `:<text>\n\n`; each line of a multi-line text becomes its own comment.
pub fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    for line in lines(text) {
        out.push(':');
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

/// Splits on LF, CRLF and CR, as the decoder does; an empty text is one empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

/// What the decoder hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseMessage {
    /// A dispatched event.
    Event {
        /// The last event id at dispatch, `None` when it is empty (never set, or reset).
        id: Option<String>,
        /// The event type, `message` when the stream named none.
        event: String,
        /// The data lines joined with LF.
        data: String,
    },
    /// A comment line, without its leading colon.
    Comment(String),
    /// An event was dropped because a line or its data went over the decoder's limit.
    Overflow,
}

/// Incremental SSE decoder: feed it bytes as they arrive, in chunks of any size.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    limit: usize,
    /// The stream's first bytes, held until it is known whether they are a BOM.
    head: Vec<u8>,
    head_done: bool,
    /// The current, unterminated line.
    line: Vec<u8>,
    /// The current line went over the limit; `Some(true)` if it is a comment.
    line_overflow: Option<bool>,
    /// The last byte seen was a CR, so an LF right after it ends nothing.
    after_cr: bool,
    data: String,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
    /// The current event is being dropped; its data and type lines are ignored.
    dropping: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::new()
    }
}

impl SseDecoder {
    /// A decoder bounding lines and event data to [`DEFAULT_LIMIT`] bytes.
    pub fn new() -> SseDecoder {
        SseDecoder::with_limit(DEFAULT_LIMIT)
    }

    /// A decoder bounding each line, and each event's data, to `limit` bytes.
    pub fn with_limit(limit: usize) -> SseDecoder {
        SseDecoder {
            limit,
            head: Vec::new(),
            head_done: false,
            line: Vec::new(),
            line_overflow: None,
            after_cr: false,
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry: None,
            dropping: false,
        }
    }

    /// Decodes the next chunk, returning what it completed. A chunk may end anywhere,
    /// even inside a UTF-8 sequence or between a CR and its LF.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        let mut out = Vec::new();
        let mut bytes = bytes;
        if !self.head_done {
            let take = (BOM.len() - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.head.len() < BOM.len() && BOM.starts_with(&self.head) {
                // Possibly a BOM still arriving: wait for more.
                return out;
            }
            self.release_head(&mut out);
        }
        self.scan(bytes, &mut out);
        out
    }

    /// Ends the stream. An event without its closing blank line, and an unterminated last
    /// line, are discarded, as the spec says. The last event id and retry survive, so a
    /// reconnecting caller can keep using the decoder: the next bytes fed start a new
    /// stream (which may again begin with a BOM).
    pub fn finish(&mut self) {
        self.head.clear();
        self.head_done = false;
        self.line.clear();
        self.line_overflow = None;
        self.after_cr = false;
        self.data.clear();
        self.event_type.clear();
        self.dropping = false;
    }

    /// The last event id as of the last dispatch: what to send as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection delay the stream asked for, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    fn release_head(&mut self, out: &mut Vec<SseMessage>) {
        self.head_done = true;
        let head = std::mem::take(&mut self.head);
        if head != BOM {
            self.scan(&head, out);
        }
    }

    /// Splits bytes into lines; every byte is looked at once.
    fn scan(&mut self, mut bytes: &[u8], out: &mut Vec<SseMessage>) {
        if self.after_cr {
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
                self.after_cr = false;
            } else if !bytes.is_empty() {
                self.after_cr = false;
            }
        }
        while let Some(at) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.append(&bytes[..at], out);
            self.end_line(out);
            let crlf = bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n');
            if bytes[at] == b'\r' && at + 1 == bytes.len() {
                self.after_cr = true;
            }
            bytes = &bytes[at + if crlf { 2 } else { 1 }..];
        }
        self.append(bytes, out);
    }

    fn append(&mut self, segment: &[u8], out: &mut Vec<SseMessage>) {
        if segment.is_empty() || self.line_overflow.is_some() {
            return;
        }
        if segment.len() > self.limit.saturating_sub(self.line.len()) {
            let first = self.line.first().or(segment.first());
            let is_comment = first == Some(&b':');
            self.line.clear();
            self.line.shrink_to(0);
            self.line_overflow = Some(is_comment);
            if !is_comment {
                self.drop_event(out);
            }
            return;
        }
        self.line.extend_from_slice(segment);
    }

    fn end_line(&mut self, out: &mut Vec<SseMessage>) {
        if self.line_overflow.take().is_some() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&line);
        self.process_line(&text, out);
        // Keep the allocation for the next line unless it was a rare giant.
        self.line = line;
        self.line.clear();
        if self.line.capacity() > 64 * 1024 {
            self.line.shrink_to(0);
        }
    }

    fn process_line(&mut self, line: &str, out: &mut Vec<SseMessage>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(text) = line.strip_prefix(':') {
            out.push(SseMessage::Comment(text.to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" if !self.dropping => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "data" if !self.dropping => {
                if value.len() >= self.limit.saturating_sub(self.data.len()) {
                    self.drop_event(out);
                } else {
                    self.data.push_str(value);
                    self.data.push('\n');
                }
            }
            "id" if !value.contains('\0') => {
                self.id_buffer.clear();
                self.id_buffer.push_str(value);
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits: the only failure left is overflow, which saturates.
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }

    fn drop_event(&mut self, out: &mut Vec<SseMessage>) {
        if !self.dropping {
            self.dropping = true;
            self.data = String::new();
            self.event_type = String::new();
            out.push(SseMessage::Overflow);
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseMessage>) {
        self.last_event_id.clone_from(&self.id_buffer);
        self.dropping = false;
        let event_type = std::mem::take(&mut self.event_type);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let id = (!self.last_event_id.is_empty()).then(|| self.last_event_id.clone());
        let event = if event_type.is_empty() {
            String::from("message")
        } else {
            event_type
        };
        out.push(SseMessage::Event { id, event, data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(decoder: &mut SseDecoder, chunks: &[&[u8]]) -> Vec<SseMessage> {
        chunks
            .iter()
            .flat_map(|chunk| decoder.feed(chunk))
            .collect()
    }

    fn decode(stream: &[u8]) -> Vec<SseMessage> {
        SseDecoder::new().feed(stream)
    }

    fn event(id: Option<&str>, kind: &str, data: &str) -> SseMessage {
        SseMessage::Event {
            id: id.map(String::from),
            event: kind.into(),
            data: data.into(),
        }
    }

    fn message(data: &str) -> SseMessage {
        event(None, "message", data)
    }

    const SAMPLE: &[u8] = b"\xEF\xBB\xBF: hello\r\nretry: 2500\nid: 7\r\nevent: update\rdata: {\"phase\": \"building\",\r\ndata:  \"message\": \"caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80\"}\n\n\r\ndata:second\r\n\r\n:keepalive\n\nid\ndata: third\r\rdata: lost";

    fn sample_expected() -> Vec<SseMessage> {
        vec![
            SseMessage::Comment(" hello".into()),
            event(
                Some("7"),
                "update",
                "{\"phase\": \"building\",\n \"message\": \"café ✓ 😀\"}",
            ),
            event(Some("7"), "message", "second"),
            SseMessage::Comment("keepalive".into()),
            message("third"),
        ]
    }

    #[test]
    fn the_spec_example_with_three_data_lines_joins_them_with_newlines() {
        assert_eq!(
            decode(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            [message("YHOO\n+2\n10")]
        );
    }

    #[test]
    fn the_spec_example_with_ids_sets_and_resets_the_last_event_id() {
        let stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
        assert_eq!(
            decode(stream),
            [
                SseMessage::Comment(" test stream".into()),
                event(Some("1"), "message", "first event"),
                message("second event"),
                message(" third event"),
            ]
        );
    }

    #[test]
    fn the_spec_example_with_empty_data_fires_two_events_and_discards_the_last_block() {
        assert_eq!(
            decode(b"data\n\ndata\ndata\n\ndata:"),
            [message(""), message("\n")]
        );
    }

    #[test]
    fn the_spec_example_with_and_without_a_space_fires_identical_events() {
        assert_eq!(
            decode(b"data:test\n\ndata: test\n\n"),
            [message("test"), message("test")]
        );
    }

    #[test]
    fn field_lines_are_parsed_as_the_spec_says() {
        let cases: [(&str, Vec<SseMessage>); 10] = [
            ("data:x\n\n", vec![message("x")]),
            ("data: x\n\n", vec![message("x")]),
            ("data:  x\n\n", vec![message(" x")]),
            ("data: a: b\n\n", vec![message("a: b")]),
            ("DATA: x\n\n", vec![]),
            ("datum: x\n\n", vec![]),
            ("event: ping\n\n", vec![]),
            ("event: ping\ndata\n\n", vec![event(None, "ping", "")]),
            ("event\ndata: x\n\n", vec![message("x")]),
            ("event: a\n\ndata: x\n\n", vec![message("x")]),
        ];
        for (stream, want) in cases {
            assert_eq!(decode(stream.as_bytes()), want, "{stream:?}");
        }
    }

    #[test]
    fn lf_crlf_and_cr_line_endings_mix_freely() {
        let cases: [&[u8]; 6] = [
            b"data: a\ndata: b\n\n",
            b"data: a\r\ndata: b\r\n\r\n",
            b"data: a\rdata: b\r\r",
            b"data: a\r\ndata: b\r\r\n",
            b"data: a\rdata: b\n\r",
            b"data: a\n\rdata: b\r\n\n",
        ];
        for stream in cases {
            let want = if stream == b"data: a\n\rdata: b\r\n\n" {
                vec![message("a"), message("b")]
            } else {
                vec![message("a\nb")]
            };
            assert_eq!(
                decode(stream),
                want,
                "{:?}",
                String::from_utf8_lossy(stream)
            );
        }
    }

    #[test]
    fn only_one_leading_bom_is_skipped() {
        let cases: [(&[u8], Vec<SseMessage>); 5] = [
            (b"\xEF\xBB\xBFdata: x\n\n", vec![message("x")]),
            (b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n", vec![]),
            (b"data: x\n\n\xEF\xBB\xBFdata: y\n\n", vec![message("x")]),
            (b"\xEF\xBBdata: x\n\n", vec![]),
            (b"\xEFdata: x\n\n", vec![]),
        ];
        for (stream, want) in cases {
            assert_eq!(decode(stream), want, "{stream:?}");
        }
    }

    #[test]
    fn a_bom_split_across_chunks_is_still_skipped() {
        let mut decoder = SseDecoder::new();
        let got = decode_all(&mut decoder, &[b"\xEF", b"", b"\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(got, [message("x")]);
    }

    #[test]
    fn the_sample_stream_decodes_as_expected() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.feed(SAMPLE), sample_expected());
        assert_eq!(decoder.retry(), Some(2500));
        assert_eq!(decoder.last_event_id(), "");
    }

    #[test]
    fn splitting_the_sample_at_any_byte_gives_the_same_result() {
        for at in 0..=SAMPLE.len() {
            let mut decoder = SseDecoder::new();
            let got = decode_all(&mut decoder, &[&SAMPLE[..at], &SAMPLE[at..]]);
            assert_eq!(got, sample_expected(), "split at {at}");
        }
        for first in 0..SAMPLE.len() {
            for second in first..=SAMPLE.len() {
                let mut decoder = SseDecoder::new();
                let chunks = [&SAMPLE[..first], &SAMPLE[first..second], &SAMPLE[second..]];
                assert_eq!(
                    decode_all(&mut decoder, &chunks),
                    sample_expected(),
                    "split at {first}, {second}"
                );
            }
        }
    }

    #[test]
    fn feeding_the_sample_one_byte_at_a_time_gives_the_same_result() {
        let mut decoder = SseDecoder::new();
        let chunks: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        assert_eq!(decode_all(&mut decoder, &chunks), sample_expected());
    }

    #[test]
    fn comments_are_reported_without_their_colon() {
        let got = decode(b":keepalive\n: spaced\n:\ndata: x\n:inside\n\n");
        assert_eq!(
            got,
            [
                SseMessage::Comment("keepalive".into()),
                SseMessage::Comment(" spaced".into()),
                SseMessage::Comment(String::new()),
                SseMessage::Comment("inside".into()),
                message("x"),
            ]
        );
    }

    #[test]
    fn the_last_event_id_persists_across_events_until_changed() {
        let mut decoder = SseDecoder::new();
        let got = decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\nid: x\0y\ndata: d\n\nid:\ndata: e\n\n");
        assert_eq!(
            got,
            [
                event(Some("1"), "message", "a"),
                event(Some("1"), "message", "b"),
                event(Some("2"), "message", "c"),
                event(Some("2"), "message", "d"),
                message("e"),
            ]
        );
        assert_eq!(decoder.last_event_id(), "");
    }

    #[test]
    fn the_last_event_id_changes_only_when_an_event_block_ends() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"id: 5\ndata: a\n\nid: 6\ndata: b\n");
        assert_eq!(decoder.last_event_id(), "5");
        decoder.finish();
        assert_eq!(decoder.last_event_id(), "5");
        decoder.feed(b"id: 9\n\n");
        assert_eq!(decoder.last_event_id(), "9");
    }

    #[test]
    fn retry_is_taken_only_when_all_ascii_digits() {
        let cases: [(&str, Option<u64>); 9] = [
            ("retry: 3000\n", Some(3000)),
            ("retry:0\n", Some(0)),
            ("retry: 99999999999999999999999\n", Some(u64::MAX)),
            ("retry: \n", None),
            ("retry\n", None),
            ("retry: 30x\n", None),
            ("retry: -1\n", None),
            ("retry:  5\n", None),
            ("retry: ３\n", None),
        ];
        for (stream, want) in cases {
            let mut decoder = SseDecoder::new();
            assert_eq!(decoder.feed(stream.as_bytes()), [], "{stream:?}");
            assert_eq!(decoder.retry(), want, "{stream:?}");
        }
        let mut decoder = SseDecoder::new();
        decoder.feed(b"retry: 10\nretry: bad\n");
        assert_eq!(decoder.retry(), Some(10));
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        assert_eq!(
            decode(b"data: a\xFFb\xC3\n\n"),
            [message("a\u{FFFD}b\u{FFFD}")]
        );
    }

    #[test]
    fn finish_discards_the_unfinished_event_and_the_decoder_can_go_on() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.feed(b"data: sent\n\ndata: half"), [message("sent")]);
        decoder.finish();
        assert_eq!(
            decoder.feed(b"\xEF\xBB\xBFdata: next\n\n"),
            [message("next")]
        );
        decoder.feed(b"data: half");
        decoder.finish();
        assert_eq!(decoder.feed(b"\n\n"), []);
    }

    #[test]
    fn a_long_line_drops_its_event_once_and_decoding_recovers() {
        let mut decoder = SseDecoder::with_limit(16);
        let got = decoder.feed(b"data: ok\n\ndata: 0123456789abcdefghij\ndata: more\nid: 3\ndata: 0123456789abcdefghij\n\ndata: after\n\n");
        assert_eq!(
            got,
            [
                message("ok"),
                SseMessage::Overflow,
                event(Some("3"), "message", "after")
            ]
        );
    }

    #[test]
    fn event_data_over_the_limit_drops_the_event() {
        let mut decoder = SseDecoder::with_limit(16);
        let got = decoder.feed(
            b"event: big\ndata: 0123456\ndata: 0123456\ndata: x\n\ndata: 0123456\ndata: 012345\n\n",
        );
        assert_eq!(got, [SseMessage::Overflow, message("0123456\n012345")]);
    }

    #[test]
    fn a_long_line_split_over_many_chunks_overflows_the_same_way() {
        let stream = b"data: first\n\nevent: x\ndata: 0123456789abcdefghijklmnop\r\n\r\n:0123456789abcdefghijklmnop\ndata: next\n\n";
        let want = vec![message("first"), SseMessage::Overflow, message("next")];
        for size in 1..stream.len() {
            let mut decoder = SseDecoder::with_limit(16);
            let chunks: Vec<&[u8]> = stream.chunks(size).collect();
            assert_eq!(decode_all(&mut decoder, &chunks), want, "chunks of {size}");
        }
    }

    #[test]
    fn a_long_comment_is_dropped_without_harming_the_event_around_it() {
        let mut decoder = SseDecoder::with_limit(8);
        let got = decoder.feed(b"data: a\n:0123456789\ndata: b\n\n");
        assert_eq!(got, [message("a\nb")]);
    }

    #[test]
    fn decoding_is_linear_in_the_input_even_in_tiny_chunks() {
        let size = 2 * 1024 * 1024;
        let mut stream = b"data: ".to_vec();
        stream.resize(size, b'x');
        stream.extend_from_slice(b"\n\n");
        let mut decoder = SseDecoder::with_limit(4 * 1024 * 1024);
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            got.extend(decoder.feed(chunk));
        }
        assert!(matches!(&got[..], [SseMessage::Event { data, .. }] if data.len() == size - 6));
    }

    #[test]
    fn encode_writes_each_field_and_one_data_line_per_line() {
        let cases: [(SseEvent, &str); 7] = [
            (
                SseEvent::new("{\"phase\":\"ready\"}"),
                "data: {\"phase\":\"ready\"}\n\n",
            ),
            (SseEvent::new(""), "data: \n\n"),
            (
                SseEvent::new("a\nb\r\nc\rd\n"),
                "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n",
            ),
            (
                SseEvent::new("x")
                    .with_id("42")
                    .with_event("log")
                    .with_retry(1000),
                "id: 42\nevent: log\nretry: 1000\ndata: x\n\n",
            ),
            (SseEvent::new("x").with_id("4\n2"), "data: x\n\n"),
            (
                SseEvent::new("x").with_id("4\u{0}2").with_event("a\rb"),
                "data: x\n\n",
            ),
            (SseEvent::new("x").with_id(""), "id: \ndata: x\n\n"),
        ];
        for (event, want) in cases {
            assert_eq!(encode(&event), want, "{event:?}");
        }
    }

    #[test]
    fn comments_frame_every_line_and_keepalive_matches_binderhub() {
        assert_eq!(comment("keepalive"), KEEPALIVE);
        assert_eq!(comment(""), ":\n\n");
        assert_eq!(comment("a\nb"), ":a\n:b\n\n");
        assert_eq!(
            decode(comment("a\r\nb").as_bytes()),
            [
                SseMessage::Comment("a".into()),
                SseMessage::Comment("b".into())
            ]
        );
    }

    proptest! {
        #[test]
        fn encoding_then_decoding_gives_back_the_event(
            data in any::<String>(),
            id in proptest::option::of(any::<String>()),
            kind in proptest::option::of("[^\r\n]*"),
        ) {
            let sent = SseEvent { id: id.clone(), event: kind.clone(), data: data.clone(), retry: None };
            let got = SseDecoder::new().feed(encode(&sent).as_bytes());
            let framable_id = id.filter(|id| !id.is_empty() && !id.contains(['\r', '\n', '\0']));
            let want = SseMessage::Event {
                id: framable_id,
                event: kind.filter(|k| !k.is_empty()).unwrap_or_else(|| "message".into()),
                data: data.replace("\r\n", "\n").replace('\r', "\n"),
            };
            prop_assert_eq!(got, vec![want]);
        }

        #[test]
        fn arbitrary_bytes_decode_the_same_however_they_are_split(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            at in any::<prop::sample::Index>(),
            limit in 0usize..64,
        ) {
            let at = at.index(bytes.len() + 1);
            let whole = SseDecoder::with_limit(limit).feed(&bytes);
            let mut decoder = SseDecoder::with_limit(limit);
            let mut split = decoder.feed(&bytes[..at]);
            split.extend(decoder.feed(&bytes[at..]));
            prop_assert_eq!(whole, split);
        }

        #[test]
        fn sse_shaped_noise_decodes_the_same_byte_by_byte(
            text in "(data|id|event|retry|:|\r|\n| |x|é|\u{FEFF}){0,60}",
        ) {
            let bytes = text.as_bytes();
            let whole = SseDecoder::with_limit(8).feed(bytes);
            let mut decoder = SseDecoder::with_limit(8);
            let single: Vec<SseMessage> = bytes.iter().flat_map(|b| decoder.feed(&[*b])).collect();
            prop_assert_eq!(whole, single);
        }
    }
}
