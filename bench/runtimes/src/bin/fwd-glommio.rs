//! glommio (FlyTrap's vendored, patched copy), one executor that sleeps when idle, as a
//! FlyTrap shard that is not confined. The two tasks of a connection share each stream
//! through an `Rc<RefCell<_>>`, borrowed for one poll at a time, as FlyTrap's pumps do
//! (engine/src/io.rs). With `FWD_CERT`/`FWD_KEY`, the client's side is TLS (futures-rustls,
//! as FlyTrap).
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

/// One of the two tasks' handles on a stream.
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
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Half<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

async fn copy<F, T>(mut from: Half<F>, mut to: Half<T>, mqtt: bool)
where
    F: AsyncRead + Unpin,
    T: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 65536];
    let mut have = 0;
    loop {
        match from.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
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
    let _ = to.close().await;
}

fn main() {
    let (listen, upstream) = flytrap_bench_runtimes::ports();
    let mqtt = flytrap_bench_runtimes::mqtt();
    let tls = flytrap_bench_runtimes::tls();
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .expect("executor")
        .run(async move {
            let l = TcpListener::bind(("127.0.0.1", listen)).expect("bind");
            loop {
                let Ok(c) = l.accept().await else { continue };
                let tls = tls.clone();
                glommio::spawn_local(async move {
                    let Ok(u) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = c.set_nodelay(true);
                    let _ = u.set_nodelay(true);
                    let u = Half(Rc::new(RefCell::new(u)));
                    if let Some(tls) = tls {
                        let Ok(c) = futures_rustls::TlsAcceptor::from(tls).accept(c).await else {
                            return;
                        };
                        let c = Half(Rc::new(RefCell::new(c)));
                        glommio::spawn_local(copy(c.clone(), u.clone(), mqtt)).detach();
                        copy(u, c, mqtt).await;
                        return;
                    }
                    let c = Half(Rc::new(RefCell::new(c)));
                    glommio::spawn_local(copy(c.clone(), u.clone(), mqtt)).detach();
                    copy(u, c, mqtt).await;
                })
                .detach();
            }
        });
}
