// The official OpenAI SDK (npm openai@6, installed by `make deps`) against a real gateway and
// CPU worker, unchanged: its default base64 encoding (decoded by the SDK), float, dimensions,
// arrays, token ids, the multimodal extension passed through, an error surfacing as the SDK's
// APIError with the field named, and 32 concurrent calls.
import fs from 'node:fs';
import path from 'node:path';
import { OpenAI, ROOT, check, makeTmp, runAndExit, startService } from './sdk_harness.mjs';

function close(a, b, tol = 1e-6) {
  if (!a || !b || a.length !== b.length) return false;
  return a.every((x, i) => Math.abs(x - b[i]) <= tol);
}

const tmp = makeTmp('vl-sdk-');
const { base, procs } = await startService(tmp);

await runAndExit(procs, async () => {
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
});
