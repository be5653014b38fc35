// Topics, ACL changes, views, fees and the AclChanged log, against a real anvil (free port).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { concatHex, decodeEventLog, keccak256, pad, toBytes, toEventSelector, toHex } from 'viem';
import { startAnvil } from '../scripts/anvil.mjs';
import { abi, setup } from '../scripts/chain.mjs';

const tid = (name) => keccak256(toBytes(name));
const lc = (a) => a.toLowerCase();
/** one packed checkBatch query: topicId (32) ‖ address (20) ‖ action (1) */
const query = (topicId, who, action) => concatHex([topicId, who, `0x${action.toString(16).padStart(2, '0')}`]);

/** asserts that `promise` rejects with custom error `name` (and `args` if given) */
async function reverts(promise, name, args) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.errorName, name, `expected ${name}, got: ${e.message}`);
    if (args) assert.deepEqual(e.args, args);
    return true;
  });
}

let s;
let ft;
let chain;
let admin;
let owner;
let alice;
let bob;
let carol;
let mallory;

/** grant() takes its arguments packed after the selector: topicId ‖ who ‖ action ‖ reason */
const grantData = (topicId, who, action, reason) =>
  concatHex([ft.data('grant'), topicId, who, toHex(action, { size: 1 }), toHex(reason)]);
const grant = (from, topicId, who, action, reason) => ft.sendRaw(from, grantData(topicId, who, action, reason));

/** [allowed, countries, sensitive] of one question (checkBatch with one query) */
async function verify(action, topicId, who) {
  const [a] = await ft.call('checkBatch', [query(topicId, who, action)]);
  return [a.allowed, a.countries, a.sensitive];
}

before(async () => {
  s = await setup(startAnvil);
  ({ ft, chain } = s);
  [admin, owner, alice, bob, carol, mallory] = s.accounts;
});

after(async () => {
  await s?.node.stop();
});

