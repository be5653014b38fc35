//! Helpers shared by the chain tests: a real anvil on a free port and a deployed contract.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use flytrap_chain::anvil::{Anvil, AnvilOptions, DEV_KEYS};
use flytrap_chain::{Client, PrivateKeySigner};

/// anvil's dev account `i` (funded with 10,000 ether).
pub fn dev_key(i: usize) -> PrivateKeySigner {
    DEV_KEYS[i].parse().unwrap()
}

/// A current-thread tokio runtime for a test body.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh anvil (automine) with the contract deployed by dev account 0.
pub struct Chain {
    pub anvil: Anvil,
    pub operator: Client,
}

impl Chain {
    pub fn start() -> Chain {
        Chain::start_with(&AnvilOptions::default())
    }

    pub fn start_with(opts: &AnvilOptions) -> Chain {
        let anvil = Anvil::start_with(opts).expect("anvil (run `npm ci` in contracts/)");
        let operator = rt()
            .block_on(Client::deploy(&anvil.url(), dev_key(0)))
            .unwrap()
            .0;
        Chain { anvil, operator }
    }

    /// A client of the same contract signing with dev account `i`.
    pub fn client(&self, i: usize) -> Client {
        Client::new(&self.anvil.url(), self.operator.address(), Some(dev_key(i))).unwrap()
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
