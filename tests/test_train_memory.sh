#!/usr/bin/env bash
# A run that cannot fit in the memory the process can have is refused before anything big is
# allocated, with the estimate, the limit that binds and what would make it fit: a 5.0B
# parameter config (n_layer 100000) against the machine's memory, the same shape as --init
# weights (Hugging Face directory, llm.c file) refused before they are read, a small model
# whose activations exceed an address-space limit (ulimit -v) against that limit, and ZeRO-3's
# staging and gather buffers counted as the data-parallel engine sizes them.
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

# --init: the shape is read from the model's config.json or llm.c header and checked before
# the weights (here none at all, or 20 GB of a sparse file) are read
mkdir "$WORK/huge-hf"
cp "$WORK/huge.json" "$WORK/huge-hf/config.json"
printf 'no weights' >"$WORK/huge-hf/model.safetensors"
expect_error "--init with a Hugging Face model too big refused first" 1 \
  "needs about [0-9.]+ GB per rank \(5\.00B parameters: .* what would fit: " -- \
  timeout 60 "$LMF" train --init "$WORK/huge-hf" --data "$WORK/tok/train.bin" --seq 32 \
  --steps 1 --out "$WORK/huge-init-hf"
le32() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) \
                     $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }
{ # magic, version 3 (fp32), context 64, vocabulary 320 padded to 384, 100000 layers, 2 heads, 64 wide
  for v in 20240326 3 64 320 100000 2 64 384; do le32 "$v"; done
  head -c $((1024 - 32)) /dev/zero
} >"$WORK/huge.bin"
size=$("$LMF" train --init "$WORK/huge.bin" --data "$WORK/tok/train.bin" --steps 1 \
       --out "$WORK/probe" 2>&1 | sed -n 's/.*implies \([0-9]*\):.*/\1/p')
if [ -n "$size" ] && truncate -s "$size" "$WORK/huge.bin"; then
  t0=$(date +%s)
  expect_error "--init with an llm.c checkpoint too big refused first" 1 \
    "needs about [0-9.]+ GB per rank \(5\.00B parameters: .* what would fit: " -- \
    timeout 60 "$LMF" train --init "$WORK/huge.bin" --data "$WORK/tok/train.bin" --seq 32 \
    --steps 1 --out "$WORK/huge-init-llmc"
  [ $(( $(date +%s) - t0 )) -lt 20 ] && pass "refused without reading the file" ||
    fail "took $(( $(date +%s) - t0 )) s"
else
  fail "could not make the llm.c header's file (size '$size')"
fi

# an address-space limit: not under AddressSanitizer, which reserves terabytes of it
if ldd "$LMF" 2>/dev/null | grep -q libasan; then
  echo "ulimit -v case skipped under AddressSanitizer"
else
  expect_error "activations over ulimit -v refused" 1 \
    "needs about [0-9]+ MB per rank .*activations [0-9]+ MB.* but this process can have [0-9]+ MB \(the address-space limit \(RLIMIT_AS, ulimit -v\).*what would fit: (--recompute full, )?--batch [0-9]+" -- \
    bash -c 'ulimit -v 400000; exec "$@"' _ "$LMF" train --model mini --vocab-size 320 --batch 64 \
    --seq 128 --data "$WORK/tok/train.bin" --steps 1 --out "$WORK/small"
fi
# ZeRO-3 on one rank stages and gathers block 0 (a 100000-word embedding), so the engine's
# buffers are as large as the AdamW moments: the estimate names the bytes the engine holds (its
# start-up line), and a limit that everything but those buffers fits in is refused
cat >"$WORK/wide.json" <<'JSON'
{"model_type": "gpt2", "vocab_size": 100000, "n_positions": 64, "n_embd": 128, "n_layer": 2,
 "n_head": 2, "layer_norm_epsilon": 1e-5}
JSON
wide=(train --config "$WORK/wide.json" --data "$WORK/tok/train.bin" --seq 32 --batch 2 --zero 3
      --sample-tokens 0 --eval-every 0)
held=$("$LMF" "${wide[@]}" --steps 0 --out "$WORK/wide" 2>&1 |
       sed -n 's/^memory per rank: .*buffers \([0-9.]*\) MB$/\1/p')
[ -n "$held" ] && awk -v h="$held" 'BEGIN { exit !(h > 100) }' &&
  pass "ZeRO-3 holds $held MB of buffers" || fail "no start-up line with the buffers held: '$held'"
# "X MB" or "X GB" of the message's part NAME, in MB
part_mb() { grep -oE "$1 [0-9.]+ [MG]B" | head -1 | awk '{ print $(NF-1) * ($NF == "GB" ? 1000 : 1) }'; }
if ldd "$LMF" 2>/dev/null | grep -q libasan; then
  echo "ZeRO-3 buffers under ulimit -v skipped under AddressSanitizer"
else
  msg=$(bash -c 'ulimit -v 600000; exec "$@"' _ "$LMF" "${wide[@]}" --steps 1 --out "$WORK/w1" 2>&1)
  buf=$(echo "$msg" | part_mb "data-parallel buffers")
  [ -n "$buf" ] && awk -v a="$buf" -v b="$held" 'BEGIN { d = a - b; exit !(d < 1 && d > -1) }' &&
    pass "the estimate's buffers ($buf MB) are the engine's ($held MB)" ||
    fail "the estimate's buffers '$buf' MB are not the engine's $held MB: $msg"
  total=0
  for p in "weights" "gradients" "AdamW moments" "activations" "data-parallel buffers" "checkpoint copy"; do
    total=$(awk -v t="$total" -v x="$(echo "$msg" | part_mb "$p")" 'BEGIN { print t + x }')
  done
  room=$(echo "$msg" | part_mb "can have")
  # the limit less the room is the space in use at the check; give it the estimate less half
  # the buffers
  limit_kb=$(awk -v r="$room" -v t="$total" -v b="$buf" \
             'BEGIN { used = 600000 * 1024 / 1e6 - r; printf "%d", (used + t - b / 2) * 1e6 / 1024 }')
  echo "space in use $(awk -v r="$room" 'BEGIN { print 614.4 - r }') MB, estimate $total MB with $buf MB of buffers: ulimit -v $limit_kb"
  expect_error "a limit that only the buffers exceed refused" 1 \
    "data-parallel buffers [0-9]+ MB.* but this process can have [0-9]+ MB \(the address-space limit" -- \
    timeout 60 bash -c 'ulimit -v "$1"; shift; exec "$@"' _ "$limit_kb" "$LMF" "${wide[@]}" --steps 1 --out "$WORK/w2"
fi

# the same small run without the limit trains (the check refuses only what does not fit)
"$LMF" train --model tiny --vocab-size 320 --batch 2 --seq 32 --steps 1 --sample-tokens 0 \
  --eval-every 0 --quiet --data "$WORK/tok/train.bin" --out "$WORK/ok" && pass "a small run trains" ||
  fail "a small run was refused"
finish
