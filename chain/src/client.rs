//! [`Client`]: every operation of the FlyTrap contract, async, over JSON-RPC (HTTP).
//!
//! Writes are signed locally by the client's key (none = read-only client), estimated first (so
//! a revert is reported, decoded by name, before anything is sent) and awaited until mined.

use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::{EthereumWallet, ReceiptResponse};
use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{BlockNumberOrTag, Filter};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use alloy::transports::http::reqwest;

use crate::audit::{AuditRecord, Spooled};
use crate::bindings::FlyTrap;
use crate::types::{Action, Answer, Country, Fee, Query, TopicInfo, TopicSpec};
use crate::{Error, Result};

/// Each HTTP request to the node gives up after this long (a silent node is "unreachable").
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Addresses per `grantMany` transaction (~26 k gas each: ~6.6 M gas, well under a block's
/// and a transaction's gas cap).
pub const GRANT_BATCH: usize = 250;
/// Members per `withdraw` transaction (~5–7 k gas each, ~2 M gas at most).
pub const WITHDRAW_BATCH: usize = 250;
/// A sent transaction must be mined within this long.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A mined transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tx {
    /// Its hash.
    pub hash: B256,
    /// The block it was mined in.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
}

/// A decoded contract event with where it was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged<E> {
    /// The block number.
    pub block: u64,
    /// The transaction hash.
    pub tx: B256,
    /// The log's index in the block.
    pub log_index: u64,
    /// The event.
    pub event: E,
}

/// A connection to one FlyTrap contract through one node, with an optional signing key.
#[derive(Clone)]
pub struct Client {
    url: String,
    provider: DynProvider,
    contract: FlyTrap::FlyTrapInstance<DynProvider>,
    sender: Option<Address>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("contract", self.contract.address())
            .field("sender", &self.sender)
            .finish()
    }
}

/// Builds the JSON-RPC provider for `url`, signing with `signer` when given.
pub fn provider(url: &str, signer: Option<PrivateKeySigner>) -> Result<DynProvider> {
    let parsed: reqwest::Url = url
        .parse()
        .map_err(|e| Error::InvalidInput(format!("malformed RPC URL '{url}': {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::InvalidInput(format!(
            "unsupported RPC URL '{url}' (http:// or https:// only)"
        )));
    }
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot make an HTTP client: {e}")))?;
    let local = parsed
        .host_str()
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
    let rpc = RpcClient::new_http_with_client(http, parsed).with_poll_interval(if local {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(2)
    });
    // The recommended fillers cache nonces: a send that fails after the nonce was filled
    // (a revert at estimation) would leave a gap and every later transaction stuck. Ask the
    // node for the pending nonce each time instead.
    let builder = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id();
    Ok(match signer {
        Some(s) => builder
            .wallet(EthereumWallet::from(s))
            .connect_client(rpc)
            .erased(),
        None => builder.connect_client(rpc).erased(),
    })
}

impl Client {
    /// A client of the contract at `contract` through the node at `url`. Nothing is sent yet.
    pub fn new(url: &str, contract: Address, signer: Option<PrivateKeySigner>) -> Result<Client> {
        let sender = signer.as_ref().map(|s| s.address());
        let provider = provider(url, signer)?;
        let contract = FlyTrap::new(contract, provider.clone());
        Ok(Client {
            url: url.to_string(),
            provider,
            contract,
            sender,
        })
    }

    /// Deploys a new contract with `signer` as admin and first operator.
    pub async fn deploy(url: &str, signer: PrivateKeySigner) -> Result<(Client, Tx)> {
        let sender = signer.address();
        let provider = provider(url, Some(signer))?;
        let builder = FlyTrap::deploy_builder(provider.clone());
        let pending = builder
            .send()
            .await
            .map_err(|e| Error::from_contract(e, url))?;
        let hash = *pending.tx_hash();
        let receipt = wait_receipt(&provider, hash, url).await?;
        let address = receipt
            .contract_address()
            .ok_or_else(|| Error::Rpc("the deployment receipt has no contract address".into()))?;
        let tx = Tx {
            hash,
            block: receipt.block_number().unwrap_or_default(),
            gas_used: receipt.gas_used(),
        };
        if !receipt.status() {
            return Err(Error::Rpc(format!(
                "the deployment transaction {hash} failed"
            )));
        }
        Ok((
            Client {
                url: url.to_string(),
                contract: FlyTrap::new(address, provider.clone()),
                provider,
                sender: Some(sender),
            },
            tx,
        ))
    }

