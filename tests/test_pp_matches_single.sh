#!/usr/bin/env bash
# Pipeline parallelism trains the model one rank trains: with the same seed, data and global
# batch, --pp 2 (GPipe, 1F1B and ZB-H1, alone and with data parallelism over ZeRO 0-3, 4 ranks
# oversubscribed) gives the single rank's loss at each of 20 steps within 1e-5 relative and its
# final weights within 2e-5, for a GPT-2 model (tied embedding on the first and last stage) and
# a Llama model (untied lm_head). With data parallelism both also evaluate (--val-data,
# --eval-every 5, 3 batches: more than the GPT-2 run's 2 micro-batches a step): through the
# pipeline, each validation loss within 1e-5 relative of a one-rank run's of the same --batch,
# whose validation batches are the same rows; and the GPT-2 one writes samples (--sample-every
# 10: the whole model gathered), the one-rank run's text. A checkpoint saved at --pp 2 resumes
# at --pp 1, and one saved at --pp 1 at --pp 2 (whole tensors per name); layouts that do not
# fit are refused.
source "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null || ! command -v python3 >/dev/null; then
  echo "test_pp_matches_single: skipped (no mpirun or python3)"
  exit 77
fi
LMF_TESTS=$(cd "$(dirname "$0")" && pwd)
. "$LMF_TESTS/lib/matches_single.sh"
matches_setup 3

ev=(--val-data "$WORK/data/data/val.bin" --eval-every 5 --eval-batches 3)
# family np pp batch also extra (also: - or eval and/or sample, the options the run and its
# one-rank reference of the same --batch add: ev[] and --sample-every 10)
while read -r fam np pp batch also extra; do
  [ -d "$WORK/$fam-ref" ] || "$LMF" train --config "$WORK/$fam.json" "${common[@]}" --batch 12 \
    --out "$WORK/$fam-ref" || fail "$fam: one rank"
  more=()
  case "$also" in *eval*) more+=("${ev[@]}") ;; esac
  case "$also" in *sample*) more+=(--sample-every 10) ;; esac
  eref="$WORK/$fam-ref-$batch-$also"
  if [ "$also" != - ] && [ ! -d "$eref" ]; then
    "$LMF" train --config "$WORK/$fam.json" "${common[@]}" "${more[@]}" --batch "$batch" \
      --out "$eref" || fail "$fam: one rank, --batch $batch, $also"
  fi
  name="$fam np=$np --pp $pp $extra"
  run="$WORK/$fam-$np-$pp-${extra// /}"
  # shellcheck disable=SC2086
  mpi "$np" train --config "$WORK/$fam.json" "${common[@]}" "${more[@]}" --pp "$pp" \
    --batch "$batch" $extra --out "$run" >"$WORK/out.txt" 2>&1 || { fail "$name: $(tail -3 "$WORK/out.txt")"; continue; }
  same "$name" "$WORK/$fam-ref" "$run"
  case "$also" in *eval*) same_val_losses "$name" "$eref" "$run" 4 ;; esac
  case "$also" in *sample*) same_samples "$name" "$eref" "$run" 2 ;; esac
done <<'RUNS'
gpt2 2 2 3 - --schedule 1f1b
gpt2 2 2 4 - --schedule gpipe --stage-layers 1,2
gpt2 4 2 3 eval+sample --schedule 1f1b --zero 1
llama 2 2 3 - --schedule 1f1b
llama 4 2 2 eval --schedule gpipe --zero 2
gpt2 2 2 3 - --schedule zb
gpt2 4 2 2 - --schedule zb --zero 3
llama 4 2 3 - --schedule zb --zero 2
RUNS

# start-up names the stages' ranks and layers; the progress line shows the bubble
loud=()
for a in "${common[@]}"; do [ "$a" = --quiet ] || loud+=("$a"); done
mpi 2 train --config "$WORK/gpt2.json" "${loud[@]}" --steps 2 --pp 2 --batch 3 \
  --out "$WORK/show" >"$WORK/show.txt" 2>&1 || fail "start-up line: $(tail -3 "$WORK/show.txt")"
grep -q "stage 0: ranks 0-0, layers 0-1 and the embeddings; stage 1: ranks 1-1, layers 2-2, the final norm and the classifier" "$WORK/show.txt" \
  && pass "start-up prints the stages" || fail "no stage layout: $(head -5 "$WORK/show.txt")"
grep -Eq "bubble [0-9.]+%" "$WORK/show.txt" && pass "progress shows the bubble" \
  || fail "no bubble: $(tail -3 "$WORK/show.txt")"

# checkpoints hold whole tensors: --pp 2 resumes at --pp 1 and --pp 1 at --pp 2
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --save-every 10 \
  --out "$WORK/ck-ref" || fail "checkpointed reference"
mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --pp 2 --save-every 10 \
  --stop-after 10 --out "$WORK/ck" || fail "--pp 2 to step 10"
"$LMF" train --resume "$WORK/ck" --quiet --sample-tokens 0 || fail "resume at --pp 1"
losses_follow "$WORK/ck-ref/metrics.jsonl" "$WORK/ck/metrics.jsonl" 20 0 \
  && pass "--pp 2 checkpoint resumed at --pp 1 follows the one-rank run" \
  || fail "--pp 2 -> 1: $(losses "$WORK/ck/metrics.jsonl" | tail -3 | tr '\n' ' ')"
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --save-every 10 \
  --stop-after 10 --out "$WORK/ck1" || fail "--pp 1 to step 10"
mpi 2 train --resume "$WORK/ck1" --pp 2 --batch 3 --quiet --sample-tokens 0 || fail "resume at --pp 2"
losses_follow "$WORK/ck-ref/metrics.jsonl" "$WORK/ck1/metrics.jsonl" 20 0 \
  && pass "--pp 1 checkpoint resumed at --pp 2 follows the one-rank run" \
  || fail "--pp 1 -> 2: $(losses "$WORK/ck1/metrics.jsonl" | tail -3 | tr '\n' ' ')"

# layouts that do not fit: a non-zero exit and the message
refused "3 ranks, --pp 2" "3 ranks cannot be split into --pp 2 pipeline stages" \
  mpi 3 train --config "$WORK/gpt2.json" "${common[@]}" --batch 4 --pp 2 --out "$WORK/bad1"
refused "4 stages, 3 layers" "each needs at least one layer" \
  mpi 4 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --pp 4 --out "$WORK/bad2"
refused "--stage-layers not adding up" "adds up to 4 layers, the model has 3" \
  mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --pp 2 --stage-layers 2,2 --out "$WORK/bad3"
refused "--schedule unknown" "--schedule" \
  "$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --schedule pipedream --out "$WORK/bad4"
refused "--virtual-stages without --pp" "give --pp 2 or more" \
  "$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --virtual-stages 2 --out "$WORK/bad5"

lmf_sanitizer_verdict
if [ "$FAILS" -ne 0 ] || [ "$lmf_fail_count" -ne 0 ]; then
  echo "test_pp_matches_single: $FAILS check(s) failed"; exit 1
fi
echo "test_pp_matches_single: ok ($PASSES checks)"
