#!/usr/bin/env bash
# lmforge plan from the command line: the Narayanan et al. 2021 anchor, --search, --json,
# --explain, --calibrate, and bad input answered by one error line.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=2

# number at "key": in a JSON text (first match)
jnum() { grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: *//'; }

# --- GPT-3 175B, 300B tokens, 1,024 A100s, tp 8, pp 8, dp 16, batch 1536, full recomputation:
# Narayanan et al. 2021 estimate 8TP/(nX) with X = 140 TFLOP/s, about 34 days; within 15%.
out="$WORK/anchor.json"
if "$LMF" plan --model gpt3-175b --cluster dgx-a100-superpod --nodes 128 --tp 8 --pp 8 --dp 16 \
    --micro-batch 1 --global-batch 3145728 --tokens 300e9 --recompute full --dtype bf16 --json >"$out"; then
  days=$(jnum "$out" days)
  ok=$(awk -v d="$days" 'BEGIN {
    l = 96; h = 12288; V = 50257; s = 2048; T = 300e9; n = 1024; X = 140e12;
    P = 12 * l * h * h * (1 + 13 / (12 * h) + (V + s) / (12 * l * h));
    want = 8 * T * P / (n * X) / 86400;
    r = (d - want) / want; if (r < 0) r = -r;
    printf "%s", (want > 33 && want < 35 && r <= 0.15) ? "yes" : "no" }')
  [ "$ok" = yes ] && pass "Narayanan anchor: $days days" || fail "Narayanan anchor: planner says $days days"
  for key in parameters weights grads optimizer activations buffers total step_time_s tokens_per_s \
             model_tflops_per_device mfu days gpu_hours dp tp pp micro_batch zero; do
    grep -q "\"$key\":" "$out" || fail "--json lacks \"$key\""
  done
  grep -q '"fits": true' "$out" && grep -q '"recompute": "full"' "$out" && grep -q '"dtype": "bf16"' "$out" \
    && grep -q '"device_model": "generic"' "$out" \
    && pass "--json fields" || fail "--json fields: $(head -c 300 "$out")"
else
  fail "anchor plan failed"
fi

# --- cost appears with a price per device-hour: gpu_hours x price
"$LMF" plan --model gpt3-175b --cluster dgx-a100-superpod --nodes 128 --tp 8 --pp 8 \
  --global-batch 3145728 --tokens 300e9 --recompute full --price 2 --json >"$WORK/cost.json" || fail "priced plan"
ok=$(awk -v g="$(jnum "$WORK/cost.json" gpu_hours)" -v c="$(jnum "$WORK/cost.json" cost)" \
  'BEGIN { r = (c - 2 * g) / (2 * g); if (r < 0) r = -r; print (g > 0 && r < 1e-6) ? "yes" : "no" }')
[ "$ok" = yes ] && pass "cost = 2 x gpu_hours" || fail "cost: $(grep -E 'gpu_hours|cost' "$WORK/cost.json")"

# --- the question from the issue: GPT-3 on the 2020 Azure supercomputer, which layout?
if "$LMF" plan --model gpt3-175b --cluster azure-openai-2020 --tokens 300e9 --global-batch 3.2e6 \
    --search --top 3 >"$WORK/search.txt"; then
  n=$(grep -c '^#[0-9]' "$WORK/search.txt")
  [ "$n" -eq 3 ] && grep -q "best layout in detail" "$WORK/search.txt" && grep -q "days" "$WORK/search.txt" \
    && pass "search on the 10,000-GPU preset" || fail "search output: $(head -c 600 "$WORK/search.txt")"
else
  fail "search on the 10,000-GPU preset failed"
fi
"$LMF" plan --model gpt3-175b --cluster azure-openai-2020 --tokens 300e9 --global-batch 3.2e6 \
  --search --top 4 --json >"$WORK/search.json" || fail "search --json"
[ "$(grep -c '"micro_batches":' "$WORK/search.json")" -eq 4 ] && grep -q '"alternatives"' "$WORK/search.json" \
  && pass "search --json has the best and 3 alternatives" || fail "search --json: $(head -c 300 "$WORK/search.json")"

# --- the search ends with the command that runs its best layout: ranks = its devices, its layout
best=$(grep -m1 '^#1 ' "$WORK/search.txt")
devs=$(echo "$best" | sed 's/.* = \([0-9]*\) devices.*/\1/')
tp1=$(echo "$best" | sed 's/.* tp \([0-9]*\) .*/\1/'); pp1=$(echo "$best" | sed 's/.* pp \([0-9]*\) .*/\1/')
cmdline=$(grep '^command ' "$WORK/search.txt")
echo "$cmdline" | grep -q "mpirun -np $devs --npernode 8 lmforge train --model gpt3-175b --seq 2048 --batch [0-9]* --global-batch [0-9]* --steps [0-9]* --zero [0-3]" \
  && { [ "$tp1" = 1 ] || echo "$cmdline" | grep -q -- "--tp $tp1"; } \
  && { [ "$pp1" = 1 ] || echo "$cmdline" | grep -q -- "--pp $pp1"; } && echo "$cmdline" | grep -q -- "--dtype fp16" \
  && pass "search prints the command of its best layout" || fail "command: $cmdline (best: $best)"
grep -q '"command": "mpirun -np ' "$WORK/search.json" && pass "--json has the command" || fail "--json lacks the command"

# --- the search keeps tensor-parallel groups inside an 8-GPU server unless allowed across
tps=$(grep -o '^#[0-9]*  .* tp [0-9]*' "$WORK/search.txt" | sed 's/.* tp //')
[ -n "$tps" ] && ! echo "$tps" | awk '$1 > 8 { bad = 1 } END { exit !bad }' \
  && pass "search keeps tp inside a node ($(echo $tps))" || fail "search tp across nodes: $tps"
# (under 1F1B, whose bubble favours fewer stages; ZB-H1 keeps tp inside the server here)
"$LMF" plan --model gpt3-175b --cluster azure-openai-2020 --tokens 300e9 --global-batch 3.2e6 \
  --search --top 10 --schedule 1f1b --allow-cross-node-tp >"$WORK/search-x.txt" || fail "--allow-cross-node-tp"
grep -q '^#[0-9]*  .* tp \(12\|16\|24\|32\|48\|96\) ' "$WORK/search-x.txt" \
  && pass "--allow-cross-node-tp lets tp span servers" || fail "--allow-cross-node-tp: $(grep '^#' "$WORK/search-x.txt")"

# --- the default search weighs every schedule the trainer runs but GPipe, the interleaved one
# too: GPT-3 175B on 1,024 A100s is fastest with 6 chunks per rank, 0.7% ahead of ZB-H1, the
# best of 1F1B and ZB-H1 alone
"$LMF" plan --model gpt3-175b --cluster dgx-a100-superpod --nodes 128 --global-batch 3145728 \
  --search --top 1 >"$WORK/search-i.txt" || fail "search with the interleaved schedule"
"$LMF" plan --model gpt3-175b --cluster dgx-a100-superpod --nodes 128 --global-batch 3145728 \
  --search --top 1 --schedule 1f1b,zb >"$WORK/search-nz.txt" || fail "search over 1F1B and ZB-H1"
d_i=$(sed -n 's/^#1  \([0-9.]*\) days.*/\1/p' "$WORK/search-i.txt")
d_nz=$(sed -n 's/^#1  \([0-9.]*\) days.*/\1/p' "$WORK/search-nz.txt")
grep -q '^#1 .*interleaved [2-8]$' "$WORK/search-i.txt" \
  && grep -q '^command .* --schedule interleaved --virtual-stages [2-8] ' "$WORK/search-i.txt" \
  && awk -v a="$d_i" -v b="$d_nz" 'BEGIN { exit !(a + 0 > 0 && a + 0 < b + 0) }' \
  && pass "the search proposes the interleaved schedule by default ($d_i days against $d_nz)" \
  || fail "default search: $(grep -E '^#1|^command' "$WORK/search-i.txt") / $d_nz days without interleaving"

# --- pipeline stages of uneven size: 12 layers over pp 8 (4 stages of 2, 4 of 1); interleaving
# needs the fullest stage's 2 layers in equal chunks
"$LMF" plan --model gpt2 --cluster h100-cluster --nodes 1 --pp 8 --dp 1 --tp 1 --json >"$WORK/uneven.json" \
  && grep -q '"pp": 8' "$WORK/uneven.json" && pass "pp 8 over 12 layers" || fail "pp 8 over 12 layers: $(head -c 300 "$WORK/uneven.json")"
expect_error "interleaving an uneven stage" 2 "lmforge plan: error: 3 virtual stages do not split the fullest stage's 2 layers" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --nodes 1 --pp 8 --dp 1 --tp 1 --virtual-stages 3

# --- fp16 on the A100 preset (Megatron-LM 2021's format), interleaving and context parallelism
"$LMF" plan --model gpt3-175b --cluster dgx-a100-superpod --nodes 128 --tp 8 --pp 8 --dp 16 \
  --global-batch 3145728 --recompute full --dtype fp16 --virtual-stages 2 --json >"$WORK/fp16.json" \
  && grep -q '"dtype": "fp16"' "$WORK/fp16.json" && grep -q '"virtual_stages": 2' "$WORK/fp16.json" \
  && pass "fp16 with the interleaved schedule on A100s" || fail "fp16 on A100s: $(head -c 300 "$WORK/fp16.json")"
"$LMF" plan --model gpt3-175b --cluster h100-cluster --nodes 64 --tp 8 --cp 4 --pp 8 --dp 2 \
  --seq 2048 --global-batch 1048576 --recompute full >"$WORK/cp.txt" \
  && grep -q 'x cp 4 = 512 devices' "$WORK/cp.txt" && grep -q 'context-parallel comm' "$WORK/cp.txt" \
  && pass "--cp 4" || fail "--cp 4: $(head -c 600 "$WORK/cp.txt")"

# --- --explain lists the assumptions; --help works
missing=""
"$LMF" plan --model gpt2 --cluster h100-cluster --tp 4 --explain >"$WORK/explain.txt" || missing="(failed)"
for word in "GEMM efficiency" "ring all-reduce" "1F1B" "Korthikanti" "Rajbhandari"; do
  grep -q "$word" "$WORK/explain.txt" || missing="$missing '$word'"
done
[ -z "$missing" ] && pass "--explain" || fail "--explain lacks $missing"
"$LMF" plan --help >"$WORK/help.txt" && grep -q -- "--search" "$WORK/help.txt" && pass "--help" || fail "--help"

# --- calibration writes a cluster file the planner reads back
if "$LMF" plan --calibrate --ranks 2 --seconds 0.02 --out "$WORK/local.json" 2>"$WORK/calib.txt"; then
  grep -q "sgemm n=64" "$WORK/calib.txt" && grep -q '"devices": 2' "$WORK/local.json" \
    && pass "--calibrate" || fail "--calibrate output: $(cat "$WORK/calib.txt")"
  "$LMF" plan --model tiny --cluster "$WORK/local.json" --global-batch 512 --json >"$WORK/tiny.json" \
    && grep -q '"dp": 2' "$WORK/tiny.json" && grep -q '"dtype": "fp32"' "$WORK/tiny.json" \
    && grep -q '"device_model": "calibrated"' "$WORK/tiny.json" && grep -q '"matmul":' "$WORK/tiny.json" \
    && pass "plan on the calibrated machine" || fail "plan on the calibrated machine"
  # the calibrated device explains itself with the model's own kernel calls; in bf16 (which
  # lmforge does not run) the same file is planned with the generic device model
  "$LMF" plan --model tiny --cluster "$WORK/local.json" --global-batch 512 --explain >"$WORK/tiny.txt" \
    && grep -q "calibrated device" "$WORK/tiny.txt" && grep -q "matmul_backward" "$WORK/tiny.txt" \
    && grep -q "lmf_layer_linears" "$WORK/tiny.txt" && grep -q "checkpoint snapshot" "$WORK/tiny.txt" \
    && pass "--explain on the calibrated machine" || fail "--explain on the calibrated machine"
  # lmforge runs tensor parallelism: the calibrated model with the rank's slices; it runs no
  # pipeline: the generic model
  "$LMF" plan --model tiny --cluster "$WORK/local.json" --global-batch 512 --tp 2 --dp 1 --json \
    >"$WORK/tiny-tp.json" && grep -q '"device_model": "calibrated"' "$WORK/tiny-tp.json" \
    && pass "tp 2 on the calibrated machine: the calibrated model" || fail "tp 2 on the calibrated machine"
  w1=$(grep -o '"weights": *[0-9.eE+]*' "$WORK/tiny.json" | head -1 | sed 's/.*: *//')
  w2=$(grep -o '"weights": *[0-9.eE+]*' "$WORK/tiny-tp.json" | head -1 | sed 's/.*: *//')
  awk -v a="$w1" -v b="$w2" 'BEGIN { exit !(b > 0.45 * a && b < 0.75 * a) }' \
    && pass "tp 2: about half the weights per rank ($w2 of $w1 bytes)" \
    || fail "tp 2: weights per rank $w2 against $w1 bytes at tp 1"
  "$LMF" plan --model tiny --cluster "$WORK/local.json" --global-batch 512 --pp 2 --dp 1 --explain \
    >"$WORK/tiny-pp.txt" && grep -q "calibrated device" "$WORK/tiny-pp.txt" \
    && grep -q "checkpoint snapshot" "$WORK/tiny-pp.txt" \
    && pass "pp 2 on the calibrated machine: the calibrated model" || fail "pp 2 on the calibrated machine"
  "$LMF" plan --model mini --seq 64 --cluster "$WORK/local.json" --global-batch 512 --pp 2 --dp 1 \
    --schedule interleaved --virtual-stages 2 --micro-batch 1 --explain >"$WORK/tiny-vs.txt" \
    && ! grep -q "calibrated device" "$WORK/tiny-vs.txt" \
    && pass "interleaved on the calibrated machine: the generic model" || fail "interleaved on the calibrated machine: $(tail -3 "$WORK/tiny-vs.txt")"
else
  fail "--calibrate: $(cat "$WORK/calib.txt")"
fi

# --- bad input: exit 2 and one line on stderr
printf '{ "nodes": 4, "node": ' >"$WORK/broken.json"
E="lmforge plan: error:"
expect_error "unknown model preset" 2 "$E unknown model preset 'gpt5'" -- "$LMF" plan --model gpt5 --cluster local
expect_error "unknown cluster preset" 2 "$E unknown cluster preset 'dgx-z9'.*azure-openai-2020" -- \
  "$LMF" plan --model gpt2 --cluster dgx-z9
expect_error "malformed cluster JSON" 2 "$E .*broken.json.*malformed JSON" -- \
  "$LMF" plan --model gpt2 --cluster "$WORK/broken.json"
expect_error "missing cluster file" 2 "$E .*nothere.json" -- "$LMF" plan --model gpt2 --cluster "$WORK/nothere.json"
expect_error "tp not dividing heads" 2 "$E tensor-parallel size 5 does not divide the model's 12 attention heads" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --tp 5
expect_error "pp above the layers" 2 "$E pipeline-parallel size 16 exceeds the model's 12 layers" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --pp 16 --dp 1 --tp 1 --nodes 2
expect_error "dp*tp*pp != devices" 2 "$E dp x tp x pp = 3 x 1 x 1 = 3, but cluster 'dgx-a100-superpod' has 1120 devices" -- \
  "$LMF" plan --model gpt2 --cluster dgx-a100-superpod --dp 3 --tp 1 --pp 1
# ZeRO-3 over each stage's data-parallel group, as `lmforge train --pp --zero 3` runs it: the
# stage's weights and gradients sharded over dp 4, their gathers priced every micro-batch
"$LMF" plan --model gpt2 --cluster h100-cluster --nodes 1 --pp 2 --dp 4 --tp 1 --zero 3 \
  >"$WORK/pz3.txt" 2>&1 && grep -q "sharded by ZeRO-3" "$WORK/pz3.txt" \
  && grep -qE "ZeRO-3 gathers .* exposed part of [1-9][0-9.]* (ms|s)" "$WORK/pz3.txt" \
  && pass "ZeRO-3 with pipelining is planned" || fail "--pp 2 --zero 3: $(cat "$WORK/pz3.txt")"
expect_error "dtype the device lacks" 2 "$E .*no fp8 peak" -- \
  "$LMF" plan --model gpt2 --cluster dgx-a100-superpod --dtype fp8
expect_error "unknown dtype" 2 "$E --dtype must be fp32, bf16, fp16 or fp8" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --dtype fp4
# a fused causal attention (--attention flash) at a long sequence: named in the JSON, more
# tokens/s than the scores in memory, less activation memory
for a in materialized flash; do
  "$LMF" plan --model llama3-8b --cluster h100-cluster --nodes 1 --tp 8 --dp 1 --pp 1 --seq 8192 \
    --micro-batch 1 --global-batch 65536 --recompute none --attention $a --json >"$WORK/att-$a.json" \
    || fail "--attention $a"
done
grep -q '"attention": "flash"' "$WORK/att-flash.json" && grep -q '"attention": "materialized"' "$WORK/att-materialized.json" \
  && pass "--json names the attention" || fail "--json lacks the attention: $(head -c 200 "$WORK/att-flash.json")"
ok=$(awk -v f="$(jnum "$WORK/att-flash.json" tokens_per_s)" -v m="$(jnum "$WORK/att-materialized.json" tokens_per_s)" \
  -v fa="$(jnum "$WORK/att-flash.json" activations)" -v ma="$(jnum "$WORK/att-materialized.json" activations)" \
  'BEGIN { print (f > m && fa < ma) ? "yes" : "no" }')
[ "$ok" = yes ] && pass "flash attention: faster, less memory" || fail "flash attention: $(grep -E 'tokens_per_s|activations' "$WORK"/att-*.json)"
expect_error "unknown attention kind" 2 "$E --attention must be materialized or flash .got 'fused'." -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --attention fused
expect_error "unknown recompute mode" 2 "$E --recompute: recomputation mode must be none, selective or full" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --recompute some
expect_error "sequence longer than the context" 2 "$E sequence length 4096" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --seq 4096
expect_error "missing --cluster" 2 "$E --model and --cluster are required" -- "$LMF" plan --model gpt2
expect_error "nothing fits" 2 "$E no layout fits" -- \
  "$LMF" plan --model gpt-1t --cluster azure-openai-2020 --nodes 1 --search
expect_error "bf16 on a V100 cluster" 2 "$E .*has no bf16 peak; choose another --dtype" -- \
  "$LMF" plan --model gpt3-175b --cluster azure-openai-2020 --dtype bf16
expect_error "cp not dividing the sequence" 2 "$E context-parallel size 8 does not divide the sequence length 1020" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --nodes 1 --cp 8 --dp 1 --seq 1020
expect_error "dp*tp*pp*cp != devices" 2 "$E dp x tp x pp x cp = 2 x 1 x 1 x 2 = 4, but cluster 'h100-cluster' has 8" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --nodes 1 --cp 2 --dp 2
expect_error "virtual stages without pipelining" 2 "$E 2 virtual stages need pipeline parallelism" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --nodes 1 --virtual-stages 2
expect_error "ZeRO stage out of range" 2 "$E --zero must be between 0 and 3" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --zero 4
expect_error "a schedule list without --search" 2 "$E --schedule 1f1b,zb: a list of schedules is for --search" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --schedule 1f1b,zb
expect_error "an unknown schedule in a list" 2 "$E --schedule: unknown pipeline schedule 'pipedream'" -- \
  "$LMF" plan --model gpt2 --cluster h100-cluster --search --schedule 1f1b,pipedream

# --- the search's schedules: by default those lmforge train runs (1F1B, ZB-H1), a list widens it
"$LMF" plan --model gpt3-175b --cluster azure-openai-2020 --tokens 300e9 --global-batch 3.2e6 --search --top 10 >"$WORK/menu.txt" \
  && ! grep -q "interleaved" "$WORK/menu.txt" && grep -q "zb schedule" "$WORK/menu.txt" \
  && pass "search tries 1F1B and ZB-H1 by default" || fail "default menu: $(grep '^#' "$WORK/menu.txt")"
"$LMF" plan --model gpt3-175b --cluster azure-openai-2020 --tokens 300e9 --global-batch 3.2e6 --search --top 10 \
  --schedule 1f1b,interleaved >"$WORK/menu2.txt" && grep -q "^#.*interleaved" "$WORK/menu2.txt" \
  && ! grep -q "zb schedule" "$WORK/menu2.txt" \
  && pass "--schedule 1f1b,interleaved searches those two" || fail "menu list: $(grep '^#' "$WORK/menu2.txt")"
finish
