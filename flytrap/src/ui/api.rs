//! The JSON API of the web page. Every answer is JSON; a question that is wrong gets 400 and
//! one that names something unknown gets 404, both as `{"error": "..."}`; a failing node is
//! 503 (unreachable) or 502. Lists of records come newest first, paged by `limit` (default
//! 500, at most 10,000) and `offset`, with the `total` that matched.
//!
//! | route | what |
//! |---|---|
//! | `/api/status` | how far the index has caught up (`head`, `indexed_block`, `loaded_block`, `ready`), answered at once |
//! | `/api/info` | chain id, contract, head and indexed block, explorer base URL |
//! | `/api/topics?query&offset&limit` · `/api/topic?name=` | topics (a page of them, in creation order; `query`: part of the name, or an owner's or member's address): owner, countries, fees, sensitive flag, publishers, subscribers |
//!
//! Topics and members come from the contract's events (the reader's [`Acl`]); countries,
//! fees and the sensitive flag from the contract's `topic` view, cached per topic until an
//! `updated` change of it is seen. Records are answered from the reader's memory. While the
//! reader catches up with a long chain, every route but `/api/status` answers 503 with
//! `"indexing": true` and the progress.
//! | `/api/changes?topic&address&action&change&since&until` | the ACL change history |
//! | `/api/failures?since&until&address&buckets` | failed CONNECTs, wrong-country refusals and bans; counts per time bucket, per country, per reason |
//! | `/api/client/ADDRESS?since&until` | the topics an address may use, and every record naming it |
//! | `/api/sensitive?since&until&topic` | sensitive-topic reports, aggregated per topic over the window |
//! | `/api/audit/REPORT?address&since&until` | exactly `flytrap audit REPORT --json` |
//! | `/api/tx/HASH` · `/api/block/N` | a transaction or block, with the records it holds |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flytrap_chain::alloy::providers::Provider;
use flytrap_chain::alloy::rpc::types::BlockNumberOrTag;
use flytrap_chain::{Action, Address, B256, Change, Client, TopicInfo, parse_address, topic_id};
use serde_json::{Value, json};

use super::AppState;
use crate::cmd::time::{format_time, parse_time};
use crate::report::acl::{Acl, Topic};
use crate::report::{self, Answer, Body, Error, Kind, Names, Record, Report, Window, logs};

type St = State<Arc<AppState>>;
type Map = HashMap<String, String>;
type Reply = Result<Json<Value>, ApiError>;

/// An error answer: status and message.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::BadInput(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Chain(c) if c.is_unreachable() => StatusCode::SERVICE_UNAVAILABLE,
            Error::Chain(_) => StatusCode::BAD_GATEWAY,
            Error::Index(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<flytrap_chain::Error> for ApiError {
    fn from(e: flytrap_chain::Error) -> ApiError {
        Error::Chain(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Unknown paths.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", uri.path()),
    )
}

/// The API's routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/status", get(status))
        .route("/info", get(info))
        .route("/topics", get(topics))
        .route("/topic", get(topic))
        .route("/changes", get(changes))
        .route("/failures", get(failures))
        .route("/client/{address}", get(client))
        .route("/sensitive", get(sensitive))
        .route("/audit/{report}", get(audit))
        .route("/tx/{hash}", get(tx))
        .route("/block/{number}", get(block))
        .fallback(not_found)
}

// ------------------------------------------------------------------ parameters

/// Fails on a parameter the route does not take (a typo would otherwise be ignored silently).
fn only(p: &Map, allowed: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = p
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    unknown.sort_unstable();
    match unknown.first() {
        None => Ok(()),
        Some(k) => Err(ApiError::bad(format!(
            "unknown parameter '{k}' (this route takes: {})",
            allowed.join(", ")
        ))),
    }
}

/// A parameter, with empty values treated as absent (what an empty form field sends).
fn param<'a>(p: &'a Map, name: &str) -> Option<&'a str> {
    p.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn window(p: &Map) -> Result<Window, ApiError> {
    let t = |name: &str| {
        param(p, name)
            .map(|v| parse_time(v).map_err(|e| ApiError::bad(format!("{name}: {e}"))))
            .transpose()
    };
    Ok(Window::new(t("since")?, t("until")?)?)
}

