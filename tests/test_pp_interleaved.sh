#!/usr/bin/env bash
# The interleaved schedule trains the model one rank trains: --pp 2 --schedule interleaved
# --virtual-stages 2 (each rank runs two model chunks of a 4-layer model: virtual stage c * 2 + s
# on stage s), alone, with data parallelism over ZeRO 1-3 (4 ranks oversubscribed: ZeRO-1 and 3
# with GPT-2, 2 and 3 with Llama) and with tensor parallelism (both families, --tp 2), gives
# the single rank's loss at each of 20 steps within 1e-5 relative and its final weights within
# 2e-5 (with --tp: within 1e-6 of plain 1F1B's at the same layout, tensor parallelism's rounding
# being larger),
# for a GPT-2 model (tied embedding: chunk 0 of the first stage and chunk 1 of the last) and a
# Llama model (untied lm_head); with evaluation through the chunks, each validation loss
# within 1e-5 of a one-rank run's. A checkpoint saved interleaved resumes at --pp 1 and at plain
# 1F1B. Start-up names each stage's chunks; shapes that do not fit are refused.
source "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null || ! command -v python3 >/dev/null; then
  echo "test_pp_interleaved: skipped (no mpirun or python3)"
  exit 77
fi
LMF_TESTS=$(cd "$(dirname "$0")" && pwd)
. "$LMF_TESTS/lib/matches_single.sh"
matches_setup 4

il=(--pp 2 --schedule interleaved --virtual-stages 2)
ev=(--val-data "$WORK/data/data/val.bin" --eval-every 5 --eval-batches 3)
# family np batch also extra (also: - or eval: the one-rank reference of the same --batch adds ev[])
while read -r fam np batch also extra; do
  [ -d "$WORK/$fam-ref" ] || "$LMF" train --config "$WORK/$fam.json" "${common[@]}" --batch 12 \
    --out "$WORK/$fam-ref" || fail "$fam: one rank"
  more=()
  case "$also" in *eval*) more+=("${ev[@]}") ;; esac
  eref="$WORK/$fam-ref-$batch-$also"
  if [ "$also" != - ] && [ ! -d "$eref" ]; then
    "$LMF" train --config "$WORK/$fam.json" "${common[@]}" "${more[@]}" --batch "$batch" \
      --out "$eref" || fail "$fam: one rank, --batch $batch, $also"
  fi
  name="$fam np=$np interleaved V=2 $extra"
  run="$WORK/$fam-$np-${extra// /}"
  # shellcheck disable=SC2086
  mpi "$np" train --config "$WORK/$fam.json" "${common[@]}" "${more[@]}" "${il[@]}" \
    --batch "$batch" $extra --out "$run" >"$WORK/out.txt" 2>&1 || { fail "$name: $(tail -3 "$WORK/out.txt")"; continue; }
  case "$extra" in
    *--tp*) # tensor parallelism's own rounding moves this model's weights up to 5.6e-5 from
      # one rank's in 20 steps (as much with plain 1F1B, 5.2e-5 with --tp 2 alone): the losses
      # against one rank's, the weights against the 1F1B run of the same layout
      series_close "$name" losses loss "$WORK/$fam-ref" "$run" 20 1e-5
      # shellcheck disable=SC2086
      mpi "$np" train --config "$WORK/$fam.json" "${common[@]}" --pp 2 --schedule 1f1b \
        --batch "$batch" $extra --out "$run-1f1b" >"$WORK/out.txt" 2>&1 || fail "$name: 1F1B: $(tail -3 "$WORK/out.txt")"
      d=$(python3 "$LMF_TESTS/lib/st_diff.py" "$run-1f1b/model.safetensors" "$run/model.safetensors" 2>&1)
      awk -v d="${d%% *}" 'BEGIN { exit !(d + 0 <= 1e-6) }' 2>/dev/null \
        && pass "$name: final weights within 1e-6 of 1F1B's at the same layout ($d)" \
        || fail "$name: final weights against 1F1B's: $d" ;;
    *) same "$name" "$WORK/$fam-ref" "$run" ;;
  esac
  case "$also" in *eval*) same_val_losses "$name" "$eref" "$run" 4 ;; esac
done <<'RUNS'
gpt2 2 3 - --zero 0
llama 2 3 - --zero 0
gpt2 2 2 - --zero 1
gpt2 4 3 eval --zero 1
llama 4 3 - --zero 2
gpt2 4 3 - --zero 3
llama 4 3 eval --zero 3
gpt2 4 3 - --tp 2
llama 4 3 - --tp 2
RUNS

# start-up names each stage's chunks
loud=()
for a in "${common[@]}"; do [ "$a" = --quiet ] || loud+=("$a"); done
mpi 2 train --config "$WORK/gpt2.json" "${loud[@]}" --steps 2 "${il[@]}" --batch 3 \
  --out "$WORK/show" >"$WORK/show.txt" 2>&1 || fail "start-up line: $(tail -3 "$WORK/show.txt")"
grep -q "schedule interleaved with 2 model chunks per stage: stage 0: ranks 0-0, layers 0-0 and 2-2 and the embeddings; stage 1: ranks 1-1, layers 1-1 and 3-3, the final norm and the classifier" "$WORK/show.txt" \
  && pass "start-up prints each stage's chunks" || fail "no chunk layout: $(grep layout "$WORK/show.txt")"

# checkpoints hold whole tensors: an interleaved run resumes at --pp 1 and at plain 1F1B
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --save-every 10 \
  --out "$WORK/ck-ref" || fail "checkpointed reference"
for to in 1 1f1b; do
  mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 "${il[@]}" --save-every 10 \
    --stop-after 10 --out "$WORK/ck-$to" || fail "interleaved to step 10"
  if [ "$to" = 1 ]; then
    "$LMF" train --resume "$WORK/ck-$to" --quiet --sample-tokens 0 || fail "resume at --pp 1"
  else
    mpi 2 train --resume "$WORK/ck-$to" --pp 2 --schedule 1f1b --batch 3 --quiet \
      --sample-tokens 0 || fail "resume at 1F1B"
  fi
  losses_follow "$WORK/ck-ref/metrics.jsonl" "$WORK/ck-$to/metrics.jsonl" 20 0 \
    && pass "interleaved checkpoint resumed at $to follows the one-rank run" \
    || fail "interleaved -> $to: $(losses "$WORK/ck-$to/metrics.jsonl" | tail -3 | tr '\n' ' ')"
done

# shapes that do not fit: a non-zero exit and the message
refused "--virtual-stages without interleaved" "give --schedule interleaved with it" \
  mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --pp 2 --virtual-stages 2 --out "$WORK/bad1"
refused "more virtual stages than layers" "each needs at least one layer" \
  mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --pp 2 --schedule interleaved --virtual-stages 3 --out "$WORK/bad2"
refused "--stage-layers per stage, not per virtual stage" "needs 4, one per virtual stage" \
  mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 "${il[@]}" --stage-layers 2,2 --out "$WORK/bad3"
refused "micro-batches not a multiple of the stages" "multiple" \
  mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 4 "${il[@]}" --out "$WORK/bad4"

lmf_sanitizer_verdict
if [ "$FAILS" -ne 0 ] || [ "$lmf_fail_count" -ne 0 ]; then
  echo "test_pp_interleaved: $FAILS check(s) failed"; exit 1
fi
echo "test_pp_interleaved: ok ($PASSES checks)"
