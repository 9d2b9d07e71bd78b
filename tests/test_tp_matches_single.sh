#!/usr/bin/env bash
# Tensor parallelism trains the model one rank trains: with the same seed, data and global
# batch, --tp 2 and 4 (alone, with data parallelism over ZeRO 1-3, with --sp and recomputation,
# up to 8 ranks oversubscribed) give the single rank's loss at each of 20 steps within 1e-5 relative and its
# final weights within 2e-5, for a GPT-2 and a Llama model whose heads, key/value heads
# (split at --tp 2, shared at --tp 4) and widths are odd-sized. A checkpoint saved at --tp 2
# resumes at --tp 1 and --tp 4; shapes that do not divide are refused with one line.
source "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null || ! command -v python3 >/dev/null; then
  echo "test_tp_matches_single: skipped (no mpirun or python3)"
  exit 77
fi
LMF_TESTS=$(cd "$(dirname "$0")" && pwd)
. "$LMF_TESTS/lib/matches_single.sh"
matches_setup 2

# family np tp batch extra: every split, --sp, recomputation, ZeRO 1-3 over the data-parallel
# group, key/value heads shared (Llama at --tp 4), 8 ranks
while read -r fam np tp batch extra; do
  [ -d "$WORK/$fam-ref" ] || "$LMF" train --config "$WORK/$fam.json" "${common[@]}" --batch 12 \
    --out "$WORK/$fam-ref" || fail "$fam: one rank"
  name="$fam np=$np --tp $tp $extra"
  run="$WORK/$fam-$np-$tp-${extra// /}"
  # shellcheck disable=SC2086
  mpi "$np" train --config "$WORK/$fam.json" "${common[@]}" --tp "$tp" --batch "$batch" \
    $extra --out "$run" >"$WORK/out.txt" 2>&1 || { fail "$name: $(tail -3 "$WORK/out.txt")"; continue; }
  same "$name" "$WORK/$fam-ref" "$run"
done <<'RUNS'
gpt2 2 2 12
gpt2 2 2 12 --sp
gpt2 4 2 6 --zero 1 --sp
gpt2 8 4 6 --zero 2
llama 2 2 12 --sp
llama 4 4 12 --sp --recompute full
llama 4 2 6 --zero 3
RUNS

# a checkpoint of a --tp 2 run resumes at --tp 1 and at --tp 4 (whole tensors per name)
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --save-every 10 \
  --out "$WORK/ck-ref" || fail "checkpointed reference"
mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --tp 2 --save-every 10 \
  --stop-after 10 --out "$WORK/ck" || fail "--tp 2 to step 10"
cp -a "$WORK/ck" "$WORK/ck4"
"$LMF" train --resume "$WORK/ck" --quiet --sample-tokens 0 || fail "resume at --tp 1"
losses_follow "$WORK/ck-ref/metrics.jsonl" "$WORK/ck/metrics.jsonl" 20 0 \
  && pass "--tp 2 checkpoint resumed at --tp 1 follows the one-rank run" \
  || fail "--tp 2 -> 1: $(losses "$WORK/ck/metrics.jsonl" | tail -3 | tr '\n' ' ')"
mpi 4 train --resume "$WORK/ck4" --tp 4 --quiet --sample-tokens 0 || fail "resume at --tp 4"
losses_follow "$WORK/ck-ref/metrics.jsonl" "$WORK/ck4/metrics.jsonl" 20 0 \
  && pass "--tp 2 checkpoint resumed at --tp 4 follows the one-rank run" \
  || fail "--tp 2 -> 4: $(losses "$WORK/ck4/metrics.jsonl" | tail -3 | tr '\n' ' ')"

# shapes and rank counts that do not divide: a non-zero exit and the message
refused "--tp 3 over 4 heads" "tp 3 does not divide the model's 4 attention heads; choose a divisor of 4" \
  mpi 3 train --config "$WORK/gpt2.json" "${common[@]}" --batch 4 --tp 3 --out "$WORK/bad1"
refused "3 ranks, --tp 2" "3 ranks cannot be split into tensor-parallel groups of --tp 2" \
  mpi 3 train --config "$WORK/gpt2.json" "${common[@]}" --batch 4 --tp 2 --out "$WORK/bad2"
refused "--sp without --tp" "give --tp 2 or more" \
  "$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --sp --out "$WORK/bad3"

lmf_sanitizer_verdict
if [ "$FAILS" -ne 0 ] || [ "$lmf_fail_count" -ne 0 ]; then
  echo "test_tp_matches_single: $FAILS check(s) failed"; exit 1
fi
echo "test_tp_matches_single: ok ($PASSES checks)"
