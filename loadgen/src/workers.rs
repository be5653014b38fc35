//! Worker processes: a process may hold only as many connections as its open-file limit, so
//! `--workers N` runs N copies of this command, each with the clients k ≡ i (mod N), all on
//! the same schedule (the parent picks the time origin), and merges their reports.
//!
//! A worker prints `P connected failed done sent acked received` lines while it runs and one
//! `R <json>` line with its serialised counters at the end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

use crate::plan::Plan;
use crate::stats::Stats;

/// Per-worker progress, summed by the progress bar.
pub type Snapshots = Arc<Mutex<Vec<[u64; 6]>>>;

/// Starts the workers and waits for their reports.
pub fn supervise(plan: &Plan, snapshots: Snapshots) -> anyhow::Result<Stats> {
    let exe = std::env::current_exe().context("cannot find this program to start workers")?;
    // The children get the same command line (minus --quiet, which they always get).
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--quiet")
        .collect();
    let mut children = Vec::new();
    for i in 0..plan.workers {
        let child = Command::new(&exe)
            .args(&args)
            .arg("--worker")
            .arg(format!("{i}/{}", plan.workers))
            .arg("--epoch-ns")
            .arg(plan.epoch_ns.to_string())
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a worker")?;
        children.push(child);
    }
    let mut readers = Vec::new();
    for (i, child) in children.iter_mut().enumerate() {
        let Some(stdout) = child.stdout.take() else {
            bail!("worker {i}: no output pipe");
        };
        let snapshots = snapshots.clone();
        readers.push(std::thread::spawn(move || -> Option<String> {
            let mut report = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.strip_prefix("P ") {
                    let v: Vec<u64> = p.split(' ').filter_map(|n| n.parse().ok()).collect();
                    if let (Ok(v), Ok(mut s)) = (<[u64; 6]>::try_from(v), snapshots.lock()) {
                        s[i] = v;
                    }
                } else if let Some(r) = line.strip_prefix("R ") {
                    report = Some(r.to_string());
                }
            }
            report
        }));
    }
    let mut total = Stats::new();
    let mut failures = Vec::new();
    for (i, (mut child, reader)) in children.into_iter().zip(readers).enumerate() {
        let report = reader.join().ok().flatten();
        let status = child.wait().context("cannot wait for a worker")?;
        match report {
            Some(r) if status.success() || status.code() == Some(crate::EXIT_ERRORS) => {
                total.merge(&Stats::from_wire(&r).with_context(|| format!("worker {i}"))?);
            }
            _ => failures.push(format!("worker {i} failed ({status})")),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(total)
}
