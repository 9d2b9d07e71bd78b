#!/usr/bin/env bash
# Pipeline stages: their default split, their memory at start-up, ZeRO-3, document masking, and
# a killed pipeline run resumed bit for bit.
# Pipeline parallelism with ZeRO-3 over the data-parallel replicas of each stage, and with
# document masking (every stage reads the micro-batch's token ids for the documents' starts):
# with the same seed, data and global batch, --pp 2 gives the single rank's loss at each of 20
# steps within 1e-5 relative and its final weights within 2e-5, for GPT-2 (tied embedding on
# the first and last stage) and Llama; the masked runs' losses differ from unmasked ones.
# Start-up prints each stage's memory. By default the layers are split so that the last
# stage's classifier counts for its FLOPs: a large vocabulary moves layers to the first stage.
source "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null || ! command -v python3 >/dev/null; then
  echo "test_pp_stages: skipped (no mpirun or python3)"
  exit 77
fi
LMF_TESTS=$(cd "$(dirname "$0")" && pwd)
. "$LMF_TESTS/lib/matches_single.sh"
matches_setup 3

# family np batch "flags of both runs" "flags of the pipeline run"
while IFS='|' read -r fam np batch both extra; do
  ref="$WORK/$fam-ref-${both// /}"
  # shellcheck disable=SC2086
  [ -d "$ref" ] || "$LMF" train --config "$WORK/$fam.json" "${common[@]}" --batch 12 $both \
    --out "$ref" || fail "$fam $both: one rank"
  name="$fam np=$np --pp 2 $both $extra"
  run="$WORK/$fam-$np-${both// /}-${extra// /}"
  # shellcheck disable=SC2086
  mpi "$np" train --config "$WORK/$fam.json" "${common[@]}" --pp 2 --batch "$batch" $both \
    $extra --out "$run" >"$WORK/out.txt" 2>&1 || { fail "$name: $(tail -3 "$WORK/out.txt")"; continue; }
  same "$name" "$ref" "$run"
done <<'RUNS'
gpt2|4|3||--schedule 1f1b --zero 3
llama|4|2||--schedule gpipe --zero 3
gpt2|2|3|--doc-mask --eot-id 256|--schedule 1f1b
llama|4|3|--doc-mask --eot-id 256|--schedule 1f1b --zero 3
RUNS

# evaluation through the stages masks documents too: --pp 2 against one rank at the same
# --batch (validation batches are --batch rows), 4 evaluations
ev=(--val-data "$WORK/data/data/val.bin" --eval-every 5 --eval-batches 3 --doc-mask --eot-id 256)
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 "${ev[@]}" \
  --out "$WORK/ev-ref" || fail "masked evaluation: one rank"
mpi 2 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --pp 2 "${ev[@]}" \
  --out "$WORK/ev-pp" >"$WORK/out.txt" 2>&1 || fail "masked evaluation --pp 2: $(tail -3 "$WORK/out.txt")"
same_val_losses "gpt2 --pp 2 --doc-mask evaluation" "$WORK/ev-ref" "$WORK/ev-pp" 4

# a killed pipeline run (--pp 2 x dp 2, ZeRO-1) resumed by --resume alone, which keeps the
# checkpoint's layout on the same 4 ranks, gives the uninterrupted run's losses bit for bit:
# mpirun and its ranks get SIGKILL once a checkpoint is complete and later steps have run (80
# steps, so that the kill lands long before the end: a step of this model takes a few
# milliseconds; before the layout was kept, such a resume ran data-parallel and drifted by
# 1e-6 within 10 steps)
ksteps=80
mpi 4 train --config "$WORK/gpt2.json" "${common[@]}" --steps $ksteps --batch 3 --pp 2 --zero 1 \
  --save-every 5 --out "$WORK/k-ref" >/dev/null 2>&1 || fail "uninterrupted reference"
mpi 4 train --config "$WORK/gpt2.json" "${common[@]}" --steps $ksteps --batch 3 --pp 2 --zero 1 \
  --save-every 5 --log-every 1 --out "$WORK/k" >"$WORK/k.out" 2>&1 &
kpid=$!
for _ in $(seq 1 600); do
  [ -f "$WORK/k/checkpoints/step_00000010/index.json" ] && grep -q '"step":1[1-9]' "$WORK/k/metrics.jsonl" 2>/dev/null && break
  sleep 0.05
done
pkill -9 -P "$(pgrep -P "$kpid" -x mpirun || echo "$kpid")" 2>/dev/null
kill -9 "$kpid" 2>/dev/null
pkill -9 -f "lmforge train --config $WORK/gpt2.json" 2>/dev/null
wait "$kpid" 2>/dev/null
done_steps=$(losses "$WORK/k/metrics.jsonl" | wc -l)
mpi 4 train --resume "$WORK/k" --quiet --sample-tokens 0 >"$WORK/k2.out" 2>&1 || fail "resume: $(grep -v '^step' "$WORK/k2.out" | tail -15)"
if [ "$done_steps" -lt "$ksteps" ] && [ "$(losses "$WORK/k/metrics.jsonl" | wc -l)" -eq "$ksteps" ] && diff <(losses "$WORK/k-ref/metrics.jsonl") <(losses "$WORK/k/metrics.jsonl") >/dev/null; then
  pass "a killed --pp 2 x dp 2 run (after $done_steps steps) resumed bit for bit"
else
  fail "killed after $done_steps steps; losses $(losses "$WORK/k/metrics.jsonl" | tr '\n' ' ') against $(losses "$WORK/k-ref/metrics.jsonl" | tr '\n' ' ')"
