#!/usr/bin/env node
// Starts the pinned anvil (npm @foundry-rs/anvil, platform binary package) on a free loopback
// port, waits until it answers JSON-RPC, and stops it by PID.
//
// Library use (tests, gas report):
//   import { startAnvil } from '../scripts/anvil.mjs';
//   const node = await startAnvil();   // { url, port, pid, bin, stop() }
//   ...; await node.stop();
//
// Command line:
//   node scripts/anvil.mjs --print-path   print the anvil binary path and exit
//   node scripts/anvil.mjs [--port N]     run anvil on 127.0.0.1 (free port unless --port),
//                                         print its URL, stop it on SIGINT/SIGTERM
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

const PLATFORM_PACKAGES = {
  'linux-x64': '@foundry-rs/anvil-linux-amd64',
  'linux-arm64': '@foundry-rs/anvil-linux-arm64',
  'darwin-x64': '@foundry-rs/anvil-darwin-amd64',
  'darwin-arm64': '@foundry-rs/anvil-darwin-arm64',
  'win32-x64': '@foundry-rs/anvil-win32-amd64',
};

/** Path of the anvil binary: $FLYTRAP_ANVIL, else the pinned platform package. */
export function anvilPath() {
  if (process.env.FLYTRAP_ANVIL) return process.env.FLYTRAP_ANVIL;
  const exe = process.platform === 'win32' ? 'anvil.exe' : 'anvil';
  const pkg = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (pkg) {
    try {
      return require.resolve(`${pkg}/bin/${exe}`);
    } catch {
      // not installed: fall through
    }
  }
  // the wrapper package's postinstall fallback location
  const fallback = join(ROOT, 'node_modules', '@foundry-rs', 'anvil', exe);
  if (existsSync(fallback)) return fallback;
  throw new Error('anvil binary not found: run `npm ci` in contracts/ (or set FLYTRAP_ANVIL)');
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function rpcReady(url) {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Starts anvil on 127.0.0.1 (a free port unless `port` is given), silent, and resolves once it
 * answers eth_chainId. `stop()` sends SIGTERM to its PID (SIGKILL after 3 s) and resolves when
 * it has exited.
 */
export async function startAnvil({ port, args = [], timeoutMs = 15000 } = {}) {
  const bin = anvilPath();
  for (let attempt = 0; ; attempt++) {
    const p = port ?? (await freePort());
    const child = spawn(bin, ['--host', '127.0.0.1', '--port', String(p), '--silent', '--max-persisted-states', '0', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    let exited = false;
    // last resort: never leave anvil behind when this process exits without calling stop()
    const onExit = () => {
      if (!exited) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    process.on('exit', onExit);
    const exitPromise = new Promise((resolve) => {
      child.on('exit', () => {
        exited = true;
        process.removeListener('exit', onExit);
        resolve();
      });
      child.on('error', (e) => {
        exited = true;
        stderr += String(e);
        resolve();
      });
    });
    const url = `http://127.0.0.1:${p}`;
    const stop = async () => {
      if (!exited) {
        process.kill(child.pid, 'SIGTERM');
        const timer = setTimeout(() => {
          if (!exited) process.kill(child.pid, 'SIGKILL');
        }, 3000);
        await exitPromise;
        clearTimeout(timer);
      }
    };
    const deadline = Date.now() + timeoutMs;
    while (!exited && Date.now() < deadline) {
      if (await rpcReady(url)) return { url, port: p, pid: child.pid, bin, stop };
      await new Promise((r) => setTimeout(r, 50));
    }
    await stop();
    if (port !== undefined || attempt >= 2) {
      throw new Error(`anvil did not start on ${url}: ${stderr.trim().split('\n').pop() || 'timeout'}`);
    }
    // the free port was taken in between: try another one
  }
}

async function main() {
  if (process.argv.includes('--print-path')) {
    console.log(anvilPath());
    return;
  }
  const i = process.argv.indexOf('--port');
  const node = await startAnvil({ port: i > 0 ? Number(process.argv[i + 1]) : undefined });
  console.log(node.url);
  const shutdown = async () => {
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  setInterval(() => {}, 1 << 30);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    console.error(`anvil: ${e.message}`);
    process.exit(1);
  });
}
