//! The results of a run: `<phase>.hgrm` (HdrHistogram's percentile distribution, values in
//! microseconds, the format its plotters read), `summary.json`, and `latency.svg`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::plan::Plan;
use crate::stats::{Phase, Stats};

/// Writes every output into `plan.out` and returns the summary.
pub fn write_all(plan: &Plan, stats: &Stats, elapsed: Duration) -> anyhow::Result<Value> {
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create {}", plan.out.display()))?;
    for phase in Phase::ALL {
        let h = stats.histogram(phase);
        if h.is_empty() {
            continue;
        }
        let path = plan.out.join(format!("{}.hgrm", phase.name()));
        std::fs::write(&path, hgrm(h))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let summary = summary(plan, stats, elapsed);
    let path = plan.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    let path = plan.out.join("latency.svg");
    crate::plot::percentiles(stats, &plan.label, &path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(summary)
}

/// HdrHistogram's `outputPercentileDistribution` text, in microseconds (values are recorded
/// in nanoseconds; the scaling ratio is 1000), five ticks per half distance.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let scale = 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / scale;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {:10} {:14.2}",
                v.count_since_last_iteration(),
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {:10}",
                v.count_since_last_iteration()
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Latency summary of one histogram, in microseconds.
pub fn phase_json(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "min_us": us(h.min()),
        "mean_us": (h.mean()).round() / 1000.0,
        "p50_us": us(h.value_at_quantile(0.5)),
        "p90_us": us(h.value_at_quantile(0.9)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
    })
}

fn summary(plan: &Plan, stats: &Stats, elapsed: Duration) -> Value {
    let mut phases = serde_json::Map::new();
    for phase in Phase::ALL {
        let h = stats.histogram(phase);
        if !h.is_empty() {
            phases.insert(phase.name().into(), phase_json(h));
        }
    }
    let acked = stats.histogram(Phase::Publish).len();
    let work = plan.duration.as_secs_f64().max(f64::MIN_POSITIVE);
    json!({
        "label": plan.label,
        "scenario": plan.scenario.name(),
        "target": plan.target.to_string(),
        "tls": plan.tls.is_some(),
        "mqtt": match plan.version { flytrap_proto::Version::V5 => "5", _ => "3.1.1" },
        "clients": plan.clients,
        "workers": plan.workers,
        "cores": plan.cores,
        "ramp_per_s": plan.ramp,
        "elapsed_s": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "phases": phases,
        "messages": {
            "sent": stats.sent,
            "acknowledged": acked,
            "received": stats.received,
            // Over the configured work phase: the publishing window.
            "sent_per_s": (stats.sent as f64 / work).round(),
            "received_per_s": (stats.received as f64 / work).round(),
        },
        "outcomes": stats.outcomes,
        "errors": stats.errors,
        "error_count": stats.error_count(),
        "command": plan.argv,
    })
}

/// One line per phase for the terminal.
pub fn table(stats: &Stats) -> String {
    let mut out = format!(
        "{:<11} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "phase", "count", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    for phase in Phase::ALL {
        let h = stats.histogram(phase);
        if h.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<11} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            phase.name(),
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.9) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.value_at_quantile(0.999) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
        );
    }
    out
}

/// Whether `dir` holds the outputs of a run (used by tests).
pub fn complete(dir: &Path) -> bool {
    dir.join("summary.json").is_file() && dir.join("latency.svg").is_file()
}