    /// The contract's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The signing account, if any.
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    /// The RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying provider (for raw RPC).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The generated contract instance (for anything not wrapped here).
    pub fn instance(&self) -> &FlyTrap::FlyTrapInstance<DynProvider> {
        &self.contract
    }

    fn rpc_err(&self, e: alloy::transports::TransportError) -> Error {
        Error::from_rpc(e, &self.url)
    }

    fn call_err(&self, e: alloy::contract::Error) -> Error {
        Error::from_contract(e, &self.url)
    }

    /// The node's latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| self.rpc_err(e))
    }

    /// The node's chain id.
    pub async fn chain_id(&self) -> Result<u64> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| self.rpc_err(e))
    }

    /// The contract's runtime code (empty = no contract there).
    pub async fn code(&self) -> Result<Bytes> {
        self.provider
            .get_code_at(self.address())
            .await
            .map_err(|e| self.rpc_err(e))
    }

    /// Fails with [`Error::NoContract`] unless the contract's code is at the address.
    pub async fn ensure_contract(&self) -> Result<()> {
        if self.code().await?.is_empty() {
            return Err(Error::NoContract(self.address()));
        }
        Ok(())
    }

    /// The ether balance of an account, in wei.
    pub async fn eth_balance(&self, who: Address) -> Result<U256> {
        self.provider
            .get_balance(who)
            .await
            .map_err(|e| self.rpc_err(e))
    }

    /// Sends `value` wei from the sender to `to` (a plain transfer) and waits until it is mined.
    pub async fn transfer(&self, to: Address, value: U256) -> Result<Tx> {
        use alloy::network::TransactionBuilder;
        if self.sender.is_none() {
            return Err(Error::InvalidInput(
                "this needs a signing key (--key FILE)".into(),
            ));
        }
        let request = alloy::rpc::types::TransactionRequest::default()
            .with_to(to)
            .with_value(value);
        let pending = self
            .provider
            .send_transaction(request)
            .await
            .map_err(|e| self.rpc_err(e))?;
        let hash = *pending.tx_hash();
        let receipt = wait_receipt(&self.provider, hash, &self.url).await?;
        if !receipt.status() {
            return Err(Error::Rpc(format!("the transfer {hash} failed")));
        }
        Ok(Tx {
            hash,
            block: receipt.block_number().unwrap_or_default(),
            gas_used: receipt.gas_used(),
        })
    }

    /// Sends a contract call as a transaction and waits until it is mined.
    async fn send<D: CallDecoder>(&self, call: CallBuilder<&DynProvider, D>) -> Result<Tx> {
        if self.sender.is_none() {
            return Err(Error::InvalidInput(
                "this needs a signing key (--key FILE)".into(),
            ));
        }
        // The fillers estimate gas first: a revert comes back here, decoded, before sending.
        let pending = call.send().await.map_err(|e| self.call_err(e))?;
        let hash = *pending.tx_hash();
        let receipt = wait_receipt(&self.provider, hash, &self.url).await?;
        let tx = Tx {
            hash,
            block: receipt.block_number().unwrap_or_default(),
            gas_used: receipt.gas_used(),
        };
        if !receipt.status() {
            return Err(Error::Reverted(crate::error::Revert {
                name: "revert".into(),
                detail: format!("transaction {hash} reverted on chain after a successful estimate"),
            }));
        }
        Ok(tx)
    }

    // ------------------------------------------------------------------ topics

    /// Registers `name` (owned by the sender); returns its id.
    pub async fn create_topic(
        &self,
        name: &str,
        spec: &TopicSpec,
        reason: &str,
    ) -> Result<(B256, Tx)> {
        if name.is_empty() {
            return Err(Error::InvalidInput("the topic name is empty".into()));
        }
        let tx = self
            .send(self.contract.createTopic(
                name.to_string(),
                countries(&spec.countries),
                spec.pub_fee.to_raw(),
                spec.sub_fee.to_raw(),
                spec.sensitive,
                reason.to_string(),
            ))
            .await?;
        Ok((crate::topic_id(name), tx))
    }

    /// Replaces a topic's countries, fees and sensitive flag (owner only).
    pub async fn update_topic(&self, topic: B256, spec: &TopicSpec, reason: &str) -> Result<Tx> {
        self.send(self.contract.updateTopic(
            topic,
            countries(&spec.countries),
            spec.pub_fee.to_raw(),
            spec.sub_fee.to_raw(),
            spec.sensitive,
            reason.to_string(),
        ))
        .await
    }

    /// Gives `who` the action on the topic (owner only).
    pub async fn grant(
        &self,
        topic: B256,
        who: Address,
        action: Action,
        reason: &str,
    ) -> Result<Tx> {
        self.send(self.grant_call(topic, who, action, reason)).await
    }

    /// The contract's `grant()`: its arguments are packed after the selector, not ABI-encoded
    /// (topic id ‖ address ‖ action ‖ reason bytes; see contracts/README.md).
    fn grant_call(
        &self,
        topic: B256,
        who: Address,
        action: Action,
        reason: &str,
    ) -> CallBuilder<&DynProvider, ()> {
        use alloy::sol_types::SolCall;
        let mut input = Vec::with_capacity(4 + 32 + 20 + 1 + reason.len());
        input.extend_from_slice(&FlyTrap::grantCall::SELECTOR);
        input.extend_from_slice(topic.as_slice());
        input.extend_from_slice(who.as_slice());
        input.push(action.code());
        input.extend_from_slice(reason.as_bytes());
        CallBuilder::new_raw(&self.provider, Bytes::from(input)).to(self.address())
    }

    /// Takes the action on the topic from `who` (owner only; no refund).
    pub async fn revoke(
        &self,
        topic: B256,
        who: Address,
        action: Action,
        reason: &str,
    ) -> Result<Tx> {
        self.send(
            self.contract
                .revoke(topic, who, action.code(), reason.to_string()),
        )
        .await
    }

    /// Gives `who` the action on the topic in one `grantMany` transaction (owner only; all or
    /// nothing: one address already holding it reverts the whole batch).
    pub async fn grant_many(
        &self,
        topic: B256,
        who: &[Address],
        action: Action,
        reason: &str,
    ) -> Result<Tx> {
        self.send(
            self.contract
                .grantMany(topic, who.to_vec(), action.code(), reason.to_string()),
        )
        .await
    }

    /// Grants (`grant`) or revokes the action on the topic for every address of `who`, for
    /// fleets of clients; the transactions come back in the order of `who` (one per address:
    /// the batch's transaction for a grant). Nothing is sent when an address is wrong.
    ///
    /// Grants go through `grantMany`, [`GRANT_BATCH`] addresses per transaction (~26 k gas
    /// per address instead of ~50 k; a batch of one address goes through `grant`): a duplicate or an address that already holds the action
    /// is reported by name first (one `checkBatch` per 500), then each batch is estimated
    /// (a revert comes back decoded) and sent. Revocations are one transaction each,
    /// pipelined: every call is estimated first (concurrently), then all are sent with
    /// consecutive nonces and a 25 % gas margin, and their receipts awaited.
    pub async fn change_many(
        &self,
        topic: B256,
        who: &[Address],
        action: Action,
        reason: &str,
        grant: bool,
    ) -> Result<Vec<Tx>> {
        use alloy::network::TransactionBuilder;
        let Some(sender) = self.sender else {
            return Err(Error::InvalidInput(
                "this needs a signing key (--key FILE)".into(),
            ));
        };
        if grant {
            let mut seen = std::collections::HashSet::with_capacity(who.len());
            if let Some(a) = who.iter().find(|a| !seen.insert(**a)) {
                return Err(Error::InvalidInput(format!(
                    "{a:#x} is listed twice (nothing was sent)"
                )));
            }
            for chunk in who.chunks(500) {
                let queries: Vec<Query> = chunk
                    .iter()
                    .map(|&a| Query {
                        topic_id: topic,
                        who: a,
                        action,
                    })
                    .collect();
                let answers = self.check_batch(&queries).await?;
                if let Some((a, _)) = chunk.iter().zip(&answers).find(|(_, x)| x.allowed) {
                    return Err(Error::InvalidInput(format!(
                        "{a:#x} already holds {} on this topic (nothing was sent)",
                        action.short()
                    )));
                }
            }
            let mut out = Vec::with_capacity(who.len());
            for chunk in who.chunks(GRANT_BATCH) {
                // one address: `grant` (packed, ~1 k gas less than a `grantMany` of one)
                let tx = match chunk {
                    [a] => self.grant(topic, *a, action, reason).await?,
                    _ => self.grant_many(topic, chunk, action, reason).await?,
                };
                out.extend(std::iter::repeat_n(tx, chunk.len()));
            }
            return Ok(out);
        }
        const WINDOW: usize = 64;
        let request = |a: Address| {
            self.contract
                .revoke(topic, a, action.code(), reason.to_string())
                .clear_decoder()
                .from(sender)
        };
        let mut gas = Vec::with_capacity(who.len());
        for chunk in who.chunks(WINDOW) {
            let estimates = futures::future::join_all(
                chunk
                    .iter()
                    .map(|&a| async move { request(a).estimate_gas().await }),
            )
            .await;
            for (a, e) in chunk.iter().zip(estimates) {
                gas.push(e.map_err(|e| {
                    let e = self.call_err(e);
                    Error::InvalidInput(format!("{a:#x}: {e} (nothing was sent)"))
                })?);
            }
        }
        let fees = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| self.rpc_err(e))?;
        let mut nonce = self
            .provider
            .get_transaction_count(sender)
            .pending()
            .await
            .map_err(|e| self.rpc_err(e))?;
        // Sent in windows, each mined before the next, so the node's pool stays small.
        const IN_FLIGHT: usize = 256;
        let mut out = Vec::with_capacity(who.len());
        for (addresses, gas) in who.chunks(IN_FLIGHT).zip(gas.chunks(IN_FLIGHT)) {
            let mut hashes = Vec::with_capacity(addresses.len());
            for (a, g) in addresses.iter().zip(gas) {
                let tx = request(*a)
                    .into_transaction_request()
                    .with_nonce(nonce)
                    .with_gas_limit(g + g / 4)
                    .with_max_fee_per_gas(fees.max_fee_per_gas)
                    .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
                let pending = self
                    .provider
                    .send_transaction(tx)
                    .await
                    .map_err(|e| self.rpc_err(e))?;
                hashes.push(*pending.tx_hash());
                nonce += 1;
            }
            for (a, hash) in addresses.iter().zip(hashes) {
                let receipt = wait_receipt(&self.provider, hash, &self.url).await?;
                if !receipt.status() {
                    return Err(Error::Rpc(format!(
                        "the transaction for {a:#x} ({hash}) reverted on chain after a successful estimate"
                    )));
                }
                out.push(Tx {
                    hash,
                    block: receipt.block_number().unwrap_or_default(),
                    gas_used: receipt.gas_used(),
                });
            }
        }
        Ok(out)
    }

    /// The sender joins the topic for the action, paying `value` wei (must equal the fee).
    pub async fn join(&self, topic: B256, action: Action, value: U256) -> Result<Tx> {
        self.send(self.contract.join(topic, action.code()).value(value))
            .await
    }

    /// Fees `who` paid to join the topic that its owner has not withdrawn yet, in wei.
    pub async fn paid(&self, topic: B256, who: Address) -> Result<U256> {
        self.contract
            .paid(topic, who)
            .call()
            .await
            .map_err(|e| self.call_err(e))
    }

    /// The addresses that ever joined the topic (from its `AclChanged` join logs), each once,
    /// in the order of their first join.
    pub async fn joiners(&self, topic: B256) -> Result<Vec<Address>> {
        let filter = Filter::new()
            .address(self.address())
            .event_signature(FlyTrap::AclChanged::SIGNATURE_HASH)
            .topic1(topic)
            .from_block(0)
            .to_block(BlockNumberOrTag::Latest);
        let logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(|e| self.rpc_err(e))?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for log in logs {
            let e = log.log_decode::<FlyTrap::AclChanged>().map_err(|e| {
                Error::Rpc(format!(
                    "undecodable {} log: {e}",
                    FlyTrap::AclChanged::SIGNATURE
                ))
            })?;
            let e = e.inner.data;
            if crate::types::Change::from_code(e.change) == crate::types::Change::Joined
                && seen.insert(e.target)
            {
                out.push(e.target);
            }
        }
        Ok(out)
    }

    /// The fees not yet withdrawn from the topic: their sum, and who paid them (joiners whose
    /// `paid` is not zero).
    pub async fn withdrawable(&self, topic: B256) -> Result<(U256, Vec<(Address, U256)>)> {
        let joiners = self.joiners(topic).await?;
        let mut due = Vec::new();
        let mut total = U256::ZERO;
        for chunk in joiners.chunks(64) {
            let amounts =
                futures::future::join_all(chunk.iter().map(|&a| self.paid(topic, a))).await;
            for (&a, amount) in chunk.iter().zip(amounts) {
                let amount = amount?;
                if !amount.is_zero() {
                    total += amount;
                    due.push((a, amount));
                }
            }
        }
        Ok((total, due))
    }

    /// Pays the topic's owner (the sender) the fees paid to join the topic and not withdrawn
    /// yet: the members come from the topic's join logs, [`WITHDRAW_BATCH`] per `withdraw`
    /// transaction. Returns the amount and the transactions; [`Error::InvalidInput`] when
    /// there is nothing to withdraw (nothing is sent).
    pub async fn withdraw(&self, topic: B256) -> Result<(U256, Vec<Tx>)> {
        if self.sender.is_none() {
            return Err(Error::InvalidInput(
                "this needs a signing key (--key FILE)".into(),
            ));
        }
        let (total, due) = self.withdrawable(topic).await?;
        if due.is_empty() {
            return Err(Error::InvalidInput(
                "no fees to withdraw from this topic".into(),
            ));
        }
        let mut txs = Vec::new();
        for chunk in due.chunks(WITHDRAW_BATCH) {
            let members: Vec<Address> = chunk.iter().map(|(a, _)| *a).collect();
            txs.push(self.send(self.contract.withdraw(topic, members)).await?);
        }
        Ok((total, txs))
    }

    // ------------------------------------------------------------------ views

    /// May `who` do `action` on the topic (one `checkBatch` question).
    pub async fn verify(&self, topic: B256, who: Address, action: Action) -> Result<Answer> {
        let q = Query {
            topic_id: topic,
            who,
            action,
        };
        self.check_batch(&[q])
            .await?
            .pop()
            .ok_or_else(|| Error::Rpc("checkBatch answered no question".into()))
    }

    /// Answers many questions in one `checkBatch` call (packed queries), in order.
    pub async fn check_batch(&self, queries: &[Query]) -> Result<Vec<Answer>> {
        let mut packed = Vec::with_capacity(queries.len() * Query::PACKED_LEN);
        for q in queries {
            q.pack_into(&mut packed);
        }
        let answers = self
            .contract
            .checkBatch(Bytes::from(packed))
            .call()
            .await
            .map_err(|e| self.call_err(e))?;
        if answers.len() != queries.len() {
            return Err(Error::Rpc(format!(
                "checkBatch answered {} of {} questions",
                answers.len(),
                queries.len()
            )));
        }
        Ok(answers
            .into_iter()
            .map(|a| Answer {
                exists: a.exists,
                allowed: a.allowed,
                sensitive: a.sensitive,
                countries: a.countries.into_iter().map(Country::from_bytes2).collect(),
            })
            .collect())
    }

    /// A topic's metadata; `None` if it is not registered. The contract does not store names
    /// (they are in the `TopicCreated` events): `name` is empty here, see
    /// [`topic_by_name`](Self::topic_by_name).
    pub async fn topic(&self, id: B256) -> Result<Option<TopicInfo>> {
        let t = self
            .contract
            .topic(id)
            .call()
            .await
            .map_err(|e| self.call_err(e))?;
        if !t.exists {
            return Ok(None);
        }
        Ok(Some(TopicInfo {
            id,
            name: String::new(),
            owner: t.owner,
            countries: t.countries.into_iter().map(Country::from_bytes2).collect(),
            pub_fee: Fee::from_raw(t.pubFee),
            sub_fee: Fee::from_raw(t.subFee),
            sensitive: t.sensitive,
        }))
    }

    /// A topic by name, or [`Error::InvalidInput`] naming it when it is not registered.
    pub async fn topic_by_name(&self, name: &str) -> Result<TopicInfo> {
        let mut t = self
            .topic(crate::topic_id(name))
            .await?
            .ok_or_else(|| Error::InvalidInput(format!("unknown topic '{name}'")))?;
        t.name = name.to_string();
        Ok(t)
    }

    /// Does `who` hold the action on the topic (one `checkBatch` question).
    pub async fn is_member(&self, topic: B256, who: Address, action: Action) -> Result<bool> {
        let q = Query {
            topic_id: topic,
            who,
            action,
        };
        Ok(self.check_batch(&[q]).await?.iter().any(|a| a.allowed))
    }

    // The contract keeps no member or topic list (gas: one fresh slot per new member, not
    // two): listings come from the AclChanged / TopicCreated events (flytrap's report index).

    // ------------------------------------------------------------------ operators

    /// The contract's admin (deployer).
    pub async fn admin(&self) -> Result<Address> {
        self.contract
            .admin()
            .call()
            .await
            .map_err(|e| self.call_err(e))
    }

    /// Lets `op` write audit records (`enabled`) or stops it (admin only; its records and
    /// its last seq stay).
    pub async fn set_operator(&self, op: Address, enabled: bool) -> Result<Tx> {
        self.send(self.contract.setOperator(op, enabled)).await
    }

    /// May `op` write audit records, and the highest audit `seq` it wrote (one `operator`
    /// call).
    pub async fn operator(&self, op: Address) -> Result<(bool, u64)> {
        let r = self
            .contract
            .operator(op)
            .call()
            .await
            .map_err(|e| self.call_err(e))?;
        Ok((r.enabled, r.lastSeq))
    }

    /// May `op` write audit records.
    pub async fn is_operator(&self, op: Address) -> Result<bool> {
        Ok(self.operator(op).await?.0)
    }

    /// The highest audit `seq` written by `op`.
    pub async fn last_seq(&self, op: Address) -> Result<u64> {
        Ok(self.operator(op).await?.1)
    }

    // ------------------------------------------------------------------ audit records

    fn audit_call(
        &self,
        records: &[Spooled],
    ) -> CallBuilder<&DynProvider, std::marker::PhantomData<FlyTrap::recordAuditCall>> {
        let (mut bans, mut wrong, mut failed, mut reports) = (vec![], vec![], vec![], vec![]);
        for r in records {
            match r.record.to_sol(r.seq) {
                crate::audit::SolRecord::Ban(b) => bans.push(b),
                crate::audit::SolRecord::WrongCountry(w) => wrong.push(w),
                crate::audit::SolRecord::ConnectFailed(c) => failed.push(c),
                // packed entries, back to back
                crate::audit::SolRecord::Report(entries) => reports.extend_from_slice(&entries),
            }
        }
        self.contract
            .recordAudit(bans, wrong, failed, Bytes::from(reports))
    }

    /// Gas `recordAudit` of these records would take now.
    pub async fn estimate_record_audit(&self, records: &[Spooled]) -> Result<u64> {
        self.audit_call(records)
            .estimate_gas()
            .await
            .map_err(|e| self.call_err(e))
    }

    /// Writes audit records of every kind in one `recordAudit` transaction (operators only;
    /// records with `seq <= lastSeq` are skipped by the contract).
    pub async fn record_audit(&self, records: &[Spooled]) -> Result<Tx> {
        self.send(self.audit_call(records)).await
    }

    /// Convenience: one record through `recordAudit` with the given seq.
    pub async fn record(&self, seq: u64, record: AuditRecord) -> Result<Tx> {
        self.record_audit(&[Spooled { seq, record }]).await
    }

    // ------------------------------------------------------------------ history

    /// The contract's events of type `E` in blocks `[from, to]` (to = `None`: latest), oldest
    /// first.
    pub async fn events<E: SolEvent>(&self, from: u64, to: Option<u64>) -> Result<Vec<Logged<E>>> {
        let filter = Filter::new()
            .address(self.address())
            .event_signature(E::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to.map_or(BlockNumberOrTag::Latest, BlockNumberOrTag::Number));
        let logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(|e| self.rpc_err(e))?;
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            let decoded = log
                .log_decode::<E>()
                .map_err(|e| Error::Rpc(format!("undecodable {} log: {e}", E::SIGNATURE)))?;
            out.push(Logged {
                block: log.block_number.unwrap_or_default(),
                tx: log.transaction_hash.unwrap_or_default(),
                log_index: log.log_index.unwrap_or_default(),
                event: decoded.inner.data,
            });
        }
        Ok(out)
    }

    /// The contract's raw logs in blocks `[from, to]` whose first topic (the event signature)
    /// is one of `signatures`, oldest first: one `eth_getLogs` for several event types.
    pub async fn logs_of(
        &self,
        signatures: Vec<B256>,
        from: u64,
        to: u64,
    ) -> Result<Vec<alloy::rpc::types::Log>> {
        let filter = Filter::new()
            .address(self.address())
            .event_signature(signatures)
            .from_block(from)
            .to_block(to);
        self.provider
            .get_logs(&filter)
            .await
            .map_err(|e| self.rpc_err(e))
    }

    /// The timestamp of a block.
    pub async fn block_time(&self, number: u64) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| self.rpc_err(e))?
            .ok_or_else(|| Error::Rpc(format!("block {number} not found")))?;
        Ok(block.header.timestamp)
    }

    /// The first block whose timestamp is ≥ `t` (binary search; the latest + 1 if none).
    pub async fn first_block_at_or_after(&self, t: u64) -> Result<u64> {
        let latest = self.block_number().await?;
        if self.block_time(latest).await? < t {
            return Ok(latest + 1);
        }
        let (mut lo, mut hi) = (0u64, latest);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.block_time(mid).await? >= t {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// The last block whose timestamp is ≤ `t` (`None` if even block 0 is later).
    pub async fn last_block_at_or_before(&self, t: u64) -> Result<Option<u64>> {
        let first_after = self.first_block_at_or_after(t.saturating_add(1)).await?;
        Ok(first_after.checked_sub(1))
    }
}

fn countries(cs: &[Country]) -> Vec<FixedBytes<2>> {
    cs.iter().map(|c| c.to_bytes2()).collect()
}

/// Polls for a receipt until it is there or [`RECEIPT_TIMEOUT`] passes.
async fn wait_receipt(
    provider: &DynProvider,
    hash: B256,
    url: &str,
) -> Result<alloy::rpc::types::TransactionReceipt> {
    let deadline = tokio::time::Instant::now() + RECEIPT_TIMEOUT;
    let mut pause = Duration::from_millis(20);
    loop {
        match provider.get_transaction_receipt(hash).await {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => {
                let e = Error::from_rpc(e, url);
                if !e.is_unreachable() {
                    return Err(e);
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Rpc(format!(
                "transaction {hash} not mined within {}s",
                RECEIPT_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
