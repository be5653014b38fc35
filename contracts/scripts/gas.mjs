#!/usr/bin/env node
// Measures the gas of every FlyTrap operation on a fresh anvil (started and stopped here) and
// writes contracts/GAS.md. Gas is the whole transaction's gasUsed from the receipt (21,000 base
// and calldata included, refunds deducted); views are eth_estimateGas of the call.
//
//   npm run gas            (= node scripts/gas.mjs)
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { concatHex, keccak256, toBytes, toHex } from 'viem';
import { startAnvil } from './anvil.mjs';
import { artifact, setup } from './chain.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'GAS.md');
const tid = (name) => keccak256(toBytes(name));
const gasOf = (r) => Number(BigInt(r.gasUsed));
const fmt = (n) => Math.round(n).toLocaleString('en-US');

const PAPER_DEPLOY = 2_060_000;

const be = (v, bytes) => BigInt(v).toString(16).padStart(bytes * 2, '0');
/** one packed report entry of recordAudit: topicId ‖ seq ‖ from ‖ to ‖ nPub ‖ nRecv ‖ addresses */
const report = (topicId, seq, from, to, pubs, recvs) =>
  topicId + be(seq, 8) + be(from, 8) + be(to, 8) + be(pubs.length, 2) + be(recvs.length, 2) + [...pubs, ...recvs].map((a) => a.slice(2).toLowerCase()).join('');
const PAPER_ACL = 100_000;

