// lmforge dashboard: follows each run's event stream (polling the JSON API where a stream is
// not available) and draws every run's curves as SVG (no libraries).
"use strict";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const POLL_MS = Number(new URLSearchParams(location.search).get("interval")) || 1500;
const runs = new Map();   // name -> {name, color, gen, rows, val, events, keys, phases, memory, status, config, es}
const MAX_STREAMS = 3;    // a browser keeps about 6 connections per server: leave some for requests
let polls = 0, streamEvents = 0;

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";
function el(tag, attrs, parent, ns) {
  const e = ns ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function fmt(x, d) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return x.toFixed(d === undefined ? 4 : d);
}
function tick(x) {
  const a = Math.abs(x);
  if (a >= 1e6) return (x / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return (x / 1e3).toPrecision(3) + "k";
  if (a >= 100 || x === 0) return x.toFixed(0);
  if (a < 1e-2) return x.toExponential(1);
  return x.toPrecision(3);
}
function dur(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
}
async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

// ---- data ----
function runOf(name) {
  let r = runs.get(name);
  if (!r) {
    r = {name, color: COLORS[runs.size % COLORS.length], gen: null, rows: [], val: [], events: [],
         keys: new Set(), phases: [], memory: [], samples: [], status: null, config: null, configStep: undefined,
         es: null, live: false};
    runs.set(name, r);
  }
  return r;
}
function lastRowStep(r) { return r.rows.length ? r.rows[r.rows.length - 1][0] : -1; }
function lastStep(list, at) { return list.length ? at(list[list.length - 1]) : -1; }
// take a metrics answer (of the API or of an event); a new generation replaces everything
function merge(r, m) {
  if (r.gen !== null && m.generation !== r.gen) {
    r.rows = []; r.val = []; r.events = []; r.keys = new Set(); r.phases = []; r.memory = []; r.samples = [];
  }
  r.gen = m.generation;
  for (const row of m.rows) if (row[0] > lastRowStep(r)) r.rows.push(row);
  for (const v of m.val) if (!r.val.length || v[0] > r.val[r.val.length - 1][0]) r.val.push(v);
  for (const e of m.events) {
    const k = JSON.stringify(e);
    if (!r.keys.has(k)) { r.keys.add(k); r.events.push(e); }
  }
  for (const p of m.phases || []) if (p.step > lastStep(r.phases, (q) => q.step)) r.phases.push(p);
  for (const x of m.memory || []) if (x[0] > lastStep(r.memory, (q) => q[0])) r.memory.push(x);
  for (const x of m.samples || []) if (x.step > lastStep(r.samples, (q) => q.step)) r.samples.push(x);
}
// a stream per run (the first MAX_STREAMS runs); a run whose stream fails is polled instead
function follow(r) {
  if (r.es || r.noStream || !window.EventSource) return;
  if ([...runs.values()].filter((x) => x.es).length >= MAX_STREAMS) return;
  const es = new EventSource("/api/runs/" + encodeURIComponent(r.name) + "/events");
  r.es = es;
  es.addEventListener("metrics", (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    merge(r, m);
    r.live = true;
    streamEvents++;
    document.body.dataset.events = streamEvents;
    draw();
  });
  es.onerror = () => {
    r.live = false; // polled until the stream is back (EventSource reconnects by itself)
    if (es.readyState === EventSource.CLOSED) { r.es = null; r.noStream = true; } // refused: poll
  };
}
async function pollRun(r) {
  follow(r);
  if (!r.live) {
    const since = Math.max(0, lastRowStep(r));
    let m = await getJSON("/api/runs/" + encodeURIComponent(r.name) + "/metrics?since=" + since);
    if (r.gen !== null && m.generation !== r.gen) // rewritten or rolled back: read it all again
      m = await getJSON("/api/runs/" + encodeURIComponent(r.name) + "/metrics?since=0");
    merge(r, m);
  }
  if (r.config === null || r.status && r.status.checkpoint_step !== r.configStep) {
    r.config = await getJSON("/api/runs/" + encodeURIComponent(r.name) + "/config");
    r.configStep = r.status ? r.status.checkpoint_step : undefined;
  }
}
async function poll() {
  try {
    const all = await getJSON("/api/runs");
    for (const s of all.runs) runOf(s.name).status = s;
    await Promise.all([...runs.values()].map(pollRun));
    polls++;
    document.body.dataset.polls = polls;
    const n = [...runs.values()].filter((r) => r.live).length;
    $("conn").textContent = "live · " + new Date().toLocaleTimeString() + (n ? " · " + n + " streamed" : "");
    $("conn").className = "muted";
    draw();
  } catch (e) {
    $("conn").textContent = "no connection to lmforge (" + e.message + "); retrying";
    $("conn").className = "warn";
  }
  setTimeout(poll, POLL_MS);
}

// ---- charts ----
function niceTicks(lo, hi, n) {
  const span = hi - lo || Math.abs(hi) || 1, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(t);
  return out;
}
// series: [{run, color, pts: [[x, y]], dash, faint, count}]; marks: [{run, color, x, y, kind}]
function chart(svg, series, marks, logy) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 640, H = 300, L = 58, R = 12, T = 10, B = 28;
  const ty = (y) => (logy ? Math.log10(y) : y);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) for (const [x, y] of s.pts) {
    if (!isFinite(y) || (logy && y <= 0)) continue;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, ty(y)); y1 = Math.max(y1, ty(y));
  }
  if (!isFinite(x0)) {
    el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, svg, true).textContent = "no data yet";
  } else {
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5 * Math.abs(y0) || 0.5; y1 += 0.5 * Math.abs(y1) || 0.5; }
    const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = (y) => T + (1 - (ty(y) - y0) / (y1 - y0)) * (H - T - B);
    for (const t of niceTicks(y0, y1, 5)) {
      const py = T + (1 - (t - y0) / (y1 - y0)) * (H - T - B);
      el("line", {x1: L, x2: W - R, y1: py, y2: py, class: "grid"}, svg, true);
      el("text", {x: L - 4, y: py + 4, "text-anchor": "end"}, svg, true).textContent = tick(logy ? Math.pow(10, t) : t);
    }
    for (const t of niceTicks(x0, x1, 6)) {
      el("line", {x1: X(t), x2: X(t), y1: T, y2: H - B, class: "grid"}, svg, true);
      el("text", {x: X(t), y: H - B + 14, "text-anchor": "middle"}, svg, true).textContent = String(Math.round(t));
    }
    el("line", {x1: L, x2: L, y1: T, y2: H - B, class: "axis"}, svg, true);
    el("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis"}, svg, true);
    el("text", {x: W - R, y: H - 2, "text-anchor": "end"}, svg, true).textContent = "step";
    for (const s of series) {
      let d = "";
      for (const [x, y] of s.pts) {
        if (!isFinite(y) || (logy && y <= 0)) continue;
        d += (d ? "L" : "M") + X(x).toFixed(1) + " " + Y(y).toFixed(1);
      }
      el("path", {d, fill: "none", stroke: s.color, "stroke-width": s.faint ? 1 : 1.8,
                  "stroke-opacity": s.faint ? 0.3 : 1, "stroke-dasharray": s.dash ? "5 3" : "none",
                  "data-run": s.run, "data-series": s.kind, "data-points": s.count}, svg, true);
    }
    for (const m of marks) {
      const px = X(m.x);
      if (m.kind === "rollback") {
        el("line", {x1: px, x2: px, y1: T, y2: H - B, stroke: "#a0a", "stroke-dasharray": "2 2", "data-mark": m.kind, "data-run": m.run}, svg, true);
      } else {
        const py = isFinite(m.y) && (!logy || m.y > 0) ? Y(m.y) : T + 6;
        const t = el("text", {x: px, y: py + 4, "text-anchor": "middle", // a style: the sheet's text fill would win over an attribute
                              style: "fill:" + (m.kind === "spike" ? "#e80" : "#d00"),
                              "data-mark": m.kind, "data-run": m.run}, svg, true);
        t.textContent = m.kind === "spike" ? "●" : "×";
      }
    }
  }
  // legend
  let ly = T + 2;
  for (const r of runs.values()) {
    el("rect", {x: W - R - 90, y: ly, width: 10, height: 10, fill: r.color}, svg, true);
    el("text", {x: W - R - 76, y: ly + 9}, svg, true).textContent = r.name.slice(0, 14);
    ly += 14;
  }
}
// step time by phase, stacked: layers [{name, color, pts: [[x, seconds]]}] over the same xs
const PHASE_COLORS = {matmul: "#1f77b4", attention: "#ff7f0e", elementwise: "#2ca02c", loss: "#9467bd",
                      tp_comm: "#e377c2", optimizer: "#17becf", dp_comm: "#d62728", other: "#bbb"};
