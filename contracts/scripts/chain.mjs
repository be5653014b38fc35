// Minimal JSON-RPC client over node's fetch, plus the FlyTrap artifact and viem's ABI helpers.
// Shared by the tests and the gas report. Talks only to the local anvil the caller started.
import { readFileSync } from 'node:fs';
import { decodeErrorResult, decodeEventLog, decodeFunctionResult, encodeDeployData, encodeFunctionData } from 'viem';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ARTIFACT = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts', 'FlyTrap.json');

export const artifact = JSON.parse(readFileSync(ARTIFACT, 'utf8'));
export const abi = artifact.abi;

/** Error thrown for a reverted transaction or call; `.errorName`/`.args` when decodable. */
export class Reverted extends Error {
  constructor(message, data) {
    super(message);
    this.data = data;
    try {
      const d = decodeErrorResult({ abi, data });
      this.errorName = d.errorName;
      this.args = d.args;
      this.message = `reverted: ${d.errorName}(${(d.args || []).join(', ')})`;
    } catch {
      // not one of ours
    }
  }
}

export class Chain {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
  }

  async rpc(method, params = []) {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: this.nextId++, method, params }),
    });
    const body = await res.json();
    if (body.error) {
      const data = typeof body.error.data === 'string' ? body.error.data : body.error.data?.data;
      if (data && data.startsWith('0x')) throw new Reverted(body.error.message, data);
      const e = new Error(`${method}: ${body.error.message}`);
      e.rpc = body.error;
      throw e;
    }
    return body.result;
  }

  async accounts() {
    return this.rpc('eth_accounts');
  }

  async balance(addr) {
    return BigInt(await this.rpc('eth_getBalance', [addr, 'latest']));
  }

  /** Sends a transaction from an unlocked dev account; resolves to the receipt (throws on revert). */
  async send({ from, to, data, value = 0n, gas }) {
    const tx = { from, data, value: '0x' + BigInt(value).toString(16) };
    if (to) tx.to = to;
    if (gas) tx.gas = '0x' + BigInt(gas).toString(16);
    const hash = await this.rpc('eth_sendTransaction', [tx]);
    let receipt = null;
    for (let i = 0; receipt === null; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 10));
      if (i > 500) throw new Error(`transaction ${hash} not mined`);
      receipt = await this.rpc('eth_getTransactionReceipt', [hash]);
    }
    if (receipt.status !== '0x1') throw new Error(`transaction ${hash} reverted`);
    return receipt;
  }

  async deploy(from) {
    const data = encodeDeployData({ abi, bytecode: artifact.bytecode });
    const receipt = await this.send({ from, data });
    return { address: receipt.contractAddress, receipt };
  }
}

/** A bound FlyTrap contract: `c.call(fn, args)`, `c.send(from, fn, args, value)`. */
export class FlyTrap {
  constructor(chain, address) {
    this.chain = chain;
    this.address = address;
  }

  data(functionName, args = []) {
    return encodeFunctionData({ abi, functionName, args });
  }

  async call(functionName, args = [], from) {
    const tx = { to: this.address, data: this.data(functionName, args) };
    if (from) tx.from = from;
    const out = await this.chain.rpc('eth_call', [tx, 'latest']);
    return decodeFunctionResult({ abi, functionName, data: out });
  }

  async estimate(functionName, args = [], from, value = 0n) {
    const tx = { to: this.address, data: this.data(functionName, args), value: '0x' + value.toString(16) };
    if (from) tx.from = from;
    return BigInt(await this.chain.rpc('eth_estimateGas', [tx]));
  }

  /** Sends; throws `Reverted` (from the gas estimate) if it would revert. */
  async send(from, functionName, args = [], value = 0n) {
    const data = this.data(functionName, args);
    // estimate first so that a revert surfaces with its custom error
    await this.chain.rpc('eth_estimateGas', [{ from, to: this.address, data, value: '0x' + value.toString(16) }]);
    return this.chain.send({ from, to: this.address, data, value });
  }

  /** Sends raw calldata (estimated first, so that a revert surfaces with its custom error). */
  async sendRaw(from, data, value = 0n) {
    await this.chain.rpc('eth_estimateGas', [{ from, to: this.address, data, value: '0x' + value.toString(16) }]);
    return this.chain.send({ from, to: this.address, data, value });
  }

  /** Decodes the receipt's logs of this contract into { eventName, args }. */
  events(receipt) {
    return receipt.logs
      .filter((l) => l.address.toLowerCase() === this.address.toLowerCase())
      .map((l) => decodeEventLog({ abi, data: l.data, topics: l.topics }));
  }
}

/** Starts anvil, deploys FlyTrap from the first dev account. */
export async function setup(startAnvil) {
  const node = await startAnvil();
  const chain = new Chain(node.url);
  const accounts = await chain.accounts();
  const { address, receipt } = await chain.deploy(accounts[0]);
  return { node, chain, accounts, ft: new FlyTrap(chain, address), deployReceipt: receipt };
}