async function main() {
  const started = Date.now();
  const s = await setup(startAnvil);
  const { ft, chain } = s;
  const [admin, owner, alice, bob, carol, dave] = s.accounts;
  const rows = [];
  const row = (op, gas, { paper = '', target = null, note = '' } = {}) =>
    rows.push({ op, gas, paper, target, note });
  let anvilVersion = '';
  let hardfork = '';
  try {
    anvilVersion = await chain.rpc('web3_clientVersion');
    try {
      const info = await chain.rpc('anvil_nodeInfo');
      hardfork = info.hardFork || info.hardfork || '';
    } catch {
      // older anvil
    }
    const runtimeBytes = (artifact.deployedBytecode.length - 2) / 2;
    row('deploy', gasOf(s.deployReceipt), {
      paper: PAPER_DEPLOY,
      target: 1_200_000,
      note: `runtime code ${fmt(runtimeBytes)} bytes`,
    });

    // topics
    let r = await ft.send(owner, 'createTopic', ['plant/1/temp', [], 0n, 0n, false, '']);
    row('createTopic, 0 countries, no fee, empty reason', gasOf(r), { note: '12-byte name' });
    r = await ft.send(owner, 'createTopic', ['plant/1/valve', ['0x4945', '0x4742'], 0n, 0n, true, 'iot']);
    row('createTopic, 2 countries, sensitive', gasOf(r), { note: '13-byte name, reason "iot"' });
    r = await ft.send(owner, 'createTopic', ['plant/1/paid', [], 10n ** 15n, 10n ** 15n, false, '']);
    row('createTopic with fees', gasOf(r));
    r = await ft.send(owner, 'updateTopic', [tid('plant/1/temp'), ['0x4445'], 0n, 0n, false, 'de']);
    row('updateTopic (1 country)', gasOf(r));

    // ACL changes on plant/1/temp
    const T = tid('plant/1/temp');
    // grant() takes its arguments packed after the selector: topicId ‖ who ‖ action ‖ reason
    const grant = (who, action, reason) =>
      ft.sendRaw(owner, concatHex([ft.data('grant'), T, who, toHex(action, { size: 1 }), toHex(reason)]));
    r = await grant(alice, 0, 'ok');
    row('grant pub, new member', gasOf(r), {
      paper: PAPER_ACL,
      target: 50_000,
      note: 'one fresh slot: the member word',
    });
    r = await grant(bob, 0, 'ok');
    row('grant pub, a second new member', gasOf(r), { paper: PAPER_ACL, target: 50_000 });
    r = await grant(alice, 1, 'ok');
    row('grant sub, address already publisher', gasOf(r), { paper: PAPER_ACL, target: 50_000 });
    r = await ft.send(owner, 'revoke', [T, alice, 1, 'ok']);
    row('revoke sub, address stays publisher', gasOf(r), { paper: PAPER_ACL, target: 50_000 });
    r = await ft.send(owner, 'revoke', [T, alice, 0, 'ok']);
    row('revoke pub, last action', gasOf(r), {
      paper: PAPER_ACL,
      target: 50_000,
      note: 'after the refund for the cleared slot',
    });
    for (const n of [10, 100]) {
      const fleet = Array.from({ length: n }, (_, i) => `0x${(0xf1ee7000 + n * 1000 + i).toString(16).padStart(40, '0')}`);
      r = await ft.send(owner, 'grantMany', [T, fleet, 1, 'fleet']);
      row(`grantMany sub, ${n} new addresses`, gasOf(r), {
        target: n === 100 ? 30_000 : null,
        note: `${fmt(gasOf(r) / n)} per address`,
      });
      rows[rows.length - 1].perRecord = gasOf(r) / n;
    }

    // joins
    const P = tid('plant/1/paid');
    r = await ft.send(carol, 'join', [P, 0], 10n ** 15n);
    row('join with fee, new member', gasOf(r), { paper: PAPER_ACL, target: 50_000 });
    r = await ft.send(carol, 'join', [P, 1], 10n ** 15n);
    row('join with fee, address already publisher', gasOf(r), { paper: PAPER_ACL, target: 50_000 });
    await ft.send(owner, 'updateTopic', [T, [], 0n, 0n, false, '']);
    r = await ft.send(dave, 'join', [T, 1]);
    row('join free, new member', gasOf(r), { paper: PAPER_ACL, target: 50_000 });
    r = await ft.send(owner, 'withdraw', [P, [carol]]);
    row('withdraw, 1 member (2 fees)', gasOf(r), { note: "clears the fees in the member's word" });

    // views
    const queries = [];
    for (let i = 0; i < 100; i++) {
      queries.push(concatHex([i % 2 ? T : tid('plant/1/valve'), i % 3 ? alice : bob, i % 2 ? '0x01' : '0x00']));
    }
    row('checkBatch, 100 queries (eth_estimateGas of the call)', Number(await ft.estimate('checkBatch', [concatHex(queries)])), {
      note: 'free as eth_call; bounded by the node gas cap',
    });
    row('checkBatch, 1 query (eth_estimateGas of the call)', Number(await ft.estimate('checkBatch', [queries[1]])));

    // audit records
    let seq = 1n;
    const ip = (i) => `0x00000000000000000000ffff0a${(i & 0xffffff).toString(16).padStart(6, '0')}`;
    const now = 1_750_000_000n;
    const mk = {
      recordBans: (i) => ({ ip: ip(i), seq: seq++, until: now + 300n, failures: 5, time: now }),
      recordWrongCountry: (i) => ({
        client: alice,
        topicId: T,
        ip: ip(i),
        country: '0x4652',
        seq: seq++,
        time: now,
      }),
      recordConnectFailed: (i) => ({ ip: ip(i), client: bob, reason: 0x86, seq: seq++, time: now }),
      recordSensitive: () => report(T, seq++, now - 1800n, now, [alice], [bob]),
    };
    const labels = {
      recordBans: 'Banned',
      recordWrongCountry: 'WrongCountry',
      recordConnectFailed: 'ConnectFailed',
      recordSensitive: 'SensitiveReport (1 publisher, 1 receiver)',
    };
    // every kind is written by recordAudit, the other arguments empty; reports are packed
    // bytes, concatenated
    const KINDS = Object.keys(mk);
    const send = (fn, recs) =>
      ft.send(admin, 'recordAudit', KINDS.map((k) => (k === fn ? (k === 'recordSensitive' ? concatHex(recs) : recs) : k === 'recordSensitive' ? '0x' : [])));
    // first write of the operator's high-water mark (zero to nonzero) is paid once, here:
    await send('recordBans', [mk.recordBans(0)]);
    for (const fn of KINDS) {
      for (const n of [1, 10, 100]) {
        const recs = Array.from({ length: n }, (_, i) => mk[fn](i));
        r = await send(fn, recs);
        const g = gasOf(r);
        row(`recordAudit: ${labels[fn]} × ${n}`, g, {
          target: n === 100 ? 5_000 : null,
          perRecord: g / n,
          note: `${fmt(g / n)} per record`,
        });
        rows[rows.length - 1].perRecord = g / n;
        if (n === 100) {
          // resend of the same batch: every record is skipped
          const again = await send(fn, recs);
          row(`recordAudit: ${labels[fn]} × 100 resent (all skipped, no event)`, gasOf(again));
        }
      }
    }
    // per extra address in a sensitive report
    {
      const big = Array.from({ length: 100 }, () => report(T, seq++, now - 1800n, now, [alice, bob, carol], [bob, carol, dave]));
      const g = gasOf(await send('recordSensitive', big));
      row('recordAudit: SensitiveReport, 3 publishers + 3 receivers × 100', g, {
        note: `${fmt(g / 100)} per report`,
      });
      rows[rows.length - 1].perRecord = g / 100;
    }
    {
      const bans = Array.from({ length: 25 }, (_, i) => mk.recordBans(i));
      const wc = Array.from({ length: 25 }, (_, i) => mk.recordWrongCountry(i));
      const cf = Array.from({ length: 25 }, (_, i) => mk.recordConnectFailed(i));
      const rep = Array.from({ length: 25 }, (_, i) => mk.recordSensitive(i));
      const g = gasOf(await ft.send(admin, 'recordAudit', [bans, wc, cf, concatHex(rep)]));
      row('recordAudit: 25 of each kind (100 records)', g, { target: 5_000, note: `${fmt(g / 100)} per record` });
      rows[rows.length - 1].perRecord = g / 100;
    }
  } finally {
    await s.node.stop();
  }

  const solcVersion = artifact.compiler;
  const settings = (await import('./compile.mjs')).SETTINGS;
  const lines = [];
  lines.push('# FlyTrap contract — gas report');
  lines.push('');
  lines.push('Generated by `npm run gas` (in `contracts/`: `node scripts/gas.mjs`) on a fresh anvil;');
  lines.push('do not edit by hand. Every figure is the whole transaction\'s `gasUsed` from its receipt');
  lines.push('(21,000 base and calldata included, storage refunds deducted), except the views, which');
  lines.push('are `eth_estimateGas` of the call (they cost nothing as `eth_call`).');
  lines.push('');
  lines.push(`- compiler: solc-js ${solcVersion}, optimizer on (runs ${settings.optimizer.runs}), via-IR ${settings.viaIR ? 'on' : 'off'}, evmVersion \`${settings.evmVersion}\`, no CBOR metadata`);
  lines.push(`- node: ${anvilVersion} (npm \`@foundry-rs/anvil\`)${hardfork ? `, hardfork \`${hardfork}\`` : ''}`);
  lines.push(`- paper: the original contract (Solidity 0.6, Ganache): ~2.06 M gas to deploy, ~100 k per ACL change`);
  lines.push('');
  lines.push('| operation | gas | paper | target | ok |');
  lines.push('|---|---:|---:|---:|:-:|');
  for (const x of rows) {
    const perUnit = x.target === 5_000 || x.target === 30_000;
    const measured = x.perRecord !== undefined && perUnit ? x.perRecord : x.gas;
    const ok = x.target === null ? '' : measured <= x.target ? '✔' : '✘';
    const target =
      x.target === null ? '' : x.target === 5_000 ? '≤ 5,000 / record' : x.target === 30_000 ? '≤ 30,000 / address' : `≤ ${fmt(x.target)}`;
    const miss = x.target !== null && measured > x.target ? ` (+${Math.round((measured / x.target - 1) * 100)} %)` : '';
    lines.push(
      `| ${x.op}${x.note ? ` — ${x.note}` : ''} | ${fmt(x.gas)} | ${x.paper ? fmt(x.paper) : ''} | ${target} | ${ok}${miss} |`,
    );
  }
  lines.push('');
  const notes = readFileSync(join(ROOT, 'scripts', 'gas-notes.md'), 'utf8');
  lines.push(notes.trimEnd());
  lines.push('');
  writeFileSync(OUT, lines.join('\n'));
  console.log(`gas: wrote GAS.md (${rows.length} rows) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(`gas: ${e.message}`);
  process.exit(1);
});
