#!/usr/bin/env bash
# Interoperability through the CLI: convert, eval, sample and fine-tune across file formats.
# Round trips between lmforge, Hugging Face and llm.c files; bad files named in errors.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=1  # small models; one thread keeps the test quick on a busy machine
q=(--quiet)

loss_of() { sed 's/.*"loss": *\([-0-9.e+]*\).*/\1/'; }
same_file() { cmp -s "$1" "$2" && pass "$3" || fail "$3: $1 and $2 differ"; }

# ---- part 1: a model trained here, moved through every format ----
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 300 --steps 20 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --out "$WORK/run" "${q[@]}" || fail "train the source model"
VAL="$WORK/run/data/val.bin"
TRAIN="$WORK/run/data/train.bin"

"$LMF" convert "$WORK/run" --to hf --out "$WORK/hf" "${q[@]}" && pass "convert run -> hf" || fail "convert run -> hf"
"$LMF" convert "$WORK/run" --to llmc --out "$WORK/llmc/model.bin" "${q[@]}" && pass "convert run -> llmc" || fail "convert run -> llmc"
"$LMF" convert "$WORK/run" --to llmc --dtype bf16 --out "$WORK/llmc/model16.bin" "${q[@]}" || fail "convert run -> llmc bf16"
"$LMF" convert "$WORK/llmc/model.bin" --to lmforge --out "$WORK/lmf" "${q[@]}" || fail "convert llmc -> lmforge"
[ -s "$WORK/hf/config.json" ] && [ -s "$WORK/hf/model.safetensors" ] && [ -s "$WORK/hf/tokenizer.json" ] \
  && pass "hf export has config.json, model.safetensors and the tokenizer" || fail "hf export files: $(ls "$WORK/hf")"
grep -q '"model_type": "gpt2"' "$WORK/hf/config.json" && grep -q '"activation_function": "gelu_new"' "$WORK/hf/config.json" \
  && grep -q '"architectures"' "$WORK/hf/config.json" && pass "hf config.json has GPT2Config keys" || fail "hf config.json: $(cat "$WORK/hf/config.json")"
head -c 200 "$WORK/hf/model.safetensors" | grep -q '"__metadata__":{"format":"pt"}' \
  && pass "safetensors header carries __metadata__ format pt" || fail "no __metadata__ format pt"

# the same weights in every format: identical losses (bf16 within its rounding)
ev() { "$LMF" eval --model "$1" --data "$VAL" --batch 2 --seq 32 --batches 4 --json 2>&1 | loss_of; }
base=$(ev "$WORK/run")
for m in "$WORK/hf" "$WORK/llmc/model.bin" "$WORK/lmf"; do
  got=$(ev "$m")
  [ -n "$base" ] && [ "$got" = "$base" ] && pass "eval --model $(basename "$m"): $got" || fail "eval $m: $got, expected $base"
done
got=$(ev "$WORK/llmc/model16.bin")
awk -v a="$got" -v b="$base" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.02) }' \
  && pass "bf16 llm.c export evaluates within 0.02 ($got vs $base)" || fail "bf16 eval $got vs $base"

# a run directory whose export is gone: its newest checkpoint is the model
cp -r "$WORK/run" "$WORK/run_ckpt" && rm -f "$WORK/run_ckpt/model.safetensors" "$WORK/run_ckpt/config.json"
got=$(ev "$WORK/run_ckpt")
[ "$got" = "$base" ] && pass "a run with only checkpoints loads its newest checkpoint" || fail "checkpoint-only run: $got vs $base"

# round trips are byte-exact
"$LMF" convert "$WORK/llmc/model.bin" --to hf --out "$WORK/hf2" "${q[@]}" || fail "llmc -> hf"
same_file "$WORK/hf/model.safetensors" "$WORK/hf2/model.safetensors" "lmforge -> llmc -> hf gives the same safetensors"
"$LMF" convert "$WORK/hf" --to llmc --out "$WORK/llmc2.bin" "${q[@]}" || fail "hf -> llmc"
same_file "$WORK/llmc/model.bin" "$WORK/llmc2.bin" "lmforge -> hf -> llmc gives the same llm.c file"
same_file "$WORK/run/model.safetensors" "$WORK/lmf/model.safetensors" "lmforge -> llmc -> lmforge is bit-identical"