describe('topics', () => {
  it('creates a topic and emits TopicCreated + AclChanged(created)', async () => {
    const r = await ft.send(owner, 'createTopic', ['home/temp', ['0x4445', '0x4652'], 5n, 7n, true, 'first']);
    const ev = ft.events(r);
    assert.equal(ev.length, 2);
    assert.equal(ev[0].eventName, 'TopicCreated');
    assert.equal(ev[0].args.topicId, tid('home/temp'));
    assert.equal(lc(ev[0].args.owner), lc(owner));
    assert.equal(ev[0].args.name, 'home/temp');
    assert.equal(ev[1].eventName, 'AclChanged');
    assert.equal(ev[1].args.change, 0);
    assert.equal(ev[1].args.action, 255);
    assert.equal(lc(ev[1].args.target), lc(owner));
    assert.equal(ev[1].args.reason, 'first');
    // no source (the owner, or the target of a join) and no time (the block's) in the log
    assert.deepEqual(Object.keys(ev[1].args).sort(), ['action', 'change', 'reason', 'target', 'topicId']);

    const [exists, o, countries, pubFee, subFee, sensitive] = await ft.call('topic', [tid('home/temp')]);
    assert.equal(exists, true);
    assert.equal(lc(o), lc(owner));
    assert.deepEqual(countries, ['0x4445', '0x4652']);
    assert.equal(pubFee, 5n);
    assert.equal(subFee, 7n);
    assert.equal(sensitive, true);
  });

  it('returns the id computed off-chain as keccak256(name)', async () => {
    const out = await ft.call('createTopic', ['home/+/x', [], 0n, 0n, false, ''], owner);
    assert.equal(out, tid('home/+/x'));
    await ft.send(owner, 'createTopic', ['home/+/x', [], 0n, 0n, false, '']);
  });

  it('rejects a duplicate topic', async () => {
    await reverts(ft.send(alice, 'createTopic', ['home/temp', [], 0n, 0n, false, '']), 'TopicExists');
  });

  it('rejects bad countries and an empty name', async () => {
    await reverts(ft.send(owner, 'createTopic', ['x/1', ['0x6465'], 0n, 0n, false, '']), 'BadCountry', ['0x6465']);
    await reverts(ft.send(owner, 'createTopic', ['x/1', ['0x4100'], 0n, 0n, false, '']), 'BadCountry', ['0x4100']);
    await reverts(ft.send(owner, 'createTopic', ['x/1', ['0x5b41'], 0n, 0n, false, '']), 'BadCountry', ['0x5b41']);
    await reverts(ft.send(owner, 'createTopic', ['', [], 0n, 0n, false, '']), 'EmptyName');
  });

  it('stores long names and many countries (more than one packed word)', async () => {
    const name = 'factory/' + 'x'.repeat(70) + '/#';
    const countries = [];
    for (let i = 0; i < 20; i++) countries.push('0x41' + (0x41 + i).toString(16));
    await ft.send(owner, 'createTopic', [name, countries, 0n, 0n, false, 'long']);
    const r = await ft.send(owner, 'updateTopic', [tid(name), countries, 0n, 0n, false, 'same']);
    assert.equal(ft.events(r)[0].eventName, 'AclChanged');
    const [exists, , got] = await ft.call('topic', [tid(name)]);
    assert.equal(exists, true);
    assert.deepEqual(got, countries);
    const [allowed, vc] = await verify(0, tid(name), alice);
    assert.equal(allowed, false);
    assert.deepEqual(vc, countries);
  });

  it('emits names of every length across word boundaries exactly (TopicCreated)', async () => {
    for (const len of [1, 30, 31, 32, 33, 63, 64, 65]) {
      const name = `n${len}/` + 'é'.repeat(len).slice(0, len - 1 - String(len).length) + 'z';
      // (a multi-byte UTF-8 name: byte length differs from char length)
      const r = await ft.send(alice, 'createTopic', [name, [], 0n, 0n, false, '']);
      assert.equal(ft.events(r)[0].args.name, name);
      const [exists, o] = await ft.call('topic', [tid(name)]);
      assert.equal(exists, true);
      assert.equal(lc(o), lc(alice));
    }
  });

  it('keeps no topic list on chain: the TopicCreated events list the topics', async () => {
    const sig = toEventSelector(abi.find((x) => x.type === 'event' && x.name === 'TopicCreated'));
    const logs = await chain.rpc('eth_getLogs', [{ address: ft.address, fromBlock: '0x0', toBlock: 'latest', topics: [sig] }]);
    assert.equal(logs.length, 11);
    assert.equal(logs[0].topics[1], tid('home/temp'));
    for (const f of ['topicCount', 'topicIdAt', 'members', 'isMember', 'verifyPub', 'verifySub', 'balanceOf', 'recordBans', 'addOperator', 'removeOperator', 'isOperator', 'lastSeq', 'JOIN_CLOSED']) {
      assert.ok(!abi.some((x) => x.name === f), `${f} is gone`);
    }
  });

  it('updates a topic (owner only) and emits AclChanged(updated)', async () => {
    const T = tid('home/temp');
    await reverts(ft.send(mallory, 'updateTopic', [T, [], 0n, 0n, false, '']), 'NotOwner');
    await reverts(ft.send(owner, 'updateTopic', [tid('nope'), [], 0n, 0n, false, '']), 'UnknownTopic');
    const r = await ft.send(owner, 'updateTopic', [T, ['0x5553'], 1n, 2n, false, 'moved']);
    const [ev] = ft.events(r);
    assert.equal(ev.eventName, 'AclChanged');
    assert.equal(ev.args.change, 4);
    assert.equal(ev.args.action, 255);
    assert.equal(ev.args.reason, 'moved');
    const [, , countries, pubFee, subFee, sensitive] = await ft.call('topic', [T]);
    assert.deepEqual(countries, ['0x5553']);
    assert.equal(pubFee, 1n);
    assert.equal(subFee, 2n);
    assert.equal(sensitive, false);
    // back to the original settings for the tests below
    await ft.send(owner, 'updateTopic', [T, ['0x4445', '0x4652'], 5n, 7n, true, '']);
  });
});

