#!/usr/bin/env bash
# A real browser (Debian's Chromium, headless, driven over the DevTools protocol on a pipe by
# tests/lib/cdp.py) opens the dashboard of lmforge serve while a run trains: in one page the
# live run's loss curve gains points as steps land, a finished run is drawn beside it, the
# config table marks what differs; screenshots are saved in
# $LMF_BUILD_DIR/serve-screenshots/ (docs/img/dashboard.png is one, of two real runs).
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/serve.sh"
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "skip: needs chromium (apt-get install chromium)"; exit 77; }
TRAIN_PID=
trap 'stop_serve; [ -n "$TRAIN_PID" ] && kill "$TRAIN_PID" 2>/dev/null && wait "$TRAIN_PID"; rm -rf "$WORK"' EXIT
shots="${LMF_BUILD_DIR:-$WORK}/serve-screenshots"
mkdir -p "$shots"
export OMP_NUM_THREADS=1

make_corpus "$WORK/corpus"
common=(--model tiny --batch 4 --seq 32 --corpus "$WORK/corpus" --bpe-vocab 0 --sample-tokens 0 --quiet
        --eval-every 20 --eval-batches 2)
fake_run "$WORK/runs/finished" 60 # 60 steps, a validation loss every 10
# numeric faults to mark on the loss chart: a spike at step 30, a skipped step 60 and a
# rollback to the checkpoint of step 60 (no steps to drop)
printf '%s\n' '{"step":30,"spike":4.9,"running_mean":4.7}' '{"step":60,"skipped":"nan","bad_in_row":1}' \
  '{"step":60,"rolled_back_to":60}' >>"$WORK/runs/finished/metrics.jsonl"
# what train records at its start for a run of 4 ranks, 2 data-parallel replicas of a
# tensor-parallel group of 2
cat >"$WORK/runs/finished/run.json" <<'EOF'
{"format": "lmforge.run", "version": 1, "run_id": "00000000000000ff", "total_steps": 120,
 "model": {"family": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 64, "vocab_size": 257},
 "train": {"steps": 120, "lr": 0.001}, "layout": {"world_size": 4, "tp_size": 2, "zero_stage": 1,
 "batch": 4, "seq": 32, "grad_accum": 1, "tokens_per_step": 2000}}
EOF
"$LMF" train "${common[@]}" --steps 100000 --save-every 10 --profile-every 5 \
  --sample-every 10 --sample-prompt "the quick" --out "$WORK/runs/live" &
TRAIN_PID=$!
for ((i = 0; i < 600; i++)); do # until the live run has its first checkpoint
  [ -f "$WORK/runs/live/checkpoints/latest" ] && break
  sleep 0.1
done
start_serve "$WORK/runs/finished" "$WORK/runs/live" || { fail "serve start"; finish; exit 1; }

