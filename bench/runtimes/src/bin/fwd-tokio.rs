//! tokio's current-thread runtime (epoll). With `FWD_READY=1`, readiness first: `readable`,
//! then `try_read` into the thread's scratch space, so an idle connection holds no buffer.
//! With `FWD_CERT`/`FWD_KEY`, the client's side is TLS (tokio-rustls). With `FWD_SPIN_US`,
//! the thread spins as a confined FlyTrap shard does ([`spinner`]).
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The copy of one direction: the split halves of a plain stream, or [`Half`]s of a TLS one.
async fn copy<F: AsyncRead + Unpin, T: AsyncWrite + Unpin>(mut from: F, mut to: T, mqtt: bool) {
    let mut buf = vec![0u8; 65536];
    let mut have = 0;
    loop {
        match from.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                flytrap_bench_runtimes::arrived();
                have += n;
                let Some(whole) = flytrap_bench_runtimes::walk(mqtt, &buf[..have]) else {
                    break;
                };
                if to.write_all(&buf[..whole]).await.is_err() {
                    break;
                }
                buf.copy_within(whole..have, 0);
                have -= whole;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// One of the two tasks' handles on a stream (TLS: one rustls session, so not `into_split`).
struct Half<S>(Rc<RefCell<S>>);

impl<S> Clone for Half<S> {
    fn clone(&self) -> Self {
        Half(self.0.clone())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Half<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Half<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_shutdown(cx)
    }
}

/// With `FWD_SPIN_US`, FlyTrap's adaptive spin on tokio: after a read brought bytes, a task
/// keeps the thread polling for up to that long (`yield_now`: tokio polls its I/O driver
/// without blocking before it runs a task that yielded), calling `sched_yield` on every turn
/// and parking as soon as one lets another thread run for over 5 µs (the CPU is contended),
/// as glommio patch 1 does. After an idle period longer than that, the thread sleeps.
async fn spinner(max: std::time::Duration) {
    use flytrap_bench_runtimes::{arrivals, next_arrival};
    loop {
        let seen = arrivals();
        let idle = std::time::Instant::now();
        while arrivals() == seen && idle.elapsed() < max {
            let turn = std::time::Instant::now();
            std::thread::yield_now();
            if turn.elapsed() > std::time::Duration::from_micros(5) {
                break;
            }
            tokio::task::yield_now().await;
        }
        if arrivals() == seen {
            next_arrival(seen).await;
        }
    }
}

struct Ready(TcpStream);

impl flytrap_bench_runtimes::ReadyIo for Ready {
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.try_read(buf)
    }
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buf)
    }
    async fn readable(&self) -> std::io::Result<()> {
        self.0.readable().await
    }
    async fn writable(&self) -> std::io::Result<()> {
        self.0.writable().await
    }
    fn shutdown_write(&self) {
        let _ = socket2::SockRef::from(&self.0).shutdown(std::net::Shutdown::Write);
    }
}

fn main() {
    let (listen, upstream) = flytrap_bench_runtimes::ports();
    let mqtt = flytrap_bench_runtimes::mqtt();
    let ready = std::env::var("FWD_READY").is_ok_and(|v| v == "1");
    let tls = flytrap_bench_runtimes::tls().map(tokio_rustls::TlsAcceptor::from);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let spin = std::env::var("FWD_SPIN_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    local.block_on(&rt, async move {
        if let Some(us) = spin.filter(|&us| us > 0) {
            tokio::task::spawn_local(spinner(std::time::Duration::from_micros(us)));
        }
        let l = TcpListener::bind(("127.0.0.1", listen))
            .await
            .expect("bind");
        loop {
            let Ok((c, _)) = l.accept().await else {
                continue;
            };
            let tls = tls.clone();
            tokio::task::spawn_local(async move {
                let Ok(u) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = c.set_nodelay(true);
                let _ = u.set_nodelay(true);
                if let Some(tls) = tls {
                    let Ok(c) = tls.accept(c).await else {
                        return;
                    };
                    let c = Half(Rc::new(RefCell::new(c)));
                    let u = Half(Rc::new(RefCell::new(u)));
                    tokio::task::spawn_local(copy(c.clone(), u.clone(), mqtt));
                    copy(u, c, mqtt).await;
                    return;
                }
                if ready {
                    let (c, u) = (Rc::new(Ready(c)), Rc::new(Ready(u)));
                    let (c2, u2) = (c.clone(), u.clone());
                    tokio::task::spawn_local(async move {
                        flytrap_bench_runtimes::copy_ready(&*c2, &*u2, mqtt).await
                    });
                    flytrap_bench_runtimes::copy_ready(&*u, &*c, mqtt).await;
                    return;
                }
                let (cr, cw) = c.into_split();
                let (ur, uw) = u.into_split();
                tokio::task::spawn_local(copy(cr, uw, mqtt));
                copy(ur, cw, mqtt).await;
            });
        }
    });
}
