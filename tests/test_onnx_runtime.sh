#!/usr/bin/env bash
# ONNX export run in ONNX Runtime (the npm package onnxruntime-node, CPU): logits of the plain
# and the key/value-cache graphs match lmforge's forward within 1e-4 (fp32) at several batch
# sizes and lengths on an odd-width model, fp16 weights within a stated bound, external data
# loads, greedy generation with the cache graph gives lmforge sample's tokens, tokenizer files
# beside the graph, refusals with reasons; the same for Llama models with grouped-query heads.
# Skipped (77) without node/npm or the npm registry.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=1
HERE="$(cd "$(dirname "$0")" && pwd)"
BUILD="$(cd "${LMF_BUILD_DIR:-$(dirname "$LMF")}" && pwd)"
HELPER="$BUILD/test_onnx_export"
ORT_VERSION=1.30.0

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "skip: node and npm are needed to run ONNX Runtime (./setup.sh test installs them)"; exit 77
fi
ORT_DIR="$BUILD/onnxruntime-node"
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ]; then
  mkdir -p "$ORT_DIR"
  # --ignore-scripts: the package carries its CPU binaries; its install script would fetch GPU
  # builds from elsewhere
  if ! timeout 300 npm install --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund \
       "onnxruntime-node@$ORT_VERSION" >"$WORK/npm.log" 2>&1; then
    echo "skip: npm install onnxruntime-node failed (no registry?): $(tail -n 3 "$WORK/npm.log")"; exit 77
  fi
fi
export ORT_MODULE="$ORT_DIR/node_modules/onnxruntime-node"
if ! node -e 'require(process.env.ORT_MODULE)' 2>"$WORK/node.err"; then
  echo "skip: onnxruntime-node does not load on this machine: $(head -c 300 "$WORK/node.err")"; exit 77
fi
[ -x "$HELPER" ] || { fail "$HELPER missing (it is built with the tests)"; finish; exit 1; }
ort() { node "$HERE/onnx/ort_run.js" "$@"; }
q=(--quiet)

# ---- logits: an odd-width model (45 wide, 3 heads of 15, vocabulary 301, 3 layers) ----
"$HELPER" --write-model "$WORK/odd" || fail "write the odd-width model"
"$LMF" convert "$WORK/odd" --to onnx --out "$WORK/plain" "${q[@]}" || fail "export plain graph"
"$LMF" convert "$WORK/odd" --to onnx --kv-cache --out "$WORK/kv" "${q[@]}" || fail "export cache graph"
"$LMF" convert "$WORK/odd" --to onnx --dtype fp16 --out "$WORK/half" "${q[@]}" || fail "export fp16 graph"
"$LMF" convert "$WORK/odd" --to onnx --kv-cache --external-above 1000 --out "$WORK/ext" "${q[@]}" \
  || fail "export with external data"
[ -s "$WORK/ext/model.onnx.data" ] && [ ! -e "$WORK/kv/model.onnx.data" ] \
  && [ "$(stat -c %s "$WORK/ext/model.onnx")" -lt 100000 ] \
  && pass "weights past --external-above go to model.onnx.data" || fail "external data: $(ls -l "$WORK/ext")"
# any model lmforge loads: the same weights from an llm.c file give the same graph, byte for byte
"$LMF" convert "$WORK/odd" --to llmc --out "$WORK/odd.bin" "${q[@]}" \
  && "$LMF" convert "$WORK/odd.bin" --to onnx --out "$WORK/from_llmc" "${q[@]}" \
  && cmp -s "$WORK/plain/model.onnx" "$WORK/from_llmc/model.onnx" \
  && pass "an llm.c checkpoint exports to the same model.onnx" || fail "llm.c -> onnx differs or failed"
p=$(stat -c %s "$WORK/plain/model.onnx"); h=$(stat -c %s "$WORK/half/model.onnx")
[ $((h * 10)) -lt $((p * 6)) ] && pass "fp16 graph is about half the size ($h vs $p bytes)" || fail "fp16 size $h vs $p"

