#!/usr/bin/env bash
# A run that cannot fit in the memory the process can have is refused before anything big is
# allocated, with the estimate, the limit that binds and what would make it fit: a 5.0B
# parameter config (n_layer 100000) against the machine's memory, and a small model whose
# activations exceed an address-space limit (ulimit -v) against that limit.
. "$(dirname "$0")/lib/common.sh"
for i in $(seq 1 3000); do echo "line $i of some text to make tokens from, with words"; done >"$WORK/a.txt"
"$LMF" data prepare --bytes --val-fraction 0 --input "$WORK/a.txt" --out "$WORK/tok" >/dev/null 2>&1 || fail "data prepare"
cat >"$WORK/huge.json" <<'JSON'
{"model_type": "gpt2", "vocab_size": 320, "n_positions": 64, "n_embd": 64, "n_layer": 100000,
 "n_head": 2, "layer_norm_epsilon": 1e-5}
JSON
t0=$(date +%s)
expect_error "n_layer 100000 refused" 1 \
  "needs about [0-9.]+ GB per rank \(5\.00B parameters: weights 20\.0 GB, gradients 20\.0 GB, AdamW moments 40\.0 GB, .*\) but this process can have [0-9.]+ [GM]B \(.*\); what would fit: " -- \
  timeout 60 "$LMF" train --config "$WORK/huge.json" --data "$WORK/tok/train.bin" --seq 32 \
  --steps 1 --out "$WORK/huge"
[ $(( $(date +%s) - t0 )) -lt 20 ] && pass "refused at once" || fail "took $(( $(date +%s) - t0 )) s"

# an address-space limit: not under AddressSanitizer, which reserves terabytes of it
if ldd "$LMF" 2>/dev/null | grep -q libasan; then
  echo "ulimit -v case skipped under AddressSanitizer"
else
  expect_error "activations over ulimit -v refused" 1 \
    "needs about [0-9]+ MB per rank .*activations [0-9]+ MB.* but this process can have [0-9]+ MB \(the address-space limit \(RLIMIT_AS, ulimit -v\).*what would fit: (--recompute full, )?--batch [0-9]+" -- \
    bash -c 'ulimit -v 400000; exec "$@"' _ "$LMF" train --model mini --vocab-size 320 --batch 64 \
    --seq 128 --data "$WORK/tok/train.bin" --steps 1 --out "$WORK/small"
fi
# the same small run without the limit trains (the check refuses only what does not fit)
"$LMF" train --model tiny --vocab-size 320 --batch 2 --seq 32 --steps 1 --sample-tokens 0 \
  --eval-every 0 --quiet --data "$WORK/tok/train.bin" --out "$WORK/ok" && pass "a small run trains" ||
  fail "a small run was refused"
finish
