// The official OpenAI SDK (npm openai@6) against a gateway with API keys and a per-key limit of
// in-flight requests (docs/security.md): the right key embeds; a wrong key surfaces as the SDK's
// AuthenticationError (401, code invalid_api_key, the key not in the message); while two requests
// of key A are held open (heads sent, bodies not finished, on raw sockets), the SDK with key A gets
// RateLimitError (429 client_concurrency, Retry-After) and the SDK with key B is still served; once
// A's held requests complete, A is served again.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { OpenAI, check, makeTmp, runAndExit, sleep, startService } from './sdk_harness.mjs';

const KA = 'sk-sdk-client-a-0123456789abcdef';
const KB = 'sk-sdk-client-b-fedcba9876543210';
const WRONG = 'sk-sdk-wrong-key-000000000000000';
const tmp = makeTmp('vl-sdk-auth-');
fs.writeFileSync(path.join(tmp, 'keys'), `${KA} client-a\n${KB} client-b\n`, { mode: 0o600 });
const { base, port, procs } = await startService(tmp,
  ['--api-keys-file', path.join(tmp, 'keys'), '--client-max-inflight', '2']);

// A request whose head is sent and whose body is not: it holds one in-flight slot of its key.
function holdOpen(key) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ input: 'held' });
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(`POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n`
        + `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
      let got = '';
      s.on('data', (d) => { got += d; });
      const finish = () => new Promise((res) => {
        s.on('end', () => res(got));
        s.on('close', () => res(got));
        s.write(body.slice(5));
        setTimeout(() => { s.end(); }, 2000);
        const poll = setInterval(() => {
          if (/\r\n\r\n\{.*\}$/s.test(got)) { clearInterval(poll); res(got); s.destroy(); }
        }, 10);
      });
      setTimeout(() => resolve({ finish }), 100);
    });
  });
}

await runAndExit(procs, async () => {
  const a = new OpenAI({ baseURL: `${base}/v1`, apiKey: KA, maxRetries: 0 });
  const b = new OpenAI({ baseURL: `${base}/v1`, apiKey: KB, maxRetries: 0 });
  const r = await a.embeddings.create({ model: 'x', input: 'a cat' });
  check(r.data[0].embedding.length === 32, 'the right key: embedding through the SDK');

  let err = null;
  try {
    await new OpenAI({ baseURL: `${base}/v1`, apiKey: WRONG, maxRetries: 0 })
      .embeddings.create({ model: 'x', input: 'a cat' });
  } catch (e) { err = e; }
  check(err instanceof OpenAI.AuthenticationError && err.status === 401
    && err.code === 'invalid_api_key' && !String(err.message).includes(WRONG),
  `wrong key -> AuthenticationError 401 invalid_api_key (${err && err.message})`);

  const h1 = await holdOpen(KA);
  const h2 = await holdOpen(KA);
  err = null;
  try {
    await a.embeddings.create({ model: 'x', input: 'a cat' });
  } catch (e) { err = e; }
  check(err instanceof OpenAI.RateLimitError && err.status === 429 && err.code === 'client_concurrency'
    && err.headers.get('retry-after') === '1',
  `key A with 2 requests held: RateLimitError 429 client_concurrency, Retry-After 1 (${err && err.message})`);
  const rb = await b.embeddings.create({ model: 'x', input: 'a dog' });
  check(rb.data[0].embedding.length === 32, 'key B is served meanwhile');

  const [g1, g2] = await Promise.all([h1.finish(), h2.finish()]);
  check(/^HTTP\/1\.1 200/.test(g1) && /^HTTP\/1\.1 200/.test(g2), 'the held requests complete with 200');
  const r2 = await a.embeddings.create({ model: 'x', input: 'a cat' });
  check(r2.data[0].embedding.length === 32, 'key A is served again once its requests finished');

  // with retries on, the SDK honours Retry-After and gets through once a slot frees up
  const h3 = await holdOpen(KA);
  const h4 = await holdOpen(KA);
  const retrying = new OpenAI({ baseURL: `${base}/v1`, apiKey: KA, maxRetries: 3 });
  const pending = retrying.embeddings.create({ model: 'x', input: 'retry me' });
  await sleep(300);
  await Promise.all([h3.finish(), h4.finish()]);
  const r3 = await pending;
  check(r3.data[0].embedding.length === 32, 'SDK retries after 429 and succeeds when a slot frees');

  const m = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${KB}` } })).text();
  check(/vlembed_client_rejected_total\{reason="inflight"\} [1-9]/.test(m)
    && /vlembed_errors_total\{status="429",code="client_concurrency"\} [1-9]/.test(m),
  '429s counted in /metrics');
});
