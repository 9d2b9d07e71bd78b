#!/usr/bin/env bash
# Mixtures from the command line: data inspect prints rows and shares per source (within 1% of
# the weights over 10,000 rows for three sources of very different sizes); training on a mixture
# stopped and resumed gives the uninterrupted run's losses bit for bit; inspect and training
# agree on the rows drawn (the loader state of the final checkpoint); a missing token file is
# named before training starts; a token file truncated while training stops the run with its
# name and leaves the newest checkpoint intact.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=2
# three byte-level token files of very different sizes
mk() { # NAME REPEAT
  local i
  for i in $(seq 1 "$2"); do echo "$1 line $i: the quick brown fox jumps over the lazy dog."; done >"$WORK/$1.txt"
  "$LMF" data prepare --bytes --input "$WORK/$1.txt" --out "$WORK/$1" --val-fraction 0 --quiet \
    >/dev/null || fail "prepare $1"
}
mk small 2
mk mid 200
mk big 6000
A="$WORK/small/train.bin" B="$WORK/mid/train.bin" C="$WORK/big/train.bin"
MIX="0.2:$A,0.5:$B,0.3:$C"

out=$("$LMF" data inspect --data "$MIX" --batch 10 --seq 16 --steps 1000 --json) || fail "inspect"
ok=1
for w in 0.2 0.5 0.3; do
  s=$(echo "$out" | grep -o "\"share\": [0-9.]*, \"weight\": $w" | head -1 | sed 's/"share": \([0-9.]*\).*/\1/')
  [ -n "$s" ] && awk -v s="$s" -v w="$w" 'BEGIN { exit !(s > w - 0.01 && s < w + 0.01) }' || ok=0
done
[ "$ok" -eq 1 ] && echo "$out" | grep -q '"rows": 10000' && pass "inspect: shares within 1% over 10,000 rows" \
  || fail "inspect shares: $out"
echo "$out" | grep -qE '"name": "[^"]*small/train.bin", "files": 1, "tokens": [0-9]+, "rows": [0-9]+, "rows_drawn": [0-9]+, "share": [0-9.]+, "weight": 0.2[0-9]*, "epochs": [1-9][0-9]+' \
  && pass "inspect: the small source ran through epochs" || fail "inspect small source: $out"
"$LMF" data inspect --data "$MIX" --batch 10 --seq 16 --steps 3 | grep -q "rows drawn" \
  && pass "inspect: table" || fail "inspect table"

common=(--model tiny --data "$MIX" --vocab-size 257 --steps 12 --batch 2 --grad-accum 2 --seq 16
        --lr 3e-3 --warmup 2 --seed 5 --eval-every 0 --sample-tokens 0)
"$LMF" train "${common[@]}" --out "$WORK/ref" 2>"$WORK/ref.err" || fail "uninterrupted run: $(cat "$WORK/ref.err")"
grep -q "data source .*small/train.bin used up; its epoch 2 begins" "$WORK/ref.err" \
  && pass "train logs a used-up source" || fail "no used-up line: $(head -c 600 "$WORK/ref.err")"
"$LMF" train "${common[@]}" --quiet --stop-after 5 --out "$WORK/run" 2>/dev/null || fail "run to step 5"
"$LMF" train --resume "$WORK/run" --sample-tokens 0 --quiet 2>/dev/null || fail "resume"
if [ "$(losses "$WORK/ref/metrics.jsonl" | wc -l)" -eq 12 ] &&
   diff <(losses "$WORK/ref/metrics.jsonl") <(losses "$WORK/run/metrics.jsonl") >/dev/null; then
  pass "mixture: stopped and resumed, losses equal the uninterrupted run's bit for bit"
else
  fail "mixture resume: losses differ: $(diff <(losses "$WORK/ref/metrics.jsonl") <(losses "$WORK/run/metrics.jsonl") | head -4 | tr '\n' ' ')"
fi

# inspect and training agree: 12 steps of 2 x 2 rows, the final checkpoint's source positions
st=$(ls -d "$WORK/ref/checkpoints"/step_* | tail -1)/trainer_state.json
want=$(tr -d ' \n' <"$st" | grep -o '"sources":\[[][0-9,]*\]')
got=$("$LMF" data inspect --data "$MIX" --batch 2 --grad-accum 2 --seq 16 --steps 12 --seed 5 --json |
      grep -o '"epochs": [0-9]*, "position": [0-9]*' | sed 's/"epochs": \([0-9]*\), "position": \([0-9]*\)/[\1,\2]/' | paste -sd, -)
[ -n "$want" ] && [ "$want" = "\"sources\":[$got]" ] && pass "inspect and training agree on the rows drawn ($got)" \
  || fail "inspect '$got' vs checkpoint '$want'"

# a token file truncated while training: the run stops naming it, the newest checkpoint is intact
cp "$B" "$WORK/mid.bak"
"$LMF" train "${common[@]}" --quiet --steps 100000 --save-every 5 --out "$WORK/cut" 2>"$WORK/cut.err" &
pid=$!
for i in $(seq 300); do [ -f "$WORK/cut/checkpoints/step_00000005/index.json" ] && break; sleep 0.1; done
truncate -s 1024 "$B"
for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill "$pid" 2>/dev/null && fail "the run went on after its token file was truncated"
wait "$pid"; rc=$?
cp "$WORK/mid.bak" "$B"
last=$(ls -d "$WORK/cut/checkpoints"/step_* | tail -1); last=$((10#${last##*step_}))
[ "$rc" -ne 0 ] && grep -q "mid/train.bin was truncated while in use" "$WORK/cut.err" \
  && [ "$(grep -c . "$WORK/cut.err")" -eq 1 ] && pass "a file truncated while training stops the run, named (exit $rc)" \
  || fail "truncated while training: exit $rc, $(head -c 400 "$WORK/cut.err")"
"$LMF" train --resume "$WORK/cut" --steps $((last + 2)) --quiet --sample-tokens 0 2>"$WORK/cut2.err" \
  && pass "the newest checkpoint (step $last) resumes once the file is back" \
  || fail "resume after the truncation: $(head -c 300 "$WORK/cut2.err")"
truncate -s 2000 "$B"
expect_error "a truncated token file is named before resuming" 1 "mid/train.bin: .*truncated" -- \
  "$LMF" train --resume "$WORK/cut" --steps $((last + 4)) --quiet --sample-tokens 0
cp "$WORK/mid.bak" "$B"

expect_error "a missing token file is named before training" 1 "nothere\.bin" -- \
  "$LMF" train --model tiny --data "$A,$WORK/nothere.bin" --vocab-size 257 --seq 16 --steps 1 --out "$WORK/x"
expect_error "inspect: bad weights" 2 "mixes weighted" -- "$LMF" data inspect --data "0.5:$A,$B"
finish