# sampling: the same text from the lmforge run and its Hugging Face export (same tokenizer)
a=$("$LMF" sample --model "$WORK/run" --tokens 30 --seed 5 --temperature 0.9)
b=$("$LMF" sample --model "$WORK/hf" --tokens 30 --seed 5 --temperature 0.9)
[ -n "$a" ] && [ "$a" = "$b" ] && pass "sample from the hf export matches the run" || fail "samples differ: '$a' vs '$b'"
c=$("$LMF" sample --model "$WORK/llmc/model.bin" --tokens 30 --seed 5 --temperature 0.9)
[ -n "$c" ] && pass "sample from an llm.c file" || fail "sample from llm.c file"

# fine-tuning from each format gives the same run; the result goes back out
ft=(--data "$TRAIN" --val-data "$VAL" --steps 6 --batch 4 --seq 32 --lr 1e-3 --warmup 0
    --lr-schedule constant --eval-every 3 --eval-batches 2 --sample-tokens 0 "${q[@]}")
"$LMF" train --init "$WORK/hf" --out "$WORK/ft_hf" "${ft[@]}" || fail "train --init hf dir"
"$LMF" train --init "$WORK/llmc/model.bin" --out "$WORK/ft_llmc" "${ft[@]}" || fail "train --init llm.c file"
if [ -n "$(losses "$WORK/ft_hf/metrics.jsonl")" ] && \
   diff <(losses "$WORK/ft_hf/metrics.jsonl") <(losses "$WORK/ft_llmc/metrics.jsonl") >/dev/null; then
  pass "fine-tuning from hf and from llm.c gives identical losses"
else
  fail "fine-tuning losses differ between hf and llm.c starts"
fi
"$LMF" convert "$WORK/ft_hf" --to hf --out "$WORK/ft_hf_out" "${q[@]}" || fail "export fine-tuned -> hf"
"$LMF" convert "$WORK/ft_llmc" --to llmc --out "$WORK/ft.bin" "${q[@]}" || fail "export fine-tuned -> llmc"
a=$(ev "$WORK/ft_hf"); b=$(ev "$WORK/ft_hf_out"); c=$(ev "$WORK/ft.bin")
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] && [ "$a" != "$base" ] \
  && pass "fine-tuned model exported to hf and llm.c evaluates the same ($a, was $base)" \
  || fail "fine-tuned exports: $a / $b / $c (base $base)"

# ---- part 2: foreign files written byte by byte from the format descriptions ----
FIXER="${LMF_BUILD_DIR:-$(dirname "$LMF")}/test_model_files"
if [ -x "$FIXER" ] && "$FIXER" --write-fixtures "$WORK/fx" >/dev/null 2>&1; then
  FX="$WORK/fx"
  evf() { "$LMF" eval --model "$1" --data "$FX/train.bin" --batch 2 --seq 64 --batches 3 --json 2>&1 | loss_of; }
  l16=$(evf "$FX/hf16"); lb=$(evf "$FX/hfbf16"); l3=$(evf "$FX/llmc/model.bin"); l5=$(evf "$FX/llmc/model_bf16.bin")
  [ -n "$l16" ] && [ "$l16" = "$lb" ] && [ "$l16" = "$l3" ] && [ "$l16" = "$l5" ] \
    && pass "sharded fp16 hf, bf16 hf, llm.c v3 and v5 of one model: same loss $l16" \
    || fail "foreign formats disagree: $l16 $lb $l3 $l5"
  "$LMF" convert "$FX/hf16" --to llmc --out "$WORK/fx_v3.bin" "${q[@]}" || fail "convert sharded fp16 -> llmc"
  same_file "$FX/llmc/model.bin" "$WORK/fx_v3.bin" "sharded fp16 hf -> llm.c v3 matches the hand-written file"
  "$LMF" convert "$FX/hfbf16" --to llmc --dtype bf16 --out "$WORK/fx_v5.bin" "${q[@]}" || fail "convert bf16 -> llmc v5"
  same_file "$FX/llmc/model_bf16.bin" "$WORK/fx_v5.bin" "bf16 hf -> llm.c v5 matches the hand-written file"

  # decoding with llm.c's tokenizer file: ids 0..255 are bytes, 256..298 five bytes, 299 thirteen
  ids=$("$LMF" sample --model "$FX/hfbf16" --tokens 40 --seed 9)
  "$LMF" sample --model "$FX/llmc/model.bin" --tokens 40 --seed 9 >"$WORK/text.out"
  want=$(echo "$ids" | tr ' ' '\n' | awk 'NF { n += ($1 < 256) ? 1 : ($1 < 299 ? 5 : 13) } END { print n + 1 }')
  got=$(wc -c <"$WORK/text.out")
  [ "$got" -eq "$want" ] && pass "llm.c tokenizer decodes the sampled ids ($got bytes)" \
    || fail "decoded $got bytes, expected $want from ids: $ids"

  # fine-tune the llm.c checkpoint and the Hugging Face directory, export back
  ftf=(--data "$FX/train.bin" --steps 4 --batch 2 --seq 64 --lr 1e-3 --warmup 0 --no-shuffle
       --eval-every 0 --sample-tokens 0 "${q[@]}")
  "$LMF" train --init "$FX/llmc/model.bin" --out "$WORK/fx_ft1" "${ftf[@]}" || fail "train --init fixture llm.c"
  "$LMF" train --init "$FX/hf16" --out "$WORK/fx_ft2" "${ftf[@]}" || fail "train --init fixture hf"
  diff <(losses "$WORK/fx_ft1/metrics.jsonl") <(losses "$WORK/fx_ft2/metrics.jsonl") >/dev/null \
    && [ -n "$(losses "$WORK/fx_ft1/metrics.jsonl")" ] \
    && pass "fine-tuning the llm.c file and the hf directory: identical losses" || fail "fixture fine-tuning differs"
  "$LMF" convert "$WORK/fx_ft1" --to llmc --out "$WORK/fx_ft1.bin" "${q[@]}" && \
    "$LMF" convert "$WORK/fx_ft2" --to hf --out "$WORK/fx_ft2_hf" "${q[@]}" || fail "export fine-tuned fixtures"
  [ "$(evf "$WORK/fx_ft1.bin")" = "$(evf "$WORK/fx_ft2_hf")" ] && pass "fine-tuned exports agree" || fail "fine-tuned exports disagree"