fn address(what: &str, s: &str) -> Result<Address, ApiError> {
    parse_address(s).map_err(|e| ApiError::bad(format!("{what}: {e}")))
}

fn number(p: &Map, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    match param(p, name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::bad(format!(
                "{name}: '{v}' is not a whole number from 0 to {max}"
            ))),
        },
    }
}

/// A topic id by name, or 404 when no topic of that name was created.
fn known_topic(names: &Names, name: &str) -> Result<B256, ApiError> {
    let id = topic_id(name);
    if names.contains_key(&id) {
        Ok(id)
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown topic '{name}'"),
        ))
    }
}

// ------------------------------------------------------------------ queries

/// The reader, up to date: while it is still catching up with a long chain, one more step
/// of that is taken here and, if it is still not done, 503 with the progress.
async fn fresh(s: &AppState) -> Result<tokio::sync::MutexGuard<'_, report::Reader>, ApiError> {
    let mut r = s.reader.lock().await;
    if !r.progress().ready {
        let p = r.step().await?;
        s.set_progress(p);
        if !p.ready {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the index is catching up with the chain: block {} of {} (see /api/status)",
                    p.loaded_block.map_or(0, |b| b + 1),
                    p.head
                ),
            ));
        }
    }
    r.refresh().await?;
    s.set_progress(r.progress());
    Ok(r)
}

/// Refreshes the reader and answers `q` (from memory: the page's reader keeps the records).
async fn ask(s: &AppState, q: &report::Query) -> Result<Answer, ApiError> {
    let job = {
        let r = fresh(s).await?;
        if let Some(a) = r.answer_from_memory(q) {
            return Ok(a);
        }
        r.job(q)
    };
    Ok(job.run().await?)
}

async fn names(s: &AppState) -> Result<Arc<Names>, ApiError> {
    Ok(fresh(s).await?.names())
}

async fn acl(s: &AppState) -> Result<Arc<Acl>, ApiError> {
    Ok(fresh(s).await?.acl())
}

async fn chain_client(s: &AppState) -> Client {
    s.reader.lock().await.client().clone()
}

/// A page of records, newest first.
fn page(p: &Map, records: &[Record], names: &Names) -> Result<Value, ApiError> {
    let limit = number(p, "limit", 500, 10_000)? as usize;
    let offset = number(p, "offset", 0, u64::MAX)? as usize;
    let shown: Vec<Value> = records
        .iter()
        .rev()
        .skip(offset)
        .take(limit)
        .map(|r| r.json(names))
        .collect();
    Ok(json!({"total": records.len(), "offset": offset, "limit": limit, "records": shown}))
}

const PAGING: [&str; 2] = ["limit", "offset"];

fn allowed<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = extra.to_vec();
    v.extend(PAGING);
    v
}

// ------------------------------------------------------------------ routes

async fn status(State(s): St, Params(p): Params<Map>) -> Reply {
    only(&p, &[])?;
    let progress = s.progress();
    let failure = s.failure.lock().ok().and_then(|f| f.clone());
    Ok(Json(json!({
        "head": progress.head,
        "indexed_block": progress.indexed_block,
        "loaded_block": progress.loaded_block,
        "ready": progress.ready,
        "error": failure,
    })))
}

async fn info(State(s): St) -> Reply {
    let r = {
        let r = fresh(&s).await?;
        let key = *r.index().key();
        json!({
            "chain_id": key.chain_id,
            "contract": format!("{:#x}", key.contract),
            "rpc": r.client().url(),
            "indexed_block": r.index().tip().map(|t| t.0),
            "indexed_blocks_with_logs": r.index().entries().len(),
            "index_file": r.index().path().map(|p| p.display().to_string()),
            "explorer": s.explorer,
        })
    };
    Ok(Json(r))
}

