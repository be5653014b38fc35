// The committed artifact: up to date with the source, in the agreed shape, with the interface
// the Rust crate binds to; and withdraw() against a re-entering owner contract.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import solc from 'solc';
import { encodeDeployData, encodeFunctionData, keccak256, toBytes, toFunctionSignature } from 'viem';
import { startAnvil } from '../scripts/anvil.mjs';
import { ARTIFACT, ROOT, SETTINGS } from '../scripts/compile.mjs';
import { abi, artifact, FlyTrap, setup } from '../scripts/chain.mjs';

describe('artifact', () => {
  it('is what the source compiles to (npm run check)', () => {
    // exits non-zero with a one-line message when stale
    const out = execFileSync(process.execPath, [join(ROOT, 'scripts', 'compile.mjs'), '--check'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.match(out, /up to date/);
  });

  it('has the agreed shape', () => {
    const text = readFileSync(ARTIFACT, 'utf8');
    assert.ok(text.endsWith('}\n'));
    const a = JSON.parse(text);
    assert.deepEqual(Object.keys(a), ['contractName', 'compiler', 'abi', 'bytecode', 'deployedBytecode']);
    assert.equal(a.contractName, 'FlyTrap');
    assert.equal(a.compiler, solc.version());
    assert.match(a.bytecode, /^0x[0-9a-f]+$/);
    assert.match(a.deployedBytecode, /^0x[0-9a-f]+$/);
    assert.equal(text, JSON.stringify(a, null, 2) + '\n');
    assert.equal(SETTINGS.evmVersion, 'cancun');
  });

  it('exposes the interface the Rust side binds to', () => {
    const fns = abi.filter((x) => x.type === 'function').map((x) => toFunctionSignature(x));
    const events = abi
      .filter((x) => x.type === 'event')
      .map((x) => `${x.name}(${x.inputs.map((i) => `${i.type}${i.indexed ? ' indexed' : ''} ${i.name}`).join(', ')})`);
    for (const f of [
      'createTopic(string,bytes2[],uint128,uint128,bool,string)',
      'updateTopic(bytes32,bytes2[],uint128,uint128,bool,string)',
      'grant()',
      'grantMany(bytes32,address[],uint8,string)',
      'revoke(bytes32,address,uint8,string)',
      'join(bytes32,uint8)',
      'withdraw(bytes32,address[])',
      'paid(bytes32,address)',
      'topic(bytes32)',
      'checkBatch(bytes)',
      'admin()',
      'setOperator(address,bool)',
      'operator(address)',
      'recordAudit((bytes16,uint64,uint64,uint32,uint64)[],(address,bytes32,bytes16,bytes2,uint64,uint64)[],(bytes16,address,uint8,uint64,uint64)[],bytes)',
    ]) {
      assert.ok(fns.includes(f), `missing function ${f}`);
    }
    assert.equal(fns.length, 14, `unexpected functions: ${fns.join('; ')}`);
    assert.ok(!abi.some((x) => x.type === 'receive' || x.type === 'fallback'));
    for (const e of [
      'AclChanged(bytes32 indexed topicId, address indexed target, uint8 indexed action, uint8 change, string reason)',
      'TopicCreated(bytes32 indexed topicId, address indexed owner, string name)',
      'Banned(bytes16 indexed ip, uint64 seq, uint64 until, uint32 failures, uint64 time)',
      'WrongCountry(address indexed client, bytes32 indexed topicId, bytes16 ip, bytes2 country, uint64 seq, uint64 time)',
      'ConnectFailed(bytes16 indexed ip, address indexed client, uint8 reason, uint64 seq, uint64 time)',
      'SensitiveReport(bytes32 indexed topicId, bytes report)',
      'Withdrawn(bytes32 indexed topicId, address indexed owner, uint256 amount)',
      'OperatorChanged(address indexed operator, bool enabled)',
    ]) {
      assert.ok(events.includes(e), `missing event ${e}: have ${events.join('; ')}`);
    }
  });
});

// A topic owner that is a contract re-entering withdraw() from its receive().
const ATTACKER = `
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
interface IFlyTrap {
    function createTopic(string calldata, bytes2[] calldata, uint128, uint128, bool, string calldata) external returns (bytes32);
    function withdraw(bytes32, address[] calldata) external;
}
contract Attacker {
    IFlyTrap immutable ft;
    uint256 public received;
    uint256 public calls;
    bool public reentered;
    constructor(IFlyTrap f) { ft = f; }
    function create(string calldata name, uint128 fee) external { ft.createTopic(name, new bytes2[](0), fee, fee, false, ""); }
    function pull(bytes32 t, address[] calldata members) external { ft.withdraw(t, members); }
    bytes32 topic;
    address[] who;
    function arm(bytes32 t, address[] calldata members) external { topic = t; who = members; }
    receive() external payable {
        received += msg.value;
        calls++;
        if (calls == 1) { try ft.withdraw(topic, who) { reentered = true; } catch {} }
    }
}`;

describe('withdraw re-entrancy', () => {
  let s;
  before(async () => {
    s = await setup(startAnvil);
  });
  after(async () => {
    await s?.node.stop();
  });

  it('a re-entering owner is paid exactly once', async () => {
    const out = JSON.parse(
      solc.compile(
        JSON.stringify({
          language: 'Solidity',
          sources: { 'A.sol': { content: ATTACKER } },
          settings: { evmVersion: 'cancun', outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
        }),
      ),
    );
    const c = out.contracts['A.sol'].Attacker;
    const aabi = c.abi;
    const [, alice, bob] = s.accounts;
    const { address } = await s.chain.send({
      from: alice,
      data: encodeDeployData({ abi: aabi, bytecode: '0x' + c.evm.bytecode.object, args: [s.ft.address] }),
    }).then((r) => ({ address: r.contractAddress }));
    const call = (fn, args = []) =>
      s.chain.send({ from: alice, to: address, data: encodeFunctionData({ abi: aabi, functionName: fn, args }), gas: 1_000_000n });
    await call('create', ['evil/topic', 10n ** 15n]);
    const T = keccak256(toBytes('evil/topic'));
    await s.ft.send(alice, 'join', [T, 0], 10n ** 15n);
    await s.ft.send(bob, 'join', [T, 1], 10n ** 15n);
    assert.equal(await s.ft.call('paid', [T, alice]), 10n ** 15n);
    assert.equal(await s.ft.call('paid', [T, bob]), 10n ** 15n);
    await call('arm', [T, [alice, bob]]);
    await call('pull', [T, [alice, bob]]);
    assert.equal(await s.chain.balance(address), 2n * 10n ** 15n);
    assert.equal(await s.chain.balance(s.ft.address), 0n);
    assert.equal(await s.ft.call('paid', [T, alice]), 0n);
    assert.equal(await s.ft.call('paid', [T, bob]), 0n);
    const view = new FlyTrap(s.chain, address);
    const read = async (fn) =>
      (await s.chain.rpc('eth_call', [{ to: view.address, data: encodeFunctionData({ abi: aabi, functionName: fn }) }, 'latest']));
    assert.equal(BigInt(await read('calls')), 1n);
    assert.equal(BigInt(await read('reentered')), 0n);
  });
});

void artifact;
