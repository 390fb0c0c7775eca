//! The client's byte stream, read through a watch on PostgreSQL's message framing: a message
//! that declares a length above the limit (or below the smallest valid one) ends the
//! connection before its body is read, so a client cannot make the front door buffer more than
//! one message of bounded size. The codec then decodes what the guard let through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The request codes of the untyped messages that another untyped message follows.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// Where the watch is in the framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the startup message: 4 bytes of length (which count themselves), then a code.
    Untyped,
    /// After it: a type byte, then 4 bytes of length.
    Typed,
}

pub struct Guarded<S> {
    inner: S,
    limit: usize,
    phase: Phase,
    /// The header being read (type byte and length, or length and code).
    header: [u8; 8],
    have: usize,
    /// Body bytes still to pass before the next header.
    body_left: usize,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, limit: usize) -> Guarded<S> {
        Guarded {
            inner,
            limit,
            phase: Phase::Untyped,
            header: [0; 8],
            have: 0,
            body_left: 0,
        }
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Follows `bytes`, just read; an error where a message breaks the limits.
    fn watch(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            // An untyped header is read with its code (8 bytes), to tell a request that another
            // untyped message follows; a typed one is 5 bytes.
            let need = match self.phase {
                Phase::Untyped => 8,
                Phase::Typed => 5,
            };
            let n = (need - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < need {
                continue;
            }
            self.have = 0;
            let (len, least) = match self.phase {
                Phase::Untyped => {
                    let len = u32::from_be_bytes(self.header[0..4].try_into().unwrap()) as usize;
                    let code = u32::from_be_bytes(self.header[4..8].try_into().unwrap());
                    if !matches!(code, SSL_REQUEST | GSSENC_REQUEST) {
                        self.phase = Phase::Typed;
                    }
                    // The code was part of the body.
                    (len, 8)
                }
                Phase::Typed => {
                    let len = u32::from_be_bytes(self.header[1..5].try_into().unwrap()) as usize;
                    (len, 4)
                }
            };
            if len < least || len > self.limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a message declares {len} bytes; the front door takes {least} to {} bytes",
                        self.limit
                    ),
                ));
            }
            self.body_left = len - least;
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = buf.filled()[before..].to_vec();
                Poll::Ready(this.watch(&fresh))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(t: u8, len: u32) -> Vec<u8> {
        let mut m = vec![t];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(b'x', len as usize - 4));
        m
    }

    #[test]
    fn the_watch_follows_messages_split_anywhere_and_refuses_oversized_ones() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&8u32.to_be_bytes());
        stream.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        stream.extend_from_slice(&12u32.to_be_bytes());
        stream.extend_from_slice(&196_608u32.to_be_bytes());
        stream.extend_from_slice(b"user");
        stream.extend(typed(b'Q', 100));
        stream.extend(typed(b'X', 4));
        for chunk in [1, 3, 7, 1000] {
            let mut g = Guarded::new((), 1000);
            for piece in stream.chunks(chunk) {
                g.watch(piece).unwrap();
            }
            assert_eq!((g.phase, g.have, g.body_left), (Phase::Typed, 0, 0));
        }
        let mut g = Guarded::new((), 1000);
        g.watch(&stream[..20]).unwrap();
        let mut big = vec![b'Q'];
        big.extend_from_slice(&2000u32.to_be_bytes());
        assert!(g.watch(&big).is_err());
        let mut g = Guarded::new((), 1000);
        g.watch(&stream[..20]).unwrap();
        assert!(
            g.watch(&[b'Q', 0, 0, 0, 3]).is_err(),
            "shorter than its length field"
        );
    }
}
