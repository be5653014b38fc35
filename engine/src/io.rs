//! Stream plumbing: the client and broker stream types, and a split into a read half and a
//! writer that several pumps can share.
//!
//! Both halves hold the same stream in one `Rc`. A borrow of the stream lasts one `poll_*` call
//! and never spans an `.await`, so the read and write halves can be polled from the two pumps
//! of one connection (one task, one thread) without conflict. Writes of whole packets take
//! turns so that packets from both pumps never interleave: a flag and a list of waiting
//! wakers next to the stream, not a semaphore of their own, because every idle client holds
//! two of these and the lock is almost never contended.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker, ready};

use std::future::poll_fn;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection, plain TCP or TLS (`T` is rustls' server or client stream).
#[derive(Debug)]
pub enum Stream<T> {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<T>),
}

/// A client connection.
pub(crate) type ClientStream = Stream<tokio_rustls::server::TlsStream<TcpStream>>;
/// A connection this side opened (to a broker; the load generator's to a server).
pub type BrokerStream = Stream<tokio_rustls::client::TlsStream<TcpStream>>;

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
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// Splits a stream into a reader and a shareable writer.
pub fn split<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> (Reader<S>, Writer<S>) {
    let shared = Rc::new(Shared {
        stream: RefCell::new(stream),
        writing: Cell::new(false),
        waiting: RefCell::new(Vec::new()),
    });
    (
        Reader {
            shared: shared.clone(),
        },
        Writer { shared },
    )
}

/// What both halves share: the stream and the writers' turn.
#[derive(Debug)]
struct Shared<S> {
    stream: RefCell<S>,
    /// A writer is between the first byte and the flush of a packet.
    writing: Cell<bool>,
    /// Writers waiting for their turn, each task once.
    waiting: RefCell<Vec<Waker>>,
}

impl<S> Shared<S> {
    /// Takes the writers' turn, or registers to be woken when it is released.
    fn poll_turn(&self, cx: &mut Context<'_>) -> Poll<Turn<'_, S>> {
        if !self.writing.replace(true) {
            return Poll::Ready(Turn { shared: self });
        }
        let mut waiting = self.waiting.borrow_mut();
        // The two pumps of a connection run in one task, so a re-poll usually brings a waker
        // that is already listed.
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The writers' turn, released on drop, also when a `send` is cancelled half way.
struct Turn<'a, S> {
    shared: &'a Shared<S>,
}

impl<S> Drop for Turn<'_, S> {
    fn drop(&mut self) {
        self.shared.writing.set(false);
        // Wake every waiter: whoever is polled first takes the turn and the rest register
        // again. Waiters are at most the few tasks that share this writer.
        let waiting = std::mem::take(&mut *self.shared.waiting.borrow_mut());
        for waker in waiting {
            waker.wake();
        }
    }
}

/// The read half.
#[derive(Debug)]
pub struct Reader<S> {
    shared: Rc<Shared<S>>,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    /// Reads into `buf`, returning 0 at end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// One poll of a read into `buf`. tokio waits for readiness and then reads without
    /// blocking, so `buf` is only written during this call, never while the read is pending:
    /// a caller may pass a different buffer to each poll. Bytes read count as an arrival for
    /// the shard's spin ([`crate::runtime::arrived`]).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        ready!(Pin::new(&mut *self.shared.stream.borrow_mut()).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if n > 0 {
            crate::runtime::arrived();
        }
        Poll::Ready(Ok(n))
    }
}

/// The write half; clones share the stream and the writers' turn.
#[derive(Debug)]
pub struct Writer<S> {
    shared: Rc<Shared<S>>,
}

