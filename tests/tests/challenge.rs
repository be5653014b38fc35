//! The challenge scheme (MQTT 5 enhanced authentication, `flytrap-siwe-v1`) against a real
//! anvil, a real Mosquitto and the proxy: a sign-in that works, each way it must fail, the
//! timestamped scheme beside it, `auth.require_challenge`, and the paho-mqtt example.

use std::process::Command;
use std::time::Duration;

use flytrap_chain::{Action, TopicSpec};
use flytrap_proto::{Properties, Property, PropertyContext, ReasonCode, encode_properties};
use flytrap_tests::RawClient;
use flytrap_tests::stack::{
    SIWE, Stack, StackOptions, auth_answer, challenge_connect, connect_challenge, connect_signed,
    new_key, next_connack, now, open_challenge,
};

/// PUBLISH QoS 1 and return the PUBACK's reason.
fn publish_ack(c: &mut RawClient, topic: &str, id: u16) -> ReasonCode {
    c.publish_ack(topic, id, b"m")
}

fn sign_hex(key: &flytrap_chain::PrivateKeySigner, message: &str) -> String {
    format!(
        "0x{}",
        hex::encode(flytrap_chain::sign::sign(key, message).unwrap())
    )
}

/// A 3.1.1 CONNECT with timestamped credentials; returns the CONNACK frame.
fn connect_v311(addr: std::net::SocketAddr, key: &flytrap_chain::PrivateKeySigner) -> Vec<u8> {
    let creds = flytrap_chain::sign::sign_connect(key, "old-1", now()).unwrap();
    flytrap_tests::stack::connect_v311(
        addr,
        "old-1",
        &creds.v311_username(),
        &creds.v311_password(),
    )
}

#[test]
fn challenge_sign_in_publish_and_every_refusal() {
    let s = Stack::start();
    let (key, stranger) = (new_key(), new_key());
    s.topic("c/t", TopicSpec::default());
    s.grant("c/t", key.address(), Action::Publish);
    s.settle();
    let addr = s.proxy.tcp;
    let address = format!("{:#x}", key.address());

    // The exchange, then CONNACK 0 from the broker (which saw no AUTH: Mosquitto has no
    // authentication method and would answer 0x8C), then publishing as the contract says.
    let (mut c, r) = connect_challenge(addr, &key, "chal-1");
    assert_eq!(r, Some(ReasonCode::SUCCESS));
    // Forwarded: Mosquitto acknowledges (0x10 No matching subscribers: nobody listens).
    let forwarded = publish_ack(&mut c, "c/t", 7);
    assert!(forwarded.0 < 0x80, "{forwarded:?}");
    assert_eq!(
        publish_ack(&mut c, "elsewhere", 8),
        ReasonCode::NOT_AUTHORIZED
    );

    // The challenge: a SIWE message for this address, client id and chain.
    let hello = challenge_connect("chal-2", SIWE, Some(address.as_bytes()));
    let (_, challenge) = open_challenge(addr, &hello);
    let message = challenge.unwrap();
    assert!(message.starts_with("flytrap.test wants you to sign in with your Ethereum account:\n"));
    assert!(
        message
            .lines()
            .nth(1)
            .is_some_and(|l| l.eq_ignore_ascii_case(&address))
    );
    assert!(message.contains("\nChain ID: 31337\n"), "{message}");
    assert!(message.ends_with("\nRequest ID: chal-2"), "{message}");
    let nonce = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("Nonce: "))
            .unwrap()
            .to_string()
    };

    // Signed by another key: 0x86.
    let (mut c, challenge) = open_challenge(addr, &hello);
    c.send(&auth_answer(
        sign_hex(&stranger, &challenge.unwrap()).as_bytes(),
    ));
    assert_eq!(
        next_connack(&mut c),
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );

    // A captured exchange replayed on a new connection: the new nonce makes the captured
    // signature recover to another address.
    let (mut first, challenge) = open_challenge(addr, &hello);
    let captured_message = challenge.unwrap();
    let captured = sign_hex(&key, &captured_message);
    first.send(&auth_answer(captured.as_bytes()));
    assert_eq!(next_connack(&mut first), Some(ReasonCode::SUCCESS));
    let (mut replay, challenge) = open_challenge(addr, &hello);
    assert_ne!(nonce(&challenge.unwrap()), nonce(&captured_message));
    replay.send(&auth_answer(captured.as_bytes()));
    assert_eq!(
        next_connack(&mut replay),
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );

    // Not a signature.
    let (mut c, _) = open_challenge(addr, &hello);
    c.send(&auth_answer(b"yes please"));
    assert_eq!(
        next_connack(&mut c),
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );

    // Another method: 0x8C, no AUTH.
    let other = challenge_connect("chal-3", "SCRAM-SHA-256", Some(b"x"));
    assert_eq!(
        open_challenge(addr, &other).1,
        Err(Some(ReasonCode::BAD_AUTHENTICATION_METHOD))
    );
    // The method without an address: 0x86.
    let bare = challenge_connect("chal-4", SIWE, None);
    assert_eq!(
        open_challenge(addr, &bare).1,
        Err(Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD))
    );
    // An answer under another method is a protocol error.
    let (mut c, _) = open_challenge(addr, &hello);
    let mut raw = Vec::new();
    encode_properties(&[Property::AuthenticationMethod("SCRAM-SHA-256")], &mut raw);
    let mut wrong = Vec::new();
    flytrap_proto::Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties::parse_raw(&raw, PropertyContext::Auth).unwrap(),
    }
    .encode(&mut wrong);
    c.send(&wrong);
    assert_eq!(next_connack(&mut c), Some(ReasonCode::PROTOCOL_ERROR));

    // The timestamped scheme beside it, 5.0 and 3.1.1, unchanged.
    assert_eq!(
        connect_signed(addr, &key, "stamped-1").1,
        Some(ReasonCode::SUCCESS)
    );
    assert_eq!(connect_v311(addr, &key), b"\x20\x02\x00\x00");
}

