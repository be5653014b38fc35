//! `loadgen`: see `loadgen --help` and the crate documentation.

use std::io::Write;
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use flytrap_loadgen::cli::{Cli, Command};
use flytrap_loadgen::identity::Identity;
use flytrap_loadgen::plan::{Plan, unix_ns};
use flytrap_loadgen::shard::{self, Progress};
use flytrap_loadgen::{EXIT_ERRORS, output, workers};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line, without its usage block.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad command line");
            eprintln!("loadgen: {}", first.trim_start_matches("error: "));
            return ExitCode::from(64);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Keys {
        seed,
        first,
        count,
        secret,
    } = &cli.command
    {
        let mut out = std::io::stdout().lock();
        for i in *first..first.saturating_add(*count) {
            let id = Identity::derive(seed, i);
            if *secret {
                writeln!(out, "{} {}", id.address_hex(), id.secret_hex())?;
            } else {
                writeln!(out, "{}", id.address_hex())?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let argv: Vec<String> = std::env::args().collect();
    let mut plan = Plan::from_command(&cli.command, argv)?;
    let is_worker = plan.workers > 1 && plan.epoch_ns != 0 && is_worker_process();
    let per_process = plan.clients.div_ceil(u64::from(plan.workers));
    check_open_files(per_process, plan.workers)?;
    if !is_worker {
        preflight(&plan)?;
        if plan.workers > 1 {
            // Time for the workers to start before the first connection is due.
            plan.epoch_ns = unix_ns() + 500_000_000;
        }
    }
    let plan = Arc::new(plan);
    watchdog(&plan);
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    if is_worker {
        let reporter = progress.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let s = reporter.snapshot();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "P {} {} {} {} {} {}",
                    s[0], s[1], s[2], s[3], s[4], s[5]
                );
            }
        });
        let stats = shard::run(plan.clone(), progress)?;
        println!("R {}", stats.to_wire()?);
        return Ok(ExitCode::SUCCESS);
    }
    let snapshots: workers::Snapshots = Arc::new(Mutex::new(vec![[0; 6]; plan.workers as usize]));
    let bar = progress_bar(&plan, progress.clone(), snapshots.clone());
    let stats = if plan.workers > 1 {
        workers::supervise(&plan, snapshots)?
    } else {
        shard::run(plan.clone(), progress)?
    };
    if let Some((bar, stop)) = bar {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = bar.join();
    }
    output::write_all(&plan, &stats, started.elapsed())?;
    print!("{}", output::table(&stats));
    println!("results in {}", plan.out.display());
    if stats.error_count() > 0 {
        let list: Vec<String> = stats
            .errors
            .iter()
            .map(|(k, v)| format!("{v} × {k}"))
            .collect();
        eprintln!(
            "loadgen: {} errors: {}",
            stats.error_count(),
            list.join(", ")
        );
        return Ok(ExitCode::from(EXIT_ERRORS as u8));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether this process was started by a parent loadgen (`--worker` on the command line).
fn is_worker_process() -> bool {
    std::env::args().any(|a| a == "--worker")
}

/// Fails early, in one line, when the target does not answer.
fn preflight(plan: &Plan) -> anyhow::Result<()> {
    TcpStream::connect_timeout(&plan.target, Duration::from_secs(2))
        .with_context(|| format!("cannot connect to {}", plan.target))?;
    Ok(())
}

/// Raises the soft open-file limit to the hard one and checks the clients fit.
fn check_open_files(per_process: u64, workers: u32) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit")?;
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let limit = hard;
    // Descriptors beyond one per client: executors' rings, pipes, output files.
    let spare = 64;
    if per_process + spare > limit {
        let needed = (per_process * u64::from(workers)).div_ceil(limit - spare);
        bail!(
            "{per_process} clients per process exceed the open-file limit ({limit}): use --workers {needed} or more"
        );
    }
    Ok(())
}

/// Ends the process if the run outlives its own bound (a bug, or a server that never closes).
fn watchdog(plan: &Plan) {
    let bound = plan.work_at() + plan.duration + plan.timeout * 4 + Duration::from_secs(30);
    let start_in = Duration::from_nanos(plan.epoch_ns.saturating_sub(unix_ns()));
    std::thread::spawn(move || {
        std::thread::sleep(start_in + bound);
        eprintln!("loadgen: the run overran its bound ({bound:?}); stopping");
        std::process::exit(1);
    });
}

type Bar = (
    std::thread::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicBool>,
);

/// The progress bar on stderr (hidden when it is not a terminal, or with --quiet).
fn progress_bar(
    plan: &Plan,
    progress: Arc<Progress>,
    snapshots: workers::Snapshots,
) -> Option<Bar> {
    if plan.quiet {
        return None;
    }
    let total = plan.work_at() + plan.duration;
    let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let epoch = plan.epoch_ns;
    let clients = plan.clients;
    let handle = std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            let mut s = progress.snapshot();
            if let Ok(w) = snapshots.lock() {
                for worker in w.iter() {
                    for (a, b) in s.iter_mut().zip(worker) {
                        *a += b;
                    }
                }
            }
            bar.set_position(unix_ns().saturating_sub(epoch) / 1_000_000);
            bar.set_message(format!(
                "connected {}/{clients} failed {} sent {} acked {} received {}",
                s[0], s[1], s[3], s[4], s[5]
            ));
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    });
    Some((handle, stop))
}
