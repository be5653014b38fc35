// Operators and audit records (events only, exactly-once by per-operator seq), on a real anvil.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { concatHex, keccak256, pad, toBytes, toEventSelector } from 'viem';
import { startAnvil } from '../scripts/anvil.mjs';
import { abi, setup } from '../scripts/chain.mjs';

const tid = (name) => keccak256(toBytes(name));
const lc = (a) => a.toLowerCase();
const sel = (name) => toEventSelector(abi.find((x) => x.type === 'event' && x.name === name));
const ip4 = (a, b, c, d) =>
  '0x00000000000000000000ffff' + [a, b, c, d].map((x) => x.toString(16).padStart(2, '0')).join('');

// Every kind goes through recordAudit (code size = deploy gas): one kind alone is recordAudit
// with the other arguments empty. Sensitive reports are packed bytes, concatenated.
const KINDS = ['recordBans', 'recordWrongCountry', 'recordConnectFailed', 'recordSensitive'];
const alone = (fn, recs) =>
  KINDS.map((k) => (k === 'recordSensitive' ? (k === fn ? concatHex(recs) : '0x') : k === fn ? recs : []));
const audit = (bans, wcs, cfs, reps) => [bans, wcs, cfs, concatHex(reps)];

async function reverts(promise, name) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.errorName, name, `expected ${name}, got: ${e.message}`);
    return true;
  });
}

let s;
let ft;
let chain;
let admin;
let proxy;
let alice;
let bob;
let mallory;
const T = tid('secret/topic');
const now = 1_750_000_000n;

before(async () => {
  s = await setup(startAnvil);
  ({ ft, chain } = s);
  [admin, proxy, alice, bob, , mallory] = s.accounts;
});

after(async () => {
  await s?.node.stop();
});

const ban = (seq, i = 1) => ({ ip: ip4(10, 0, 0, i), seq, until: now + 300n, failures: 5, time: now });
const wc = (seq) => ({ client: alice, topicId: T, ip: ip4(192, 0, 2, 7), country: '0x4652', seq, time: now });
const cf = (seq, client = bob) => ({ ip: ip4(198, 51, 100, 1), client, reason: 0x86, seq, time: now });
const be = (v, bytes) => BigInt(v).toString(16).padStart(bytes * 2, '0');
/** the SensitiveReport event's packed report: seq ‖ from ‖ to ‖ nPub ‖ nRecv ‖ addresses */
const packed = (seq, publishers, receivers, from = now - 1800n, to = now) =>
  '0x' + be(seq, 8) + be(from, 8) + be(to, 8) + be(publishers.length, 2) + be(receivers.length, 2) +
  [...publishers, ...receivers].map((a) => a.slice(2).toLowerCase()).join('');
/** one recordAudit report entry: topicId ‖ packed report */
const rep = (seq, publishers = [alice], receivers = [bob, alice]) => concatHex([T, packed(seq, publishers, receivers)]);
/** unpacks an event's report */
const unpack = (hex) => {
  const b = hex.slice(2);
  const num = (o, n) => BigInt('0x' + b.slice(o * 2, (o + n) * 2));
  const np = Number(num(24, 2));
  const nr = Number(num(26, 2));
  const addr = (i) => '0x' + b.slice((28 + 20 * i) * 2, (48 + 20 * i) * 2);
  assert.equal(b.length, (28 + 20 * (np + nr)) * 2);
  return {
    seq: num(0, 8),
    from: num(8, 8),
    to: num(16, 8),
    publishers: Array.from({ length: np }, (_, i) => addr(i)),
    receivers: Array.from({ length: nr }, (_, i) => addr(np + i)),
  };
};
const lastSeq = async (op) => (await ft.call('operator', [op]))[1];
const isOperator = async (op) => (await ft.call('operator', [op]))[0];