/// The contract's metadata of these topics (countries, fees, sensitive flag): from the cache
/// when still fresh, else read (concurrently) and cached.
async fn metadata(s: &AppState, topics: &[&Topic]) -> Result<Vec<TopicInfo>, ApiError> {
    let mut cache = s.meta.lock().await;
    let missing: Vec<(B256, u64)> = topics
        .iter()
        .filter(|t| cache.get(&t.id).is_none_or(|(b, _)| *b != t.changed_block))
        .map(|t| (t.id, t.changed_block))
        .collect();
    if !missing.is_empty() {
        let c = chain_client(s).await;
        let mut tasks = tokio::task::JoinSet::new();
        for (id, changed) in missing {
            let c = c.clone();
            tasks.spawn(async move { (id, changed, c.topic(id).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (id, changed, info) =
                done.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            if let Some(info) = info? {
                cache.insert(id, (changed, info));
            }
        }
    }
    Ok(topics
        .iter()
        .map(|t| {
            let mut info = cache
                .get(&t.id)
                .map(|(_, i)| i.clone())
                .unwrap_or(TopicInfo {
                    id: t.id,
                    name: String::new(),
                    owner: t.owner,
                    countries: Vec::new(),
                    pub_fee: flytrap_chain::Fee::Free,
                    sub_fee: flytrap_chain::Fee::Free,
                    sensitive: false,
                });
            info.name = t.name.clone();
            info
        })
        .collect())
}

fn topic_json(t: &Topic, info: &TopicInfo) -> Value {
    let fee = |f: &flytrap_chain::Fee| match f {
        flytrap_chain::Fee::Wei(w) => json!({"text": f.to_string(), "wei": w.to_string()}),
        _ => json!({"text": f.to_string(), "wei": null}),
    };
    let hex = |v: &std::collections::BTreeSet<Address>| {
        v.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>()
    };
    json!({
        "name": t.name,
        "id": format!("{:#x}", t.id),
        "owner": format!("{:#x}", t.owner),
        "countries": info.countries.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "pub_fee": fee(&info.pub_fee),
        "sub_fee": fee(&info.sub_fee),
        "sensitive": info.sensitive,
        "publishers": hex(&t.publishers),
        "subscribers": hex(&t.subscribers),
    })
}

/// Does topic `t` answer the search `q` (part of its name, case-insensitive, or the exact
/// address of its owner or of a member)?
fn topic_matches(t: &Topic, q: &str, who: Option<&Address>) -> bool {
    if let Some(a) = who {
        return &t.owner == a || t.publishers.contains(a) || t.subscribers.contains(a);
    }
    t.name.to_lowercase().contains(q)
}

async fn topics(State(s): St, Params(p): Params<Map>) -> Reply {
    only(&p, &allowed(&["query"]))?;
    let limit = number(&p, "limit", 50, 1_000)? as usize;
    let offset = number(&p, "offset", 0, u64::MAX)? as usize;
    let query = param(&p, "query").unwrap_or("").to_lowercase();
    let who = parse_address(&query).ok();
    let acl = acl(&s).await?;
    let matching: Vec<&Topic> = acl
        .topics()
        .iter()
        .filter(|t| query.is_empty() || topic_matches(t, &query, who.as_ref()))
        .collect();
    let shown: Vec<&Topic> = matching.iter().skip(offset).take(limit).copied().collect();
    let infos = metadata(&s, &shown).await?;
    let list: Vec<Value> = shown
        .iter()
        .zip(&infos)
        .map(|(t, i)| topic_json(t, i))
        .collect();
    Ok(Json(json!({
        "total": matching.len(),
        "all": acl.len(),
        "offset": offset,
        "limit": limit,
        "query": query,
        "topics": list,
    })))
}

async fn topic(State(s): St, Params(p): Params<Map>) -> Reply {
    only(&p, &["name"])?;
    let name = param(&p, "name").ok_or_else(|| ApiError::bad("name: which topic?"))?;
    let acl = acl(&s).await?;
    let t = acl
        .get(&topic_id(name))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown topic '{name}'")))?;
    let info = metadata(&s, &[t]).await?;
    Ok(Json(topic_json(t, &info[0])))
}

async fn changes(State(s): St, Params(p): Params<Map>) -> Reply {
    only(
        &p,
        &allowed(&["topic", "address", "action", "change", "since", "until"]),
    )?;
    let window = window(&p)?;
    let names = names(&s).await?;
    let topic = param(&p, "topic")
        .map(|t| known_topic(&names, t))
        .transpose()?;
    let address = param(&p, "address")
        .map(|a| address("address", a))
        .transpose()?;
    let action = match param(&p, "action") {
        None => None,
        Some("pub") => Some(Action::Publish),
        Some("sub") => Some(Action::Subscribe),
        Some(o) => return Err(ApiError::bad(format!("action: '{o}' is not pub or sub"))),
    };
    let change = match param(&p, "change") {
        None => None,
        Some(w) => Some(
            (0..=4)
                .map(Change::from_code)
                .find(|c| c.word() == w)
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "change: '{w}' is not one of created, grant, revoke, join, updated"
                    ))
                })?,
        ),
    };
    let q = report::Query {
        kinds: Kind::Acl.bit(),
        window,
        address,
        topic,
        action,
        change,
    };
    let a = ask(&s, &q).await?;
    Ok(Json(page(&p, &a.records, &a.names)?))
}

