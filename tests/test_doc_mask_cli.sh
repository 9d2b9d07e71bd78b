#!/usr/bin/env bash
# --doc-mask through the CLI: training and evaluation with document masking differ from plain
# causal attention on packed data, resume bit for bit with the mask kept, and an unknown
# end-of-text id is refused with one line.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=2
make_corpus "$WORK/corpus"
common=(--model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 8 --batch 4 --seq 32
        --eval-every 4 --eval-batches 2 --seed 3 --sample-tokens 0 --quiet)

"$LMF" train "${common[@]}" --out "$WORK/plain" || fail "train without --doc-mask"
"$LMF" train "${common[@]}" --out "$WORK/masked" --doc-mask || fail "train --doc-mask"
grep -q '"doc_mask_eot": *256' "$WORK/masked/checkpoints/"*/trainer_state.json \
  && pass "the checkpoint records the end-of-text id of raw bytes (256)" \
  || fail "no doc_mask_eot 256 in the checkpoint's options"
# fortunes are short: every batch of 4 x 32 bytes holds end-of-text tokens, so the first loss
# (same weights, same batch) already differs
p=$(losses "$WORK/plain/metrics.jsonl" | head -1); m=$(losses "$WORK/masked/metrics.jsonl" | head -1)
if [ -n "$p" ] && [ -n "$m" ] && [ "$p" != "$m" ]; then
  pass "--doc-mask changes the first loss ($p -> $m)"
else
  fail "--doc-mask did not change the first loss ($p, $m)"
fi

# resume keeps the mask: bit-identical losses
"$LMF" train "${common[@]}" --out "$WORK/resumed" --doc-mask --stop-after 4 2>/dev/null || fail "train --stop-after 4"
"$LMF" train --resume "$WORK/resumed" --quiet --sample-tokens 0 || fail "resume"
if diff <(losses "$WORK/masked/metrics.jsonl") <(losses "$WORK/resumed/metrics.jsonl") >/dev/null; then
  pass "a resumed --doc-mask run matches the uninterrupted one"
else
  fail "resumed --doc-mask losses differ"
fi

# evaluation: masked and plain differ on packed data; the model's tokenizer names the id
val="$WORK/masked/data/val.bin"
e0=$("$LMF" eval --model "$WORK/masked" --data "$val" --seq 32 --batches 2 --json) || fail "eval"
e1=$("$LMF" eval --model "$WORK/masked" --data "$val" --seq 32 --batches 2 --json --doc-mask --eot-id 256) || fail "eval --doc-mask"
e2=$("$LMF" eval --model "$WORK/masked" --data "$val" --seq 32 --batches 2 --json --doc-mask) || fail "eval --doc-mask, the id from the tokenizer"
[ "$e0" != "$e1" ] && pass "eval --doc-mask differs from plain eval" || fail "eval --doc-mask: $e1 equals $e0"
[ "$e1" = "$e2" ] && pass "eval --doc-mask takes the id 256 from the model's tokenizer" || fail "eval --doc-mask: $e2, with --eot-id 256: $e1"

expect_error "--eot-id without --doc-mask" 2 "give --doc-mask too" -- \
  "$LMF" train "${common[@]}" --out "$WORK/e1" --eot-id 256
expect_error "--doc-mask on token files without a tokenizer" 2 "give --eot-id N" -- \
  "$LMF" train "${common[@]}" --out "$WORK/e2" --data "$WORK/masked/data/train.bin" --doc-mask
expect_error "--eot-id outside the vocabulary" 1 "outside the model's vocabulary" -- \
  "$LMF" train "${common[@]}" --out "$WORK/e3" --data "$WORK/masked/data/train.bin" --vocab-size 257 --doc-mask --eot-id 300
mkdir "$WORK/bare" && cp "$WORK/masked/model.safetensors" "$WORK/masked/config.json" "$WORK/bare/"
expect_error "eval --doc-mask without an id or a tokenizer" 2 "give --eot-id N" -- \
  "$LMF" eval --model "$WORK/bare" --data "$val" --doc-mask
finish
