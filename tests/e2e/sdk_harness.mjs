// Shared by the OpenAI SDK tests (tests/e2e/test_openai_sdk*.mjs): the SDK from build/deps,
// check/sleep, and a real CPU worker + gateway on the tiny checkpoint on a free port.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = process.env.VL_ROOT || path.resolve(here, '../..');
const BUILD = process.env.VL_BUILD || path.join(ROOT, 'build');
const MODEL = path.join(ROOT, 'tests/data/tiny-model');
const require = createRequire(path.join(ROOT, 'build/deps/node/package.json'));
export const OpenAI = require('openai').default;

let failures = 0;
export function check(cond, what) {
  if (!cond) failures++;
  console.log(`${cond ? 'ok  ' : 'FAIL:'} ${what}`);
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A fresh temporary directory (for the worker socket and whatever the test writes).
export function makeTmp(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Starts a worker and a gateway (extra gateway flags in gatewayArgs) and waits for /ready.
// Returns { base, port, procs }.
export async function startService(tmp, gatewayArgs = []) {
  const sock = path.join(tmp, 'w.sock');
  const procs = [];
  procs.push(spawn(path.join(BUILD, 'vlembed-worker'),
    ['--model', MODEL, '--socket', sock, '--threads', '1'], { stdio: ['ignore', 'ignore', 'inherit'] }));
  for (let i = 0; i < 300 && !fs.existsSync(sock); i++) await sleep(20);
  const gateway = spawn(path.join(BUILD, 'vlembed-gateway'),
    ['--model', MODEL, '--http', '127.0.0.1:0', '--worker-sockets', sock, ...gatewayArgs],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(gateway);
  let log = '';
  gateway.stderr.on('data', (d) => { log += d; process.stderr.write(d); });
  let port = 0;
  for (let i = 0; i < 500 && !port; i++) {
    const m = log.match(/\(port (\d+)\)/);
    if (m) port = Number(m[1]);
    else await sleep(20);
  }
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 500; i++) {
    try {
      if ((await fetch(`${base}/ready`)).status === 200) break;
    } catch { /* not yet */ }
    await sleep(20);
  }
  return { base, port, procs };
}

// Runs body(); an exception counts as a failure; then stops the processes and exits with the
// test's status.
export async function runAndExit(procs, body) {
  try {
    await body();
  } catch (e) {
    console.log('FAIL: exception', e);
    failures++;
  } finally {
    for (const p of procs.reverse()) p.kill('SIGTERM');
  }
  console.log(`${failures} failures`);
  process.exit(failures ? 1 : 0);
}