describe('grant and revoke', () => {
  const T = tid('home/temp');

  it('only the owner grants and revokes', async () => {
    await reverts(grant(mallory, T, mallory, 0, ''), 'NotOwner');
    await reverts(ft.send(mallory, 'revoke', [T, alice, 0, '']), 'NotOwner');
    await reverts(grant(owner, tid('nope'), alice, 0, ''), 'UnknownTopic');
    await reverts(grant(owner, T, alice, 2, ''), 'BadAction');
    await reverts(ft.send(owner, 'revoke', [T, alice, 7, '']), 'BadAction');
  });

  it('grants, emits AclChanged(grant) and answers the views', async () => {
    const r = await grant(owner, T, alice, 0, 'sensor');
    const [ev] = ft.events(r);
    assert.equal(ev.eventName, 'AclChanged');
    assert.equal(ev.args.topicId, T);
    assert.equal(lc(ev.args.target), lc(alice));
    assert.equal(ev.args.action, 0);
    assert.equal(ev.args.change, 1);
    assert.equal(ev.args.reason, 'sensor');

    assert.deepEqual(await verify(0, T, alice), [true, ['0x4445', '0x4652'], true]);
    assert.deepEqual(await verify(1, T, alice), [false, ['0x4445', '0x4652'], true]);
  });

  it('grant() reads its packed arguments exactly: any reason length, short calldata refused', async () => {
    const Z = '0x0000000000000000000000000000000000000000';
    await reverts(grant(owner, T, Z, 0, ''), 'ZeroAddress');
    const full = grantData(T, carol, 1, '');
    await reverts(ft.sendRaw(owner, full.slice(0, -2)), 'BadCall'); // 52 bytes of arguments
    await reverts(ft.sendRaw(owner, ft.data('grant')), 'BadCall');
    const G = tid('grant/reasons');
    await ft.send(owner, 'createTopic', ['grant/reasons', [], 0n, 0n, false, '']);
    for (const [i, len] of [0, 1, 31, 32, 33, 64, 100].entries()) {
      const reason = 'é'.repeat(len).slice(0, len) + 'r'.repeat(len % 3);
      const who = `0x${(0xa11ce00 + i).toString(16).padStart(40, '0')}`;
      const r = await grant(owner, G, who, i % 2, reason);
      const [ev] = ft.events(r);
      assert.equal(ev.eventName, 'AclChanged');
      assert.deepEqual(
        { ...ev.args, target: lc(ev.args.target) },
        { topicId: G, target: who, action: i % 2, change: 1, reason },
      );
      // the log is canonically encoded: what viem encodes for these arguments
      const log = r.logs[0];
      assert.equal((log.data.length - 2) / 2, 0x60 + Math.ceil(Buffer.byteLength(reason) / 32) * 32);
      assert.equal((await verify(i % 2, G, who))[0], true);
    }
  });

  it('granting an existing member reverts AlreadyMember, revoking a non-member NotMember', async () => {
    await reverts(grant(owner, T, alice, 0, ''), 'AlreadyMember');
    await reverts(ft.send(owner, 'revoke', [T, bob, 0, '']), 'NotMember');
    await reverts(ft.send(owner, 'revoke', [T, alice, 1, '']), 'NotMember');
  });

  it('keeps membership right through adds and removals (one word per address)', async () => {
    const can = async (who) => [(await verify(0, T, who))[0], (await verify(1, T, who))[0]];
    await grant(owner, T, bob, 0, '');
    await grant(owner, T, carol, 0, '');
    await grant(owner, T, bob, 1, '');
    await grant(owner, T, mallory, 1, '');
    assert.deepEqual(await can(bob), [true, true]);
    const r = await ft.send(owner, 'revoke', [T, alice, 0, 'gone']);
    const [ev] = ft.events(r);
    assert.equal(ev.args.change, 2);
    assert.equal(ev.args.reason, 'gone');
    assert.deepEqual(await can(alice), [false, false]);
    // bob keeps sub when pub is revoked
    await ft.send(owner, 'revoke', [T, bob, 0, '']);
    assert.deepEqual(await can(bob), [false, true]);
    await ft.send(owner, 'revoke', [T, mallory, 1, '']);
    await ft.send(owner, 'revoke', [T, carol, 0, '']);
    await ft.send(owner, 'revoke', [T, bob, 1, '']);
    for (const who of [alice, bob, carol, mallory]) assert.deepEqual(await can(who), [false, false]);
    await grant(owner, T, carol, 1, '');
    await grant(owner, T, alice, 0, '');
    assert.deepEqual(await can(alice), [true, false]);
    assert.deepEqual(await can(carol), [false, true]);
  });

  it('grantMany grants every address with one AclChanged each, all or nothing', async () => {
    const G = tid('fleet/topic');
    await ft.send(owner, 'createTopic', ['fleet/topic', [], 0n, 0n, false, '']);
    const fleet = Array.from({ length: 5 }, (_, i) => `0x${(0xf1ee7000 + i).toString(16).padStart(40, '0')}`);
    const r = await ft.send(owner, 'grantMany', [G, fleet, 1, 'fleet']);
    const ev = ft.events(r);
    assert.equal(ev.length, 5);
    ev.forEach((e, i) => {
      assert.equal(e.eventName, 'AclChanged');
      assert.equal(lc(e.args.target), lc(fleet[i]));
      assert.equal(e.args.change, 1);
      assert.equal(e.args.action, 1);
      assert.equal(e.args.reason, 'fleet');
    });
    for (const who of fleet) assert.equal((await verify(1, G, who))[0], true);
    await reverts(ft.send(mallory, 'grantMany', [G, [alice], 1, '']), 'NotOwner');
    await reverts(ft.send(owner, 'grantMany', [G, [alice], 2, '']), 'BadAction');
    await reverts(ft.send(owner, 'grantMany', [G, [alice, '0x0000000000000000000000000000000000000000'], 1, '']), 'ZeroAddress');
    // a duplicate (or an address already granted) reverts the whole batch
    await reverts(ft.send(owner, 'grantMany', [G, [alice, alice], 1, '']), 'AlreadyMember');
    await reverts(ft.send(owner, 'grantMany', [G, [alice, fleet[0]], 1, '']), 'AlreadyMember');
    assert.equal((await verify(1, G, alice))[0], false);
    await reverts(ft.send(owner, 'grantMany', [tid('nope'), [alice], 1, '']), 'UnknownTopic');
  });

  it('checkBatch answers packed queries, unknown topics with exists = allowed = false', async () => {
    assert.deepEqual(await verify(0, tid('nope'), alice), [false, [], false]);
    assert.deepEqual(await verify(1, tid('nope'), alice), [false, [], false]);
    const answers = await ft.call('checkBatch', [
      concatHex([
        query(T, alice, 0),
        query(T, alice, 1),
        query(tid('nope'), alice, 0),
        query(T, carol, 1),
        query(T, carol, 9),
        query(tid('home/+/x'), carol, 1),
      ]),
    ]);
    const C = ['0x4445', '0x4652'];
    assert.deepEqual(answers, [
      { exists: true, allowed: true, sensitive: true, countries: C },
      { exists: true, allowed: false, sensitive: true, countries: C },
      { exists: false, allowed: false, sensitive: false, countries: [] },
      { exists: true, allowed: true, sensitive: true, countries: C },
      { exists: true, allowed: false, sensitive: true, countries: C },
      { exists: true, allowed: false, sensitive: false, countries: [] },
    ]);
    assert.deepEqual(await ft.call('checkBatch', ['0x']), []);
    // anything but a whole number of 53-byte queries
    await reverts(ft.call('checkBatch', [query(T, alice, 0).slice(0, -2)]), 'BadQuery');
    await reverts(ft.call('checkBatch', [concatHex([query(T, alice, 0), '0x00'])]), 'BadQuery');
  });

  it('AclChanged is filterable by topic id, by target address and by action', async () => {
    const sig = toEventSelector(abi.find((x) => x.type === 'event' && x.name === 'AclChanged'));
    const get = (topics) => chain.rpc('eth_getLogs', [{ address: ft.address, fromBlock: '0x0', toBlock: 'latest', topics }]);
    const decode = (logs) => logs.map((l) => decodeEventLog({ abi, data: l.data, topics: l.topics }).args);

    const byTopic = decode(await get([sig, T]));
    assert.ok(byTopic.length >= 10);
    assert.ok(byTopic.every((a) => a.topicId === T));

    const byAlice = decode(await get([sig, null, pad(alice)]));
    assert.ok(byAlice.length >= 3);
    assert.ok(byAlice.every((a) => lc(a.target) === lc(alice)));

    const subs = decode(await get([sig, T, null, pad('0x01')]));
    assert.ok(subs.length > 0);
    assert.ok(subs.every((a) => a.action === 1 && a.topicId === T));

    const aliceGrants = decode(await get([sig, T, pad(alice), pad('0x00')])).filter((a) => a.change === 1);
    assert.equal(aliceGrants.length, 2); // granted, revoked, granted again
  });
});

