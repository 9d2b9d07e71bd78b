// Runs an exported lmforge ONNX graph in ONNX Runtime (onnxruntime-node) for the tests and the
// benchmark:
//   node ort_run.js logits DIR IDS.i32 B T OUT.f32 [FIRST]   logits [B,T,V] of ids [B,T]; a graph
//        with a key/value cache runs FIRST positions (default T) with no past, then the rest
//        with the cache the first call returned
//   node ort_run.js compare IDS.i32 B T REF.f32 FIRST DIR...  the same for each graph directory,
//        printing per directory: DIR, the largest |logit - ref| and the largest |ref| (NaN when
//        a value is NaN)
//   node ort_run.js generate DIR N ID...                     greedy: the prompt ids and N more,
//        printed as lmforge sample prints ids; tokens/s of the N - 1 one-token steps after the
//        prompt on stderr
//   node ort_run.js maxdiff A.f32 B.f32                      largest |a - b| and largest |a| (NaN
//        when the sizes differ or a value is NaN)
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(process.env.ORT_MODULE || 'onnxruntime-node');

// ORT_THREADS=N: N threads inside each operator (default: ONNX Runtime's choice, the cores)
function open(dir) {
  const n = +(process.env.ORT_THREADS || 0);
  const opts = n > 0 ? { intraOpNumThreads: n, interOpNumThreads: 1 } : {};
  return ort.InferenceSession.create(path.join(dir, 'model.onnx'), opts);
}

// the cache's shape from config.json: GPT2Config or LlamaConfig names (H: key/value heads)
function cfgOf(dir) {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  if (c.model_type === 'llama') {
    return { L: c.num_hidden_layers, H: c.num_key_value_heads || c.num_attention_heads,
      D: c.hidden_size / c.num_attention_heads, V: c.vocab_size };
  }
  return { L: c.n_layer, H: c.n_head, D: c.n_embd / c.n_head, V: c.vocab_size };
}

function i64(arr, dims) {
  return new ort.Tensor('int64', BigInt64Array.from(arr, (x) => BigInt(x)), dims);
}

// one call: ids[B][n] (rows) after `past` positions held in cache (null: none)
async function step(sess, cfg, rows, past, cache) {
  const B = rows.length, n = rows[0].length;
  const feeds = { input_ids: i64(rows.flat(), [B, n]) };
  const withPast = sess.inputNames.includes('past_key_values.0.key');
  if (withPast) {
    feeds.attention_mask = i64(new Array(B * (past + n)).fill(1), [B, past + n]);
    const pos = [];
    for (let b = 0; b < B; b++) for (let t = 0; t < n; t++) pos.push(past + t);
    feeds.position_ids = i64(pos, [B, n]);
    for (let l = 0; l < cfg.L; l++) {
      for (const kv of ['key', 'value']) {
        feeds[`past_key_values.${l}.${kv}`] = cache ? cache[`present.${l}.${kv}`]
          : new ort.Tensor('float32', new Float32Array(0), [B, cfg.H, 0, cfg.D]);
      }
    }
  }
  return sess.run(feeds);
}

async function logits(dir, idsFile, B, T, out, first) {
  fs.writeFileSync(out, Buffer.from((await runLogits(dir, idsFile, B, T, first)).buffer));
}

async function compare(idsFile, B, T, refFile, first, dirs) {
  const y = fs.readFileSync(refFile);
  const ref = new Float32Array(y.buffer, y.byteOffset, y.length / 4);
  for (const dir of dirs) {
    const got = await runLogits(dir, idsFile, B, T, first);
    console.log(dir, ...diff(ref, got));
  }
}

async function runLogits(dir, idsFile, B, T, first) {
  const cfg = cfgOf(dir);
  const sess = await open(dir);
  const buf = fs.readFileSync(idsFile);
  const ids = new Int32Array(buf.buffer, buf.byteOffset, B * T);
  const rows = (lo, hi) => Array.from({ length: B }, (_, b) => Array.from(ids.slice(b * T + lo, b * T + hi)));
  const res = new Float32Array(B * T * cfg.V);
  const put = (r, lo, n) => {
    const d = r.logits.data;
    if (r.logits.dims.join() !== [B, n, cfg.V].join()) throw new Error(`logits dims ${r.logits.dims}`);
    for (let b = 0; b < B; b++) res.set(d.subarray(b * n * cfg.V, (b + 1) * n * cfg.V), (b * T + lo) * cfg.V);
  };
  const withPast = sess.inputNames.includes('past_key_values.0.key');
  const f = withPast ? Math.min(first || T, T) : T;
  const r1 = await step(sess, cfg, rows(0, f), 0, null);
  put(r1, 0, f);
  if (f < T) {
    const r2 = await step(sess, cfg, rows(f, T), f, r1);
    if (r2['present.0.key'].dims[2] !== T) throw new Error('present length ' + r2['present.0.key'].dims);
    put(r2, f, T - f);
  }
  return res;
}

function argmax(d, off, V) {
  let best = 0;
  for (let i = 1; i < V; i++) if (d[off + i] > d[off + best]) best = i;
  return best;
}

async function generate(dir, n, prompt) {
  const cfg = cfgOf(dir);
  const sess = await open(dir);
  const out = prompt.slice();
  let r = await step(sess, cfg, [prompt], 0, null);
  let past = prompt.length;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const last = r.logits.dims[1] - 1;
    const next = argmax(r.logits.data, last * cfg.V, cfg.V);
    out.push(next);
    if (i + 1 < n) {
      r = await step(sess, cfg, [[next]], past, r);
      past += 1;
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(out.map((x) => x + ' ').join('') + '\n');
  // the first token comes from the prompt's call; the rest from n - 1 one-token calls
  if (n > 1) process.stderr.write(`onnxruntime: ${n - 1} one-token steps in ${s.toFixed(3)} s, ${((n - 1) / s).toFixed(1)} tokens/s\n`);
}

// [largest |a - b|, largest |a|]; NaN when the sizes differ or a value is NaN
function diff(fa, fb) {
  if (fa.length !== fb.length) return [NaN, NaN];
  let m = 0, big = 0;
  for (let i = 0; i < fa.length; i++) {
    const d = Math.abs(fa[i] - fb[i]);
    if (Number.isNaN(d)) return [NaN, NaN];
    if (d > m) m = d;
    big = Math.max(big, Math.abs(fa[i]));
  }
  return [m, big];
}

function maxdiff(a, b) {
  const x = fs.readFileSync(a), y = fs.readFileSync(b);
  const f = (z) => new Float32Array(z.buffer, z.byteOffset, z.length / 4);
  console.log(...diff(f(x), f(y)));
}

(async () => {
  const [mode, ...a] = process.argv.slice(2);
  if (mode === 'logits') await logits(a[0], a[1], +a[2], +a[3], a[4], a[5] ? +a[5] : 0);
  else if (mode === 'compare') await compare(a[0], +a[1], +a[2], a[3], +a[4], a.slice(5));
  else if (mode === 'generate') await generate(a[0], +a[1], a.slice(2).map(Number));
  else if (mode === 'maxdiff') maxdiff(a[0], a[1]);
  else { console.error('usage: ort_run.js logits|generate|maxdiff ...'); process.exit(2); }
})().catch((e) => { console.error('ort_run.js: ' + (e && e.message ? e.message : e)); process.exit(1); });