else
  fail "$FIXER --write-fixtures failed (it is built with the tests; the foreign-file checks need it)"
fi

# ---- errors: one line, naming the file ----
expect_error "convert needs --to" 2 "--to and --out are required" -- "$LMF" convert "$WORK/run" --out "$WORK/x"
expect_error "convert --to tflite" 2 "--to must be hf, llmc, lmforge or onnx" -- "$LMF" convert "$WORK/run" --to tflite --out "$WORK/x"
expect_error "convert --dtype bf16 --to lmforge" 2 "applies to --to llmc \\(bf16\\), --to hf and --to onnx" -- "$LMF" convert "$WORK/run" --to lmforge --dtype bf16 --out "$WORK/x"
expect_error "convert --dtype bf16 --to onnx" 2 "ONNX exports are fp32 or fp16" -- "$LMF" convert "$WORK/run" --to onnx --dtype bf16 --out "$WORK/x"
expect_error "convert --dtype fp16 --to llmc" 2 "llm.c checkpoints are fp32 or bf16" -- "$LMF" convert "$WORK/run" --to llmc --dtype fp16 --out "$WORK/x.bin"
expect_error "convert llmc into a directory" 2 "is a directory" -- "$LMF" convert "$WORK/run" --to llmc --out "$WORK/hf"
expect_error "convert a token file" 1 "val.bin: a token file" -- "$LMF" convert "$VAL" --to hf --out "$WORK/x"
head -c 5000 "$WORK/llmc/model.bin" >"$WORK/trunc.bin"
expect_error "convert a truncated llm.c file" 1 "trunc.bin: .*truncated" -- "$LMF" convert "$WORK/trunc.bin" --to hf --out "$WORK/x"
expect_error "eval a truncated llm.c file" 1 "trunc.bin: .*truncated" -- "$LMF" eval --model "$WORK/trunc.bin" --data "$VAL"
expect_error "sample from a missing model" 1 "nope: cannot open" -- "$LMF" sample --model "$WORK/nope"
mkdir -p "$WORK/badhf" && cp "$WORK/hf/config.json" "$WORK/badhf/" && printf 'xxxxxxxxnot json' >"$WORK/badhf/model.safetensors"
expect_error "train --init a broken hf dir" 1 "badhf/model.safetensors" -- "$LMF" train --init "$WORK/badhf" --data "$TRAIN" --steps 1 --out "$WORK/x" --quiet
"$LMF" convert --help | grep -q -- "--to hf|llmc|lmforge|onnx" && pass "convert --help" || fail "convert --help"

finish
