#!/usr/bin/env bash
# Generation speed: ONNX Runtime (npm onnxruntime-node, CPU) on lmforge's exported key/value-cache
# graph beside `lmforge sample` on the same model and prompt, greedy, one run each.
#   [THREADS=N] bench/onnx_vs_sample.sh [MODEL] [TOKENS]
# MODEL: any model lmforge loads (default: a GPT-2 124M-shaped model made with lmforge train
# --steps 0, prompted with ids); TOKENS: tokens to generate (default 100). Needs build/lmforge, node and npm; installs
# onnxruntime-node into build/onnxruntime-node when missing. Both report tokens/s of the
# one-token steps after the prompt: ONNX Runtime with its own clock around its loop, lmforge from
# the wall time of `sample --tokens N` minus that of `--tokens 1` (same load and prompt). Both
# use THREADS threads (default: the cores; OMP_NUM_THREADS for lmforge, intraOpNumThreads for
# ONNX Runtime).
set -euo pipefail
CORES=$(nproc --all)
export OMP_NUM_THREADS="${THREADS:-$CORES}" ORT_THREADS="${THREADS:-$CORES}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LMF="$ROOT/build/lmforge"
N="${2:-100}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lmf-onnx-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ORT_DIR="$ROOT/build/onnxruntime-node"
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ]; then
  npm install --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0 >&2
fi
export ORT_MODULE="$ORT_DIR/node_modules/onnxruntime-node"

MODEL="${1:-}"
if [ -z "$MODEL" ]; then
  MODEL="$WORK/gpt2"
  "$LMF" train --model gpt2 --vocab-size 50257 --steps 0 --eval-every 0 --sample-tokens 0 \
    --out "$MODEL" --quiet >&2
  rm -rf "$MODEL/tokenizer"  # its small vocabulary does not cover the model's 50257 ids: prompt with ids
fi
"$LMF" convert "$MODEL" --to onnx --kv-cache --out "$WORK/onnx" --quiet
TEXT="The meaning of life is"
TOK="$WORK/onnx"
if [ -s "$TOK/tokenizer.json" ] || [ -s "$TOK/encoder.json" ]; then
  PROMPT="$TEXT"                                     # sample encodes it; ONNX Runtime gets its ids
  IDS=$(printf '%s' "$TEXT" | "$LMF" tokenizer encode --tokenizer "$TOK")
else
  PROMPT="464 3290 286 1204 318"; IDS="$PROMPT"       # a model without a tokenizer takes ids
fi
now() { date +%s.%N; }

t0=$(now); "$LMF" sample --model "$MODEL" --prompt "$PROMPT" --tokens 1 --temperature 0 >/dev/null
t1=$(now); lmf_out=$("$LMF" sample --model "$MODEL" --prompt "$PROMPT" --tokens "$N" --temperature 0 2>/dev/null)
t2=$(now)
ort_out=$(node "$ROOT/tests/onnx/ort_run.js" generate "$WORK/onnx" "$N" $IDS 2>"$WORK/ort.err")
[ "$PROMPT" = "$IDS" ] || ort_out=$(echo "$ort_out" | "$LMF" tokenizer decode --tokenizer "$TOK")
ort_line=$(cat "$WORK/ort.err")
lmf_rate=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$N" 'BEGIN { printf "%.1f", (n - 1) / ((c - b) - (b - a)) }')
echo "model: $MODEL, prompt of $(echo $IDS | wc -w) ids, $N tokens greedy, $OMP_NUM_THREADS threads each ($CORES cores, load $(cut -d" " -f1 /proc/loadavg))"
echo "lmforge sample:        $lmf_rate tokens/s"
echo "onnxruntime-node:      $(echo "$ort_line" | sed 's/.*, \([0-9.]*\) tokens\/s/\1/') tokens/s  ($ort_line)"
[ "$(echo $lmf_out)" = "$(echo $ort_out)" ] && echo "tokens: identical" || echo "tokens: DIFFER"