fi

# the mask is on: the masked one-rank run's losses are not the plain one's
a=$(losses "$WORK/gpt2-ref-/metrics.jsonl" | head -1); b=$(losses "$WORK/gpt2-ref---doc-mask--eot-id256/metrics.jsonl" | head -1)
[ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ] && pass "--doc-mask changes the first loss ($a -> $b)" \
  || fail "--doc-mask did not change the first loss ($a, $b)"

# a ZeRO-3 pipeline checkpoint resumes at one rank and follows the one-rank run
"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --save-every 10 \
  --out "$WORK/ck-ref" || fail "checkpointed reference"
mpi 4 train --config "$WORK/gpt2.json" "${common[@]}" --batch 3 --pp 2 --zero 3 --save-every 10 \
  --stop-after 10 --out "$WORK/ck" || fail "--pp 2 --zero 3 to step 10"
"$LMF" train --resume "$WORK/ck" --quiet --sample-tokens 0 || fail "resume at one rank"
losses_follow "$WORK/ck-ref/metrics.jsonl" "$WORK/ck/metrics.jsonl" 20 0 \
  && pass "--pp 2 --zero 3 checkpoint resumed at one rank follows the one-rank run" \
  || fail "--pp 2 --zero 3 -> 1: $(losses "$WORK/ck/metrics.jsonl" | tail -3 | tr '\n' ' ')"

# start-up prints each stage's memory: stage 0 holds two layers and the embeddings and, under
# 1F1B, two micro-batches' activations; stage 1 one layer, the classifier and one slot; ZeRO-3
# over two replicas halves each stage's weights
loud=()
for a in "${common[@]}"; do [ "$a" = --quiet ] || loud+=("$a"); done
# mem FILE STAGE FIELD: the stage's FIELD in MB from the start-up line
mem() { grep -o "stage $2: weights[^;]*" "$1" | head -1 | grep -o "$3 [0-9.]*" | awk '{ print $2 }'; }
for z in 0 3; do
  np=$((z == 3 ? 4 : 2))
  mpi "$np" train --config "$WORK/gpt2.json" "${loud[@]}" --steps 1 --pp 2 --batch 3 --zero $z \
    --schedule 1f1b --out "$WORK/show$z" >"$WORK/show$z.txt" 2>&1 || fail "start-up: $(tail -3 "$WORK/show$z.txt")"
done
line=$(grep "memory per rank, by pipeline stage" "$WORK/show0.txt")
echo "$line"
w0=$(mem "$WORK/show0.txt" 0 weights); w1=$(mem "$WORK/show0.txt" 1 weights)
a0=$(mem "$WORK/show0.txt" 0 activations); a1=$(mem "$WORK/show0.txt" 1 activations)
z0=$(mem "$WORK/show3.txt" 0 weights); z1=$(mem "$WORK/show3.txt" 1 weights)
awk -v w0="$w0" -v w1="$w1" -v a0="$a0" -v a1="$a1" 'BEGIN { exit !(w0 > w1 && w1 > 0 && a0 > 1.5 * a1 && a1 > 0) }' \
  && pass "start-up prints each stage's memory (weights $w0 / $w1 MB, activations $a0 / $a1 MB)" \
  || fail "stage memory: '$line'"
awk -v w0="$w0" -v w1="$w1" -v z0="$z0" -v z1="$z1" 'BEGIN { d0 = z0 - w0 / 2; d1 = z1 - w1 / 2
  exit !(d0 < 0.011 && d0 > -0.011 && d1 < 0.011 && d1 > -0.011) }' \
  && pass "ZeRO-3 over two replicas halves each stage's weights ($z0 / $z1 MB)" \
  || fail "ZeRO-3 stage weights $z0 / $z1 MB against $w0 / $w1 MB at ZeRO-0"

# the default split weighs the classifier: at vocabulary 4096 and width 48 it costs several
# layers (3 x 2 x 48 x 4096 FLOPs per token against about 3 x 2 x 12 x 48^2 for a layer), so
# stage 0 takes three of four layers; at vocabulary 257 (less than a layer) the split is even
# split_is NAME VOCAB STAGE0 STAGE1 WHAT: a 4-layer GPT-2 of vocabulary VOCAB at --pp 2 starts
# with stage 0 holding layers STAGE0 and stage 1 layers STAGE1
split_is() {
  sed "s/\"n_layer\": 3/\"n_layer\": 4/; s/\"vocab_size\": 257/\"vocab_size\": $2/" "$WORK/gpt2.json" >"$WORK/$1.json"
  mpi 2 train --config "$WORK/$1.json" "${loud[@]}" --steps 1 --pp 2 --batch 3 \
    --out "$WORK/$1" >"$WORK/$1.txt" 2>&1 || fail "vocabulary $2: $(tail -3 "$WORK/$1.txt")"
  grep -q "stage 0: ranks 0-0, layers $3 and the embeddings; stage 1: ranks 1-1, layers $4," "$WORK/$1.txt" \
    && pass "$5" || fail "split at vocabulary $2: $(grep '^layout' "$WORK/$1.txt")"
}
split_is wide 4096 0-2 3-3 "a large classifier moves layers to the first stage (3 and 1 of 4)"
split_is narrow 257 0-1 2-3 "a small classifier leaves the split even (2 and 2 of 4)"

lmf_sanitizer_verdict
if [ "$FAILS" -ne 0 ] || [ "$lmf_fail_count" -ne 0 ]; then
  echo "test_pp_stages: $FAILS check(s) failed"; exit 1
fi
echo "test_pp_stages: ok ($PASSES checks)"