describe('fees', () => {
  const P = tid('paid/topic');

  before(async () => {
    await ft.send(owner, 'createTopic', ['paid/topic', [], 10n ** 15n, 0n, false, '']);
    await ft.send(owner, 'createTopic', ['closed/topic', [], 2n ** 128n - 1n, 2n ** 128n - 1n, false, '']);
  });

  it('stores fees as m × 10^e (m < 2^34) exactly, JOIN_CLOSED apart, and rejects the rest', async () => {
    const fees = [0n, 1n, 2n ** 34n - 1n, 17_179_869_180n, 10n ** 15n, 123_456_789n * 10n ** 18n, (2n ** 34n - 1n) * 10n ** 28n, 2n ** 128n - 1n];
    for (const [i, fee] of fees.entries()) {
      const name = `fee/${i}`;
      await ft.send(owner, 'createTopic', [name, [], fee, fees[fees.length - 1 - i], false, '']);
      const [, , , pubFee, subFee] = await ft.call('topic', [tid(name)]);
      assert.equal(pubFee, fee);
      assert.equal(subFee, fees[fees.length - 1 - i]);
    }
    for (const bad of [2n ** 34n, 2n ** 34n + 1n, 10n ** 15n + 1n, 2n ** 128n - 2n, 3n ** 50n]) {
      await reverts(ft.send(owner, 'createTopic', ['fee/bad', [], bad, 0n, false, '']), 'BadFee');
      await reverts(ft.send(owner, 'updateTopic', [P, [], 0n, bad, false, '']), 'BadFee');
    }
    assert.equal((await ft.call('topic', [tid('fee/bad')]))[0], false);
  });

  it('join needs exactly the fee', async () => {
    await reverts(ft.send(alice, 'join', [P, 0], 1n), 'WrongFee', [10n ** 15n]);
    await reverts(ft.send(alice, 'join', [P, 0]), 'WrongFee', [10n ** 15n]);
    await reverts(ft.send(alice, 'join', [P, 1], 1n), 'WrongFee', [0n]);
    await reverts(ft.send(alice, 'join', [tid('nope'), 0]), 'UnknownTopic');
    await reverts(ft.send(alice, 'join', [P, 2]), 'BadAction');
    await reverts(ft.send(alice, 'join', [tid('closed/topic'), 1]), 'JoinClosed');
    await reverts(ft.send(alice, 'join', [tid('closed/topic'), 0], 1n), 'JoinClosed');
  });

  it("join with the fee adds the member, credits the fee in the member's word and emits AclChanged(join)", async () => {
    const r = await ft.send(alice, 'join', [P, 0], 10n ** 15n);
    const [ev] = ft.events(r);
    assert.equal(ev.args.change, 3);
    assert.equal(lc(ev.args.target), lc(alice));
    assert.equal(ev.args.action, 0);
    assert.equal(ev.args.reason, '');
    assert.equal((await verify(0, P, alice))[0], true);
    assert.equal((await verify(1, P, alice))[0], false);
    assert.equal(await ft.call('paid', [P, alice]), 10n ** 15n);
    await reverts(ft.send(alice, 'join', [P, 0], 10n ** 15n), 'AlreadyMember');
    // free subscription
    await ft.send(bob, 'join', [P, 1]);
    assert.equal((await verify(1, P, bob))[0], true);
    assert.equal(await ft.call('paid', [P, bob]), 0n);
    await ft.send(carol, 'join', [P, 0], 10n ** 15n);
    assert.equal(await ft.call('paid', [P, carol]), 10n ** 15n);
    // a member revoked and joining again pays again; its rights bits stay right
    await ft.send(owner, 'revoke', [P, carol, 0, '']);
    assert.equal((await verify(0, P, carol))[0], false);
    await grant(owner, P, carol, 1, '');
    await ft.send(carol, 'join', [P, 0], 10n ** 15n);
    assert.equal(await ft.call('paid', [P, carol]), 2n * 10n ** 15n);
    assert.deepEqual([(await verify(0, P, carol))[0], (await verify(1, P, carol))[0]], [true, true]);
    assert.equal(await ft.call('paid', [tid('nope'), carol]), 0n);
  });

  it('withdraw pays the owner exactly the fees of the members given, once', async () => {
    const due = 3n * 10n ** 15n;
    const contractBefore = await chain.balance(ft.address);
    assert.equal(contractBefore, due);
    await reverts(ft.send(mallory, 'withdraw', [P, [alice, carol]]), 'NotOwner');
    await reverts(ft.send(owner, 'withdraw', [tid('nope'), [alice]]), 'UnknownTopic');
    await reverts(ft.send(owner, 'withdraw', [P, [bob, mallory]]), 'NothingToWithdraw');
    await reverts(ft.send(owner, 'withdraw', [P, []]), 'NothingToWithdraw');
    const b0 = await chain.balance(owner);
    // a member listed twice is paid once
    const r = await ft.send(owner, 'withdraw', [P, [alice, bob, carol, alice]]);
    const b1 = await chain.balance(owner);
    const fee = BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
    assert.equal(b1 - b0 + fee, due);
    assert.equal(await chain.balance(ft.address), 0n);
    for (const who of [alice, bob, carol]) assert.equal(await ft.call('paid', [P, who]), 0n);
    // membership is untouched
    assert.deepEqual([(await verify(0, P, carol))[0], (await verify(1, P, carol))[0]], [true, true]);
    assert.equal((await verify(0, P, alice))[0], true);
    const [ev] = ft.events(r);
    assert.equal(ev.eventName, 'Withdrawn');
    assert.equal(ev.args.topicId, P);
    assert.equal(lc(ev.args.owner), lc(owner));
    assert.equal(ev.args.amount, due);
    await reverts(ft.send(owner, 'withdraw', [P, [alice, carol]]), 'NothingToWithdraw');
    // credits after a withdrawal still add up, also for a revoked member
    await ft.send(bob, 'join', [P, 0], 10n ** 15n);
    await ft.send(owner, 'revoke', [P, bob, 0, '']);
    assert.equal(await ft.call('paid', [P, bob]), 10n ** 15n);
    await ft.send(owner, 'withdraw', [P, [bob]]);
    assert.equal(await chain.balance(ft.address), 0n);
    assert.equal((await verify(1, P, bob))[0], true);
  });

  it('has no receive function: plain ether is refused', async () => {
    await assert.rejects(chain.send({ from: alice, to: ft.address, data: '0x', value: 1n }));
  });
});
