//! `flytrap sign --key FILE --client-id ID [--static] [--timestamp T]`: CONNECT credentials
//! (SPEC §1) for a client that cannot sign itself, and ready `mosquitto_pub` arguments.
//!
//! `flytrap sign --key FILE --client-id ID --challenge MESSAGE`: the answer to a challenge of
//! the challenge scheme (the Authentication Data of the proxy's AUTH): the EIP-191 signature
//! of the message, `0x`-hex, after checking it is a challenge for this key and client id.

use std::path::PathBuf;

use clap::Args;
use flytrap_chain::keyfile::read_key;
use flytrap_chain::sign::{sign, sign_connect, sign_static};

#[derive(Debug, Args)]
pub struct Sign {
    /// The client's private key file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The MQTT client identifier the credentials are for (signed in the timestamped scheme).
    #[arg(long, value_name = "ID")]
    pub client_id: String,
    /// The static scheme: a signature of the address alone, no timestamp. Anyone who sees it
    /// can replay it; the proxy accepts it only with auth.allow_static = true.
    #[arg(long = "static")]
    pub static_scheme: bool,
    /// Unix time to sign [default: now]. The proxy accepts it within auth.max_clock_skew_s
    /// (300 s by default) of its clock.
    #[arg(long, value_name = "T", conflicts_with = "static_scheme")]
    pub timestamp: Option<u64>,
    /// Answer a challenge of the challenge scheme (MQTT 5 AUTH, flytrap-siwe-v1): the
    /// Sign-In with Ethereum message the proxy sent, or `-` to read it from standard input.
    /// Prints the signature to put in the answering AUTH's Authentication Data.
    #[arg(long, value_name = "MESSAGE", conflicts_with_all = ["static_scheme", "timestamp"])]
    pub challenge: Option<String>,
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Sign {
    pub fn run(self) -> anyhow::Result<()> {
        let signer = read_key(&self.key)?;
        if let Some(message) = &self.challenge {
            let message = if message == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
                text.trim_end_matches('\n').to_string()
            } else {
                message.clone()
            };
            flytrap_authz::challenge::check_challenge(
                &message,
                &signer.address().into_array(),
                &self.client_id,
            )?;
            println!("0x{}", hex::encode(sign(&signer, &message)?));
            return Ok(());
        }
        let creds = if self.static_scheme {
            sign_static(&signer)?
        } else {
            let t = match self.timestamp {
                Some(t) => t,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_secs(),
            };
            sign_connect(&signer, &self.client_id, t)?
        };
        // The three (or two) user properties, one per line: name value.
        for (name, value) in creds.user_properties() {
            println!("{name} {value}");
        }
        println!("# MQTT 3.1.1: user name {}", creds.v311_username());
        println!("# MQTT 3.1.1: password {}", creds.v311_password());
        let mut args = vec![
            "-V".to_string(),
            "mqttv5".into(),
            "-i".into(),
            shell_word(&self.client_id),
        ];
        for (name, value) in creds.user_properties() {
            args.extend([
                "-D".into(),
                "connect".into(),
                "user-property".into(),
                name.into(),
                value,
            ]);
        }
        println!("# mosquitto_pub arguments:");
        println!("{}", args.join(" "));
        Ok(())
    }
}
