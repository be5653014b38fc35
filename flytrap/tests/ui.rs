//! `flytrap ui` end to end: a real anvil seeded with topics, grants, a revocation, a join,
//! failed connections, wrong-country refusals, bans and sensitive reports; the built binary
//! serving the page; Debian's chromium driven through every view by playwright-core
//! (`tests/browser/drive.mjs`), with a screenshot of each view under
//! `target/ui-screenshots/`. Also: the API's 4xx answers, the API agreeing with
//! `flytrap audit`, and the index agreeing with a scan of the whole log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flytrap::report::{Kind, Query, Reader, Report, Window};
use flytrap_chain::anvil::{Anvil, DEV_KEYS};
use flytrap_chain::{
    Action, Address, AuditRecord, Client, Fee, PrivateKeySigner, Spooled, TopicSpec, U256, topic_id,
};
use serde_json::Value;

const DAY: u64 = 86_400;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn key(i: usize) -> PrivateKeySigner {
    DEV_KEYS[i].parse().unwrap()
}

/// What was seeded.
struct Seed {
    anvil: Anvil,
    contract: Address,
    /// Base of the records' times (ten days ago: records far older than their blocks, as
    /// after a long spool).
    t0: u64,
    alice: Address,
    bob: Address,
    carol: Address,
    dave: Address,
}

fn seed() -> Seed {
    let anvil = Anvil::start().unwrap();
    let url = anvil.url();
    let (alice, bob, dave) = (key(1).address(), key(2).address(), key(3).address());
    let carol = PrivateKeySigner::random().address();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 10 * DAY;
    let contract = rt().block_on(async {
        let (op, _) = Client::deploy(&url, key(0)).await.unwrap();
        let plant = TopicSpec {
            countries: vec!["DE".parse().unwrap(), "FR".parse().unwrap()],
            pub_fee: Fee::Wei(1000),
            ..TopicSpec::default()
        };
        let office = TopicSpec {
            sub_fee: Fee::Free,
            ..TopicSpec::default()
        };
        let secret = TopicSpec {
            sensitive: true,
            ..TopicSpec::default()
        };
        for (name, spec) in [
            ("plant/+/temp", plant),
            ("office/door", office),
            ("secret/vault", secret),
        ] {
            op.create_topic(name, &spec, "").await.unwrap();
        }
        let id = topic_id;
        op.grant(id("plant/+/temp"), alice, Action::Publish, "line 1")
            .await
            .unwrap();
        op.grant(id("plant/+/temp"), bob, Action::Subscribe, "")
            .await
            .unwrap();
        op.grant(id("office/door"), alice, Action::Subscribe, "")
            .await
            .unwrap();
        op.grant(id("secret/vault"), carol, Action::Publish, "")
            .await
            .unwrap();
        op.grant(id("secret/vault"), alice, Action::Subscribe, "")
            .await
            .unwrap();
        op.revoke(id("plant/+/temp"), bob, Action::Subscribe, "left the team")
            .await
            .unwrap();
        let d = Client::new(&url, op.address(), Some(key(3))).unwrap();
        d.join(id("plant/+/temp"), Action::Publish, U256::from(1000))
            .await
            .unwrap();

        let ip = |s: &str| s.parse().unwrap();
        let records = vec![
            AuditRecord::ConnectFailed {
                ip: ip("192.0.2.1"),
                client: Some(alice),
                reason: 0x86,
                time: t0 + 100,
            },
            AuditRecord::ConnectFailed {
                ip: ip("192.0.2.2"),
                client: None,
                reason: 0x8A,
                time: t0 + 200,
            },
            AuditRecord::Ban {
                ip: ip("192.0.2.2"),
                until: t0 + 500,
                failures: 5,
                time: t0 + 250,
            },
            AuditRecord::WrongCountry {
                client: alice,
                topic_id: id("plant/+/temp"),
                ip: ip("2001:db8::7"),
                country: "US".parse().unwrap(),
                time: t0 + 300,
            },
            AuditRecord::WrongCountry {
                client: bob,
                topic_id: id("plant/+/temp"),
                ip: ip("2001:db8::8"),
                country: "US".parse().unwrap(),
                time: t0 + 400,
            },
            AuditRecord::SensitiveReport {
                topic_id: id("secret/vault"),
                from: t0,
                to: t0 + 1800,
                publishers: vec![carol],
                receivers: vec![alice],
            },
        ];
        let later = vec![
            AuditRecord::ConnectFailed {
                ip: ip("192.0.2.3"),
                client: Some(bob),
                reason: 0x87,
                time: t0 + 2 * DAY,
            },
            AuditRecord::WrongCountry {
                client: dave,
                topic_id: id("plant/+/temp"),
                ip: ip("203.0.113.5"),
                country: "CN".parse().unwrap(),
                time: t0 + 3 * DAY,
            },
            AuditRecord::Ban {
                ip: ip("198.51.100.9"),
                until: t0 + 4 * DAY + 300,
                failures: 7,
                time: t0 + 4 * DAY,
            },
            AuditRecord::SensitiveReport {
                topic_id: id("secret/vault"),
                from: t0 + 5 * DAY,
                to: t0 + 5 * DAY + 1800,
                publishers: vec![carol, dave],
                receivers: vec![bob],
            },
            AuditRecord::SensitiveReport {
                topic_id: id("plant/+/temp"),
                from: t0 + 6 * DAY,
                to: t0 + 6 * DAY + 1800,
                publishers: vec![alice],
                receivers: vec![],
            },
        ];
        // Two transactions, two blocks; the later batch is written first (a spool replayed
        // out of time order still reads back in time order).
        let n = records.len() as u64;
        let later: Vec<Spooled> = later
            .into_iter()
            .enumerate()
            .map(|(i, record)| Spooled {
                seq: i as u64 + 1,
                record,
            })
            .collect();
        op.record_audit(&later).await.unwrap();
        let first: Vec<Spooled> = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| Spooled {
                seq: i as u64 + 1 + n,
                record,
            })
            .collect();
        op.record_audit(&first).await.unwrap();
        op.address()
    });
    Seed {
        anvil,
        contract,
        t0,
        alice,
        bob,
        carol,
        dave,
    }
}

