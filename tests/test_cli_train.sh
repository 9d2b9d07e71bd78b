#!/usr/bin/env bash
# End-to-end training through the CLI: learning, determinism, exact resume, run directory.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=2
make_corpus "$WORK/corpus"
common=(--model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 60 --batch 8 --seq 32
        --eval-every 30 --eval-batches 4 --lr 3e-3 --warmup 5 --seed 7 --sample-tokens 0 --quiet)

"$LMF" train "${common[@]}" --out "$WORK/run1" || fail "train run1"
"$LMF" train "${common[@]}" --out "$WORK/run2" || fail "train run2"

# learning: byte-level loss starts near ln(257) = 5.55; this corpus is very repetitive, and 60
# steps of the tiny model bring the validation loss under 2.5 nats (measured: 2.12)
last_val=$(val_losses "$WORK/run1/metrics.jsonl" | tail -1)
first_loss=$(losses "$WORK/run1/metrics.jsonl" | head -1)
if awk -v v="$last_val" -v f="$first_loss" 'BEGIN { exit !(v < 2.5 && f > 5.0) }'; then
  pass "validation loss fell from $first_loss to $last_val"
else
  fail "validation loss $last_val (first training loss $first_loss): expected < 2.5 from > 5"
fi

# determinism: same seed, same threads => bit-identical losses
if [ -n "$(losses "$WORK/run1/metrics.jsonl")" ] && \
   diff <(losses "$WORK/run1/metrics.jsonl") <(losses "$WORK/run2/metrics.jsonl") >/dev/null; then
  pass "same seed gives identical losses"
else
  fail "losses differ between two runs with the same seed"
fi

# exact resume: stop after 25 steps, resume, compare every later loss with run1
"$LMF" train "${common[@]}" --out "$WORK/run3" --stop-after 25 2>/dev/null || fail "train run3 part 1"
[ "$(losses "$WORK/run3/metrics.jsonl" | wc -l)" -eq 25 ] && pass "stopped after 25 steps" || fail "run3 did not stop at 25"
"$LMF" train --resume "$WORK/run3" --quiet --sample-tokens 0 || fail "resume run3"
if diff <(losses "$WORK/run1/metrics.jsonl") <(losses "$WORK/run3/metrics.jsonl") >/dev/null && \
   diff <(val_losses "$WORK/run1/metrics.jsonl") <(val_losses "$WORK/run3/metrics.jsonl") >/dev/null; then
  pass "resumed run matches the uninterrupted one bit for bit"
else
  fail "resumed losses differ: $(diff <(losses "$WORK/run1/metrics.jsonl") <(losses "$WORK/run3/metrics.jsonl") | head -4)"
fi

# activation recomputation changes memory, not results
"$LMF" train "${common[@]}" --out "$WORK/run4" --recompute full || fail "train run4 (--recompute full)"
"$LMF" train "${common[@]}" --out "$WORK/run5" --recompute selective || fail "train run5 (--recompute selective)"
if diff <(losses "$WORK/run1/metrics.jsonl") <(losses "$WORK/run4/metrics.jsonl") >/dev/null && \
   diff <(losses "$WORK/run1/metrics.jsonl") <(losses "$WORK/run5/metrics.jsonl") >/dev/null; then
  pass "--recompute full and selective give identical losses"
else
  fail "--recompute changed the losses"
fi

# the run directory
for f in config.json model.safetensors metrics.jsonl loss.svg checkpoints/latest data/train.bin data/val.bin; do
  [ -s "$WORK/run1/$f" ] && pass "run directory has $f" || fail "run directory lacks $f"
done
grep -q '"n_layer": *2' "$WORK/run1/config.json" && grep -q '"vocab_size": *257' "$WORK/run1/config.json" \
  && pass "config.json has GPT2Config keys" || fail "config.json keys: $(cat "$WORK/run1/config.json")"
grep -q '"grad_norm"' "$WORK/run1/metrics.jsonl" && grep -q '"mfu"' "$WORK/run1/metrics.jsonl" \
  && grep -q '"tokens_per_s"' "$WORK/run1/metrics.jsonl" && pass "metrics have the step fields" \
  || fail "metrics.jsonl lacks step fields"
head -c 200 "$WORK/run1/loss.svg" | grep -q "<svg" && pass "loss.svg is an SVG" || fail "loss.svg"
"$LMF" plot "$WORK/run1" --out "$WORK/p.svg" >/dev/null && grep -q "polyline" "$WORK/p.svg" \
  && pass "lmforge plot" || fail "lmforge plot"
"$LMF" plot "$WORK/run1" --chart lr >/dev/null && grep -q "learning rate" "$WORK/run1/lr.svg" \
  && pass "lmforge plot --chart lr writes RUN_DIR/lr.svg" || fail "plot --chart lr"
expect_error "plot: an unknown chart" 2 "--chart speed is not a chart: use loss, lr" -- \
  "$LMF" plot "$WORK/run1" --chart speed

# eval and sample on the result
out=$("$LMF" eval --model "$WORK/run1" --data "$WORK/run1/data/val.bin" --batch 4 --seq 32 --batches 4 --json) \
  && echo "$out" | grep -q '"loss"' && pass "eval --json: $out" || fail "eval: $out"
out=$("$LMF" sample --model "$WORK/run1" --tokens 20 --seed 3) && [ -n "$out" ] \
  && pass "sample printed text" || fail "sample"
a=$("$LMF" sample --model "$WORK/run1" --tokens 20 --seed 3); b=$("$LMF" sample --model "$WORK/run1" --tokens 20 --seed 3)
[ "$a" = "$b" ] && pass "sampling is deterministic for a seed" || fail "sampling differs for one seed"

finish
