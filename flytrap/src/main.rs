//! `flytrap`: the MQTT proxy and the commands around it (SPEC §5).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flytrap::serve;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// FlyTrap: Ethereum-based authorisation and audit in front of any MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "flytrap", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy. Without --config: the development profile (broker started if none
    /// answers on 127.0.0.1:1884, state in ./.flytrap/).
    Serve {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve::run(config.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("flytrap: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