/// Time buckets over the window (or the records' span when an end is open).
fn timeline(window: &Window, records: &[Record], n: u64) -> Value {
    let first = records.first().map_or(0, |r| r.time);
    let last = records.last().map_or(0, |r| r.time);
    let start = window.since().unwrap_or(first);
    let end = window.until().unwrap_or(last).max(start);
    let width = ((end - start) / n + 1).max(1);
    let mut buckets: Vec<[u64; 3]> = vec![[0; 3]; n as usize];
    for r in records {
        let i = ((r.time.saturating_sub(start)) / width).min(n - 1) as usize;
        let k = match r.kind() {
            Kind::ConnectFailed => 0,
            Kind::WrongCountry => 1,
            _ => 2,
        };
        buckets[i][k] += 1;
    }
    let list: Vec<Value> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({"start": start + i as u64 * width, "connect_failed": b[0],
                "wrong_country": b[1], "bans": b[2]})
        })
        .collect();
    json!({"start": start, "end": end, "bucket_s": width, "buckets": list})
}

async fn failures(State(s): St, Params(p): Params<Map>) -> Reply {
    only(&p, &allowed(&["since", "until", "address", "buckets"]))?;
    let window = window(&p)?;
    let address = param(&p, "address")
        .map(|a| address("address", a))
        .transpose()?;
    let n = number(&p, "buckets", 24, 500)?.max(1);
    let q = report::Query {
        kinds: Kind::set(&[Kind::ConnectFailed, Kind::WrongCountry, Kind::Ban]),
        window,
        address,
        ..report::Query::default()
    };
    let a = ask(&s, &q).await?;
    let mut by_country: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_reason: BTreeMap<u8, u64> = BTreeMap::new();
    let mut counts = [0u64; 3];
    for r in &a.records {
        match &r.body {
            Body::ConnectFailed { reason, .. } => {
                counts[0] += 1;
                *by_reason.entry(*reason).or_default() += 1;
            }
            Body::WrongCountry { country, .. } => {
                counts[1] += 1;
                *by_country.entry(country.to_string()).or_default() += 1;
            }
            _ => counts[2] += 1,
        }
    }
    let mut countries: Vec<(String, u64)> = by_country.into_iter().collect();
    countries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = page(&p, &a.records, &a.names)?;
    out["counts"] =
        json!({"connect_failed": counts[0], "wrong_country": counts[1], "bans": counts[2]});
    out["by_country"] = countries
        .iter()
        .map(|(c, n)| json!({"country": c, "count": n}))
        .collect();
    out["by_reason"] = by_reason
        .iter()
        .map(|(r, n)| json!({"reason": r, "reason_text": report::reason_name(*r), "count": n}))
        .collect();
    out["timeline"] = timeline(&window, &a.records, n);
    Ok(Json(out))
}

