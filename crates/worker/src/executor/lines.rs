//! A build's output read line by line, holding at most a fixed number of bytes of any one
//! line: a build that prints 400 MB without a newline must not make the worker hold 400 MB
//! (`lines()` keeps the whole line, and gives up on bytes that are not UTF-8, which would
//! stop the reading while the build blocks on a full pipe). The local executor reads
//! repo2docker's pipes with it, the Kubernetes executor the build pod's log.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The bytes of a line the executors keep: room is left for the cut marker, so that
/// `builds`, which cuts at [`crate::builds::MAX_LINE_BYTES`], does not cut a marked line
/// again.
pub(crate) const KEPT_LINE_BYTES: usize = crate::builds::MAX_LINE_BYTES - 64;

use bindery_core::events::{Event, from_repo2docker_line};

/// One line as read: its first bytes, and its whole length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The bytes kept (at most the reader's limit), decoded lossily, without `\n` or `\r\n`.
    pub text: String,
    /// The length of the whole line in bytes, without its `\n`.
    pub total: usize,
}

impl Line {
    /// The build event of this line, marked when bytes were dropped.
    pub fn into_event(self) -> Event {
        self.event_of(&self.text)
    }

    /// The build event of `text`, the end of this line (after a log timestamp, say),
    /// marked with the length of that end when bytes were dropped.
    pub fn event_of(&self, text: &str) -> Event {
        let mut event = from_repo2docker_line(text);
        if self.total > self.text.len() {
            let before = self.text.len().saturating_sub(text.len());
            event.note_cut(self.total - before);
        }
        event
    }
}

/// Lines of a reader, each cut to `limit` bytes. Cancel-safe: a line in progress stays in
/// the reader when a `select!` drops the future of [`BoundedLines::next_line`].
#[derive(Debug)]
pub(crate) struct BoundedLines<R> {
    reader: R,
    limit: usize,
    kept: Vec<u8>,
    total: usize,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    /// Lines of `reader`, each holding at most `limit` bytes.
    pub fn new(reader: R, limit: usize) -> Self {
        Self {
            reader,
            limit,
            kept: Vec::new(),
            total: 0,
        }
    }

    /// The next line; `None` at the end of the stream.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                if self.total == 0 && self.kept.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take()));
            }
            let (chunk, used, ends) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (&available[..at], at + 1, true),
                None => (available, available.len(), false),
            };
            let room = self.limit.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.total += chunk.len();
            self.reader.consume(used);
            if ends {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        let mut total = std::mem::take(&mut self.total);
        let mut kept = std::mem::take(&mut self.kept);
        // `\r\n` endings: the `\r` is part of the line ending when the line was kept whole.
        if total == kept.len() && kept.last() == Some(&b'\r') {
            kept.pop();
            total -= 1;
        }
        Line {
            text: String::from_utf8_lossy(&kept).into_owned(),
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use bindery_core::events::Phase;

    use super::*;

    async fn read_all(input: &[u8], limit: usize) -> Vec<Line> {
        // A small buffer, so that lines arrive in many pieces.
        let reader = tokio::io::BufReader::with_capacity(7, input);
        let mut lines = BoundedLines::new(reader, limit);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.expect("read") {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn long_lines_keep_only_their_first_bytes_and_say_how_long_they_were() {
        let mut input = b"first\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend_from_slice(b"\nbad \xff byte\nlast without newline");
        let lines = read_all(&input, 16).await;
        let shown: Vec<(&str, usize)> = lines.iter().map(|l| (l.text.as_str(), l.total)).collect();
        assert_eq!(
            shown,
            [
                ("first", 5),
                ("xxxxxxxxxxxxxxxx", 100_000),
                ("bad \u{fffd} byte", 10),
                ("last without new", 20),
            ]
        );
        let event = lines[1].clone().into_event();
        assert_eq!(event.phase, Phase::Unknown);
        assert_eq!(event.message, "xxxxxxxxxxxxxxxx [line cut: 100000 bytes]\n");
        assert_eq!(lines[0].clone().into_event().message, "first\n");
    }

    #[test]
    fn the_end_of_a_cut_line_is_marked_with_its_own_length() {
        // A build pod's log line: its timestamp, then what the build printed.
        let line = Line {
            text: "2026-01-01T00:00:00Z xxxx".into(),
            total: 1000,
        };
        let event = line.event_of(&line.text[21..]);
        assert_eq!(event.message, "xxxx [line cut: 979 bytes]\n");
        let whole = Line {
            text: "2026-01-01T00:00:00Z done".into(),
            total: 25,
        };
        assert_eq!(whole.event_of(&whole.text[21..]).message, "done\n");
    }

    #[tokio::test]
    async fn empty_lines_and_an_empty_stream() {
        assert!(read_all(b"", 16).await.is_empty());
        let lines = read_all(b"\n\n", 16).await;
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.text.is_empty() && l.total == 0));
    }
}