impl<S> Clone for Writer<S> {
    fn clone(&self) -> Self {
        Writer {
            shared: self.shared.clone(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Writer<S> {
    /// Writes `bytes` whole and flushes, without interleaving with other writers.
    ///
    /// One `poll_fn` owns all the state, so the future is a few words: every pump holds one
    /// while it waits, and idle clients are counted in the tens of thousands.
    pub async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let shared = &*self.shared;
        let mut turn = None;
        let mut written = 0;
        poll_fn(move |cx| {
            if turn.is_none() {
                turn = Some(ready!(shared.poll_turn(cx)));
            }
            let mut stream = shared.stream.borrow_mut();
            while written < bytes.len() {
                let n = ready!(Pin::new(&mut *stream).poll_write(cx, &bytes[written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                written += n;
            }
            Pin::new(&mut *stream).poll_flush(cx)
        })
        .await
    }

    /// Closes the write side (TLS close_notify, then FIN).
    pub async fn close(&self) {
        let _ =
            poll_fn(|cx| Pin::new(&mut *self.shared.stream.borrow_mut()).poll_shutdown(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;

    /// A stream that accepts at most `chunk` bytes per write and is pending every other poll,
    /// so that writers overlap.
    #[derive(Default)]
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
        stall: bool,
        wakers: VecDeque<Waker>,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.stall = !self.stall;
            if self.stall {
                self.wakers.push_back(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Wakes the stream's stalled writers, as readiness would.
    fn unstall(writer: &Writer<Trickle>) {
        let wakers = std::mem::take(&mut writer.shared.stream.borrow_mut().wakers);
        wakers.into_iter().for_each(Waker::wake);
    }

    #[test]
    fn packets_from_several_writers_never_interleave() {
        let stream = Trickle {
            chunk: 3,
            ..Trickle::default()
        };
        let (_reader, writer) = split(stream);
        let packets: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 10 + i as usize]).collect();
        let mut sends: Vec<_> = packets
            .iter()
            .map(|p| {
                let w = writer.clone();
                Box::pin(async move { w.send(p).await })
            })
            .collect();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut done = vec![false; sends.len()];
        for _ in 0..1000 {
            for (i, send) in sends.iter_mut().enumerate() {
                if done[i] {
                    continue;
                }
                if let Poll::Ready(r) = send.as_mut().poll(&mut cx) {
                    r.unwrap();
                    done[i] = true;
                }
            }
            unstall(&writer);
            if done.iter().all(|d| *d) {
                break;
            }
        }
        assert!(done.iter().all(|d| *d), "every send completes");
        let out = writer.shared.stream.borrow().out.clone();
        let mut runs: Vec<Vec<u8>> = Vec::new();
        for b in out {
            match runs.last_mut() {
                Some(run) if run[0] == b => run.push(b),
                _ => runs.push(vec![b]),
            }
        }
        runs.sort();
        assert_eq!(runs, packets, "each packet arrives whole, in one run");
    }

    /// A writer on a stream that takes one byte per write.
    fn byte_at_a_time() -> Writer<Trickle> {
        split(Trickle {
            chunk: 1,
            ..Trickle::default()
        })
        .1
    }

    #[test]
    fn a_cancelled_send_releases_the_turn() {
        let writer = byte_at_a_time();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = Box::pin(writer.send(b"abc"));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(writer.shared.writing.get());
        drop(first);
        assert!(
            !writer.shared.writing.get(),
            "dropping the send releases the turn"
        );
        let mut second = Box::pin(writer.send(b"xy"));
        for _ in 0..10 {
            if second.as_mut().poll(&mut cx).is_ready() {
                break;
            }
        }
        assert!(!writer.shared.writing.get());
        assert!(writer.shared.stream.borrow().out.ends_with(b"xy"));
    }

    #[test]
    fn a_waiting_task_is_listed_once() {
        let writer = byte_at_a_time();
        let mut cx = Context::from_waker(Waker::noop());
        let mut holder = Box::pin(writer.send(b"abc"));
        assert!(holder.as_mut().poll(&mut cx).is_pending());
        let mut waiter = Box::pin(writer.send(b"d"));
        for _ in 0..5 {
            assert!(waiter.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(writer.shared.waiting.borrow().len(), 1);
    }
}
