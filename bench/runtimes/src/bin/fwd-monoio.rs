//! monoio on io_uring, one thread. Reads and writes are io_uring operations with owned
//! buffers (monoio's way), or with `FWD_READY=1` plain non-blocking system calls that wait for
//! readiness (an io_uring poll) only when the socket has nothing: glommio's way, and the one
//! that lets an idle connection hold no buffer.
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};

async fn copy<R: AsyncReadRent, W: monoio::io::AsyncWriteRent>(mut from: R, mut to: W, mqtt: bool) {
    let mut buf = vec![0u8; 65536];
    let mut have = 0;
    loop {
        let (r, b) = from.read(buf.slice_mut(have..)).await;
        buf = b.into_inner();
        match r {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                have += n;
                let Some(whole) = flytrap_bench_runtimes::walk(mqtt, &buf[..have]) else {
                    break;
                };
                let (w, b) = to.write_all(buf.slice(..whole)).await;
                buf = b.into_inner();
                if w.is_err() {
                    break;
                }
                buf.copy_within(whole..have, 0);
                have -= whole;
            }
        }
    }
    let _ = to.shutdown().await;
}

use std::io::{Read, Write};

use flytrap_bench_runtimes::copy_ready;
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut};

/// Readiness mode's socket: a monoio stream for the waits, a std stream on a duplicate of its
/// descriptor for the system calls.
struct Ready {
    wait: TcpStream,
    io: std::net::TcpStream,
}

impl flytrap_bench_runtimes::ReadyIo for Ready {
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&self.io).read(buf)
    }
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        (&self.io).write(buf)
    }
    async fn readable(&self) -> std::io::Result<()> {
        self.wait.readable(false).await
    }
    async fn writable(&self) -> std::io::Result<()> {
        self.wait.writable(false).await
    }
    fn shutdown_write(&self) {
        let _ = self.io.shutdown(std::net::Shutdown::Write);
    }
}

/// Readiness mode's connection: std streams for the system calls, monoio streams on
/// duplicates of the same sockets for the waits.
async fn relay_ready(c: std::net::TcpStream, upstream: u16, mqtt: bool) -> std::io::Result<()> {
    // A blocking connect on the thread: loopback, once per connection, and connects are not
    // what this benchmark times (the std stream is what the system calls need).
    let u = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
    for s in [&c, &u] {
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
    }
    let c = Rc::new(Ready {
        wait: TcpStream::from_std(c.try_clone()?)?,
        io: c,
    });
    let u = Rc::new(Ready {
        wait: TcpStream::from_std(u.try_clone()?)?,
        io: u,
    });
    let (c2, u2) = (c.clone(), u.clone());
    monoio::spawn(async move { copy_ready(&*c2, &*u2, mqtt).await });
    copy_ready(&*u, &*c, mqtt).await;
    Ok(())
}

/// Readiness mode's accept loop. monoio has no readiness wait on a listener, and the std
/// listener's descriptor cannot be shared with monoio without unsafe code, so a non-blocking
/// accept is retried every 10 ms (accepts are not what this benchmark times; the retries cost
/// 100 wake-ups a second, under 0.1 µs per round trip).
async fn serve_ready(listen: u16, upstream: u16, mqtt: bool) {
    let l = std::net::TcpListener::bind(("127.0.0.1", listen)).expect("bind");
    l.set_nonblocking(true).expect("non-blocking");
    loop {
        match l.accept() {
            Ok((c, _)) => {
                monoio::spawn(async move {
                    let _ = relay_ready(c, upstream, mqtt).await;
                });
            }
            Err(_) => monoio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

fn main() {
    let (listen, upstream) = flytrap_bench_runtimes::ports();
    let mqtt = flytrap_bench_runtimes::mqtt();
    let ready = std::env::var("FWD_READY").is_ok_and(|v| v == "1");
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    if ready {
        rt.block_on(serve_ready(listen, upstream, mqtt));
        return;
    }
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", listen)).expect("bind");
        loop {
            let Ok((c, _)) = l.accept().await else {
                continue;
            };
            monoio::spawn(async move {
                let Ok(u) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = c.set_nodelay(true);
                let _ = u.set_nodelay(true);
                let (cr, cw) = c.into_split();
                let (ur, uw) = u.into_split();
                monoio::spawn(copy(cr, uw, mqtt));
                copy(ur, cw, mqtt).await;
            });
        }
    });
}