async fn client(State(s): St, Path(who): Path<String>, Params(p): Params<Map>) -> Reply {
    only(&p, &allowed(&["since", "until"]))?;
    let who = address("address", &who)?;
    let window = window(&p)?;
    let q = Report::Client.query(Some(who), window)?;
    let a = ask(&s, &q).await?;
    // Its topics from the event-built list; their countries and sensitive flag in one
    // checkBatch call (not one call per topic).
    let acl = acl(&s).await?;
    let mine = acl.of_address(&who);
    let queries: Vec<flytrap_chain::Query> = mine
        .iter()
        .map(|t| flytrap_chain::Query {
            topic_id: t.id,
            who,
            action: Action::Publish,
        })
        .collect();
    let c = chain_client(&s).await;
    let mut answers = Vec::with_capacity(queries.len());
    for chunk in queries.chunks(500) {
        answers.extend(c.check_batch(chunk).await?);
    }
    let topics: Vec<Value> = mine
        .iter()
        .zip(&answers)
        .map(|(t, x)| {
            json!({"topic": t.name, "publish": t.publishers.contains(&who),
                "subscribe": t.subscribers.contains(&who), "owner": t.owner == who,
                "countries": x.countries.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "sensitive": x.sensitive})
        })
        .collect();
    let mut out = page(&p, &a.records, &a.names)?;
    out["address"] = json!(format!("{who:#x}"));
    out["topics"] = json!(topics);
    Ok(Json(out))
}

async fn sensitive(State(s): St, Params(p): Params<Map>) -> Reply {
    only(&p, &allowed(&["since", "until", "topic"]))?;
    let window = window(&p)?;
    let names = names(&s).await?;
    let topic = param(&p, "topic")
        .map(|t| known_topic(&names, t))
        .transpose()?;
    let q = report::Query {
        kinds: Kind::Sensitive.bit(),
        window,
        topic,
        ..report::Query::default()
    };
    let a = ask(&s, &q).await?;
    struct Agg {
        reports: u64,
        from: u64,
        to: u64,
        publishers: BTreeSet<Address>,
        receivers: BTreeSet<Address>,
    }
    let mut per: BTreeMap<String, (B256, Agg)> = BTreeMap::new();
    for r in &a.records {
        if let Body::Sensitive {
            topic,
            from,
            to,
            publishers,
            receivers,
            ..
        } = &r.body
        {
            let (_, g) = per
                .entry(report::topic_name(&a.names, topic))
                .or_insert_with(|| {
                    (
                        *topic,
                        Agg {
                            reports: 0,
                            from: *from,
                            to: *to,
                            publishers: BTreeSet::new(),
                            receivers: BTreeSet::new(),
                        },
                    )
                });
            g.reports += 1;
            g.from = g.from.min(*from);
            g.to = g.to.max(*to);
            g.publishers.extend(publishers.iter().copied());
            g.receivers.extend(receivers.iter().copied());
        }
    }
    let hex = |s: &BTreeSet<Address>| s.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>();
    let aggregate: Vec<Value> = per
        .iter()
        .map(|(name, (id, g))| {
            json!({"topic": name, "topic_id": format!("{id:#x}"), "reports": g.reports,
                "from": g.from, "to": g.to, "publishers": hex(&g.publishers),
                "receivers": hex(&g.receivers)})
        })
        .collect();
    let mut out = page(&p, &a.records, &a.names)?;
    out["aggregate"] = json!(aggregate);
    out["window"] = json!({"since": window.since(), "until": window.until(),
        "since_text": window.since().map(format_time), "until_text": window.until().map(format_time)});
    Ok(Json(out))
}

