//! `flytrap`: the MQTT proxy and the commands around it (SPEC §5).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flytrap::{cmd, serve};

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
    /// Deploy the FlyTrap contract with --key as admin and operator; print its address.
    Deploy(cmd::ops::Deploy),
    /// Keys (secp256k1, one 0x-hex private key per file, mode 0600).
    Key {
        #[command(subcommand)]
        command: cmd::key::KeyCommand,
    },
    /// Print CONNECT credentials (user properties) and ready mosquitto_pub arguments.
    Sign(cmd::sign::Sign),
    /// Register and read topics.
    Topic {
        #[command(subcommand)]
        command: cmd::topic::TopicCommand,
    },
    /// Let an address publish (pub) or subscribe (sub) to a topic you own.
    Grant(cmd::ops::Change),
    /// Take a right back from an address (no refund of a paid fee).
    Revoke(cmd::ops::Change),
    /// Join a topic as publisher or subscriber, paying its fee.
    Join(cmd::ops::Join),
    /// Pay out the join fees collected on a topic you own (members found from its join logs).
    Withdraw(cmd::ops::Withdraw),
    /// Reports from the audit records and the change log on the chain.
    Audit(cmd::audit::Audit),
    /// Bans shared by every proxy on the contract: lift one, list those in force.
    Ban {
        #[command(subcommand)]
        command: cmd::ban::BanCommand,
    },
    /// Operators: the keys that may write audit records (one per proxy of a fleet).
    Operator {
        #[command(subcommand)]
        command: cmd::operator::OperatorCommand,
    },
    /// Serve the read-only web page over the chain's records (topics, ACL history, failures
    /// and bans, clients, sensitive-topic reports) on 127.0.0.1:8080. No key needed.
    Ui(cmd::ui::Ui),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr a closed pipe: a log collector gone) is
        // dropped. By default tracing-subscriber reports the failure with `eprintln!`, which
        // panics on the same broken stderr and takes down the thread that logged: a shard,
        // or the one that handles SIGTERM.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve::run(config.as_deref()),
        Command::Deploy(c) => c.run(),
        Command::Key { command } => command.run(),
        Command::Sign(c) => c.run(),
        Command::Topic { command } => command.run(),
        Command::Grant(c) => c.run(true),
        Command::Revoke(c) => c.run(false),
        Command::Join(c) => c.run(),
        Command::Withdraw(c) => c.run(),
        Command::Audit(c) => c.run(),
        Command::Ban { command } => command.run(),
        Command::Operator { command } => command.run(),
        Command::Ui(c) => c.run(),
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
