#!/usr/bin/env bash
# Numeric faults through the CLI: a NaN step is skipped (no update: the state after it equals the
# state before it), K NaN steps in a row roll back to the latest checkpoint with the data moved
# past the bad batches, repeated faults right after a rollback stop the run, --max-bad-steps 0
# stops at the first, loss spikes are logged. NaNs come from the test option --test-inject-nan.
source "$(dirname "$0")/lib/common.sh"
# MPI settings, and sanitizer reports judged by lmf_sanitizer_verdict (Open MPI's own leaks aside)
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
export OMP_NUM_THREADS=2
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/data" || fail "prepare data"
data=(--data "$WORK/data/data/train.bin" --vocab-size 257)
common=(--model tiny "${data[@]}" --batch 4 --seq 32 --lr 3e-3 --warmup 2 --seed 11 --eval-every 0
        --sample-tokens 0 --quiet)

# the loader position (rows) in a checkpoint's trainer_state.json
position() { grep -o '"position": *[0-9]*' "$1/trainer_state.json" | grep -o '[0-9]*$'; }
# the data section of a shard (params, m, v), without the header
shard_data() { local f="$1" h; h=$(od -An -tu8 -N8 "$f" | tr -d ' '); tail -c +$((9 + h)) "$f"; }

"$LMF" train "${common[@]}" --steps 20 --save-every 5 --out "$WORK/ref" || fail "reference run"
ref_losses=$(losses "$WORK/ref/metrics.jsonl")
[ "$(echo "$ref_losses" | wc -l)" -eq 20 ] && pass "reference run: 20 steps" || fail "reference run"

# 1. one NaN step (index 4): skipped, logged, and the update is not made: the checkpoint after
#    it holds the same weights and AdamW state as the one before it
"$LMF" train --test-inject-nan 4 "${common[@]}" --steps 8 --save-every 1 --keep-checkpoints 10 \
  --out "$WORK/skip" || fail "run with one NaN step"
m="$WORK/skip/metrics.jsonl"
grep -q '^{"step":4,"skipped":"nan","bad_in_row":1,"run":"[0-9a-f]*"}$' "$m" && pass "skip line in metrics.jsonl" \
  || fail "no skip line: $(grep skipped "$m")"
[ "$(losses "$m" | wc -l)" -eq 7 ] && pass "7 loss lines for 8 steps, one skipped" || fail "loss lines: $(losses "$m" | wc -l)"
if diff <(losses "$m" | head -4) <(echo "$ref_losses" | head -4) >/dev/null; then
  pass "steps before the fault equal the reference run"
else
  fail "steps before the fault differ from the reference"
fi
c4="$WORK/skip/checkpoints/step_00000004/shard-00000-of-00001.safetensors"
c5="$WORK/skip/checkpoints/step_00000005/shard-00000-of-00001.safetensors"
if [ -s "$c4" ] && cmp -s <(shard_data "$c4") <(shard_data "$c5"); then
  pass "the skipped step changed no weight or AdamW moment"
else
  fail "state changed across the skipped step"
fi
c6="$WORK/skip/checkpoints/step_00000006/shard-00000-of-00001.safetensors"
cmp -s <(shard_data "$c5") <(shard_data "$c6") && fail "the step after the skip changed nothing" \
  || pass "training goes on after the skipped step"
[ $(( $(position "$WORK/skip/checkpoints/step_00000005") - $(position "$WORK/skip/checkpoints/step_00000004") )) -eq 4 ] \
  && pass "the skipped step consumed its batch (4 rows)" || fail "data position across the skip"

# 2. three NaN steps in a row (7, 8, 9): rolled back to step 5, data moved past the bad batches
err="$WORK/roll.err"
"$LMF" train --test-inject-nan 7,8,9 "${common[@]/--quiet/--log-every}" 100 --steps 20 --save-every 5 \
  --max-bad-steps 3 --out "$WORK/roll" 2>"$err" || fail "run with a rollback: $(tail -3 "$err")"
m="$WORK/roll/metrics.jsonl"
for s in 7 8 9; do
  grep -q "^{\"step\":$s,\"skipped\":\"nan\",\"bad_in_row\":$((s - 6)),\"run\":\"[0-9a-f]*\"}\$" "$m" \
    && pass "step $s skipped ($((s - 6)) in a row)" || fail "no skip line for step $s"
