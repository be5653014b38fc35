//! The chain commands of the `flytrap` binary (SPEC §5), against a real anvil on a free port.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flytrap_chain::anvil::{Anvil, DEV_KEYS, free_port};
use flytrap_chain::bindings::FlyTrap;
use flytrap_chain::sign::{connect_message, recover, static_message};
use flytrap_chain::{
    AuditRecord, Client, PrivateKeySigner, Spooled, U256, parse_address, topic_id,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn flytrap(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flytrap"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env_remove("FLYTRAP_CHAIN_RPC")
        .env_remove("FLYTRAP_CHAIN_CONTRACT")
        .env_remove("FLYTRAP_CHAIN_KEY")
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(cwd: &Path, args: &[&str]) -> String {
    let out = flytrap(cwd, args);
    assert!(
        out.status.success(),
        "flytrap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with one line on stderr; returns that line.
fn fails(cwd: &Path, args: &[&str]) -> String {
    let out = flytrap(cwd, args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "flytrap {args:?} succeeded: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "flytrap {args:?}: not one line: {err:?}"
    );
    assert!(err.starts_with("flytrap: "), "{err}");
    err.trim_end().to_string()
}

fn write_key(dir: &Path, name: &str, hex: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{hex}\n")).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn key_new_writes_a_private_file_and_never_replaces_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["key", "new", "--out", "a.key"]);
    let address = parse_address(out.trim()).unwrap();
    let path = dir.path().join("a.key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = flytrap_chain::keyfile::read_key(&path).unwrap();
    assert_eq!(key.address(), address);

    let before = std::fs::read(&path).unwrap();
    let e = fails(dir.path(), &["key", "new", "--out", "a.key"]);
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Default place: ./.flytrap/keys/<address>.key
    let out = ok(dir.path(), &["key", "new"]);
    let p = dir
        .path()
        .join(".flytrap/keys")
        .join(format!("{}.key", out.trim()));
    assert!(p.is_file());
    let e = fails(dir.path(), &["key", "new", "--out", "no/such/dir/k.key"]);
    assert!(e.contains("cannot write key file"), "{e}");
}

/// `flytrap sign` agrees with every SPEC §1 vector, and its signatures recover to the key.
#[test]
fn sign_matches_the_spec_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../chain/tests/data/spec-vectors.json")).unwrap();
    for (i, v) in vectors.iter().enumerate() {
        let get = |k: &str| v[k].as_str().unwrap().to_string();
        let name = get("name");
        let key = write_key(dir.path(), &format!("{i}.key"), &get("private_key"));
        let address = parse_address(&get("address")).unwrap();
        let ts = v["timestamp"].as_u64().unwrap().to_string();
        let client_id = get("client_id");
        let out = ok(
            dir.path(),
            &[
                "sign",
                "--key",
                s(&key),
                "--client-id",
                &client_id,
                "--timestamp",
                &ts,
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        let sig = lines[1].strip_prefix("flytrap-signature ").unwrap();
        assert_eq!(
            lines[0],
            format!("flytrap-address {}", get("address")),
            "{name}"
        );
        assert_eq!(lines[2], format!("flytrap-timestamp {ts}"), "{name}");
        // Recovery: the printed signature is the key's, over this client id's message.
        assert_eq!(
            recover(
                &connect_message(&address, &client_id, ts.parse().unwrap()),
                sig
            )
            .unwrap(),
            address
        );
        if get("expect") == "accept" {
            assert_eq!(sig, get("signature"), "{name}");
            assert!(
                out.contains(&format!("# MQTT 3.1.1: password {}", get("v311_password"))),
                "{name}"
            );
            let args = lines.last().unwrap();
            assert!(args.starts_with("-V mqttv5 -i "), "{args}");
            assert!(args.contains(&format!(
                "-D connect user-property flytrap-signature {}",
                get("signature")
            )));
            assert!(args.contains(&format!("-D connect user-property flytrap-timestamp {ts}")));

            let out = ok(
                dir.path(),
                &[
                    "sign",
                    "--key",
                    s(&key),
                    "--client-id",
                    &client_id,
                    "--static",
                ],
            );
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(
                lines[1],
                format!("flytrap-signature {}", get("static_signature")),
                "{name}"
            );
            assert!(!out.contains("flytrap-timestamp"), "{name}");
            assert!(out.contains(&format!(
                "# MQTT 3.1.1: password {}",
                get("v311_password_static")
            )));
            assert_eq!(
                recover(&static_message(&address), &get("static_signature")).unwrap(),
                address
            );
        } else {
            // The vector's signature was made for another client id: ours differs and the
            // vector's does not verify for this client id.
            assert_ne!(sig, get("signature"), "{name}");
            let r = recover(
                &connect_message(&address, &client_id, ts.parse().unwrap()),
                &get("signature"),
            );
            assert_ne!(r.ok(), Some(address), "{name}");
        }
    }
    // Now by default: a timestamp within a few seconds of the clock.
    let key = write_key(dir.path(), "now.key", DEV_KEYS[1]);
    let out = ok(dir.path(), &["sign", "--key", s(&key), "--client-id", "c"]);
    let t: u64 = out
        .lines()
        .nth(2)
        .unwrap()
        .strip_prefix("flytrap-timestamp ")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t) < 10);

    let bad = write_key(dir.path(), "bad.key", "0x1234");
    let e = fails(dir.path(), &["sign", "--key", s(&bad), "--client-id", "c"]);
    assert!(
        e.contains("malformed key file") && e.contains("bad.key"),
        "{e}"
    );
}

/// The operator's and a client's day: deploy, topics, grants, a paid join and the owner's
/// withdrawal, revocation, audit reports — with defaults from ./.flytrap/.
#[test]
fn operator_workflow_against_anvil() {
    let anvil = Anvil::start().unwrap();
    let rpc = anvil.url();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::create_dir(cwd.join(".flytrap")).unwrap();
    write_key(cwd, ".flytrap/operator.key", DEV_KEYS[0]);
    let member_key = write_key(cwd, "member.key", DEV_KEYS[2]);
    let member: PrivateKeySigner = DEV_KEYS[2].parse().unwrap();
    let owner: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let r = ["--rpc", rpc.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(r.iter()).map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str]| {
        ok(
            cwd,
            &with(args).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let run_fail = |args: &[&str]| {
        fails(
            cwd,
            &with(args).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    let contract = run(&["deploy", "--save"]);
    let contract = parse_address(contract.trim()).unwrap();
    assert_eq!(
        std::fs::read_to_string(cwd.join(".flytrap/contract"))
            .unwrap()
            .trim(),
        format!("{contract:#x}")
    );
    let client = Client::new(&rpc, contract, None).unwrap();

    let id = run(&[
        "topic",
        "create",
        "plant/+/temp",
        "--country",
        "de",
        "--country",
        "FR",
        "--sensitive",
        "--reason",
        "pilot",
    ]);
    assert_eq!(id.trim(), format!("{:#x}", topic_id("plant/+/temp")));
    run(&[
        "topic",
        "create",
        "paid",
        "--pub-fee",
        "1000000",
        "--sub-fee",
        "0",
    ]);

    let show: serde_json::Value =
        serde_json::from_str(&run(&["topic", "show", "plant/+/temp", "--json"])).unwrap();
    assert_eq!(show["countries"], serde_json::json!(["DE", "FR"]));
    assert_eq!(show["pub_fee"], "closed");
    assert_eq!(show["sensitive"], true);
    assert_eq!(show["owner"], format!("{:#x}", owner.address()));
    let text = run(&["topic", "show", "paid"]);
    assert!(
        text.contains("publish fee   1000000 wei") && text.contains("subscribe fee free"),
        "{text}"
    );
    let list: serde_json::Value = serde_json::from_str(&run(&["topic", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(run(&["topic", "list"]).lines().count(), 2);

    let alice = format!("{:#x}", PrivateKeySigner::random().address());
    let out = run(&["grant", "sub", "plant/+/temp", &alice, "--reason", "trial"]);
    assert!(out.starts_with("granted sub on 'plant/+/temp' to"), "{out}");
    let show: serde_json::Value =
        serde_json::from_str(&run(&["topic", "show", "plant/+/temp", "--json"])).unwrap();
    assert_eq!(show["subscribers"], serde_json::json!([alice.clone()]));
    run(&["revoke", "sub", "plant/+/temp", &alice, "--reason", "over"]);
    assert!(
        !rt()
            .block_on(client.is_member(
                topic_id("plant/+/temp"),
                parse_address(&alice).unwrap(),
                flytrap_chain::Action::Subscribe
            ))
            .unwrap()
    );

    // A paid join, then the owner's withdrawal: the owner's balance grows by the fee less gas.
    let out = run(&["join", "pub", "paid", "--key", s(&member_key)]);
    assert!(
        out.starts_with("joined 'paid' as publisher for 1000000 wei"),
        "{out}"
    );
    run(&["join", "sub", "paid", "--key", s(&member_key)]);
    let before = rt().block_on(client.eth_balance(owner.address())).unwrap();
    let out = run(&["withdraw", "paid"]);
    assert!(out.starts_with("withdrew 1000000 wei from 'paid'"), "{out}");
    let after = rt().block_on(client.eth_balance(owner.address())).unwrap();
    let withdraw_tx = rt()
        .block_on(client.events::<FlyTrap::Withdrawn>(0, None))
        .unwrap();
    assert_eq!(withdraw_tx.len(), 1);
    let gas_cost = {
        use flytrap_chain::alloy::providers::Provider as _;
        let rc = rt()
            .block_on(client.provider().get_transaction_receipt(withdraw_tx[0].tx))
            .unwrap()
            .unwrap();
        U256::from(rc.gas_used) * U256::from(rc.effective_gas_price)
    };
    assert_eq!(after + gas_cost - before, U256::from(1_000_000u64));
    let e = run_fail(&["withdraw", "paid"]);
    assert!(e.contains("no fees to withdraw"), "{e}");

    // Audit records, as the proxy writes them.
    let op = Client::new(&rpc, contract, Some(owner.clone())).unwrap();
    let m = member.address();
    let records = vec![
        AuditRecord::ConnectFailed {
            ip: "192.0.2.1".parse().unwrap(),
            client: Some(m),
            reason: 0x86,
            time: 1_700_000_000,
        },
        AuditRecord::ConnectFailed {
            ip: "192.0.2.2".parse().unwrap(),
            client: None,
            reason: 0x8A,
            time: 1_700_000_100,
        },
        AuditRecord::Ban {
            ip: "192.0.2.2".parse().unwrap(),
            until: 1_700_000_400,
            failures: 5,
            time: 1_700_000_100,
        },
        AuditRecord::WrongCountry {
            client: m,
            topic_id: topic_id("plant/+/temp"),
            ip: "2001:db8::7".parse().unwrap(),
            country: "US".parse().unwrap(),
            time: 1_700_000_200,
        },
        AuditRecord::SensitiveReport {
            topic_id: topic_id("plant/+/temp"),
            from: 1_700_000_000,
            to: 1_700_001_800,
            publishers: vec![m],
            receivers: vec![],
        },
    ];
    let spooled: Vec<Spooled> = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| Spooled {
            seq: i as u64 + 1,
            record,
        })
        .collect();
    rt().block_on(op.record_audit(&spooled)).unwrap();

    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str::<serde_json::Value>(&run(&a))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let failures = json(&["audit", "failures"]);
    assert_eq!(failures.len(), 3);
    assert_eq!(failures[0]["reason_text"], "bad user name or password");
    assert_eq!(
        json(&["audit", "failures", "--since", "1700000050"]).len(),
        2
    );
    assert_eq!(
        json(&["audit", "failures", "--until", "2023-11-14T22:13:20Z"]).len(),
        1
    );
    let bans = json(&["audit", "bans"]);
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0]["ip"], "192.0.2.2");
    assert_eq!(bans[0]["failures"], 5);
    let sensitive = json(&["audit", "sensitive"]);
    assert_eq!(sensitive[0]["topic"], "plant/+/temp");
    let mine = json(&["audit", "client", &format!("{m:#x}")]);
    let kinds: Vec<&str> = mine.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    // The joins (ACL changes with the member as target), the failure, the refusal, the report.
    assert_eq!(
        kinds.iter().filter(|k| **k == "acl-change").count(),
        2,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"connect-failed")
            && kinds.contains(&"wrong-country")
            && kinds.contains(&"sensitive-report")
    );
    let changes = json(&["audit", "changes"]);
    let words: Vec<&str> = changes
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        words,
        vec!["created", "created", "grant", "revoke", "join", "join"]
    );
    assert_eq!(changes[3]["reason"], "over");
    let lines = run(&["audit", "changes"]);
    assert_eq!(lines.lines().count(), 6);
    assert!(
        lines
            .lines()
            .nth(3)
            .unwrap()
            .contains("revoke  topic 'plant/+/temp'  sub"),
        "{lines}"
    );
    assert!(run(&["audit", "bans", "--since", "2030-01-01"]).is_empty());

    // --config supplies the defaults instead of ./.flytrap/.
    let other = tempfile::tempdir().unwrap();
    let conf = other.path().join("flytrap.toml");
    std::fs::write(
        &conf,
        format!(
            "[chain]\nrpc = \"{rpc}\"\ncontract = \"{contract:#x}\"\nkey = \"{}\"\n",
            s(&cwd.join(".flytrap/operator.key"))
        ),
    )
    .unwrap();
    let listed = ok(other.path(), &["topic", "list", "--config", s(&conf)]);
    assert_eq!(listed.lines().count(), 2);
    ok(
        other.path(),
        &["grant", "pub", "paid", &alice, "--config", s(&conf)],
    );
    let e = fails(
        other.path(),
        &[
            "topic",
            "list",
            "--config",
            s(&other.path().join("missing.toml")),
        ],
    );
    assert!(e.contains("cannot read"), "{e}");
}

/// Bad input and faults: one line naming the cause, non-zero status, nothing half-written.
#[test]
fn bad_input_gives_one_line_errors() {
    let anvil = Anvil::start().unwrap();
    let rpc = anvil.url();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let op_key = write_key(cwd, "op.key", DEV_KEYS[0]);
    let other_key = write_key(cwd, "other.key", DEV_KEYS[1]);
    let broke_key = write_key(
        cwd,
        "broke.key",
        &format!("{:#x}", flytrap_chain::B256::repeat_byte(0x42)),
    );
    let bad_key = write_key(cwd, "bad.key", "not a key");
    let contract = ok(cwd, &["deploy", "--rpc", &rpc, "--key", s(&op_key)]);
    let contract = contract.trim();
    let c = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--rpc".into(),
            rpc.clone(),
            "--contract".into(),
            contract.into(),
        ]);
        v
    };
    let f = |args: Vec<String>| fails(cwd, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let someone = format!("{:#x}", PrivateKeySigner::random().address());

    ok(
        cwd,
        &c(&[
            "topic",
            "create",
            "t",
            "--pub-fee",
            "500",
            "--key",
            s(&op_key),
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    ok(
        cwd,
        &c(&["grant", "sub", "t", &someone, "--key", s(&op_key)])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );

    let e = f(c(&["topic", "show", "nope"]));
    assert_eq!(e, "flytrap: topic show 'nope': unknown topic 'nope'");
    let e = f(c(&["grant", "pub", "nope", &someone, "--key", s(&op_key)]));
    assert!(e.ends_with("unknown topic 'nope'"), "{e}");
    let e = f(c(&["grant", "pub", "t", "0xabc", "--key", s(&op_key)]));
    assert!(e.contains("malformed address '0xabc'"), "{e}");
    let e = f(c(&[
        "grant",
        "pub",
        "t",
        "0x1a642f0E3c3aF545E7AcBD38b07251B3990914f1",
        "--key",
        s(&op_key),
    ]));
    assert!(e.contains("checksum"), "{e}");
    let e = f(c(&["grant", "pub", "t", &someone, "--key", s(&bad_key)]));
    assert!(
        e.contains("malformed key file") && e.contains("bad.key"),
        "{e}"
    );
    let e = f(c(&[
        "grant",
        "pub",
        "t",
        &someone,
        "--key",
        s(&cwd.join("missing.key")),
    ]));
    assert!(e.contains("cannot read key file"), "{e}");
    let e = f(c(&["revoke", "sub", "t", &someone, "--key", s(&other_key)]));
    assert!(e.contains("NotOwner"), "{e}");
    let e = f(c(&["grant", "sub", "t", &someone, "--key", s(&op_key)]));
    assert!(e.contains("already holds sub on this topic"), "{e}");
    // Several addresses from a file: all checked before anything is sent.
    let (a1, a2) = (
        format!("{:#x}", PrivateKeySigner::random().address()),
        format!("{:#x}", PrivateKeySigner::random().address()),
    );
    let list = cwd.join("fleet.txt");
    let grant_fleet = c(&["grant", "sub", "t", "--from", s(&list), "--key", s(&op_key)]);
    std::fs::write(&list, format!("# fleet\n{a1}\n{someone}\n\n{a2}\n")).unwrap();
    let e = f(grant_fleet.clone());
    assert!(
        e.contains(&format!("{someone} already holds sub")) && e.contains("nothing was sent"),
        "{e}"
    );
    std::fs::write(&list, format!("{a1}\nnot-an-address\n")).unwrap();
    let e = f(grant_fleet.clone());
    assert!(e.contains("fleet.txt line 2"), "{e}");
    std::fs::write(&list, format!("{a1} # first\n{a2}\n")).unwrap();
    let args: Vec<&str> = grant_fleet.iter().map(String::as_str).collect();
    let out = ok(cwd, &args);
    let granted = out
        .lines()
        .filter(|l| l.starts_with("granted sub on 't' to"))
        .count();
    assert_eq!(granted, 2, "{out}");
    let e = f(c(&[
        "join",
        "pub",
        "t",
        "--fee",
        "499",
        "--key",
        s(&other_key),
    ]));
    assert!(e.contains("WrongFee") && e.contains("500 wei"), "{e}");
    let e = f(c(&[
        "join",
        "pub",
        "t",
        "--max-fee",
        "100",
        "--key",
        s(&other_key),
    ]));
    assert!(e.contains("more than --max-fee"), "{e}");
    let e = f(c(&["join", "pub", "t", "--key", s(&broke_key)]));
    assert!(e.contains("insufficient funds"), "{e}");
    let e = f(c(&["join", "sub", "t", "--key", s(&other_key)]));
    assert!(e.contains("closed to self-service join"), "{e}");
    let e = f(c(&["topic", "create", "a/#/b", "--key", s(&op_key)]));
    assert!(e.contains("not a valid MQTT topic or filter"), "{e}");
    let e = f(c(&["topic", "create", "t", "--key", s(&op_key)]));
    assert!(e.contains("TopicExists"), "{e}");
    let e = f(c(&[
        "topic",
        "create",
        "u",
        "--country",
        "Germany",
        "--key",
        s(&op_key),
    ]));
    assert!(e.contains("bad country code 'Germany'"), "{e}");
    let e = f(c(&[
        "topic",
        "create",
        "u",
        "--pub-fee",
        "-1",
        "--key",
        s(&op_key),
    ]));
    assert!(e.contains("--pub-fee"), "{e}");
    // A fee the contract cannot store exactly: refused before anything is sent, one line.
    let e = f(c(&[
        "topic",
        "create",
        "u",
        "--pub-fee",
        "1000000000000000001",
        "--key",
        s(&op_key),
    ]));
    assert!(
        e.contains("--pub-fee: fee 1000000000000000001 wei cannot be stored exactly")
            && e.contains("nearest: 1000000000000000000 or 1000000000100000000"),
        "{e}"
    );
    let e = f(c(&["audit", "bans", "--since", "last week"]));
    assert!(e.contains("bad time 'last week'"), "{e}");
    let e = f(c(&["audit", "client"]));
    assert!(e.contains("which client"), "{e}");

    // The node is not there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let e = fails(
        cwd,
        &["topic", "list", "--rpc", &dead, "--contract", contract],
    );
    assert!(
        e.contains(&format!("chain node unreachable at {dead}")),
        "{e}"
    );
    let e = fails(
        cwd,
        &["deploy", "--save", "--rpc", &dead, "--key", s(&op_key)],
    );
    assert!(e.contains("unreachable"), "{e}");
    assert!(
        !cwd.join(".flytrap/contract").exists(),
        "nothing half-written"
    );
    let e = fails(
        cwd,
        &[
            "ui",
            "--listen",
            "127.0.0.1:0",
            "--rpc",
            &dead,
            "--contract",
            contract,
        ],
    );
    assert!(e.contains("unreachable"), "{e}");

    // The web page: an address taken, a bad explorer URL; audit: an inverted window.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = f(c(&["ui", "--listen", &addr, "--no-index"]));
    assert!(e.contains(&format!("cannot listen on {addr}")), "{e}");
    let e = f(c(&["ui", "--explorer", "etherscan.io"]));
    assert!(e.contains("--explorer"), "{e}");
    let e = f(c(&[
        "audit",
        "bans",
        "--since",
        "2026-02-01",
        "--until",
        "2026-01-01",
    ]));
    assert!(e.contains("inverted time window"), "{e}");
    // No contract there, no contract given, a malformed one.
    let e = fails(
        cwd,
        &["topic", "list", "--rpc", &rpc, "--contract", &someone],
    );
    assert!(e.contains("no FlyTrap contract at"), "{e}");
    let e = fails(cwd, &["topic", "list", "--rpc", &rpc]);
    assert!(e.contains("no contract address"), "{e}");
    let e = fails(cwd, &["topic", "list", "--rpc", &rpc, "--contract", "0x12"]);
    assert!(e.contains("malformed address"), "{e}");
    let e = fails(
        cwd,
        &["withdraw", "t", "--rpc", &rpc, "--contract", contract],
    );
    assert!(e.contains("no key"), "{e}");
}

/// The development profile's chain: anvil started when none answers, the contract deployed
/// once, reused on later runs (also after anvil restarts with its saved state).
#[test]
fn the_dev_chain_is_started_deployed_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".flytrap");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (info, started) = flytrap::devchain::ensure_dev_chain_at(&state, addr).unwrap();
    let started = started.expect("anvil started");
    assert!(started.pid().is_some());
    let saved = std::fs::read_to_string(state.join("contract")).unwrap();
    assert_eq!(saved.trim(), format!("{:#x}", info.contract));
    let key = flytrap_chain::keyfile::read_key(&state.join("operator.key")).unwrap();
    assert_eq!(
        format!("{:#x}", key.address()),
        "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    );

    // Running: reused, nothing started.
    let (again, none) = flytrap::devchain::ensure_dev_chain_at(&state, addr).unwrap();
    assert!(none.is_none());
    assert_eq!(again.contract, info.contract);

    // Stopped (it saves its chain) and started again: the same contract.
    drop(started);
    let (third, started) = flytrap::devchain::ensure_dev_chain_at(&state, addr).unwrap();
    assert!(started.is_some());
    assert_eq!(third.contract, info.contract);
    let c = Client::new(&third.rpc, third.contract, None).unwrap();
    rt().block_on(c.ensure_contract()).unwrap();
    drop(started);
}