function stacked(svg, run, layers) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 640, H = 300, L = 58, R = 12, T = 10, B = 28;
  const xs = layers.length ? layers[0].pts.map((p) => p[0]) : [];
  if (!xs.length) {
    el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, svg, true).textContent =
      "no profiled steps yet (lmforge train --profile-every N)";
    return;
  }
  const tops = xs.map((_, i) => layers.reduce((a, l) => a + (isFinite(l.pts[i][1]) ? l.pts[i][1] : 0), 0));
  let x0 = xs[0], x1 = xs[xs.length - 1], y1 = Math.max(...tops) * 1.05 || 1;
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => T + (1 - y / y1) * (H - T - B);
  for (const t of niceTicks(0, y1, 5)) {
    el("line", {x1: L, x2: W - R, y1: Y(t), y2: Y(t), class: "grid"}, svg, true);
    el("text", {x: L - 4, y: Y(t) + 4, "text-anchor": "end"}, svg, true).textContent = tick(t * 1000) + " ms";
  }
  for (const t of niceTicks(x0, x1, 6)) {
    el("line", {x1: X(t), x2: X(t), y1: T, y2: H - B, class: "grid"}, svg, true);
    el("text", {x: X(t), y: H - B + 14, "text-anchor": "middle"}, svg, true).textContent = String(Math.round(t));
  }
  const base = xs.map(() => 0);
  let ly = T + 2;
  for (const l of layers) {
    const top = base.map((b, i) => b + (isFinite(l.pts[i][1]) ? l.pts[i][1] : 0));
    let d = "";
    xs.forEach((x, i) => { d += (d ? "L" : "M") + X(x).toFixed(1) + " " + Y(top[i]).toFixed(1); });
    for (let i = xs.length - 1; i >= 0; i--) d += "L" + X(xs[i]).toFixed(1) + " " + Y(base[i]).toFixed(1);
    el("path", {d: d + "Z", fill: l.color, "fill-opacity": 0.8, stroke: "none", "data-run": run,
                "data-phase": l.name, "data-points": xs.length}, svg, true);
    top.forEach((v, i) => { base[i] = v; });
    el("rect", {x: W - R - 90, y: ly, width: 10, height: 10, fill: l.color}, svg, true);
    el("text", {x: W - R - 76, y: ly + 9}, svg, true).textContent = l.name;
    ly += 14;
  }
  el("line", {x1: L, x2: L, y1: T, y2: H - B, class: "axis"}, svg, true);
  el("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis"}, svg, true);
  el("text", {x: W - R, y: H - 2, "text-anchor": "end"}, svg, true).textContent = "step";
}
function drawPhases() {
  const sel = $("phase-run"), list = [...runs.values()];
  const names = list.map((r) => r.name);
  if ([...sel.options].map((o) => o.value).join() !== names.join()) {
    const keep = sel.value;
    sel.textContent = "";
    for (const n of names) el("option", {value: n}, sel).textContent = n;
    if (names.includes(keep)) sel.value = keep;
  }
  if (!sel.dataset.chosen) { // until one is chosen: the first run that has profiled steps
    const first = list.find((r) => r.phases.length);
    sel.value = first ? first.name : names[0] || "";
  }
  const r = runs.get(sel.value);
  const ph = r ? r.phases : [];
  const keys = [...new Set(ph.flatMap((p) => Object.keys(p.phases)))];
  keys.sort((a, b) => (a === "other") - (b === "other")); // the rest of the step on top
  const layers = keys.map((k) => ({name: k, color: PHASE_COLORS[k] || "#8c564b",
    pts: ph.map((p) => [p.step + 1, p.phases[k] === null || p.phases[k] === undefined ? NaN : p.phases[k]])}));
  stacked($("chart-phases"), r ? r.name : "", layers);
}
function drawMemory() {
  const series = [];
  for (const r of runs.values()) {
    const ranks = r.memory.reduce((n, m) => Math.max(n, m[1].length), 0);
    for (let k = 0; k < ranks; k++) {
      const pts = r.memory.map((m) => [m[0] + 1, m[1][k] === null || m[1][k] === undefined ? NaN : m[1][k] / 1048576]);
      series.push({run: r.name, color: r.color, pts, dash: k > 0, kind: "rank" + k, count: pts.length});
    }
  }
  chart($("chart-memory"), series, [], false);
}
// the newest samples of every run, newest first (text only: never parsed as HTML)
function drawSamples() {
  const box = $("samples");
  const all = [];
  for (const r of runs.values()) for (const x of r.samples.slice(-10)) all.push({r, x});
  all.sort((a, b) => b.x.step - a.x.step);
  box.textContent = "";
  if (!all.length) {
    el("p", {class: "muted"}, box).textContent = "no samples yet (lmforge train --sample-every N [--sample-prompt TEXT])";
    return;
  }
  for (const {r, x} of all.slice(0, 20)) {
    const d = el("div", {class: "sample", "data-run": r.name, "data-step": x.step}, box);
    const h = el("div", {class: "sample-head"}, d);
    el("span", {class: "swatch", style: "background:" + r.color}, h);
    h.appendChild(document.createTextNode(r.name + " · after step " + x.step));
    const pre = el("pre", {}, d);
    if (x.prompt && x.text.startsWith(x.prompt)) {
      el("b", {}, pre).textContent = x.prompt;
      pre.appendChild(document.createTextNode(x.text.slice(x.prompt.length)));
    } else {
      pre.textContent = x.text;
    }
  }
}
function smooth(pts, a) { // exponential moving average with bias correction
  if (a <= 0) return pts;
  let s = 0, w = 0;
  return pts.map(([x, y]) => {
    if (!isFinite(y)) return [x, y];
    s = a * s + (1 - a) * y; w = a * w + (1 - a);
    return [x, s / w];
  });
}
function draw() {
  const a = Number($("smooth").value), logy = $("logy").checked;
  $("smooth-v").textContent = a.toFixed(2);
  const loss = [], marks = [];
  for (const r of runs.values()) {
    const pts = r.rows.map((row) => [row[0] + 1, row[1]]);
    if (a > 0) loss.push({run: r.name, color: r.color, pts, faint: true, kind: "train_raw", count: pts.length});
    loss.push({run: r.name, color: r.color, pts: smooth(pts, a), kind: "train", count: pts.length});
    loss.push({run: r.name, color: r.color, pts: r.val.map((v) => [v[0], v[1]]), dash: true, kind: "val", count: r.val.length});
    const lossAt = new Map(r.rows.map((row) => [row[0], row[1]]));
    for (const e of r.events)
      marks.push({run: r.name, kind: e.kind, x: e.kind === "rollback" ? e.step + 1 : e.step + 1,
                  y: e.kind === "spike" ? e.loss : lossAt.has(e.step) ? lossAt.get(e.step) : NaN});
  }
  chart($("chart-loss"), loss, marks, logy);
  for (const [col, key, scale] of [[2, "lr", 1], [3, "grad_norm", 1], [4, "tokens_per_s", 1], [5, "mfu", 100]]) {
    const series = [...runs.values()].map((r) => ({run: r.name, color: r.color, kind: key, count: r.rows.length,
      pts: r.rows.map((row) => [row[0] + 1, row[col] === null ? NaN : row[col] * scale])}));
    chart($("chart-" + key), series, [], false);
  }
  drawPhases();
  drawMemory();
  drawSamples();
  drawStatus();
  drawConfig();
}
// "4 = 2 dp × 2 tp (ZeRO-1)": the ranks, and with tensor parallelism how they split the work
function ranks(s) {
  if (!s.world_size) return "–";
  const tp = s.tp_size || 1, zero = " (ZeRO-" + s.zero_stage + ")";
  if (tp <= 1) return s.world_size + zero;
  return s.world_size + " = " + s.world_size / tp + " dp × " + tp + " tp" + zero;
}
function drawStatus() {
  const tb = $("status").tBodies[0];
  tb.textContent = "";
  for (const r of runs.values()) {
    const s = r.status || {};
    const tr = el("tr", {"data-run": r.name}, tb);
    const name = el("td", {}, tr);
    el("span", {class: "swatch", style: "background:" + r.color}, name);
    name.appendChild(document.createTextNode(r.name));
    const ck = s.checkpoint_step === null || s.checkpoint_step === undefined ? "none"
      : "step " + s.checkpoint_step + " (" + dur(s.checkpoint_age_seconds) + " ago)";
    const cells = [s.step + (s.total_steps ? " / " + s.total_steps : ""), dur(s.eta_seconds), fmt(s.loss),
      fmt(s.val_loss), fmt(s.tokens_per_s, 0), s.mfu === null || s.mfu === undefined ? "–" : (100 * s.mfu).toFixed(1) + "%",
      ck, s.skipped_steps, s.rollbacks, s.loss_spikes,
      ranks(s), dur(s.updated_age_seconds) + " ago"];
    for (const c of cells) el("td", {}, tr).textContent = c === undefined ? "–" : String(c);
  }
}
function flatten(obj, prefix, out) {
  for (const k of Object.keys(obj || {})) {
    const v = obj[k];
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, prefix + k + ".", out);
    else out[prefix + k] = JSON.stringify(v);
  }
  return out;
}
function drawConfig() {
  const list = [...runs.values()];
  const flat = list.map((r) => r.config ? flatten({model: r.config.model, layout: r.config.layout, train: r.config.train}, "", {}) : {});
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const head = $("config").tHead;
  head.textContent = "";
  const hr = el("tr", {}, head);
  el("th", {}, hr).textContent = "setting";
  for (const r of list) el("th", {}, hr).textContent = r.name;
  const tb = $("config").tBodies[0];
  tb.textContent = "";
  // compared over the runs whose configuration is known (a run before its first checkpoint is not)
  const rows = keys.map((k) => {
    const vals = flat.map((f) => (k in f ? f[k] : "–"));
    const cmp = vals.filter((v, i) => Object.keys(flat[i]).length > 0);
    return {k, vals, differs: cmp.length > 1 && cmp.some((v) => v !== cmp[0])};
  });
  rows.sort((a, b) => b.differs - a.differs); // what differs first
  for (const {k, vals, differs} of rows) {
    const tr = el("tr", differs ? {class: "diff", "data-key": k} : {"data-key": k}, tb);
    el("td", {}, tr).textContent = k;
    for (const v of vals) el("td", {}, tr).textContent = v;
  }
}
$("smooth").addEventListener("input", draw);
$("logy").addEventListener("change", draw);
$("phase-run").addEventListener("change", () => { $("phase-run").dataset.chosen = "1"; draw(); });
poll();