done
grep -q '^{"step":9,"rolled_back_to":5,"run":"[0-9a-f]*"}$' "$m" && pass "rollback line in metrics.jsonl" || fail "no rollback line"
grep -q "rolled back to the checkpoint of step 5" "$err" && grep -q "update skipped (3 in a row)" "$err" \
  && pass "skips and rollback are logged on stderr" || fail "stderr: $(cat "$err")"
[ "$(grep -c '"step":5,"loss"' "$m")" -eq 2 ] && pass "step 5 was run again after the rollback" \
  || fail "step 5 lines: $(grep -c '"step":5,"loss"' "$m")"
first5=$(grep '"step":5,"loss"' "$m" | head -1 | grep -o '"loss":[-0-9.e+]*')
ref5=$(grep '"step":5,"loss"' "$WORK/ref/metrics.jsonl" | grep -o '"loss":[-0-9.e+]*')
[ "$first5" = "$ref5" ] && pass "before the fault the run equals the reference" || fail "$first5 vs $ref5"
# 20 steps, plus the 5 batches of steps 5..9 that were skipped: 5 x 4 rows further on
p_ref=$(position "$WORK/ref/checkpoints/step_00000020")
p_roll=$(position "$WORK/roll/checkpoints/step_00000020")
[ "$((p_roll - p_ref))" -eq 20 ] && pass "the data position skips the 5 batches since the checkpoint" \
  || fail "data position $p_roll vs reference $p_ref"
[ -s "$WORK/roll/model.safetensors" ] && pass "the run finished after the rollback" || fail "no final model"

# 3. faults again right after the rollback: the data is not the cause; stop with an error
expect_error "NaN again after a rollback" 1 "again, right after rolling back" -- \
  "$LMF" train --test-inject-nan 3,4,3,4 "${common[@]}" --steps 10 --save-every 3 --max-bad-steps 2 --out "$WORK/stuck"
# 4. --max-bad-steps 0 stops at the first
expect_error "--max-bad-steps 0" 1 "step 3: .*not finite.*--max-bad-steps 0" -- \
  "$LMF" train --test-inject-nan 2 "${common[@]}" --steps 6 --max-bad-steps 0 --out "$WORK/strict"
# 5. nothing to roll back to
expect_error "no checkpoint to roll back to" 1 "cannot roll back: .*no checkpoint" -- \
  "$LMF" train --test-inject-nan 1,2 "${common[@]}" --steps 6 --max-bad-steps 2 --out "$WORK/nockpt"
# 6. a malformed value is refused
expect_error "bad --test-inject-nan" 2 "--test-inject-nan '4,x'" -- \
  "$LMF" train --test-inject-nan 4,x "${common[@]}" --steps 2 --out "$WORK/badenv"
expect_error "--max-bad-steps -1" 2 "max-bad-steps" -- "$LMF" train "${common[@]}" --max-bad-steps -1 --out "$WORK/x"
expect_error "--spike-factor abc" 2 "spike-factor" -- "$LMF" train "${common[@]}" --spike-factor abc --out "$WORK/x"

# 7. spikes: none at the default factor on a healthy run; a factor below 1 flags ordinary steps
grep -q '"spike"' "$WORK/ref/metrics.jsonl" && fail "spike logged in a healthy run" || pass "no spike at factor 2"
"$LMF" train "${common[@]}" --steps 16 --spike-factor 0.5 --out "$WORK/spike" || fail "spike run"
n=$(grep -c '"spike"' "$WORK/spike/metrics.jsonl")
# the running mean counts from the 10th good step: steps 10..15 are compared
[ "$n" -eq 6 ] && pass "spike lines with --spike-factor 0.5: $n" || fail "spike lines: $n"

# 8. under MPI (2 ranks, ZeRO-1) a rollback happens on every rank together
if command -v mpirun >/dev/null; then
  if timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 \
       -x OMP_NUM_THREADS=1 "$LMF" train --test-inject-nan 6,7 "${common[@]}" --steps 12 \
       --save-every 4 --zero 1 --max-bad-steps 2 --out "$WORK/mpi" 2>"$WORK/mpi.err" &&
     grep -q '^{"step":7,"rolled_back_to":4,"run":"[0-9a-f]*"}$' "$WORK/mpi/metrics.jsonl"; then
    pass "rollback under mpirun -np 2, ZeRO-1"
  else
    fail "mpirun rollback: $(tail -3 "$WORK/mpi.err")"
  fi
fi
lmf_sanitizer_verdict
[ "$lmf_fail_count" -eq 0 ] || fail "sanitizer reports"
finish
