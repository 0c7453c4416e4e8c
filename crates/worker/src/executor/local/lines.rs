//! repo2docker's output read line by line, holding at most a fixed number of bytes of any
//! one line: a build that prints 400 MB without a newline must not make the worker hold
//! 400 MB (tokio's `lines()` keeps the whole line, and gives up on bytes that are not
//! UTF-8, which would stop the reading while the build blocks on a full pipe).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use bindery_core::events::{Event, from_repo2docker_line};

/// One line as read: its first bytes, and its whole length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    /// The bytes kept (at most the reader's limit), decoded lossily, without `\n` or `\r\n`.
    pub text: String,
    /// The length of the whole line in bytes, without its `\n`.
    pub total: usize,
}

impl Line {
    /// The build event of this line, marked when bytes were dropped.
    pub fn into_event(self) -> Event {
        let mut event = from_repo2docker_line(&self.text);
        if self.total > self.text.len() {
            event.note_cut(self.total);
        }
        event
    }
}

/// Lines of a reader, each cut to `limit` bytes. Cancel-safe: a line in progress stays in
/// the reader when a `select!` drops the future of [`BoundedLines::next_line`].
#[derive(Debug)]
pub(super) struct BoundedLines<R> {
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

    #[tokio::test]
    async fn empty_lines_and_an_empty_stream() {
        assert!(read_all(b"", 16).await.is_empty());
        let lines = read_all(b"\n\n", 16).await;
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.text.is_empty() && l.total == 0));
    }
}
