// The official OpenAI SDK (npm openai@6, installed by `make deps`) against a real gateway and
// CPU worker, unchanged: its default base64 encoding (decoded by the SDK), float, dimensions,
// arrays, token ids, the multimodal extension passed through, an error surfacing as the SDK's
// APIError with the field named, and 32 concurrent calls.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = process.env.VL_ROOT || path.resolve(here, '../..');
const BUILD = process.env.VL_BUILD || path.join(ROOT, 'build');
const MODEL = path.join(ROOT, 'tests/data/tiny-model');
const require = createRequire(path.join(ROOT, 'build/deps/node/package.json'));
const OpenAI = require('openai').default;

let failures = 0;
function check(cond, what) {
  if (!cond) failures++;
  console.log(`${cond ? 'ok  ' : 'FAIL:'} ${what}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function close(a, b, tol = 1e-6) {
  if (!a || !b || a.length !== b.length) return false;
  return a.every((x, i) => Math.abs(x - b[i]) <= tol);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-sdk-'));
const sock = path.join(tmp, 'w.sock');
const procs = [];
const worker = spawn(path.join(BUILD, 'vlembed-worker'),
  ['--model', MODEL, '--socket', sock, '--threads', '1'], { stdio: ['ignore', 'ignore', 'inherit'] });
procs.push(worker);
for (let i = 0; i < 300 && !fs.existsSync(sock); i++) await sleep(20);
const gateway = spawn(path.join(BUILD, 'vlembed-gateway'),
  ['--model', MODEL, '--http', '127.0.0.1:0', '--worker-sockets', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
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

try {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
  const text = 'A photo of a cat sitting on a red sofa.';
  const raw = await (await fetch(`${base}/v1/embeddings`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input: text, model: 'm', encoding_format: 'float' }),
  })).json();
  const want = raw.data[0].embedding;

  // the SDK's default: it asks for base64 and decodes it into numbers itself
  const r1 = await client.embeddings.create({ model: 'tiny-model', input: text });
  check(Array.isArray(r1.data[0].embedding) && close(r1.data[0].embedding, want, 1e-7),
    'default (base64 decoded by the SDK) equals the float vector');
  check(r1.object === 'list' && r1.data[0].index === 0 && r1.usage.prompt_tokens === 30
    && r1.usage.total_tokens === 30 && r1.model === 'tiny-model', 'list, index, usage, model');

  const r2 = await client.embeddings.create({ model: 'x', input: text, encoding_format: 'float' });
  check(close(r2.data[0].embedding, want, 0), 'explicit float');

  const r3 = await client.embeddings.create({ model: 'x', input: [text, 'second'], dimensions: 8 });
  const t8 = want.slice(0, 8);
  const n8 = Math.hypot(...t8);
  check(r3.data.length === 2 && r3.data[0].embedding.length === 8
    && close(r3.data[0].embedding, t8.map((x) => x / n8), 1e-6), 'array input with dimensions 8');

  const r4 = await client.embeddings.create({ model: 'x', input: [[9707, 11, 1879], [9707]] });
  check(r4.data.length === 2 && r4.data[1].embedding.length === 32, 'token-id arrays');

  const png = fs.readFileSync(path.join(ROOT, 'tests/data/goldens/media/image_orig.png')).toString('base64');
  const r5 = await client.embeddings.create({
    model: 'x', input: [{ image: `data:image/png;base64,${png}`, instruction: 'Find images.' }],
  });
  check(r5.data[0].embedding.length === 32 && r5.usage.images === 1, 'multimodal item through the SDK');

  let err = null;
  try {
    await client.embeddings.create({ model: 'x', input: text, encoding_format: 'float', colour: 'red' });
  } catch (e) { err = e; }
  check(err instanceof OpenAI.APIError && err.status === 400 && err.param === 'colour'
    && err.code === 'unknown_field', 'unknown field -> APIError 400 naming it');

  const many = await Promise.all(Array.from({ length: 32 }, (_, k) =>
    client.embeddings.create({ model: 'x', input: k % 2 ? [text, 'b'] : text })));
  check(many.every((r) => close(r.data[0].embedding, want, 1e-7)), '32 concurrent SDK calls');
} catch (e) {
  console.log('FAIL: exception', e);
  failures++;
} finally {
  for (const p of procs.reverse()) p.kill('SIGTERM');
}
console.log(`${failures} failures`);
process.exit(failures ? 1 : 0);