within() { awk -v d="$1" -v b="$2" 'BEGIN { exit !(d != "NaN" && d + 0 <= b + 0) }'; }
for bt in "1 1" "1 7" "3 13" "2 71" "4 32"; do
  set -- $bt
  "$HELPER" --logits "$WORK/odd" "$1" "$2" "$((7 + $1 * $2))" "$WORK/ids.bin" "$WORK/ref.bin" || fail "lmforge logits $bt"
  # the cache graphs run the first half of the positions, then the rest over the cache
  ort compare "$WORK/ids.bin" "$1" "$2" "$WORK/ref.bin" $((($2 + 1) / 2)) \
    "$WORK/plain" "$WORK/kv" "$WORK/ext" "$WORK/half" >"$WORK/cmp.txt" || fail "onnxruntime B=$1 T=$2"
  [ "$(wc -l <"$WORK/cmp.txt")" -eq 4 ] || fail "B=$1 T=$2: $(cat "$WORK/cmp.txt")"
  while read -r dir d big; do
    g=$(basename "$dir")
    bound=1e-4; [ "$g" = half ] && bound=0.05  # fp16 weights: 11-bit mantissas
    within "$d" "$bound" && pass "$g B=$1 T=$2: logits within $bound of lmforge's (max diff $d, |logit| up to $big)" \
      || fail "$g B=$1 T=$2: logits differ by $d (bound $bound, |logit| up to $big)"
  done <"$WORK/cmp.txt"
done

# a graph that really computes something else is caught: logits of other ids differ
"$HELPER" --logits "$WORK/odd" 2 9 11 "$WORK/ids.bin" "$WORK/ref.bin" && \
  "$HELPER" --logits "$WORK/odd" 2 9 12 "$WORK/ids2.bin" "$WORK/ref2.bin" && \
  ort compare "$WORK/ids2.bin" 2 9 "$WORK/ref.bin" 9 "$WORK/plain" >"$WORK/cmp.txt" || fail "mismatch control"
read -r dir d big <"$WORK/cmp.txt"
within "$d" 1e-4 && fail "logits of other ids matched ($d): the comparison cannot fail" \
  || pass "the comparison tells other logits apart (diff $d)"

# ---- greedy generation: the cache graph gives lmforge sample --temperature 0's 50 tokens ----
a=$("$LMF" sample --model "$WORK/odd" --prompt "5 17 3 200" --tokens 50 --temperature 0)
b=$(ort generate "$WORK/kv" 50 5 17 3 200 2>/dev/null)
[ "$(echo "$a" | wc -w)" -eq 54 ] && [ "$a" = "$b" ] && pass "greedy 50 tokens, odd-width model: identical ids" \
  || fail "greedy ids differ: lmforge '$a' vs onnxruntime '$b'"
b=$(ort generate "$WORK/ext" 50 5 17 3 200 2>/dev/null)
[ "$a" = "$b" ] && pass "greedy 50 tokens from the graph with external data: identical" || fail "external greedy '$b'"

# ---- the Llama family: 48 wide, 4 heads of 12 over 2 key/value heads, SwiGLU 80, vocabulary
# 301, rotary base 5000; untied and tied classifiers ----
"$HELPER" --write-model "$WORK/llama" llama && "$HELPER" --write-model "$WORK/llama_tied" llama-tied \
  || fail "write the Llama models"
"$LMF" convert "$WORK/llama" --to onnx --out "$WORK/l_plain" "${q[@]}" || fail "export Llama plain graph"
"$LMF" convert "$WORK/llama" --to onnx --kv-cache --out "$WORK/l_kv" "${q[@]}" || fail "export Llama cache graph"
"$LMF" convert "$WORK/llama" --to onnx --kv-cache --dtype fp16 --out "$WORK/l_half" "${q[@]}" \
  || fail "export Llama fp16 graph"
"$LMF" convert "$WORK/llama_tied" --to onnx --kv-cache --out "$WORK/lt_kv" "${q[@]}" || fail "export tied Llama"
for bt in "1 1" "1 9" "3 13" "2 71"; do
  set -- $bt
  "$HELPER" --logits "$WORK/llama" "$1" "$2" "$((5 + $1 * $2))" "$WORK/ids.bin" "$WORK/ref.bin" \
    || fail "lmforge Llama logits $bt"
  "$HELPER" --logits "$WORK/llama_tied" "$1" "$2" "$((5 + $1 * $2))" "$WORK/ids_t.bin" "$WORK/ref_t.bin" \
    || fail "lmforge tied Llama logits $bt"
  # the cache graphs: the first half of the positions, then the rest over the cache (rotary
  # positions starting at the cache's length)
  { ort compare "$WORK/ids.bin" "$1" "$2" "$WORK/ref.bin" $((($2 + 1) / 2)) \
      "$WORK/l_plain" "$WORK/l_kv" "$WORK/l_half" \
    && ort compare "$WORK/ids_t.bin" "$1" "$2" "$WORK/ref_t.bin" $((($2 + 1) / 2)) "$WORK/lt_kv"; } \
    >"$WORK/cmp.txt" || fail "onnxruntime Llama B=$1 T=$2"
  [ "$(wc -l <"$WORK/cmp.txt")" -eq 4 ] || fail "Llama B=$1 T=$2: $(cat "$WORK/cmp.txt")"
  while read -r dir d big; do
    g=$(basename "$dir")
    bound=1e-4; [ "$g" = l_half ] && bound=0.05
    within "$d" "$bound" && pass "Llama $g B=$1 T=$2: logits within $bound of lmforge's (max diff $d, |logit| up to $big)" \
      || fail "Llama $g B=$1 T=$2: logits differ by $d (bound $bound, |logit| up to $big)"
  done <"$WORK/cmp.txt"
