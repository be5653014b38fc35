#!/usr/bin/env node
// Compiles contracts/src/FlyTrap.sol with the pinned solc-js and writes
// contracts/artifacts/FlyTrap.json (or, with --check, verifies that the committed artifact is
// exactly what the source compiles to). Offline: uses only the pinned `solc` npm package.
//
//   node scripts/compile.mjs          write the artifact
//   node scripts/compile.mjs --check  exit 1 with a one-line message if it is stale
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import solc from 'solc';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE = join(ROOT, 'src', 'FlyTrap.sol');
export const ARTIFACT = join(ROOT, 'artifacts', 'FlyTrap.json');

// Compiler settings: change them here only (GAS.md and the README quote them).
export const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  viaIR: true,
  evmVersion: 'cancun',
  // No CBOR metadata trailer: the bytecode depends only on source + settings + compiler,
  // and the deployed code is ~50 bytes (~10k deploy gas) smaller.
  metadata: { appendCBOR: false, bytecodeHash: 'none' },
  outputSelection: {
    'FlyTrap.sol': { FlyTrap: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
  },
};

/** Compiles the source; returns the artifact text (2-space JSON, trailing newline). */
export function compile() {
  const input = {
    language: 'Solidity',
    sources: { 'FlyTrap.sol': { content: readFileSync(SOURCE, 'utf8') } },
    settings: SETTINGS,
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) {
    if (e.severity !== 'error') process.stderr.write(e.formattedMessage);
  }
  if (errors.length) {
    throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  }
  const c = output.contracts['FlyTrap.sol'].FlyTrap;
  const artifact = {
    contractName: 'FlyTrap',
    compiler: solc.version(),
    abi: c.abi,
    bytecode: '0x' + c.evm.bytecode.object,
    deployedBytecode: '0x' + c.evm.deployedBytecode.object,
  };
  return JSON.stringify(artifact, null, 2) + '\n';
}

function main() {
  const check = process.argv.includes('--check');
  let text;
  try {
    text = compile();
  } catch (e) {
    console.error(`compile: FlyTrap.sol does not compile: ${String(e.message).split('\n')[0]}`);
    process.exit(1);
  }
  if (check) {
    let committed = null;
    try {
      committed = readFileSync(ARTIFACT, 'utf8');
    } catch {
      // missing artifact: reported below
    }
    if (committed !== text) {
      console.error(
        committed === null
          ? 'check: contracts/artifacts/FlyTrap.json is missing; run `npm run compile` in contracts/'
          : 'check: contracts/artifacts/FlyTrap.json is stale (differs from src/FlyTrap.sol); run `npm run compile` in contracts/',
      );
      process.exit(1);
    }
    console.log('check: contracts/artifacts/FlyTrap.json is up to date');
    return;
  }
  mkdirSync(dirname(ARTIFACT), { recursive: true });
  writeFileSync(ARTIFACT, text);
  const a = JSON.parse(text);
  console.log(
    `compile: wrote artifacts/FlyTrap.json (solc ${a.compiler}, runtime ${(a.deployedBytecode.length - 2) / 2} bytes)`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
