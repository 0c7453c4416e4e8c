//! The worker's outbound HTTP: how its JupyterHub and registry clients are made, and how
//! they read an answer without holding more than they expect.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// The longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A reqwest client as the worker's clients need it: rustls with the webpki roots, HTTP/1.1,
/// a connect time limit. Redirects are not followed and no proxy is read from the
/// environment: the hub API and the registry are called at the URL the operator configured,
/// and a redirect would carry the credentials elsewhere.
pub(crate) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The body is longer than the caller reads.
    #[error("the answer is longer than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection broke while the body was read.
    #[error("failed to read the answer")]
    Read(#[source] reqwest::Error),
}

/// Reads `response`'s whole body, refusing one longer than `limit` bytes as soon as it is.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one HTTP/1.1 answer with a body of `len` bytes and returns its URL.
    async fn serve_body(len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&vec![b'x'; len]).await;
        });
        url
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole_and_a_longer_one_refused() {
        let client = client().expect("client");
        let url = serve_body(100).await;
        let response = client.get(&url).send().await.expect("answer");
        assert_eq!(read_limited(response, 100).await.expect("body").len(), 100);
        let url = serve_body(101).await;
        let response = client.get(&url).send().await.expect("answer");
        assert!(matches!(
            read_limited(response, 100).await,
            Err(BodyError::TooLarge { limit: 100 })
        ));
    }
}
