//! Admission control for TLS handshakes (`EngineConfig::max_handshakes`): a shard takes a TLS
//! connection from the accept queue only when a handshake slot is free; the others wait in
//! the kernel's backlog, none fails, and the bound shows in the metrics.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flytrap_engine::{AllowAll, Metrics};
use flytrap_tests::{Mosquitto, Proxy};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// MQTT 3.1.1 CONNECT, clean session, empty client id (the broker assigns one).
const CONNECT: [u8; 14] = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 0];

fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Completes the TLS handshake on `tcp`, sends CONNECT and returns the CONNACK's bytes.
fn handshake_and_connect(tcp: TcpStream, config: Arc<ClientConfig>) -> Result<[u8; 4], String> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(&CONNECT)
        .map_err(|e| format!("connect: {e}"))?;
    let mut connack = [0u8; 4];
    tls.read_exact(&mut connack)
        .map_err(|e| format!("connack: {e}"))?;
    Ok(connack)
}

fn metric(metrics: &Metrics, name: &str) -> u64 {
    let text = metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn handshakes_beyond_the_bound_wait_in_the_accept_queue_and_all_succeed() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| {
            c.shards = 1;
            c.max_handshakes = 2;
        },
        |_| AllowAll,
    );
    let tls: SocketAddr = proxy.tls.unwrap();
    let config = client_config(proxy.ca.as_ref().unwrap());
    let metrics = proxy.engine().metrics();

    // Two clients take both handshake slots and stay silent.
    let holders: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(tls).unwrap()).collect();
    wait_for("both slots taken", || {
        metric(&metrics, "flytrap_tls_handshakes_in_flight") == 2
    });
    // Twenty more connect (the kernel completes their TCP handshake) and start TLS.
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let config = config.clone();
            let tcp = TcpStream::connect(tls).unwrap();
            std::thread::spawn(move || handshake_and_connect(tcp, config))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // They wait in the accept queue: not accepted, no handshake started.
    assert_eq!(metric(&metrics, "flytrap_connections_accepted_total"), 2);
    assert_eq!(metric(&metrics, "flytrap_tls_handshakes_in_flight"), 2);
    assert!(waiting.iter().all(|t| !t.is_finished()));

    // The holders finish their handshakes; everyone gets through, two at a time.
    let holders: Vec<_> = holders
        .into_iter()
        .map(|tcp| {
            let config = config.clone();
            std::thread::spawn(move || handshake_and_connect(tcp, config))
        })
        .collect();
    for t in holders.into_iter().chain(waiting) {
        assert_eq!(t.join().unwrap(), Ok([0x20, 2, 0, 0]));
    }
    assert_eq!(metric(&metrics, "flytrap_tls_handshakes_total"), 22);
    assert_eq!(metric(&metrics, "flytrap_tls_handshake_failures_total"), 0);
    assert_eq!(metric(&metrics, "flytrap_tls_handshakes_in_flight_max"), 2);
    assert_eq!(metric(&metrics, "flytrap_tls_handshakes_in_flight"), 0);
    // Every handshake timed from its start: the two holders' took their silence (over
    // 500 ms), beyond the last finite bucket (250 ms).
    assert_eq!(metric(&metrics, "flytrap_tls_handshake_seconds_count"), 22);
    let text = metrics.render();
    let within_250ms: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("flytrap_tls_handshake_seconds_bucket{le=\"0.25\"} ")?
                .parse()
                .ok()
        })
        .expect("the 250 ms bucket");
    assert!(
        within_250ms <= 20,
        "{within_250ms} handshakes within 250 ms"
    );
}
