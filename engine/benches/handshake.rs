//! The server's CPU per TLS handshake, as FlyTrap's listener configures rustls
//! (`flytrap_engine::tls::load`): a full TLS 1.3 handshake with an ECDSA P-256 certificate,
//! with an RSA-2048 one, and a resumed one (a session ticket from an earlier handshake).
//! Client and server run in memory; only the server's calls are timed, so 1 / time is the
//! handshakes per second one core can terminate.
//!
//! `cargo bench -p flytrap-engine --bench handshake` (needs `openssl` to make the keys)

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flytrap_engine::config::TlsFiles;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, RootCertStore, ServerConfig, ServerConnection,
};

/// A self-signed certificate for localhost with the key `openssl` makes from `newkey`.
fn make_cert(dir: &Path, name: &str, newkey: &[&str]) -> TlsFiles {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(newkey)
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(status.status.success(), "openssl: {status:?}");
    TlsFiles { cert, key }
}

/// A client trusting `files`' certificate; `resume`: keeps tickets and offers them.
fn client_config(files: &TlsFiles, resume: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(&files.cert).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Arc::new(config)
}

/// Moves every pending record from one side to the other; returns the server's time spent.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Duration {
    let mut server_time = Duration::ZERO;
    let mut buf = Vec::new();
    loop {
        let mut moved = false;
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            let t = Instant::now();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
            }
            server.process_new_packets().unwrap();
            server_time += t.elapsed();
        }
        buf.clear();
        let t = Instant::now();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        server_time += t.elapsed();
        if !buf.is_empty() {
            moved = true;
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
            }
            client.process_new_packets().unwrap();
        }
        if !moved {
            return server_time;
        }
    }
}

/// One handshake to completion (tickets included), of the `kind` expected (if given); the
/// server's time.
fn handshake(
    server_config: &Arc<ServerConfig>,
    client_config: &Arc<ClientConfig>,
    kind: Option<HandshakeKind>,
) -> Duration {
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(client_config.clone(), name).unwrap();
    let t = Instant::now();
    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    let mut time = t.elapsed();
    time += pump(&mut client, &mut server);
    assert!(!client.is_handshaking() && !server.is_handshaking());
    if let Some(kind) = kind {
        assert_eq!(server.handshake_kind(), Some(kind));
    }
    black_box(&server);
    time
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("flytrap-handshake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p256 = make_cert(
        &dir,
        "p256",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    );
    let rsa = make_cert(&dir, "rsa2048", &["-newkey", "rsa:2048"]);
    let mut g = c.benchmark_group("tls13-server-handshake");
    for (label, files) in [("ecdsa-p256 full", &p256), ("rsa-2048 full", &rsa)] {
        let server = flytrap_engine::tls::load(files).unwrap();
        let client = client_config(files, false);
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| handshake(&server, &client, Some(HandshakeKind::Full)))
                    .sum()
            })
        });
    }
    let server = flytrap_engine::tls::load(&p256).unwrap();
    let client = client_config(&p256, true);
    g.bench_function("ecdsa-p256 resumed (ticket)", |b| {
        b.iter_custom(|iters| {
            // The same client config keeps the ticket each handshake leaves behind.
            // Leaves a ticket (the first time, from a full handshake).
            handshake(&server, &client, None);
            (0..iters)
                .map(|_| handshake(&server, &client, Some(HandshakeKind::Resumed)))
                .sum()
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