done
a=$("$LMF" sample --model "$WORK/llama" --prompt "5 17 3 200" --tokens 50 --temperature 0)
b=$(ort generate "$WORK/l_kv" 50 5 17 3 200 2>/dev/null)
[ "$(echo "$a" | wc -w)" -eq 54 ] && [ "$a" = "$b" ] && pass "Llama greedy 50 tokens over the cache: identical ids" \
  || fail "Llama greedy ids differ: lmforge '$a' vs onnxruntime '$b'"
a=$("$LMF" sample --model "$WORK/llama_tied" --prompt "9 250" --tokens 50 --temperature 0)
b=$(ort generate "$WORK/lt_kv" 50 9 250 2>/dev/null)
[ "$(echo "$a" | wc -w)" -eq 52 ] && [ "$a" = "$b" ] && pass "tied Llama greedy 50 tokens: identical ids" \
  || fail "tied Llama greedy ids differ: lmforge '$a' vs onnxruntime '$b'"

# a trained model with its tokenizer: the same text
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 300 --steps 8 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --out "$WORK/run" "${q[@]}" || fail "train the source model"
"$LMF" convert "$WORK/run" --to onnx --kv-cache --out "$WORK/tiny" "${q[@]}" || fail "export the trained run"
for f in tokenizer.json encoder.json vocab.bpe config.json; do
  [ -s "$WORK/tiny/$f" ] || fail "no $f beside the exported graph"
done
pass "tokenizer files and config.json copied beside model.onnx"
ids=$(printf 'the quick brown' | "$LMF" tokenizer encode --tokenizer "$WORK/tiny")
text_ort=$(ort generate "$WORK/tiny" 50 $ids 2>/dev/null | "$LMF" tokenizer decode --tokenizer "$WORK/tiny")
text_lmf=$("$LMF" sample --model "$WORK/run" --prompt "the quick brown" --tokens 50 --temperature 0)
[ -n "$ids" ] && [ "$text_ort" = "$text_lmf" ] && pass "greedy text of the trained run: identical" \
  || fail "greedy text differs: '$text_lmf' vs '$text_ort'"

# re-exporting without external data removes the stale model.onnx.data
"$LMF" convert "$WORK/odd" --to onnx --kv-cache --out "$WORK/ext" "${q[@]}" && [ ! -e "$WORK/ext/model.onnx.data" ] \
  && pass "an inline re-export removes the old model.onnx.data" || fail "stale model.onnx.data kept"

# ---- refusals ----
"$HELPER" --write-model "$WORK/big" 1e6 || fail "write the model with a large weight"
expect_error "fp16 export of a weight beyond fp16" 1 "h.1.mlp.c_fc.weight\[7\] is 1e\+06, beyond fp16's range .*--dtype fp32" \
  -- "$LMF" convert "$WORK/big" --to onnx --dtype fp16 --out "$WORK/x"
expect_error "--dtype bf16 --to onnx" 2 "ONNX exports are fp32 or fp16" -- "$LMF" convert "$WORK/odd" --to onnx --dtype bf16 --out "$WORK/x"
expect_error "--dtype fp16 --to lmforge" 2 "lmforge model directories are fp32" -- "$LMF" convert "$WORK/odd" --to lmforge --dtype fp16 --out "$WORK/x"
expect_error "--kv-cache --to llmc" 2 "apply to --to onnx" -- "$LMF" convert "$WORK/odd" --to llmc --kv-cache --out "$WORK/x.bin"
finish
