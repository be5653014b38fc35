//! Issue 13, item 4: `flytrap serve --config` with chain authorisation and a broker that
//! cannot be reached answers a correctly signed CONNECT with CONNACK 0x88 (3.1.1: 3), as
//! SPEC §2 says — whether the broker port refuses the connection, or accepts it and closes
//! (a port forwarder such as docker-proxy or HAProxy in front of a stopped broker: this case
//! used to close the client's connection with no CONNACK). Clients: `mosquitto_pub` with the
//! arguments `flytrap sign` prints (5.0 and 3.1.1), and a raw signed CONNECT.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use flytrap_chain::Client;
use flytrap_chain::anvil::{Anvil, DEV_KEYS};
use flytrap_proto::ReasonCode;
use flytrap_tests::stack::connect_signed;
use flytrap_tests::{free_port, mosquitto_cli, wait_listening};

/// `flytrap serve`, stopped when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn flytrap(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_flytrap"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flytrap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A port that accepts connections and closes them at once, for the life of the test.
fn accept_and_close() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    addr
}

/// Starts `flytrap serve --config` with chain authorisation in front of `broker`.
fn serve(
    dir: &Path,
    name: &str,
    anvil: &Anvil,
    contract: &str,
    broker: SocketAddr,
) -> (Serve, SocketAddr) {
    let port = free_port();
    let key = dir.join("operator.key");
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[listen]\ntcp = \"127.0.0.1:{port}\"\n[broker]\naddress = \"{broker}\"\n[chain]\nrpc = \"{}\"\ncontract = \"{contract}\"\nkey = \"{}\"\n[spool]\ndir = \"{}\"\n",
            anvil.url(),
            key.display(),
            dir.join(format!("spool-{name}")).display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_flytrap"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(proxy, Duration::from_secs(30));
    (Serve(child), proxy)
}

/// `mosquitto_pub -d` through the proxy with the credentials `flytrap sign` prints; returns
/// its output.
fn mosquitto_pub(dir: &Path, proxy: SocketAddr, client_id: &str, v311: bool) -> String {
    let signed = flytrap(
        dir,
        &["sign", "--key", "client.key", "--client-id", client_id],
    );
    let port = proxy.port().to_string();
    let mut args: Vec<String> = ["-d", "-h", "127.0.0.1", "-p", &port, "-t", "t", "-m", "x"]
        .map(String::from)
        .to_vec();
    if v311 {
        let value = |what: &str| {
            signed
                .lines()
                .find_map(|l| l.strip_prefix(&format!("# MQTT 3.1.1: {what} ")))
                .unwrap()
                .to_string()
        };
        args.extend(["-V", "mqttv311", "-i", client_id, "-u"].map(String::from));
        args.push(value("user name"));
        args.push("-P".into());
        args.push(value("password"));
    } else {
        // The last line: ready mosquitto_pub arguments (no quoting needed: hex and ids).
        let ready = signed.lines().last().unwrap();
        args.extend(ready.split_whitespace().map(String::from));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = mosquitto_cli("mosquitto_pub", &args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_unreachable_broker_gets_connack_0x88_with_chain_authorisation() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start().expect("anvil (cd contracts && npm ci)");
    std::fs::write(
        dir.path().join("operator.key"),
        format!("{}\n", DEV_KEYS[0]),
    )
    .unwrap();
    let contract = flytrap(
        dir.path(),
        &["deploy", "--rpc", &anvil.url(), "--key", "operator.key"],
    );
    let contract = contract.trim().to_string();
    flytrap(dir.path(), &["key", "new", "--out", "client.key"]);
    let client_key = flytrap_chain::keyfile::read_key(&dir.path().join("client.key")).unwrap();
    // Sanity: the contract is there (a wrong one would fail differently).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = Client::new(&anvil.url(), contract.parse().unwrap(), None).unwrap();
    rt.block_on(reader.ensure_contract()).unwrap();

    let refusing: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let closing = accept_and_close();
    for (name, broker) in [("refusing", refusing), ("closing", closing)] {
        let (_serve, proxy) = serve(dir.path(), name, &anvil, &contract, broker);
        let v5 = mosquitto_pub(dir.path(), proxy, &format!("{name}-5"), false);
        assert!(v5.contains("received CONNACK (136)"), "{name}, 5.0: {v5}");
        let v311 = mosquitto_pub(dir.path(), proxy, &format!("{name}-3"), true);
        assert!(
            v311.contains("received CONNACK (3)"),
            "{name}, 3.1.1: {v311}"
        );
        for i in 0..5 {
            let (_, reason) = connect_signed(proxy, &client_key, &format!("{name}-raw-{i}"));
            assert_eq!(reason, Some(ReasonCode::SERVER_UNAVAILABLE), "{name}");
        }
    }
}
