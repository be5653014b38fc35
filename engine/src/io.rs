//! Stream plumbing: the client and broker stream types, and a split into a read half and a
//! writer that several pumps can share.
//!
//! Both halves hold the same stream in an `Rc<RefCell<_>>`. A borrow lasts one `poll_*` call
//! and never spans an `.await`, so the read and write halves can be polled from the two pumps
//! of one connection (one task, one thread) without conflict. Writes of whole packets are
//! serialised by an async semaphore so that packets from both pumps never interleave.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

/// A connection, plain TCP or TLS (`T` is rustls' server or client stream).
#[derive(Debug)]
pub enum Stream<T> {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<T>),
}

/// A client connection.
pub(crate) type ClientStream = Stream<futures_rustls::server::TlsStream<TcpStream>>;
/// A connection this side opened (to a broker; the load generator's to a server).
pub type BrokerStream = Stream<futures_rustls::client::TlsStream<TcpStream>>;

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_close(cx))
    }
}

/// Splits a stream into a reader and a shareable writer.
pub fn split<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> (Reader<S>, Writer<S>) {
    let io = Rc::new(RefCell::new(stream));
    (
        Reader { io: io.clone() },
        Writer {
            io,
            lock: Rc::new(Semaphore::new(1)),
        },
    )
}

/// The read half.
#[derive(Debug)]
pub struct Reader<S> {
    io: Rc<RefCell<S>>,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    /// Reads into `buf`, returning 0 at end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// One poll of a read into `buf`. glommio waits for readiness and then reads without
    /// blocking, so `buf` is only written during this call, never while the read is pending:
    /// a caller may pass a different buffer to each poll.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io.borrow_mut()).poll_read(cx, buf)
    }
}

/// The write half; clones share the stream and its lock.
#[derive(Debug)]
pub struct Writer<S> {
    io: Rc<RefCell<S>>,
    lock: Rc<Semaphore>,
}

impl<S> Clone for Writer<S> {
    fn clone(&self) -> Self {
        Writer {
            io: self.io.clone(),
            lock: self.lock.clone(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Writer<S> {
    /// Writes `bytes` whole and flushes, without interleaving with other writers.
    pub async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let _permit = self
            .lock
            .acquire_permit(1)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        let mut written = 0;
        while written < bytes.len() {
            let n = poll_fn(|cx| {
                Pin::new(&mut *self.io.borrow_mut()).poll_write(cx, &bytes[written..])
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            written += n;
        }
        poll_fn(|cx| Pin::new(&mut *self.io.borrow_mut()).poll_flush(cx)).await
    }

    /// Closes the write side (TLS close_notify, then FIN).
    pub async fn close(&self) {
        let _ = poll_fn(|cx| Pin::new(&mut *self.io.borrow_mut()).poll_close(cx)).await;
    }
}
