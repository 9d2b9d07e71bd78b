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
here=$(cd "$(dirname "$0")" && pwd)
mpi() { local np="$1"; shift; timeout 600 mpirun --allow-run-as-root --oversubscribe -np "$np" \
          -x OMP_NUM_THREADS=1 "$LMF" "$@" </dev/null; }
export OMP_NUM_THREADS=1
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/data" || fail "prepare data"
cat >"$WORK/gpt2.json" <<'J'
{"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 48, "n_positions": 64, "vocab_size": 257}
J
cat >"$WORK/llama.json" <<'J'
{"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "hidden_size": 48, "intermediate_size": 40, "max_position_embeddings": 64, "vocab_size": 257,
 "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}
J
# 12 rows of 32 tokens per step
common=(--data "$WORK/data/data/train.bin" --steps 20 --seq 32 --global-batch 384 --lr 3e-3
        --warmup 2 --seed 5 --eval-every 0 --sample-tokens 0 --quiet)

# same RUN: every loss of RUN within 1e-5 relative of REF's, and the final weights close
same() {
  local name="$1" ref="$2" run="$3"
  local a b
  a=$(losses "$ref/metrics.jsonl"); b=$(losses "$run/metrics.jsonl")
  if [ "$(echo "$b" | wc -l)" -eq 20 ] && paste <(echo "$a") <(echo "$b") |
     awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * ($1 < 0 ? -$1 : $1)) exit 1 }'; then
    pass "$name: 20 losses within 1e-5 of one rank's"
  else
    fail "$name: losses $(paste -d' ' <(echo "$a") <(echo "$b") | head -20 | tr '\n' ';')"
  fi
  local d
  d=$(python3 "$here/lib/st_diff.py" "$ref/model.safetensors" "$run/model.safetensors" 2>&1)
  if awk -v d="${d%% *}" 'BEGIN { exit !(d + 0 <= 2e-5) }' 2>/dev/null; then
    pass "$name: final weights within 2e-5 (largest difference $d)"
  else
    fail "$name: final weights: $d"
  fi
}

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
refused() {
  local name="$1" pat="$2"; shift 2
  local rc=0
  "$@" >"$WORK/err.txt" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] && grep -q -e "$pat" "$WORK/err.txt"; then pass "$name: refused"
  else fail "$name: exit $rc: $(head -c 400 "$WORK/err.txt")"; fi
}
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