/// `flytrap ui` on a free port; killed by PID when dropped.
struct Ui {
    child: Child,
    base: String,
}

impl Ui {
    fn start(s: &Seed, index: &Path) -> Ui {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flytrap"))
            .args(["ui", "--listen", "127.0.0.1:0", "--rpc"])
            .arg(s.anvil.url())
            .arg("--contract")
            .arg(format!("{:#x}", s.contract))
            .arg("--index")
            .arg(index)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("flytrap ui: ")
            .unwrap_or_else(|| panic!("flytrap ui did not start: {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Ui { child, base }
    }

    /// GET `path`: status and JSON body.
    fn get(&self, path: &str) -> (u16, Value) {
        let addr = self.base.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let json = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body:?}"));
        (status, json)
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(a: &Address) -> String {
    format!("{a:#x}")
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[test]
fn bad_input_gets_4xx_with_a_message() {
    let s = seed();
    let dir = tempfile::tempdir().unwrap();
    let ui = Ui::start(&s, dir.path());
    let a = hex(&s.alice);
    let cases: Vec<(String, u16, &str)> = vec![
        ("/api/client/0x1234".into(), 400, "malformed address"),
        ("/api/client/alice".into(), 400, "malformed address"),
        (
            format!("/api/client/{}", a.replace("0x", "0X")),
            400,
            "malformed address",
        ),
        (
            "/api/changes?address=0xZZ".into(),
            400,
            "address: malformed address",
        ),
        (
            "/api/changes?since=2026-02-01&until=2026-01-01".into(),
            400,
            "inverted time window",
        ),
        (
            "/api/sensitive?since=200&until=100".into(),
            400,
            "inverted time window",
        ),
        (
            "/api/failures?since=yesterday".into(),
            400,
            "since: bad time",
        ),
        (
            "/api/changes?topic=no/such".into(),
            404,
            "unknown topic 'no/such'",
        ),
        (
            "/api/sensitive?topic=nope".into(),
            404,
            "unknown topic 'nope'",
        ),
        ("/api/topic?name=nope".into(), 404, "unknown topic 'nope'"),
        ("/api/topics?limit=5000".into(), 400, "limit"),
        ("/api/topics?page=2".into(), 400, "unknown parameter 'page'"),
        ("/api/status?x=1".into(), 400, "unknown parameter 'x'"),
        ("/api/topic".into(), 400, "which topic"),
        ("/api/changes?action=read".into(), 400, "not pub or sub"),
        ("/api/changes?change=delete".into(), 400, "change: 'delete'"),
        (
            "/api/changes?tpoic=x".into(),
            400,
            "unknown parameter 'tpoic'",
        ),
        ("/api/changes?limit=-1".into(), 400, "limit"),
        ("/api/failures?buckets=100000".into(), 400, "buckets"),
        ("/api/audit/everything".into(), 404, "unknown report"),
        ("/api/audit/client".into(), 400, "which client"),
        (
            format!("/api/audit/bans?address={a}"),
            400,
            "only the client report",
        ),
        ("/api/tx/0x12".into(), 400, "malformed transaction hash"),
        (
            format!("/api/tx/0x{}", "ab".repeat(32)),
            404,
            "unknown transaction",
        ),
        ("/api/block/x".into(), 400, "malformed block number"),
        ("/api/block/99999999".into(), 404, "unknown block"),
        ("/api/nothing".into(), 404, "no such page"),
        ("/nothing".into(), 404, "no such page"),
    ];
    for (path, status, needle) in cases {
        let (got, body) = ui.get(&path);
        let msg = body["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "GET {path}: {body}");
        assert!(msg.contains(needle), "GET {path}: {msg:?} lacks {needle:?}");
    }
    // Good input still works after all that.
    let (status, body) = ui.get(&format!("/api/client/{a}"));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_api_agrees_with_the_command_line_and_the_index_with_a_full_scan() {
    let s = seed();
    let dir = tempfile::tempdir().unwrap();
    let ui = Ui::start(&s, dir.path());
    let cli = |args: &[&str]| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_flytrap"))
            .args(args)
            .args(["--json", "--rpc", &s.anvil.url(), "--contract"])
            .arg(hex(&s.contract))
            .arg("--index")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let since = (s.t0 + 150).to_string();
    let until = (s.t0 + 3 * DAY).to_string();
    let a = hex(&s.alice);
    for (report, who) in [
        ("failures", None),
        ("bans", None),
        ("sensitive", None),
        ("changes", None),
        ("client", Some(a.as_str())),
    ] {
        for window in [None, Some((&since, &until))] {
            let mut args = vec!["audit", report];
            let mut path = format!("/api/audit/{report}?");
            if let Some(w) = who {
                args.push(w);
                path.push_str(&format!("address={w}&"));
            }
            if let Some((f, t)) = window {
                args.extend(["--since", f, "--until", t]);
                path.push_str(&format!("since={f}&until={t}"));
            }
            let (status, api) = ui.get(&path);
            assert_eq!(status, 200, "{api}");
            assert_eq!(api, cli(&args), "{report} {window:?}");
        }
    }
    let (_, failures) = ui.get(&format!("/api/audit/failures?since={since}&until={until}"));
    assert_eq!(failures.as_array().unwrap().len(), 5, "{failures}");

    // The index gives what a scan of every block gives, for windows around every record.
    rt().block_on(async {
        let c = Client::new(&s.anvil.url(), s.contract, None).unwrap();
        let mut r = Reader::open(c, Some(dir.path())).await.unwrap();
        r.refresh().await.unwrap();
        let all = r
            .full_scan(&Query {
                kinds: u32::MAX,
                ..Query::default()
            })
            .await
            .unwrap();
        let mut times: Vec<u64> = all.records.iter().map(|x| x.time).collect();
        times.extend([0, s.t0, u64::MAX]);
        times.sort_unstable();
        times.dedup();
        let kinds = [
            u32::MAX,
            Kind::Acl.bit(),
            Kind::Sensitive.bit(),
            Kind::set(&[Kind::ConnectFailed, Kind::Ban]),
        ];
        let mut checked = 0;
        for (i, &from) in times.iter().enumerate() {
            for &to in &times[i..] {
                for (lo, hi) in [
                    (from, to),
                    (from.saturating_add(1), to),
                    (from, to.saturating_sub(1)),
                ] {
                    let Ok(window) = Window::new(Some(lo), Some(hi)) else {
                        continue;
                    };
                    for kinds in kinds {
                        let q = Query {
                            kinds,
                            window,
                            ..Query::default()
                        };
                        let fast = r.query(&q).await.unwrap().records;
                        let slow = r.full_scan(&q).await.unwrap().records;
                        assert_eq!(fast, slow, "window {lo}..{hi} kinds {kinds:b}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
        // A narrow window reads only the blocks that can hold its records.
        let q = Report::Bans
            .query(None, Window::new(Some(s.t0 + 4 * DAY), None).unwrap())
            .unwrap();
        let job = r.job(&q);
        assert_eq!(job.ranges().len(), 1, "{:?}", job.ranges());
        assert_eq!(job.ranges()[0].0, job.ranges()[0].1);
    });
}

#[test]
fn a_browser_shows_every_view_as_seeded() {
    let browser = browser_dir();
    assert!(
        browser.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists()
            || std::env::var_os("FLYTRAP_CHROMIUM").is_some(),
        "the browser test needs chromium and playwright-core: run scripts/deps.sh (make deps)"
    );
    let s = seed();
    let dir = tempfile::tempdir().unwrap();
    let ui = Ui::start(&s, dir.path());
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../ui-screenshots");
    let since = s.t0.to_string();
    let until = (s.t0 + 5 * DAY + 1800).to_string();
    let out = Command::new("node")
        .arg(browser.join("drive.mjs"))
        .arg(format!("{}/", ui.base))
        .arg(&shots)
        .arg(hex(&s.alice))
        .env("FLYTRAP_UI_WINDOW", format!("[\"{since}\", \"{until}\"]"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the browser driver failed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = |x: &Value| -> Vec<Vec<String>> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    let (alice, bob, carol, dave) = (hex(&s.alice), hex(&s.bob), hex(&s.carol), hex(&s.dave));
    assert_eq!(v["console_errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["foreign_requests"], serde_json::json!([]), "{v}");
    assert!(v["chain"].as_str().unwrap().contains(&hex(&s.contract)));

    // Topics: owner, countries, fees, sensitive flag, members.
    let topics = rows(&v["topics"]);
    assert_eq!(topics.len(), 3, "{topics:?}");
    let op = hex(&key(0).address());
    let plant = &topics[0];
    assert_eq!(plant[0], "plant/+/temp");
    assert_eq!(plant[1], op);
    assert_eq!(plant[2], "DE FR");
    assert_eq!(
        (plant[3].as_str(), plant[4].as_str()),
        ("1000 wei", "closed")
    );
    assert_eq!(plant[5], "no");
    let mut pubs = [alice.clone(), dave.clone()];
    pubs.sort();
    assert_eq!(plant[6], pubs.join("\n"));
    assert_eq!(plant[7], "none", "bob's subscription was revoked");
    assert_eq!(&topics[1][2..6], ["anywhere", "closed", "free", "no"]);
    assert_eq!(topics[1][7], alice);
    assert_eq!(topics[2][0], "secret/vault");
    assert_eq!(topics[2][5], "yes");
    assert_eq!(
        (topics[2][6].as_str(), topics[2][7].as_str()),
        (carol.as_str(), alice.as_str())
    );

    // Search and pages, answered by the server.
    assert_eq!(v["topics_status"], "topics 1–3 of 3");
    let search = rows(&v["topics_search"]);
    assert_eq!(search.len(), 1, "{search:?}");
    assert_eq!(search[0][0], "secret/vault");
    assert_eq!(
        v["topics_search_status"],
        "topics 1–1 of 1 matching (3 in all)"
    );
    assert_eq!(
        v["topics_page1"],
        serde_json::json!(["plant/+/temp", "office/door"])
    );
    assert_eq!(v["topics_page2"], serde_json::json!(["secret/vault"]));
    assert_eq!(v["topics_page2_status"], "topics 3–3 of 3");
    assert_eq!(v["topics_next_disabled"], true);
    assert_eq!(v["topics_back"], v["topics_page1"]);

    // ACL history, newest first; filtered by topic and change; every row links.
    let changes = rows(&v["changes"]);
    let words: Vec<&str> = changes.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        words,
        [
            "join", "revoke", "grant", "grant", "grant", "grant", "grant", "created", "created",
            "created"
        ]
    );
    assert_eq!(changes[0][4], dave);
    assert_eq!(changes[1][6], "left the team");
    let filtered = rows(&v["changes_filtered"]);
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(
        (
            filtered[0][2].as_str(),
            filtered[0][3].as_str(),
            filtered[0][4].as_str()
        ),
        ("plant/+/temp", "sub", bob.as_str())
    );
    assert!(
        v["changes_filtered_hash"]
            .as_str()
            .unwrap()
            .contains("change=revoke")
    );
    for l in v["changes_links"].as_array().unwrap() {
        assert!(l["tx"].as_str().unwrap().starts_with("/api/tx/0x"), "{l}");
        assert!(
            l["block"].as_str().unwrap().starts_with("/api/block/"),
            "{l}"
        );
    }

    // Failures and bans: counts, chart, countries, reasons, records.
    let f = &v["failures"];
    assert_eq!(f["counts"]["connect_failed"], "3");
    assert_eq!(f["counts"]["wrong_country"], "3");
    assert_eq!(f["counts"]["bans"], "2");
    assert!(f["bars"].as_u64().unwrap() >= 3, "{f}");
    assert_eq!(
        rows(&f["by_country"]),
        [["US".to_string(), "2".into()], ["CN".into(), "1".into()]]
    );
    assert_eq!(rows(&f["by_reason"]).len(), 3);
    let records = rows(&f["records"]);
    assert_eq!(records.len(), 8);
    assert_eq!(records[0][1], "ban", "newest first: {records:?}");
    assert_eq!(records[0][2], "198.51.100.9");
    assert!(records.iter().all(|r| r[5].parse::<u64>().is_ok()));
    assert_eq!(f["links"].as_array().unwrap().len(), 8);

    // The client view of alice: the topics she may use, and the records naming her.
    let c = &v["client"];
    let ct = rows(&c["topics"]);
    let summary: Vec<(&str, &str, &str)> = ct
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("plant/+/temp", "yes", "no"),
            ("office/door", "no", "yes"),
            ("secret/vault", "no", "yes")
        ]
    );
    let client_records = rows(&c["records"]);
    let kinds: Vec<&str> = client_records.iter().map(|r| r[1].as_str()).collect();
    let mut k = kinds.clone();
    k.sort_unstable();
    assert_eq!(
        k,
        [
            "acl-change",
            "acl-change",
            "acl-change",
            "connect-failed",
            "sensitive-report",
            "sensitive-report",
            "wrong-country"
        ],
        "{kinds:?}"
    );
    assert!(
        v["client_error"]
            .as_str()
            .unwrap()
            .contains("malformed address '0x1234'"),
        "{v}"
    );

    // Sensitive topics over the chosen window: the two vault reports, not the plant one.
    let sens = &v["sensitive"];
    let agg = rows(&sens["aggregate"]);
    assert_eq!(agg.len(), 1, "{agg:?}");
    assert_eq!(
        (agg[0][0].as_str(), agg[0][1].as_str()),
        ("secret/vault", "2")
    );
    let mut p = [carol.clone(), dave.clone()];
    p.sort();
    let mut r = [alice.clone(), bob.clone()];
    r.sort();
    assert_eq!(agg[0][3], p.join("\n"));
    assert_eq!(agg[0][4], r.join("\n"));
    assert_eq!(rows(&sens["reports"]).len(), 2);
    assert_eq!(
        rows(&v["sensitive_all"]).len(),
        2,
        "both topics without a window"
    );
    assert!(
        v["sensitive_inverted"]
            .as_str()
            .unwrap()
            .contains("inverted time window")
    );

    // A record's links: the page's JSON views of its transaction and block.
    assert_eq!(v["tx"]["status"], "success");
    assert_eq!(v["tx"]["records"][0]["change"], "join");
    assert_eq!(v["block"]["number"], v["tx"]["block"]);
    assert!(
        v["block"]["transactions"]
            .as_array()
            .unwrap()
            .contains(&v["tx"]["hash"])
    );

    let shots: Vec<&str> = v["screenshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(shots.len(), 9);
    for p in &shots {
        assert!(std::fs::metadata(p).unwrap().len() > 1000, "{p}");
    }
    eprintln!("screenshots: {}", shots.join(" "));
}

/// A reorg: blocks already indexed are replaced (anvil's snapshot and revert); the next refresh
/// drops them and reads the new ones, and the index still agrees with a full scan, also after
/// reopening the file.
#[test]
fn a_replaced_tail_is_read_again() {
    use flytrap_chain::alloy::providers::Provider;
    let anvil = Anvil::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ban = |seq: u64, time: u64| Spooled {
        seq,
        record: AuditRecord::Ban {
            ip: "192.0.2.9".parse().unwrap(),
            until: time + 300,
            failures: 5,
            time,
        },
    };
    rt().block_on(async {
        let (op, _) = Client::deploy(&anvil.url(), key(0)).await.unwrap();
        let all = Query {
            kinds: u32::MAX,
            ..Query::default()
        };
        op.record_audit(&[ban(1, 1_000)]).await.unwrap();
        let snapshot: Value = op
            .provider()
            .raw_request("evm_snapshot".into(), ())
            .await
            .unwrap();
        op.record_audit(&[ban(2, 2_000)]).await.unwrap();
        let reader = Client::new(&anvil.url(), op.address(), None).unwrap();
        let mut r = Reader::open(reader.clone(), Some(dir.path()))
            .await
            .unwrap();
        r.refresh().await.unwrap();
        let times =
            |a: &flytrap::report::Answer| a.records.iter().map(|x| x.time).collect::<Vec<_>>();
        assert_eq!(times(&r.query(&all).await.unwrap()), [1_000, 2_000]);

        let reverted: bool = op
            .provider()
            .raw_request("evm_revert".into(), (snapshot,))
            .await
            .unwrap();
        assert!(reverted);
        // The replacement chain: the same height again, other records.
        op.record_audit(&[ban(2, 3_000)]).await.unwrap();
        op.record_audit(&[ban(3, 4_000)]).await.unwrap();
        r.refresh().await.unwrap();
        let fast = r.query(&all).await.unwrap();
        assert_eq!(times(&fast), [1_000, 3_000, 4_000]);
        assert_eq!(fast.records, r.full_scan(&all).await.unwrap().records);

        let mut again = Reader::open(reader, Some(dir.path())).await.unwrap();
        again.refresh().await.unwrap();
        assert_eq!(again.index().entries(), r.index().entries());
        assert_eq!(again.query(&all).await.unwrap().records, fast.records);
    });
}

#[test]
fn topics_are_paged_and_searched_from_the_events_and_status_shows_the_progress() {
    let s = seed();
    let dir = tempfile::tempdir().unwrap();
    let ui = Ui::start(&s, dir.path());
    // The index catches up in the background; /api/status answers at once meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (code, st) = ui.get("/api/status");
        assert_eq!(code, 200, "{st}");
        if st["ready"] == true || std::time::Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["indexed_block"], status["head"], "{status}");
    assert_eq!(status["loaded_block"], status["head"], "{status}");
    assert_eq!(status["error"], Value::Null);

    let names = |v: &Value| -> Vec<String> {
        v["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, p1) = ui.get("/api/topics?limit=2");
    assert_eq!(code, 200, "{p1}");
    assert_eq!(
        (p1["total"].as_u64(), p1["all"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        names(&p1),
        ["plant/+/temp", "office/door"],
        "creation order"
    );
    let (_, p2) = ui.get("/api/topics?limit=2&offset=2");
    assert_eq!(names(&p2), ["secret/vault"]);
    assert_eq!(p2["topics"][0]["sensitive"], true);
    assert_eq!(
        p2["topics"][0]["publishers"],
        serde_json::json!([hex(&s.carol)])
    );
    let (_, found) = ui.get("/api/topics?query=VAULT");
    assert_eq!(
        (names(&found), found["total"].as_u64()),
        (vec!["secret/vault".to_string()], Some(1))
    );
    // An address finds the topics it owns or is a member of.
    let (_, dave) = ui.get(&format!("/api/topics?query={}", hex(&s.dave)));
    assert_eq!(names(&dave), ["plant/+/temp"]);
    let (_, none) = ui.get("/api/topics?query=no-such-topic");
    assert_eq!((none["total"].as_u64(), names(&none).len()), (Some(0), 0));
    // The one-topic view agrees with the list (members from the events, countries and fees
    // from the contract).
    let (_, plant) = ui.get("/api/topic?name=plant/%2B/temp");
    assert_eq!(plant, p1["topics"][0]);
    assert_eq!(plant["countries"], serde_json::json!(["DE", "FR"]));
}

#[test]
fn a_long_chain_is_caught_up_in_bounded_steps_and_reloaded_after_a_restart() {
    use flytrap_chain::alloy::providers::Provider as _;
    let s = seed();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let c = Client::new(&s.anvil.url(), s.contract, None).unwrap();
        // Steps of 8 blocks over the seeded chain and 10 empty blocks after it.
        let _: Value = c
            .provider()
            .raw_request("anvil_mine".into(), (10,))
            .await
            .unwrap();
        let head = c.block_number().await.unwrap();
        const STEP: u64 = 8;
        let steps = (head + 1).div_ceil(STEP) as usize;
        let mut r = Reader::open(c.clone(), Some(dir.path())).await.unwrap();
        r.set_step_blocks(STEP);
        r.keep_records();
        let mut seen = Vec::new();
        loop {
            let p = r.step().await.unwrap();
            seen.push(p);
            if p.ready {
                break;
            }
            assert!(seen.len() <= steps, "{seen:?}");
        }
        assert!(steps >= 3, "{head}");
        assert_eq!(seen.len(), steps, "{seen:?}");
        for (i, p) in seen.iter().enumerate() {
            let end = (i as u64 + 1) * STEP - 1;
            assert_eq!(p.indexed_block, Some(end.min(head)), "{seen:?}");
            assert_eq!(p.loaded_block, p.indexed_block);
            assert_eq!(p.head, head);
            assert_eq!(p.ready, i + 1 == steps);
        }
        let all = Query {
            kinds: u32::MAX,
            ..Query::default()
        };
        let from_memory = r.query(&all).await.unwrap().records;
        assert_eq!(from_memory, r.full_scan(&all).await.unwrap().records);
        let acl = r.acl();
        assert_eq!(acl.len(), 3);
        let plant = acl.get(&topic_id("plant/+/temp")).unwrap();
        assert!(plant.publishers.contains(&s.alice) && plant.publishers.contains(&s.dave));
        assert!(plant.subscribers.is_empty(), "bob was revoked");

        // A restart: the index is on disk, the topic list and the records are read again,
        // from the indexed blocks that hold logs only.
        let mut again = Reader::open(c, Some(dir.path())).await.unwrap();
        again.set_step_blocks(STEP);
        again.keep_records();
        let p = again.step().await.unwrap();
        assert_eq!(p.indexed_block, Some(head));
        assert_eq!(p.loaded_block, Some(STEP - 1));
        assert!(!p.ready, "{p:?}");
        again.refresh().await.unwrap();
        assert!(again.progress().ready);
        assert_eq!(again.query(&all).await.unwrap().records, from_memory);
        assert_eq!(again.acl().topics(), acl.topics());
    });
}
