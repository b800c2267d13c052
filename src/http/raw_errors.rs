//! FastAPI-shaped bodies for the errors the HTTP layer answers by itself.
//!
//! hyper answers a request it cannot parse (a raw 0xFF in the path, a NUL in a header, headers
//! over its limit) before any of our code runs, with an empty body: `400`, `414` or `431`.
//! Clients of this API expect `{"detail": …}` on every error, so the listener wraps each
//! connection and, when hyper writes one of those automatic answers, writes the same status
//! with a JSON body instead. Our own error responses always have a body (see
//! [`crate::http::middleware::observe`]), so an error head with `content-length: 0` can only be
//! hyper's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The peer address of a connection (what [`axum::extract::ConnectInfo`] carries).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A connection whose writes are passed through, except hyper's bodiless error answers.
pub struct ShapedIo<T> {
    inner: T,
    /// A rewritten answer still to be written, and how much of it has been.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> ShapedIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The statuses hyper answers by itself, and their detail.
fn detail_of(status: &[u8]) -> Option<&'static str> {
    match status {
        b"400" => Some("Bad Request"),
        b"413" => Some("Request body too large"),
        b"414" => Some("URI Too Long"),
        b"431" => Some("Request Header Fields Too Large"),
        _ => None,
    }
}

/// If `buf` is a whole response head of an automatic error with no body, the same response with
/// a `{"detail": …}` body.
fn shaped(buf: &[u8]) -> Option<Vec<u8>> {
    let status = buf.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let detail = detail_of(status)?;
    let head = std::str::from_utf8(buf).ok()?;
    let head = head.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.collect();
    if !headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let body = serde_json::json!({ "detail": detail }).to_string();
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for header in headers {
        let lower = header.to_ascii_lowercase();
        if !lower.starts_with("content-length:") && !lower.starts_with("content-type:") {
            out.push_str(header);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

impl<T: AsyncWrite + Unpin> ShapedIo<T> {
    /// Writes what remains of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            let rest = bytes.get(*written..).unwrap_or_default();
            if rest.is_empty() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ShapedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ShapedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(rewritten) = shaped(buf) {
            self.pending = Some((rewritten, 0));
            // The caller's bytes are accounted for; the rewrite is finished by later polls.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// hyper then writes each response head in one call, which is what [`shaped`] inspects.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_automatic_error_gets_a_json_body() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 09:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(shaped(head).expect("shaped")).expect("utf8");
        assert!(
            out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
        assert!(out.contains("content-type: application/json\r\n"));
        assert!(out.contains("date: Tue"));
        assert!(
            out.ends_with("\r\n\r\n{\"detail\":\"Request Header Fields Too Large\"}"),
            "{out}"
        );
        let declared: usize = out
            .split("content-length: ")
            .nth(1)
            .and_then(|r| r.split("\r\n").next())
            .and_then(|n| n.parse().ok())
            .expect("length");
        assert_eq!(
            declared,
            "{\"detail\":\"Request Header Fields Too Large\"}".len()
        );
    }

    #[test]
    fn other_writes_pass_through() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(shaped(ok).is_none());
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n";
        assert!(shaped(ours).is_none(), "a response with a body is ours");
        assert!(shaped(b"{\"detail\":\"x\"}").is_none());
    }
}
