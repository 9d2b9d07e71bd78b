#!/usr/bin/env bash
# lmforge plan's pipeline schedules from the command line: --explain-schedule timelines (rows
# derived here by hand from each schedule's definition), --schedule in a plan, and bad input.
source "$(dirname "$0")/lib/common.sh"

# number at "key": in a JSON text (first match)
jnum() { grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: *//'; }
# the timeline row of stage $2 in file $1, cells separated by single spaces
row() { grep "^stage $2 |" "$1" | sed 's/^stage [0-9]* | //; s/  */ /g'; }

# --- 1F1B, P = 4, M = 8: the last stage waits 3 units for the first activation, then runs
# each forward (1 unit) and its backward (2 units) in turn, and idles while the last gradient
# crosses the 3 stages before it (6 units); stage 0 runs 4 forwards, waits
# for the first gradient, then alternates backward and forward; bubble (P-1)/(M+P-1) = 3/11
out="$WORK/1f1b.txt"
if "$LMF" plan --explain-schedule 1f1b --pp 4 --micro-batches 8 >"$out"; then
  want3=". . . $(for i in 1 2 3 4 5 6 7 8; do printf 'F%d B%d B%d ' $i $i $i; done). . . . . ."
  [ "$(row "$out" 3)" = "$want3" ] && pass "1F1B last stage" || fail "1F1B last stage: $(row "$out" 3)"
  want0="F1 F2 F3 F4 . . . . . . B1 B1 F5 B2 B2 F6 B3 B3 F7 B4 B4 F8 B5 B5 . B6 B6 . B7 B7 . B8 B8"
  [ "$(row "$out" 0)" = "$want0" ] && pass "1F1B first stage" || fail "1F1B first stage: $(row "$out" 0)"
  grep -q "bubble 27.3% of the step; closed form (P-1)/(M+P-1) = 27.3%" "$out" \
    && grep -q "stage 0  idle  27.3%  activations held at the peak: 4 micro-batches" "$out" \
    && grep -q "stage 3  idle  27.3%  activations held at the peak: 1 micro-batch$" "$out" \
    && pass "1F1B bubble and activations" || fail "1F1B summary: $(tail -6 "$out")"
else
  fail "--explain-schedule 1f1b failed"
fi

# --- ZB-H1: stage 0 idles only P-1 = 3 units between its warm-up and the first input
# gradient, then runs B, W, F in turn; the bubble is a third of 1F1B's 9 units
out="$WORK/zb.txt"
if "$LMF" plan --explain-schedule zb --pp 4 --micro-batches 8 >"$out"; then
  want0="F1 F2 F3 F4 . . . $(for i in 1 2 3 4; do printf 'B%d W%d F%d ' $i $i $((i + 4)); done)"
  want0="$want0$(for i in 5 6 7 8; do printf 'B%d W%d ' $i $i; done)"
  [ "$(row "$out" 0)" = "${want0% }" ] && pass "ZB-H1 first stage" || fail "ZB-H1 first stage: $(row "$out" 0)"
  grep -q "makespan 27 units of which each stage computes 24" "$out" \
    && grep -q "bubble 11.1% of the step" "$out" \
    && [ "$(grep -c 'activations held at the peak: 4 micro-batches' "$out")" -eq 4 ] \
    && pass "ZB-H1 bubble and activations" || fail "ZB-H1 summary: $(tail -6 "$out")"
else
  fail "--explain-schedule zb failed"
fi

# --- GPipe holds every micro-batch; interleaved (2 chunks by default) shrinks the bubble
"$LMF" plan --explain-schedule gpipe --pp 4 --micro-batches 8 >"$WORK/gpipe.txt" \
  && grep -q "bubble 27.3% of the step" "$WORK/gpipe.txt" \
  && [ "$(grep -c 'activations held at the peak: 8 micro-batches' "$WORK/gpipe.txt")" -eq 4 ] \
  && pass "GPipe" || fail "GPipe: $(tail -6 "$WORK/gpipe.txt")"
"$LMF" plan --explain-schedule interleaved --pp 4 --micro-batches 8 >"$WORK/int.txt" \
  && grep -q "2 model chunks per stage" "$WORK/int.txt" \
  && grep -q "bubble 15.8% of the step; closed form (P-1)/(V M+P-1) = 15.8%" "$WORK/int.txt" \
  && grep -q "stage 0 .*11 chunks (5.50 micro-batches" "$WORK/int.txt" \
  && pass "interleaved" || fail "interleaved: $(tail -6 "$WORK/int.txt")"

# --- --schedule in a plan: the report names the schedule, its idle share and the command's
# flag; the zero-bubble schedule idles at most half as long as 1F1B (a third when F = B = W)
plan=("$LMF" plan --model gpt2 --cluster dgx-a100-superpod --nodes 1 --pp 4 --dp 2)
if "${plan[@]}" --json >"$WORK/p1.json" && "${plan[@]}" --schedule zb --json >"$WORK/pz.json" \
   && "${plan[@]}" --schedule zb >"$WORK/pz.txt"; then
  ok=$(awk -v a="$(jnum "$WORK/p1.json" bubble)" -v b="$(jnum "$WORK/pz.json" bubble)" \
    'BEGIN { print (a > 0 && b > 0 && 2 * b <= a) ? "yes" : "no" }')
  [ "$ok" = yes ] && pass "zb bubble at most half of 1F1B's" || fail "zb bubble: 1F1B $(jnum "$WORK/p1.json" bubble), zb $(jnum "$WORK/pz.json" bubble)"
  grep -q '"schedule": "zb"' "$WORK/pz.json" && grep -q '"schedule": "1f1b"' "$WORK/p1.json" \
    && grep -q '"bubble_fraction":' "$WORK/pz.json" \
    && grep -qE "pipeline bubble .* zb schedule: stages idle [0-9.]+% of the pipeline's time" "$WORK/pz.txt" \
    && grep -q -- "--pp 4 --schedule zb" "$WORK/pz.txt" \
    && pass "--schedule zb in the report" || fail "--schedule zb report: $(grep -E 'bubble|command' "$WORK/pz.txt")"
else
  fail "plan with --schedule zb failed"
fi
"$LMF" plan --model gpt2 --cluster dgx-a100-superpod --nodes 1 --pp 4 --search --schedule gpipe --top 1 >"$WORK/s.txt" \
  && grep -q "gpipe schedule" "$WORK/s.txt" && grep -q -- "--schedule gpipe" "$WORK/s.txt" \
  && pass "--search --schedule gpipe" || fail "--search --schedule gpipe: $(head -c 400 "$WORK/s.txt")"

E="lmforge plan: error:"
expect_error "unknown schedule" 2 "$E --explain-schedule: unknown pipeline schedule 'pipedream'; use gpipe, 1f1b, interleaved or zb" -- \
  "$LMF" plan --explain-schedule pipedream --pp 4
expect_error "timeline without stages" 2 "$E --explain-schedule needs the number of stages: give --pp P" -- \
  "$LMF" plan --explain-schedule 1f1b
expect_error "interleaved micro-batches" 2 "$E --explain-schedule: .*6 micro-batches is not a multiple" -- \
  "$LMF" plan --explain-schedule interleaved --pp 4 --micro-batches 6
expect_error "chunks without interleaving" 2 "$E --virtual-stages 2 needs --schedule interleaved" -- \
  "$LMF" plan --model gpt2 --cluster dgx-a100-superpod --nodes 1 --pp 4 --dp 2 --schedule zb --virtual-stages 2
expect_error "interleaved without chunks" 2 "$E the interleaved schedule needs 2 or more virtual stages" -- \
  "$LMF" plan --model gpt2 --cluster dgx-a100-superpod --nodes 1 --pp 4 --dp 2 --schedule interleaved
expect_error "--micro-batches in a plan" 2 "$E --micro-batches is for --explain-schedule" -- \
  "$LMF" plan --model gpt2 --cluster dgx-a100-superpod --nodes 1 --pp 4 --dp 2 --micro-batches 8
expect_error "unknown --schedule" 2 "$E --schedule: unknown pipeline schedule 'fast'" -- \
  "$LMF" plan --model gpt2 --cluster dgx-a100-superpod --nodes 1 --pp 4 --dp 2 --schedule fast

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