async fn audit(State(s): St, Path(name): Path<String>, Params(p): Params<Map>) -> Reply {
    only(&p, &["address", "since", "until"])?;
    let report = <Report as clap::ValueEnum>::from_str(&name, false).map_err(|_| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown report '{name}' (failures, bans, client, sensitive, changes)"),
        )
    })?;
    let who = param(&p, "address")
        .map(|a| address("address", a))
        .transpose()?;
    let q = report.query(who, window(&p)?)?;
    let a = ask(&s, &q).await?;
    // Oldest first and unpaged: the same array as `flytrap audit REPORT --json`.
    Ok(Json(Value::Array(
        a.records.iter().map(|r| r.json(&a.names)).collect(),
    )))
}

/// Every record logged in blocks `[from, to]` (ACL changes completed with their block's time
/// and, from the topic's owner in `acl`, their sender).
async fn records_in(c: &Client, acl: &Acl, from: u64, to: u64) -> Result<Vec<Record>, ApiError> {
    let mut out = Vec::new();
    let mut times = logs::BlockTimes::default();
    for log in logs::fetch(c, from, to, None).await? {
        if let Some(mut r) = logs::decode(&log)?.record {
            if r.kind() == crate::report::Kind::Acl {
                let t = times.of(c, &log).await?;
                logs::complete(&mut r, t, acl);
            }
            out.push(r);
        }
    }
    Ok(out)
}

async fn tx(State(s): St, Path(hash): Path<String>, Params(p): Params<Map>) -> Reply {
    only(&p, &[])?;
    let h: B256 = hash
        .strip_prefix("0x")
        .filter(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|_| hash.parse().ok())
        .ok_or_else(|| {
            ApiError::bad(format!(
                "malformed transaction hash '{hash}' (expected 0x and 64 hex digits)"
            ))
        })?;
    let c = chain_client(&s).await;
    let receipt = c
        .provider()
        .get_transaction_receipt(h)
        .await
        .map_err(|e| flytrap_chain::Error::from_rpc(e, c.url()))?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown transaction {h:#x}")))?;
    let block = receipt.block_number.unwrap_or_default();
    let names = names(&s).await?;
    let acl = acl(&s).await?;
    let records: Vec<Value> = records_in(&c, &acl, block, block)
        .await?
        .iter()
        .filter(|r| r.tx == h)
        .map(|r| r.json(&names))
        .collect();
    Ok(Json(json!({
        "hash": format!("{h:#x}"),
        "block": block,
        "from": format!("{:#x}", receipt.from),
        "to": receipt.to.map(|a| format!("{a:#x}")),
        "status": if receipt.status() { "success" } else { "reverted" },
        "gas_used": receipt.gas_used,
        "records": records,
    })))
}

async fn block(State(s): St, Path(n): Path<String>, Params(p): Params<Map>) -> Reply {
    only(&p, &[])?;
    let n: u64 = n.parse().map_err(|_| {
        ApiError::bad(format!(
            "malformed block number '{n}' (expected a whole number)"
        ))
    })?;
    let c = chain_client(&s).await;
    let b = c
        .provider()
        .get_block_by_number(BlockNumberOrTag::Number(n))
        .await
        .map_err(|e| flytrap_chain::Error::from_rpc(e, c.url()))?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown block {n}")))?;
    let names = names(&s).await?;
    let acl = acl(&s).await?;
    let records: Vec<Value> = records_in(&c, &acl, n, n)
        .await?
        .iter()
        .map(|r| r.json(&names))
        .collect();
    let txs: Vec<String> = b.transactions.hashes().map(|h| format!("{h:#x}")).collect();
    Ok(Json(json!({
        "number": n,
        "hash": format!("{:#x}", b.header.hash),
        "timestamp": b.header.timestamp,
        "time": format_time(b.header.timestamp),
        "transactions": txs,
        "records": records,
    })))
}
