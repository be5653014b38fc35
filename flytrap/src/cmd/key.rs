//! `flytrap key new [--out FILE]`: makes a secp256k1 key, prints its address.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use flytrap_chain::PrivateKeySigner;
use flytrap_chain::keyfile::write_new_key;

use crate::dev::STATE_DIR;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a new key; print its address. The file (mode 0600) holds the 0x-hex private key.
    New(NewKey),
}

#[derive(Debug, Args)]
pub struct NewKey {
    /// Where to write the key [default: ./.flytrap/keys/<address>.key]. An existing file is
    /// never replaced.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

impl KeyCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            KeyCommand::New(n) => n.run(),
        }
    }
}

impl NewKey {
    pub fn run(self) -> anyhow::Result<()> {
        let signer = PrivateKeySigner::random();
        let address = format!("{:#x}", signer.address());
        let path = match self.out {
            Some(p) => p,
            None => {
                let dir = Path::new(STATE_DIR).join("keys");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
                dir.join(format!("{address}.key"))
            }
        };
        write_new_key(&path, &signer)?;
        println!("{address}");
        eprintln!("key written to {}", path.display());
        Ok(())
    }
}
