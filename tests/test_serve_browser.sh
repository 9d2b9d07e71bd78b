#!/usr/bin/env bash
# A real browser (Debian's Chromium, headless) opens the dashboard of lmforge serve while a
# run trains: the live run's loss curve gains points between two loads, a finished run is
# drawn beside it, the config table marks what differs; screenshots are saved in
# $LMF_BUILD_DIR/serve-screenshots/.
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
"$LMF" train "${common[@]}" --steps 60 --lr 3e-3 --out "$WORK/runs/finished" || fail "finished run"
"$LMF" train "${common[@]}" --steps 100000 --save-every 10 --out "$WORK/runs/live" &
TRAIN_PID=$!
for ((i = 0; i < 300; i++)); do # until the live run has its first checkpoint
  [ -f "$WORK/runs/live/checkpoints/latest" ] && break
  sleep 0.1
done
start_serve "$WORK/runs/finished" "$WORK/runs/live" || { fail "serve start"; finish; exit 1; }

# the page after its script has polled a few times (virtual time runs the timers)
load() {
  "$browser" --headless=new --no-sandbox --disable-gpu --no-first-run --user-data-dir="$WORK/profile" \
    --virtual-time-budget=3000 "$@" "${URL}?interval=300" 2>/dev/null
}
points() { # points RUN SERIES < dom
  grep -o "<path[^>]*data-run=\"$1\" data-series=\"$2\" data-points=\"[0-9]*\"" | head -n 1 | grep -o '[0-9]*"$' | tr -d '"'
}
dom1=$(load --dump-dom)
n1=$(points live train <<<"$dom1")
sleep 1.5
dom2=$(load --dump-dom)
n2=$(points live train <<<"$dom2")
f=$(points finished train <<<"$dom2")
[ -n "$n1" ] && [ "$n1" -ge 5 ] && pass "live curve drawn ($n1 points)" || fail "live curve: '$n1' points"
[ -n "$n2" ] && [ -n "$n1" ] && [ "$n2" -gt "$n1" ] && pass "points grow as steps land ($n1 -> $n2)" \
  || fail "points did not grow: '$n1' -> '$n2'"
[ "$f" = 60 ] && pass "finished run overlaid (60 points)" || fail "finished run: '$f' points"
[ "$(points finished val <<<"$dom2")" = 3 ] && pass "validation curve (3 points)" || fail "validation points"
grep -q '<tr class="diff" data-key="train.steps">' <<<"$dom2" && pass "differing config row highlighted" \
  || fail "config table: no highlighted train.steps row"
grep -q '<tr data-key="model.n_embd">' <<<"$dom2" && pass "equal config row not highlighted" || fail "config table: model.n_embd"
grep -q 'data-polls="[1-9]' <<<"$dom2" && pass "page polled the API" || fail "no poll completed"

load --window-size=1280,1000 --hide-scrollbars --screenshot="$shots/dashboard.png" >/dev/null
[ "$(head -c 8 "$shots/dashboard.png" 2>/dev/null | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] \
  && pass "screenshot $shots/dashboard.png" || fail "no screenshot"
finish
