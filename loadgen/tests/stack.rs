//! loadgen against a real stack (anvil + contract, Mosquitto, FlyTrap with chain
//! authorisation): a short signed fan-out over TLS, the deny paths, and two worker
//! processes; every output must parse.

use std::path::Path;
use std::process::{Command, Output};

use flytrap_chain::{Action, TopicSpec};
use flytrap_tests::stack::Stack;
use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");
const SEED: &str = "loadgen-test";

fn loadgen(args: &[&str]) -> Output {
    let mut cmd = Command::new(LOADGEN);
    cmd.args(args).args(["--seed", SEED]);
    if args[0] != "keys" {
        cmd.arg("--quiet");
    }
    let out = cmd.output().unwrap();
    eprintln!(
        "loadgen {args:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Checks an `.hgrm` file is HdrHistogram's percentile format: rows of value, percentile,
/// count and 1/(1-p) with non-decreasing values and percentiles ending at 1, then the footer.
/// Returns the total count.
fn check_hgrm(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    let (mut last_v, mut last_p, mut total) = (0f64, 0f64, 0u64);
    let mut footer = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("#[") {
            footer.push(line);
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.len() == 3 || cols.len() == 4, "{line}");
        let v: f64 = cols[0].parse().unwrap();
        let p: f64 = cols[1].parse().unwrap();
        total += cols[2].parse::<u64>().unwrap();
        assert!(v >= last_v && p >= last_p, "{line}");
        (last_v, last_p) = (v, p);
    }
    assert_eq!(last_p, 1.0, "{}", path.display());
    assert_eq!(footer.len(), 3, "{}", path.display());
    let count: u64 = footer[1]
        .split("Total count    =")
        .nth(1)
        .unwrap()
        .trim_end_matches(']')
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, total);
    total
}

#[test]
fn loadgen_drives_flytrap_and_writes_parseable_results() {
    let stack = Stack::start();
    stack.topic("lg/t", TopicSpec::default());
    let keys = loadgen(&["keys", "--count", "120"]);
    assert!(keys.status.success());
    let addresses: Vec<String> = String::from_utf8(keys.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(addresses.len(), 120);
    // Clients 0..10 subscribe, 10..120 publish.
    for (i, a) in addresses.iter().enumerate() {
        let action = if i < 10 {
            Action::Subscribe
        } else {
            Action::Publish
        };
        stack.grant("lg/t", a.parse().unwrap(), action);
    }
    stack.settle();
    let results = tempfile::tempdir().unwrap();

    // Signed fan-out over TLS: 10 subscribers, 110 publishers, QoS 1.
    let dir = results.path().join("fanout");
    let tls = stack.proxy.tls.unwrap().to_string();
    let ca = stack.proxy.ca.clone().unwrap();
    let out = loadgen(&[
        "fanout",
        "--target",
        &tls,
        "--ca",
        ca.to_str().unwrap(),
        "-n",
        "120",
        "--subscribers",
        "10",
        "--topic",
        "lg/t",
        "--ramp",
        "400",
        "--settle",
        "0.5",
        "--duration",
        "2",
        "--total-rate",
        "440",
        "--label",
        "test",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let s = summary(&dir);
    assert_eq!(s["error_count"], 0, "{s}");
    assert_eq!(s["tls"], true);
    assert_eq!(s["phases"]["connect"]["count"], 120);
    assert_eq!(s["phases"]["subscribe"]["count"], 10);
    let sent = s["messages"]["sent"].as_u64().unwrap();
    assert!(sent > 500, "{s}");
    assert_eq!(s["messages"]["acknowledged"].as_u64(), Some(sent));
    // Every message reaches all 10 subscribers.
    assert_eq!(s["messages"]["received"].as_u64(), Some(10 * sent));
    assert_eq!(s["outcomes"]["puback 0x10"].as_u64().unwrap_or(0), 0);
    let p50 = s["phases"]["end-to-end"]["p50_us"].as_f64().unwrap();
    let p99 = s["phases"]["end-to-end"]["p99_us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p99 >= p50);
    assert_eq!(check_hgrm(&dir.join("connect.hgrm")), 120);
    assert_eq!(check_hgrm(&dir.join("publish.hgrm")), sent);
    assert_eq!(check_hgrm(&dir.join("end-to-end.hgrm")), 10 * sent);
    let svg = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("end-to-end") && svg.contains("polyline"));

    // The deny path: a topic nobody was granted; every PUBLISH is answered 0x87.
    let dir = results.path().join("deny-publish");
    let tcp = stack.proxy.tcp.to_string();
    let out = loadgen(&[
        "publish",
        "--target",
        &tcp,
        "-n",
        "40",
        "--topic",
        "lg/denied",
        "--messages",
        "5",
        "--expect",
        "0x87",
        "--duration",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let s = summary(&dir);
    assert_eq!(s["outcomes"]["puback 0x87"], 200, "{s}");
    assert_eq!(s["error_count"], 0);

    // Bad signatures: every CONNECT is refused 0x86, and that is what was expected.
    let dir = results.path().join("deny-connect");
    let out = loadgen(&[
        "connect",
        "--target",
        &tcp,
        "-n",
        "30",
        "--bad-signature",
        "--expect",
        "0x86",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(summary(&dir)["outcomes"]["connack 0x86"], 30);

    // The same refusals without --expect are errors: exit status 2, counted by reason.
    let dir = results.path().join("unexpected");
    let out = loadgen(&[
        "connect",
        "--target",
        &tcp,
        "-n",
        "5",
        "--bad-signature",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(summary(&dir)["errors"]["connack 0x86 (expected 0x00)"], 5);

    // Two worker processes, one merged report; MQTT 3.1.1 credentials.
    let dir = results.path().join("workers");
    let out = loadgen(&[
        "connect",
        "--target",
        &tcp,
        "-n",
        "60",
        "--workers",
        "2",
        "--mqtt",
        "3.1.1",
        "--hold",
        "0.5",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let s = summary(&dir);
    assert_eq!(s["phases"]["connect"]["count"], 60, "{s}");
    assert_eq!(s["workers"], 2);
    assert_eq!(s["error_count"], 0);
}

#[test]
fn bad_command_lines_are_one_line_errors() {
    for (args, needle) in [
        (&["publish", "--qos", "0"][..], "--rate"),
        (
            &["connect", "--target", "192.0.2.1:1883"][..],
            "--allow-remote",
        ),
        (&["connect", "--bogus"][..], "--bogus"),
        // Nothing listens on port 1 of loopback.
        (
            &["connect", "--target", "127.0.0.1:1"][..],
            "cannot connect to 127.0.0.1:1",
        ),
    ] {
        let out = Command::new(LOADGEN).args(args).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("loadgen: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    let help = Command::new(LOADGEN)
        .args(["publish", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--target",
        "--rate",
        "--total-rate",
        "--qos",
        "--source",
        "--workers",
        "--ca",
    ] {
        assert!(text.contains(flag), "{flag}");
    }
}
