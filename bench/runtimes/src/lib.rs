//! Shared by the forwarders: the command line and settings, the MQTT walk of a read, the
//! readiness-first copy (tokio, monoio), and the arrivals that drive tokio's spin.

use flytrap_proto::{Framer, Packet, Version};

/// `fwd-<runtime> LISTEN_PORT UPSTREAM_PORT` (loopback only).
pub fn ports() -> (u16, u16) {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a port number"))
        .collect();
    match args[..] {
        [listen, upstream] => (listen, upstream),
        _ => panic!("usage: fwd-<runtime> LISTEN_PORT UPSTREAM_PORT"),
    }
}

/// The TLS server configuration from `FWD_CERT` and `FWD_KEY` (PEM files), if both are set and
/// not empty: the forwarder then terminates the client's TLS.
pub fn tls() -> Option<std::sync::Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let set = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let cert = set("FWD_CERT")?;
    let key = set("FWD_KEY")?;
    let certs = CertificateDer::pem_file_iter(&cert)
        .expect("FWD_CERT")
        .collect::<Result<Vec<_>, _>>()
        .expect("FWD_CERT");
    let key = PrivateKeyDer::from_pem_file(&key).expect("FWD_KEY");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("certificate and key");
    Some(std::sync::Arc::new(config))
}

/// Whether to frame and decode what is forwarded (`FWD_MQTT=1`).
pub fn mqtt() -> bool {
    std::env::var("FWD_MQTT").is_ok_and(|v| v == "1")
}

/// What a forwarder does with the bytes it has: forward them all (`mqtt` false), or frame
/// and decode every whole MQTT 5 packet at the front and forward those, keeping a partial one
/// for the next read. Returns how many bytes at the front to forward, or `None` for a packet
/// that does not parse (the connection is then dropped).
pub fn walk(mqtt: bool, buf: &[u8]) -> Option<usize> {
    if !mqtt {
        return Some(buf.len());
    }
    let framer = Framer::new(1 << 20);
    let mut at = 0;
    while let Some(header) = framer.peek_header(&buf[at..]).ok()? {
        let len = header.packet_len();
        if buf.len() - at < len {
            break;
        }
        std::hint::black_box(Packet::decode(&buf[at..at + len], Version::V5).ok()?);
        at += len;
    }
    Some(at)
}

/// A socket that is read and written with non-blocking system calls and waited on for
/// readiness: what a forwarder needs to hold no buffer while its connection is idle.
pub trait ReadyIo {
    /// A non-blocking read (`WouldBlock` when there is nothing).
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// A non-blocking write.
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize>;
    /// Waits until the socket may be readable.
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>>;
    /// Waits until the socket may be writable.
    fn writable(&self) -> impl std::future::Future<Output = std::io::Result<()>>;
    /// Ends the write side.
    fn shutdown_write(&self);
}

thread_local! {
    /// The thread's read space: a connection borrows it for one read and the writes that
    /// follow at once, so an idle connection holds no buffer.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 65536]);
}

enum Step {
    Go,
    Wait,
    End,
}

/// Copies `from` to `to` (walking MQTT frames when `mqtt`), readiness first: a read into the
/// thread's scratch space, the whole frames written straight from it. Only a partial frame
/// or bytes the socket did not take are kept, in buffers of their own, until they are done.
pub async fn copy_ready<F: ReadyIo, T: ReadyIo>(from: &F, to: &T, mqtt: bool) {
    let mut tail: Vec<u8> = Vec::new();
    let mut unsent: Vec<u8> = Vec::new();
    loop {
        while !unsent.is_empty() {
            match to.try_write(&unsent) {
                Ok(n) => drop(unsent.drain(..n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if to.writable().await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        // Written out: give its allocation back, as an idle connection holds none.
        unsent = Vec::new();
        let step = SCRATCH.with_borrow_mut(|s| {
            let t = tail.len();
            s[..t].copy_from_slice(&tail);
            let n = match from.try_read(&mut s[t..]) {
                Ok(0) => return Step::End,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Step::Wait,
                Err(_) => return Step::End,
            };
            arrived();
            let have = t + n;
            let Some(whole) = walk(mqtt, &s[..have]) else {
                return Step::End;
            };
            let mut sent = 0;
            while sent < whole {
                match to.try_write(&s[sent..whole]) {
                    Ok(k) => sent += k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return Step::End,
                }
            }
            unsent.extend_from_slice(&s[sent..whole]);
            tail = s[whole..have].to_vec();
            Step::Go
        });
        match step {
            Step::Go => {}
            Step::Wait => {
                if from.readable().await.is_err() {
                    break;
                }
            }
            Step::End => break,
        }
    }
    to.shutdown_write();
}

thread_local! {
    /// Reads that brought bytes, on this thread ([`arrived`]).
    static ARRIVALS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// A task parked until the next arrival ([`next_arrival`]).
    static PARKED: std::cell::RefCell<Option<std::task::Waker>> =
        const { std::cell::RefCell::new(None) };
}

/// Counts a read that brought bytes, and wakes a task parked in [`next_arrival`].
pub fn arrived() {
    ARRIVALS.set(ARRIVALS.get().wrapping_add(1));
    if let Some(w) = PARKED.take() {
        w.wake();
    }
}

/// Reads that brought bytes so far on this thread.
pub fn arrivals() -> u64 {
    ARRIVALS.get()
}

/// Waits until a read after `seen` ([`arrivals`]) brings bytes.
pub fn next_arrival(seen: u64) -> impl std::future::Future<Output = ()> {
    std::future::poll_fn(move |cx| {
        if ARRIVALS.get() != seen {
            return std::task::Poll::Ready(());
        }
        PARKED.set(Some(cx.waker().clone()));
        std::task::Poll::Pending
    })
}
