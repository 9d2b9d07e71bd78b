#!/usr/bin/env bash
# Pipeline and tensor parallelism together (3-D layouts) train the model one rank trains: with
# the same seed, data and global batch, --pp 2 --tp 2 (GPT-2 at 4 ranks; Llama at 4 with --sp;
# GPT-2 at 8 with two data-parallel replicas over ZeRO-3, oversubscribed) and --pp 3 --tp 2
# (Llama at 6 with --sp, the ZB-H1 schedule) give the single rank's loss at each of 20 steps within 1e-5 relative,
# its gradient norms within 1e-4 and its final weights within 2e-5. A
# checkpoint saved at (dp, tp, pp) = (1, 2, 2) resumes on one rank, and one saved on one rank
# resumes at --tp 2 --pp 2 (whole tensors per name); --virtual-stages without the interleaved
# schedule is refused.
source "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null || ! command -v python3 >/dev/null; then
  echo "test_pp_tp_matches_single: skipped (no mpirun or python3)"
  exit 77
fi
LMF_TESTS=$(cd "$(dirname "$0")" && pwd)
. "$LMF_TESTS/lib/matches_single.sh"
matches_setup 3

# every step's gradient norm (above --grad-clip 1 in the first steps, so it scales their
# updates) within 1e-4 relative of one rank's: each parameter counted once over the
# tensor-parallel, pipeline and data-parallel groups
norms_close() { series_close "$1" "gradient norms" grad_norm "$2" "$3" 20 1e-4; }

# family np pp batch extra (every run --tp 2, two micro-batches per step; np 8: two
# data-parallel replicas; --pp 3: a middle stage, without block 0, whose slices sit at other
# offsets than the whole model's); the runs print their start-up lines
loud=()
for a in "${common[@]}"; do [ "$a" = --quiet ] || loud+=("$a"); done
while read -r fam np pp batch extra; do
  [ -d "$WORK/$fam-ref" ] || "$LMF" train --config "$WORK/$fam.json" "${common[@]}" --batch 12 \
    --out "$WORK/$fam-ref" || fail "$fam: one rank"
  name="$fam np=$np --tp 2 --pp $pp $extra"
  run="$WORK/$fam-$np-$pp-${extra// /}"
  # shellcheck disable=SC2086
  mpi "$np" train --config "$WORK/$fam.json" "${loud[@]}" --tp 2 --pp "$pp" --batch "$batch" \
    $extra --out "$run" >"$run.txt" 2>&1 || { fail "$name: $(tail -3 "$run.txt")"; continue; }
  same "$name" "$WORK/$fam-ref" "$run"
  norms_close "$name" "$WORK/$fam-ref" "$run"
done <<'RUNS'
gpt2 4 2 6 --schedule 1f1b
llama 4 2 6 --sp --schedule gpipe
gpt2 8 2 3 --zero 3
llama 6 3 6 --sp --schedule zb
RUNS

# start-up names the 3-D layout: stages of neighbouring tensor-parallel pairs
show="$WORK/gpt2-4-2---schedule1f1b.txt"
grep -q "layout: 4 ranks = 2 pipeline stages x 1 data-parallel x 2 tensor-parallel" "$show" &&
grep -q "stage 0: ranks 0-1, layers 0-1 and the embeddings; stage 1: ranks 2-3, layers 2-2, the final norm and the classifier" "$show" \
  && pass "start-up prints the 3-D layout" || fail "no 3-D layout: $(grep layout "$show")"
grep -q "layout: 8 ranks = 2 pipeline stages x 2 data-parallel x 2 tensor-parallel" "$WORK/gpt2-8-2---zero3.txt" &&
grep -q "stage 0: ranks 0-3, layers 0-1 and the embeddings; stage 1: ranks 4-7" "$WORK/gpt2-8-2---zero3.txt" \
  && pass "start-up prints the 3-D layout with data parallelism" \
  || fail "no 3-D layout at np 8: $(grep layout "$WORK/gpt2-8-2---zero3.txt")"
# the tokens per step on the first line: batch x seq x micro-steps x data-parallel replicas
# (the tensor-parallel pairs and the stages read one stream; it said "x 8 ranks")
for f in "$show" "$WORK/gpt2-8-2---zero3.txt"; do
  sed -n 's/.*batch \([0-9]*\) x \([0-9]*\), \([0-9]*\) micro-steps x \([0-9]*\) data-parallel replicas\{0,1\} = \([0-9]*\) tokens\/step.*/\1 \2 \3 \4 \5/p' "$f" |
    awk '{ ok = NF == 5 && $1 * $2 * $3 * $4 == $5 } END { exit !(NR == 1 && ok) }' \
    && pass "the start line's tokens per step add up ($(basename "$f"))" \
    || fail "start line: $(head -1 "$f")"
done

# checkpoints hold whole tensors: (1, 2, 2) resumes on one rank, one rank's at (1, 2, 2)
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --save-every 10 \
  --out "$WORK/ck-ref" || fail "checkpointed reference"
mpi 4 train --config "$WORK/gpt2.json" "${common[@]}" --batch 6 --tp 2 --pp 2 --save-every 10 \
  --stop-after 10 --out "$WORK/ck" || fail "--tp 2 --pp 2 to step 10"
[ "$(losses "$WORK/ck/metrics.jsonl" | wc -l)" -eq 10 ] || fail "--tp 2 --pp 2 did not stop at step 10"
"$LMF" train --resume "$WORK/ck" --quiet --sample-tokens 0 || fail "resume at --tp 1 --pp 1"
same "(dp,tp,pp) = (1,2,2) checkpoint resumed on one rank" "$WORK/ck-ref" "$WORK/ck"
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --save-every 10 \
  --stop-after 10 --out "$WORK/ck1" || fail "one rank to step 10"
mpi 4 train --resume "$WORK/ck1" --tp 2 --pp 2 --batch 6 --quiet --sample-tokens 0 \
  || fail "resume at --tp 2 --pp 2"
same "one-rank checkpoint resumed at --tp 2 --pp 2" "$WORK/ck-ref" "$WORK/ck1"

# model chunks without the schedule that runs them are refused with --tp too
refused "--virtual-stages without --schedule interleaved, with --tp" "give --schedule interleaved with it" \
  mpi 4 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --tp 2 --pp 2 --virtual-stages 2 --out "$WORK/bad2"
refused "6 ranks, --tp 2 --pp 2" "6 ranks cannot be split into --pp 2 pipeline stages of --tp 2 ranks" \
  mpi 6 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --tp 2 --pp 2 --out "$WORK/bad3"

lmf_sanitizer_verdict
if [ "$FAILS" -ne 0 ] || [ "$lmf_fail_count" -ne 0 ]; then
  echo "test_pp_tp_matches_single: $FAILS check(s) failed"; exit 1
fi
echo "test_pp_tp_matches_single: ok ($PASSES checks)"