describe('operators', () => {
  it('the deployer is admin and first operator', async () => {
    assert.equal(lc(await ft.call('admin')), lc(admin));
    assert.deepEqual(await ft.call('operator', [admin]), [true, 0n]);
    assert.deepEqual(await ft.call('operator', [proxy]), [false, 0n]);
  });

  it('only the admin enables and disables operators', async () => {
    await reverts(ft.send(mallory, 'setOperator', [mallory, true]), 'NotAdmin');
    await reverts(ft.send(admin, 'setOperator', ['0x0000000000000000000000000000000000000000', true]), 'ZeroAddress');
    const r = await ft.send(admin, 'setOperator', [proxy, true]);
    assert.equal(ft.events(r)[0].eventName, 'OperatorChanged');
    assert.equal(ft.events(r)[0].args.enabled, true);
    assert.equal(lc(ft.events(r)[0].args.operator), lc(proxy));
    assert.equal(await isOperator(proxy), true);
    await reverts(ft.send(mallory, 'setOperator', [proxy, false]), 'NotAdmin');
  });

  it('rejects audit writes from a non-operator', async () => {
    await reverts(ft.send(mallory, 'recordAudit', alone('recordBans', [ban(1n)])), 'NotOperator');
    await reverts(ft.send(mallory, 'recordAudit', alone('recordWrongCountry', [wc(1n)])), 'NotOperator');
    await reverts(ft.send(mallory, 'recordAudit', alone('recordConnectFailed', [cf(1n)])), 'NotOperator');
    await reverts(ft.send(mallory, 'recordAudit', alone('recordSensitive', [rep(1n)])), 'NotOperator');
    await reverts(ft.send(mallory, 'recordAudit', audit([ban(1n)], [], [], [])), 'NotOperator');
  });
});