#[test]
fn require_challenge_refuses_signed_connects_and_challenges_expire() {
    let s = Stack::start_with(StackOptions {
        require_challenge: true,
        challenge_ttl_s: 1,
        ..StackOptions::default()
    });
    let key = new_key();
    let addr = s.proxy.tcp;
    // A valid timestamped CONNECT: 0x8C (use the challenge scheme); 3.1.1: return code 4.
    assert_eq!(
        connect_signed(addr, &key, "stamped-1").1,
        Some(ReasonCode::BAD_AUTHENTICATION_METHOD)
    );
    assert_eq!(connect_v311(addr, &key), b"\x20\x02\x00\x04");
    // The challenge scheme signs in.
    assert_eq!(
        connect_challenge(addr, &key, "chal-1").1,
        Some(ReasonCode::SUCCESS)
    );
    // Answered after its expiration time (issued + 1 s): 0x86.
    let address = format!("{:#x}", key.address());
    let hello = challenge_connect("chal-2", SIWE, Some(address.as_bytes()));
    let (mut c, challenge) = open_challenge(addr, &hello);
    let answer = sign_hex(&key, &challenge.unwrap());
    std::thread::sleep(Duration::from_millis(2500));
    c.send(&auth_answer(answer.as_bytes()));
    assert_eq!(
        next_connack(&mut c),
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
}

/// `examples/siwe_paho.py` (paho-mqtt + eth-account, installed by scripts/deps.sh) signs in
/// with the challenge scheme, subscribes and publishes through the proxy.
#[test]
fn paho_example_signs_in_with_the_challenge() {
    let s = Stack::start();
    let key = new_key();
    s.topic("py/t", TopicSpec::default());
    s.grant("py/t", key.address(), Action::Publish);
    s.grant("py/t", key.address(), Action::Subscribe);
    s.settle();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("client.key");
    std::fs::write(&key_file, format!("0x{}\n", hex::encode(key.to_bytes()))).unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/siwe_paho.py");
    let run = |topic: &str| {
        Command::new("python3")
            .arg(example)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(s.proxy.tcp.port().to_string())
            .arg("--key")
            .arg(&key_file)
            .args(["--client-id", "paho-1", "--topic", topic, "--timeout", "15"])
            .output()
            .expect("python3 (scripts/deps.sh installs examples/requirements.txt)")
    };
    let out = run("py/t");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("connack 0x00"), "{stdout}");
    assert!(stdout.contains("received py/t hello from 0x"), "{stdout}");
    // A topic it may not use: the SUBACK says 0x87 and the example fails with a reason.
    let out = run("py/other");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SUBACK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
