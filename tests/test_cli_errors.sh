#!/usr/bin/env bash
# Bad input to the CLI: one line naming the problem, a non-zero exit, never a crash.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=1
make_corpus "$WORK/corpus"
base=(--model tiny --steps 2 --batch 2 --seq 16 --sample-tokens 0 --quiet)
"$LMF" train "${base[@]}" --corpus "$WORK/corpus" --bpe-vocab 0 --dtype fp32 --out "$WORK/good" || fail "good run (with --dtype fp32)"
train="$WORK/good/data/train.bin"

expect_error "unknown command" 2 "unknown command 'trian'" -- "$LMF" trian
expect_error "unknown flag" 2 "unknown flag '--stpes'" -- "$LMF" train --stpes 3
expect_error "bad number" 2 "--steps expects an integer, got 'ten'" -- "$LMF" train --steps ten
expect_error "out of range" 2 "--batch must be between" -- "$LMF" train --batch 0
expect_error "flag without value" 2 "--lr needs a value" -- "$LMF" train --lr
expect_error "unknown preset" 2 "unknown model preset 'gpt5'" -- "$LMF" train --model gpt5
expect_error "unknown recomputation mode" 2 "--recompute: recomputation mode must be none, selective or full .got 'some'." -- "$LMF" train --recompute some
expect_error "a GPU number format" 2 "--dtype bf16: lmforge train computes in fp32" -- "$LMF" train --dtype bf16
expect_error "an unknown number format" 2 "--dtype fp4: lmforge train computes in fp32" -- "$LMF" train --dtype fp4
expect_error "unknown bench recomputation mode" 2 "--recompute: recomputation mode must be none" -- "$LMF" bench --recompute some
expect_error "missing data file" 1 "$WORK/nope.bin" -- "$LMF" train "${base[@]}" --data "$WORK/nope.bin" --out "$WORK/r1"

head -c 4096 /dev/urandom >"$WORK/random.bin"
expect_error "shard with a wrong magic" 1 "random.bin.*magic" -- "$LMF" train "${base[@]}" --data "$WORK/random.bin" --out "$WORK/r2"
size=$(stat -c %s "$train")
head -c $((size - 7)) "$train" >"$WORK/trunc.bin"
expect_error "truncated shard" 1 "trunc.bin" -- "$LMF" train "${base[@]}" --data "$WORK/trunc.bin" --out "$WORK/r3"
expect_error "sequence longer than n_positions" 2 "n_positions" -- "$LMF" train "${base[@]}" --data "$train" --seq 65 --out "$WORK/r4"
[ ! -e "$WORK/r4" ] && pass "--seq refused before the run directory is made" || fail "--seq 65 left $WORK/r4"
expect_error "token ids outside the vocabulary" 1 "vocab" -- "$LMF" train "${base[@]}" --data "$train" --vocab-size 100 --out "$WORK/r5"
mkdir -p "$WORK/empty"
expect_error "empty corpus" 1 "empty" -- "$LMF" train "${base[@]}" --corpus "$WORK/empty" --bpe-vocab 0 --out "$WORK/r6"

# a checkpoint whose shapes disagree with its config
cp -r "$WORK/good" "$WORK/bad"
sed -i 's/"n_embd": *64/"n_embd": 32/' "$WORK/bad/config.json"
expect_error "weights disagree with config.json" 1 "shape" -- "$LMF" eval --model "$WORK/bad" --data "$train" --batch 1 --seq 16
expect_error "model dir missing" 1 "/none: .*([Nn]o such|not a model)" -- "$LMF" sample --model "$WORK/none"
expect_error "resume without checkpoint" 2 "no checkpoint" -- "$LMF" train --resume "$WORK/empty"

# sampling past the model's 64-token context says so; a prompt too long is refused before any
# of it is printed
"$LMF" sample --model "$WORK/good" --tokens 1000 >"$WORK/s.out" 2>"$WORK/s.err" \
  && grep -qE "stopped after [0-9]+ tokens: the model's context of 64 positions is full" "$WORK/s.err" \
  && pass "--tokens beyond the context is reported" || fail "sample --tokens 1000: $(cat "$WORK/s.err")"
long=$(printf 'the cat sat on the mat %.0s' $(seq 10))
expect_error "prompt longer than the context" 1 "the prompt has [0-9]+ tokens; the model's context is 64" -- \
  "$LMF" sample --model "$WORK/good" --prompt "$long"
"$LMF" sample --model "$WORK/good" --prompt "$long" >"$WORK/p.out" 2>/dev/null
[ ! -s "$WORK/p.out" ] && pass "the refused prompt is not echoed" || fail "printed: $(head -c 80 "$WORK/p.out")"

# plan --calibrate checks where it will write before measuring
start=$(date +%s)
expect_error "calibration into a missing directory" 2 "--out $WORK/none/c.json: $WORK/none is not a directory" -- \
  "$LMF" plan --calibrate --out "$WORK/none/c.json"
expect_error "calibration into a directory" 2 "--out $WORK is a directory" -- "$LMF" plan --calibrate --out "$WORK"
[ $(($(date +%s) - start)) -lt 5 ] && pass "--out refused before calibrating" || fail "the refusal took $(($(date +%s) - start)) s"

# the main help names the model train uses by default
"$LMF" --help 2>&1 | grep -q "train .*defaults: the mini model" && "$LMF" train --help 2>&1 | grep -q "default mini" \
  && pass "help names the default model (mini)" || fail "help: $("$LMF" --help 2>&1 | grep train)"
expect_error "token file hint" 1 "lmforge data prepare" -- "$LMF" train "${base[@]}" --data "$WORK/random.bin" --out "$WORK/r7"
finish