describe('audit records', () => {
  it('writes each kind with all its fields', async () => {
    let r = await ft.send(proxy, 'recordAudit', alone('recordBans', [ban(1n, 1), ban(2n, 2)]));
    let ev = ft.events(r);
    assert.deepEqual(
      ev.map((e) => e.eventName),
      ['Banned', 'Banned'],
    );
    assert.deepEqual(ev[1].args, { ip: ip4(10, 0, 0, 2), seq: 2n, until: now + 300n, failures: 5, time: now });
    assert.equal(await lastSeq(proxy), 2n);

    r = await ft.send(proxy, 'recordAudit', alone('recordWrongCountry', [wc(3n)]));
    ev = ft.events(r);
    assert.equal(ev[0].eventName, 'WrongCountry');
    assert.equal(lc(ev[0].args.client), lc(alice));
    assert.deepEqual(
      { ...ev[0].args, client: undefined },
      { client: undefined, topicId: T, ip: ip4(192, 0, 2, 7), country: '0x4652', seq: 3n, time: now },
    );

    r = await ft.send(proxy, 'recordAudit', alone('recordConnectFailed', [cf(4n), cf(5n, '0x0000000000000000000000000000000000000000')]));
    ev = ft.events(r);
    assert.equal(ev.length, 2);
    assert.equal(ev[0].eventName, 'ConnectFailed');
    assert.equal(ev[0].args.ip, ip4(198, 51, 100, 1));
    assert.equal(lc(ev[0].args.client), lc(bob));
    assert.equal(ev[0].args.reason, 0x86);
    assert.equal(ev[0].args.seq, 4n);
    assert.equal(ev[0].args.time, now);
    assert.equal(ev[1].args.client, '0x0000000000000000000000000000000000000000');
    assert.equal(await lastSeq(proxy), 5n);
  });

  it('round-trips a sensitive report (event args and eth_getLogs by topic id)', async () => {
    const many = Array.from({ length: 40 }, (_, i) => '0x' + (i + 1).toString(16).padStart(40, '0'));
    const r = await ft.send(proxy, 'recordAudit', alone('recordSensitive', [rep(6n), rep(7n, [], many), rep(8n, many.slice(0, 3), [])]));
    const ev = ft.events(r);
    assert.equal(ev.length, 3);
    assert.equal(ev[0].eventName, 'SensitiveReport');
    assert.equal(ev[0].args.topicId, T);
    assert.equal(ev[0].args.report, packed(6n, [alice], [bob, alice]));
    const r0 = unpack(ev[0].args.report);
    assert.equal(r0.seq, 6n);
    assert.equal(r0.from, now - 1800n);
    assert.equal(r0.to, now);
    assert.deepEqual(r0.publishers, [lc(alice)]);
    assert.deepEqual(r0.receivers, [lc(bob), lc(alice)]);
    assert.deepEqual(unpack(ev[1].args.report).publishers, []);
    assert.deepEqual(unpack(ev[1].args.report).receivers, many);
    assert.deepEqual(unpack(ev[2].args.report).publishers, many.slice(0, 3));
    assert.deepEqual(unpack(ev[2].args.report).receivers, []);

    const logs = await chain.rpc('eth_getLogs', [
      { address: ft.address, fromBlock: '0x0', toBlock: 'latest', topics: [sel('SensitiveReport'), T] },
    ]);
    assert.equal(logs.length, 3);
    const none = await chain.rpc('eth_getLogs', [
      { address: ft.address, fromBlock: '0x0', toBlock: 'latest', topics: [sel('SensitiveReport'), tid('other')] },
    ]);
    assert.equal(none.length, 0);
  });

  it('audit logs are filterable by their indexed fields', async () => {
    const get = (topics) => chain.rpc('eth_getLogs', [{ address: ft.address, fromBlock: '0x0', toBlock: 'latest', topics }]);
    const ipTopic = ip4(10, 0, 0, 2).padEnd(66, '0'); // bytes16 topics are left-aligned
    assert.equal((await get([sel('Banned'), ipTopic])).length, 1);
    assert.equal((await get([sel('Banned')])).length, 2);
    assert.equal((await get([sel('WrongCountry'), pad(alice)])).length, 1);
    assert.equal((await get([sel('WrongCountry'), null, T])).length, 1);
    assert.equal((await get([sel('ConnectFailed'), null, pad(bob)])).length, 1);
  });

  it('skips records at or below lastSeq: a resent batch adds no event', async () => {
    const batch = [ban(9n), ban(10n), ban(11n)];
    const r1 = await ft.send(proxy, 'recordAudit', alone('recordBans', batch));
    assert.equal(ft.events(r1).length, 3);
    assert.equal(await lastSeq(proxy), 11n);
    const r2 = await ft.send(proxy, 'recordAudit', alone('recordBans', batch));
    assert.equal(ft.events(r2).length, 0);
    assert.equal(await lastSeq(proxy), 11n);
    // a batch that overlaps the last one writes only the new records
    const r3 = await ft.send(proxy, 'recordAudit', alone('recordBans', [ban(10n), ban(11n), ban(12n)]));
    assert.deepEqual(
      ft.events(r3).map((e) => e.args.seq),
      [12n],
    );
    // the same for the other kinds and the combined entry point
    const all = audit([ban(13n)], [wc(14n)], [cf(15n)], [rep(16n)]);
    const r4 = await ft.send(proxy, 'recordAudit', all);
    assert.deepEqual(
      ft.events(r4).map((e) => e.eventName),
      ['Banned', 'WrongCountry', 'ConnectFailed', 'SensitiveReport'],
    );
    const r5 = await ft.send(proxy, 'recordAudit', all);
    assert.equal(ft.events(r5).length, 0);
    for (const fn of ['recordWrongCountry', 'recordConnectFailed']) {
      const r = await ft.send(proxy, 'recordAudit', alone(fn, [fn === 'recordWrongCountry' ? wc(14n) : cf(15n)]));
      assert.equal(ft.events(r).length, 0);
    }
    const r6 = await ft.send(proxy, 'recordAudit', alone('recordSensitive', [rep(16n)]));
    assert.equal(ft.events(r6).length, 0);
    assert.equal(await lastSeq(proxy), 16n);
  });

  it('recordAudit compares every kind with lastSeq as it was before the call', async () => {
    // seqs interleave across kinds: all of them are written, the high-water mark is the max
    const r = await ft.send(proxy, 'recordAudit', audit([ban(20n)], [wc(18n)], [cf(19n)], [rep(17n)]));
    assert.deepEqual(
      ft.events(r).map((e) => e.args.seq ?? unpack(e.args.report).seq),
      [20n, 18n, 19n, 17n],
    );
    assert.equal(await lastSeq(proxy), 20n);
  });

  it('keeps one high-water mark per operator, kept across removal', async () => {
    // the admin (also an operator) has its own sequence
    const r = await ft.send(admin, 'recordAudit', alone('recordBans', [ban(1n)]));
    assert.equal(ft.events(r).length, 1);
    assert.equal(await lastSeq(admin), 1n);
    assert.equal(await lastSeq(proxy), 20n);

    const off = await ft.send(admin, 'setOperator', [proxy, false]);
    assert.equal(ft.events(off)[0].args.enabled, false);
    assert.deepEqual(await ft.call('operator', [proxy]), [false, 20n]);
    await reverts(ft.send(proxy, 'recordAudit', alone('recordBans', [ban(21n)])), 'NotOperator');
    await ft.send(admin, 'setOperator', [proxy, true]);
    assert.equal(await lastSeq(proxy), 20n);
    const again = await ft.send(proxy, 'recordAudit', alone('recordBans', [ban(20n), ban(21n)]));
    assert.deepEqual(
      ft.events(again).map((e) => e.args.seq),
      [21n],
    );
  });

  it('masks dirty calldata bits so that logs stay canonical', async () => {
    const data = ft.data('recordAudit', alone('recordBans', [ban(30n)]));
    // selector, four offsets, the bans' length, then the record: ip, seq, until, failures, time
    const word = (i) => 2 + 8 + 64 * (5 + i);
    const dirty = (hex, i, keep) => hex.slice(0, word(i)) + 'ee'.repeat(32 - keep) + hex.slice(word(i) + 2 * (32 - keep));
    let d = dirty(data, 1, 8); // seq: uint64
    d = dirty(d, 3, 4); // failures: uint32
    d = d.slice(0, word(0) + 32) + 'ee'.repeat(16) + d.slice(word(0) + 64); // ip: bytes16, low half
    const r = await chain.send({ from: proxy, to: ft.address, data: d });
    const [ev] = ft.events(r);
    assert.equal(ev.eventName, 'Banned');
    assert.equal(ev.args.seq, 30n);
    assert.equal(ev.args.failures, 5);
    assert.equal(ev.args.ip, ip4(10, 0, 0, 1));
    assert.equal(await lastSeq(proxy), 30n);
  });

  it('an empty batch is a no-op', async () => {
    const r = await ft.send(proxy, 'recordAudit', audit([], [], [], []));
    assert.equal(ft.events(r).length, 0);
    assert.equal(await lastSeq(proxy), 30n);
  });

  it('rejects a report cut short (BadReport), writing nothing', async () => {
    const good = rep(31n);
    for (const cut of [good.slice(0, -2), good.slice(0, 2 + 2 * 59), concatHex([good, '0x00'])]) {
      await reverts(ft.send(proxy, 'recordAudit', [[ban(32n)], [], [], cut]), 'BadReport');
    }
    // counts that run past the end
    const lying = concatHex([T, '0x' + be(33n, 8) + be(0n, 8) + be(1n, 8) + be(2, 2) + be(0, 2) + alice.slice(2)]);
    await reverts(ft.send(proxy, 'recordAudit', [[], [], [], lying]), 'BadReport');
    assert.equal(await lastSeq(proxy), 30n);
    const r = await ft.send(proxy, 'recordAudit', [[], [], [], concatHex([good, rep(34n, [], [])])]);
    assert.deepEqual(
      ft.events(r).map((e) => unpack(e.args.report).seq),
      [31n, 34n],
    );
    assert.equal(ft.events(r)[1].args.report, packed(34n, [], []));
  });
});
