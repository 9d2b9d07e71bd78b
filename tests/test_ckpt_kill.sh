#!/usr/bin/env bash
# Kill test: one run is killed with SIGKILL at random moments (22 times; the test hook
# --test-ckpt-write-delay 150 makes each checkpoint write take 150 ms, so many kills land in the
# middle of one) and resumed after each kill. Every time: no step_N directory without index.json
# is ever visible, the resume starts from the newest complete checkpoint, and in the end the run's
# losses equal those of an uninterrupted run bit for bit. Then SIGTERM and SIGINT (pre-emption):
# the run stops after the current step with a complete checkpoint of it and exit code 0.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=2
TRIALS=${LMF_KILL_TRIALS:-22}
RANDOM=4242 # the kill times are random but the same from run to run
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/data" || fail "prepare data"
common=(--model tiny --data "$WORK/data/data/train.bin" --vocab-size 257 --steps 150 --batch 4
        --seq 32 --lr 3e-3 --warmup 5 --seed 3 --eval-every 0 --save-every 2 --sample-tokens 0
        --log-every 1000)

# the uninterrupted run (checkpoints do not change the arithmetic: it writes only the last)
"$LMF" train "${common[@]}" --save-every 0 --quiet --out "$WORK/ref" || fail "reference run"

# the step of the newest step_N directory holding index.json, or -1
newest_complete() {
  local best=-1 d s
  for d in "$1"/checkpoints/step_*; do
    [ -f "$d/index.json" ] || continue
    s=$((10#${d##*step_}))
    [ "$s" -gt "$best" ] && best=$s
  done
  echo "$best"
}
partial_visible() {
  local d
  for d in "$1"/checkpoints/step_*; do
    [ -d "$d" ] && [ ! -f "$d/index.json" ] && { echo "$d"; return 0; }
  done
  return 1
}

# wait_for FILE PATTERN: until a line of FILE matches (at most 30 s)
wait_for() { local i; for i in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

run="$WORK/run"
during=0 checked=0 bad=0 fresh=0
for trial in $(seq 1 "$TRIALS"); do
  n=$(newest_complete "$run")
  rm -f "$WORK/t.err"
  if [ "$n" -lt 0 ]; then
    rm -rf "$run"
    fresh=$((fresh + 1))
    "$LMF" train "${common[@]}" --test-ckpt-write-delay 150 --out "$run" >/dev/null 2>"$WORK/t.err" &
  else
    "$LMF" train --resume "$run" --sample-tokens 0 --test-ckpt-write-delay 150 >/dev/null 2>"$WORK/t.err" &
  fi
  pid=$!
  # three kills in four once the run is going (its first line is out), the others at any moment
  # from the start (loading included); the machine's load must not decide where kills land
  if [ $((RANDOM % 4)) -ne 0 ]; then wait_for "$WORK/t.err" "^lmforge train: "; fi
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", r / 32767 * 1.0 }')"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [ "$n" -ge 0 ]; then
    got=$(grep -o 'resumed from the checkpoint of step [0-9]*' "$WORK/t.err" | grep -o '[0-9]*$')
    if [ -n "$got" ]; then
      checked=$((checked + 1))
      [ "$got" -eq "$n" ] || { bad=$((bad + 1)); fail "trial $trial: resumed from step $got, newest complete was $n"; }
    fi
  fi
  ls -A "$run/checkpoints" 2>/dev/null | grep -q '^\.tmp-' && during=$((during + 1))
  if p=$(partial_visible "$run"); then
    bad=$((bad + 1))
    fail "trial $trial: $p is visible without index.json"
  fi
done
echo "$TRIALS kills: $during during a checkpoint write, $fresh before the first checkpoint, $checked resumes checked"
[ "$bad" -eq 0 ] && pass "$TRIALS kills: never a partial checkpoint, every resume from the newest complete one" \
  || fail "$bad kill trials went wrong"
[ "$checked" -ge $((TRIALS / 3)) ] && pass "$checked resumes named their checkpoint" || fail "only $checked resumes checked"
[ "$during" -ge 3 ] && pass "$during kills hit a checkpoint being written" || fail "only $during kills during a write"

# pre-emption (a run of its own): SIGTERM or SIGINT once the loop runs: the step finishes, a
# checkpoint of it is written, the exit code is 0 and the message names the step
sig_run="$WORK/sig"
for sig in TERM INT TERM; do
  rm -f "$WORK/s.err"
  if [ -e "$sig_run/checkpoints/latest" ]; then
    "$LMF" train --resume "$sig_run" --log-every 1 --sample-tokens 0 --test-ckpt-write-delay 150 \
      >/dev/null 2>"$WORK/s.err" &
  else
    "$LMF" train "${common[@]}" --log-every 1 --test-ckpt-write-delay 150 --out "$sig_run" \
      >/dev/null 2>"$WORK/s.err" &
  fi
  pid=$!
  wait_for "$WORK/s.err" "^step [0-9]*/150" || fail "SIG$sig: the run printed no step line"
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", r / 32767 * 0.5 }')"
  kill -"$sig" "$pid"
  rc=0
  wait "$pid" || rc=$?
  s=$(grep -o "stopped by SIG$sig after step [0-9]*" "$WORK/s.err" | grep -o '[0-9]*$')
  if [ "$rc" -eq 0 ] && [ -n "$s" ] && [ "$(cat "$sig_run/checkpoints/latest")" = "$(printf 'step_%08d' "$s")" ]; then
    pass "SIG$sig: exit 0 after step $s with its checkpoint complete"
  else
    fail "SIG$sig: exit $rc, $(grep -v '^step' "$WORK/s.err" | tail -2 | tr '\n' ' ') latest $(cat "$sig_run/checkpoints/latest" 2>/dev/null)"
  fi
done

n=$(newest_complete "$run")
if [ "$n" -lt 0 ]; then
  rm -rf "$run"
  "$LMF" train "${common[@]}" --quiet --out "$run" || fail "final run"
else
  "$LMF" train --resume "$run" --quiet --sample-tokens 0 || fail "final resume from step $n"
fi
if [ "$(losses "$WORK/ref/metrics.jsonl" | wc -l)" -eq 150 ] &&
   diff <(losses "$WORK/ref/metrics.jsonl") <(losses "$run/metrics.jsonl") >/dev/null; then
  pass "after $TRIALS kills the run's 150 losses equal the uninterrupted run's bit for bit"
else
  fail "losses differ: $(diff <(losses "$WORK/ref/metrics.jsonl") <(losses "$run/metrics.jsonl") | head -4 | tr '\n' ' ')"
fi
"$LMF" train --resume "$sig_run" --quiet --sample-tokens 0 || fail "resume of the signalled run"
diff <(losses "$WORK/ref/metrics.jsonl") <(losses "$sig_run/metrics.jsonl") >/dev/null \
  && pass "the signalled run ends with the uninterrupted run's losses" || fail "signalled run: losses differ"
finish