# one page, watched in real time while the run trains (its own event streams and timers bring
# the records)
# where the finished run's 30th point lies between its 1st and 59th, in the curve's pixels
# (losses 5, 4.71, 4.42: 0.5 on a linear axis, ln(4.71/5) / ln(4.42/5) = 0.4846 on a log axis)
ratio() { echo '(() => { const ys = document.querySelector(`#chart-loss path[data-run="finished"][data-series="train"]`).getAttribute("d").split(/[ML]/).filter(Boolean).map((p) => Number(p.trim().split(" ")[1])); return (ys[29] - ys[0]) / (ys[58] - ys[0]); })()'; }
pts='Number(document.querySelector(`path[data-run="RUN"][data-series="SERIES"]`)?.dataset.points ?? -1)'
p() { local e=${pts/RUN/$1}; echo "${e/SERIES/$2}"; }
cat >"$WORK/script" <<EOC
until 30 $(p live train) >= 5
eval n1 (window.n1 = $(p live train))
eval polls1 Number(document.body.dataset.polls || 0) + Number(document.body.dataset.events || 0)
until 30 $(p live train) > window.n1
eval n2 $(p live train)
eval polls2 Number(document.body.dataset.polls || 0) + Number(document.body.dataset.events || 0)
eval conn document.getElementById("conn").textContent
eval finished $(p finished train)
eval val $(p finished val)
eval differs document.querySelector('tr.diff[data-key="train.steps"]') !== null
eval same document.querySelector('tr[data-key="model.n_embd"]')?.className === ""
until 30 Number(document.querySelector('#chart-phases path[data-phase="matmul"]')?.dataset.points ?? 0) >= 2
eval phase_run document.querySelector('#chart-phases path[data-phase="matmul"]')?.dataset.run
eval phase_layers [...document.querySelectorAll('#chart-phases path[data-phase]')].map((p) => p.dataset.phase).sort().join()
eval phase_area Math.round(document.querySelector('#chart-phases path[data-phase="matmul"]').getBBox().height)
eval mem_points $(p live rank0)
eval ranks_tp document.querySelector('#status tr[data-run="finished"] td:nth-child(12)')?.textContent === "4 = 2 dp × 2 tp (ZeRO-1)"
eval ranks_one document.querySelector('#status tr[data-run="live"] td:nth-child(12)')?.textContent === "1 (ZeRO-0)"
eval streamed Number(document.body.dataset.events || 0)
until 30 document.querySelector('#samples .sample[data-run="live"] pre') !== null
eval sample_prompt document.querySelector('#samples .sample[data-run="live"] pre b')?.textContent === "the quick"
eval sample_len document.querySelector('#samples .sample[data-run="live"] pre')?.textContent.length
shot $shots/dashboard.png 1280 1000
eval marks ["spike", "skipped", "rollback"].map((k) => document.querySelectorAll(\`#chart-loss [data-run="finished"][data-mark="\${k}"]\`).length).join("/")
eval raw_on document.querySelector('#chart-loss path[data-run="finished"][data-series="train_raw"]') !== null
eval raw_off (() => { const s = document.getElementById("smooth"); s.value = "0"; s.dispatchEvent(new Event("input")); return document.querySelector('#chart-loss path[data-run="finished"][data-series="train_raw"]') === null; })()
eval lin_ratio $(ratio)
eval log_ratio (() => { const c = document.getElementById("logy"); c.checked = true; c.dispatchEvent(new Event("change")); return $(ratio); })()
EOC
python3 "$(dirname "$0")/lib/cdp.py" "$browser" "${URL}?interval=300" "$WORK/script" >"$WORK/out" 2>"$WORK/cdp.err" \
  || fail "browser: $(tail -3 "$WORK/cdp.err")"
v() { awk -v k="$1" '$1 == k {print $2}' "$WORK/out"; }
n1=$(v n1); n2=$(v n2)
[ -n "$n1" ] && [ "$n1" -ge 5 ] && pass "live curve drawn ($n1 points)" || fail "live curve: '$n1' points"
[ "$(v until | tail -n 1)" = true ] && [ "$n2" -gt "$n1" ] && [ "$(v polls2)" -gt "$(v polls1)" ] \
  && pass "points grow as steps land, in one page ($n1 -> $n2)" || fail "points did not grow: '$n1' -> '$n2' (page updates $(v polls1) -> $(v polls2); $(v conn))"
[ "$(v finished)" = 60 ] && pass "finished run overlaid (60 points)" || fail "finished run: '$(v finished)' points"
[ "$(v val)" = 6 ] && pass "validation curve (6 points)" || fail "validation points: '$(v val)'"
[ "$(v differs)" = true ] && pass "differing config row highlighted" || fail "config table: no highlighted train.steps row"
[ "$(v same)" = true ] && pass "equal config row not highlighted" || fail "config table: model.n_embd"
[ "$(v phase_run)" = '"live"' ] && [ "$(v phase_layers)" = '"attention,elementwise,loss,matmul,optimizer,other"' ] \
  && [ "$(v phase_area)" -gt 0 ] && pass "step time by phase stacked ($(v phase_layers), matmul $(v phase_area) px high)" \
  || fail "phase chart: run $(v phase_run), layers $(v phase_layers), height $(v phase_area)"
[ "$(v marks)" = '"1/1/1"' ] && pass "spike, skipped step and rollback marked on the loss chart" \
  || fail "loss chart marks (spike/skipped/rollback): $(v marks)"
[ "$(v raw_on)" = true ] && [ "$(v raw_off)" = true ] \
  && pass "smoothing: the raw curve beside the smoothed one, gone at 0" \
  || fail "smoothing slider: raw curve $(v raw_on), at 0 gone $(v raw_off)"
awk -v l="$(v lin_ratio)" -v g="$(v log_ratio)" 'BEGIN { exit !((l - 0.5)^2 < 0.006^2 && (g - 0.4846)^2 < 0.006^2) }' \
  && pass "log-scale loss axis (a point's place $(v lin_ratio) linear, $(v log_ratio) log)" \
  || fail "log scale: ratios $(v lin_ratio) linear (0.5 expected), $(v log_ratio) log (0.4846 expected)"
[ "$(v ranks_tp)" = true ] && [ "$(v ranks_one)" = true ] \
  && pass "ranks and layout in the status table (tensor-parallel groups named)" \
  || fail "ranks column: tensor-parallel run $(v ranks_tp), single run $(v ranks_one)"
[ -n "$(v mem_points)" ] && [ "$(v mem_points)" -ge 1 ] && pass "memory chart drawn ($(v mem_points) points)" \
  || fail "memory chart: '$(v mem_points)' points"
[ "$(v sample_prompt)" = true ] && [ "$(v sample_len)" -gt 9 ] \
  && pass "samples panel shows the live run's sample ($(v sample_len) characters)" \
  || fail "samples panel: prompt in bold $(v sample_prompt), $(v sample_len) characters"
[ -n "$(v streamed)" ] && [ "$(v streamed)" -ge 2 ] && pass "the page follows the event streams ($(v streamed) events)" \
  || fail "no event received by the page: '$(v streamed)'"
[ "$(head -c 8 "$shots/dashboard.png" 2>/dev/null | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] \
  && pass "screenshot $shots/dashboard.png" || fail "no screenshot"
finish
