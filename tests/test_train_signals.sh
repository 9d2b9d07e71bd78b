#!/usr/bin/env bash
# SIGINT and SIGTERM during a long optimizer step (100,000 micro-steps, about a minute) are
# honoured within seconds, between two micro-steps: the run saves the last completed step
# (here the initial state, step 0) and names the signal it got.
. "$(dirname "$0")/lib/common.sh"
for i in $(seq 1 3000); do echo "line $i of some text to make tokens from, with words"; done >"$WORK/a.txt"
"$LMF" data prepare --bytes --val-fraction 0 --input "$WORK/a.txt" --out "$WORK/tok" >/dev/null 2>&1 || fail "data prepare"

for sig in INT TERM; do
  run=$WORK/run_$sig
  timeout 120 "$LMF" train --model tiny --vocab-size 320 --seq 32 --batch 2 --grad-accum 100000 \
    --steps 2 --threads 1 --sample-tokens 0 --eval-every 0 --data "$WORK/tok/train.bin" \
    --out "$run" 2>"$WORK/err_$sig" &
  pid=$!
  # the first step has begun once the start-up lines are out
  for _ in $(seq 1 300); do grep -q "memory per rank" "$WORK/err_$sig" && break; sleep 0.1; done
  sleep 1
  t0=$(date +%s.%N)
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  took=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  [ "$rc" -eq 0 ] && pass "SIG$sig: exit 0" || fail "SIG$sig: exit $rc: $(cat "$WORK/err_$sig")"
  awk -v t="$took" 'BEGIN { exit !(t < 10) }' && pass "SIG$sig: stopped within 10 s ($took s)" ||
    fail "SIG$sig: took $took s to stop (the step was not interrupted)"
  grep -q "stopped by SIG$sig after step 0; checkpoint saved" "$WORK/err_$sig" &&
    pass "SIG$sig: named" || fail "SIG$sig: the message does not name SIG$sig: $(cat "$WORK/err_$sig")"
  [ -d "$run/checkpoints/step_00000000" ] && grep -q "step_00000000" "$run/checkpoints/latest" &&
    pass "SIG$sig: checkpoint of step 0" || fail "SIG$sig: no checkpoint of the last completed step"
done
finish
