#!/usr/bin/env bash
# The Llama family through the CLI: a Hugging Face LlamaConfig trains, resumes exactly,
# recomputes identically, evaluates, samples, converts to a Hugging Face directory and back bit
# for bit; settings lmforge does not compute are refused with one line.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=2
make_corpus "$WORK/corpus"
cat >"$WORK/llama.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
 "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-05,
 "rope_theta": 10000.0, "tie_word_embeddings": false, "vocab_size": 257, "hidden_act": "silu"}
JSON
common=(--config "$WORK/llama.json" --corpus "$WORK/corpus" --bpe-vocab 0 --steps 40 --batch 8
        --seq 32 --eval-every 20 --eval-batches 4 --lr 3e-3 --warmup 5 --seed 7 --sample-tokens 0
        --quiet)

"$LMF" train "${common[@]}" --out "$WORK/run1" || fail "train run1"
# learning: the byte-level loss starts near ln(257) = 5.55 and falls below 3 in 40 steps
last_val=$(val_losses "$WORK/run1/metrics.jsonl" | tail -1)
first_loss=$(losses "$WORK/run1/metrics.jsonl" | head -1)
if awk -v v="$last_val" -v f="$first_loss" 'BEGIN { exit !(v < 3.0 && f > 5.0) }'; then
  pass "Llama validation loss fell from $first_loss to $last_val"
else
  fail "Llama validation loss $last_val (first training loss $first_loss): expected < 3 from > 5"
fi
grep -q '"model_type": *"llama"' "$WORK/run1/config.json" && \
  grep -q '"num_key_value_heads": *2' "$WORK/run1/config.json" && \
  grep -q '"intermediate_size": *176' "$WORK/run1/config.json" \
  && pass "the run's config.json is a LlamaConfig" || fail "config.json: $(cat "$WORK/run1/config.json")"

# exact resume
"$LMF" train "${common[@]}" --out "$WORK/run2" --stop-after 15 2>/dev/null || fail "train run2 part 1"
"$LMF" train --resume "$WORK/run2" --quiet --sample-tokens 0 || fail "resume run2"
if [ -n "$(losses "$WORK/run1/metrics.jsonl")" ] && \
   diff <(losses "$WORK/run1/metrics.jsonl") <(losses "$WORK/run2/metrics.jsonl") >/dev/null; then
  pass "resumed Llama run matches the uninterrupted one bit for bit"
else
  fail "resumed Llama losses differ"
fi

# recomputation: identical losses
"$LMF" train "${common[@]}" --out "$WORK/run3" --stop-after 10 --recompute full 2>/dev/null || fail "train --recompute full"
if diff <(losses "$WORK/run1/metrics.jsonl" | head -10) <(losses "$WORK/run3/metrics.jsonl") >/dev/null; then
  pass "--recompute full gives the same Llama losses"
else
  fail "--recompute full changed the Llama losses"
fi

# eval and sample from the run
"$LMF" eval --model "$WORK/run1" --data "$WORK/run1/data/val.bin" --seq 32 --batches 2 --json \
  >"$WORK/eval.json" 2>/dev/null && grep -q '"loss"' "$WORK/eval.json" \
  && pass "eval reads the Llama run" || fail "eval: $(cat "$WORK/eval.json")"
"$LMF" sample --model "$WORK/run1" --prompt "the quick" --tokens 20 --temperature 0 \
  >"$WORK/sample.txt" 2>/dev/null && [ -s "$WORK/sample.txt" ] \
  && pass "sample continues a prompt with the Llama model" || fail "sample"

# convert: Hugging Face directory and back, bit for bit
"$LMF" convert "$WORK/run1" --to hf --out "$WORK/hf" --quiet || fail "convert to hf"
"$LMF" convert "$WORK/hf" --to lmforge --out "$WORK/lmf" --quiet || fail "convert hf to lmforge"
"$LMF" convert "$WORK/lmf" --to hf --out "$WORK/hf2" --quiet || fail "convert back to hf"
cmp -s "$WORK/hf/model.safetensors" "$WORK/hf2/model.safetensors" && \
  cmp -s "$WORK/hf/model.safetensors" "$WORK/run1/model.safetensors" \
  && pass "Hugging Face Llama weights round-trip bit for bit" || fail "round trip differs"
# with a trained BPE tokenizer: tokenizer.json, and tokenizer_config.json naming the class that
# reads it as it is (a Llama model_type alone would pick LlamaTokenizerFast and its <s>)
"$LMF" train --model llama-tiny --corpus "$WORK/corpus" --bpe-vocab 320 --steps 1 --batch 2 --seq 16 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/run5" || fail "train with a BPE tokenizer"
"$LMF" convert "$WORK/run5" --to hf --out "$WORK/hf5" --quiet || fail "convert run5"
[ -s "$WORK/hf5/tokenizer.json" ] && \
  grep -q '"tokenizer_class": "PreTrainedTokenizerFast"' "$WORK/hf5/tokenizer_config.json" && \
  grep -q '"eos_token": "<|endoftext|>"' "$WORK/hf5/tokenizer_config.json" && \
  grep -q '"model_max_length": 64' "$WORK/hf5/tokenizer_config.json" \
  && pass "the export has tokenizer.json and a tokenizer_config.json for AutoTokenizer" \
  || fail "tokenizer files of the export: $(ls "$WORK/hf5"; cat "$WORK/hf5/tokenizer_config.json" 2>&1)"
# fine-tuning the export on token data keeps its tokenizer: the run directory gets it, and the
# final sample of a text prompt is text
"$LMF" train --init "$WORK/hf5" --data "$WORK/run5/data/train.bin" --steps 1 --batch 2 --seq 16 \
  --eval-every 0 --sample-tokens 4 --prompt "the" --quiet --out "$WORK/run6" >"$WORK/run6.out" 2>&1 \
  && [ -s "$WORK/run6/tokenizer/tokenizer.json" ] && grep -q "^the" "$WORK/run6.out" \
  && pass "train --init keeps the model's tokenizer" \
  || fail "train --init lost the tokenizer: $(ls "$WORK/run6" 2>&1; tail -3 "$WORK/run6.out")"
grep -q 'model.layers.1.mlp.gate_proj.weight' "$WORK/hf/model.safetensors" && \
  grep -q 'lm_head.weight' "$WORK/hf/model.safetensors" \
  && pass "the export has Hugging Face Llama names" || fail "export names"
# split into files of at most 20 kB of tensors, read back, and joined again: the same bytes
"$LMF" convert "$WORK/hf" --to hf --max-shard-size 20KB --out "$WORK/hf_split" --quiet || fail "convert split"
n_split=$(ls "$WORK/hf_split" | grep -c '^model-[0-9]\{5\}-of-[0-9]\{5\}\.safetensors$')
[ "$n_split" -ge 2 ] && [ ! -e "$WORK/hf_split/model.safetensors" ] \
  && grep -q '"total_size"' "$WORK/hf_split/model.safetensors.index.json" \
  && pass "--max-shard-size 20KB splits the weights into $n_split files and an index" \
  || fail "split export: $(ls "$WORK/hf_split")"
"$LMF" convert "$WORK/hf_split" --to hf --out "$WORK/hf_joined" --quiet && \
  cmp -s "$WORK/hf/model.safetensors" "$WORK/hf_joined/model.safetensors" \
  && pass "split weights read back and joined give the same model.safetensors" || fail "split round trip"
expect_error "a bad --max-shard-size is refused" 2 "max-shard-size must be a positive size" -- \
  "$LMF" convert "$WORK/hf" --to hf --max-shard-size 5XB --out "$WORK/bad_split"
expect_error "--max-shard-size with onnx is refused" 2 "max-shard-size applies to --to hf" -- \
  "$LMF" convert "$WORK/hf" --to onnx --max-shard-size 5GB --out "$WORK/bad_split"
expect_error "llama to llm.c is refused" 1 "llm.c checkpoints hold GPT-2 models" -- \
  "$LMF" convert "$WORK/hf" --to llmc --out "$WORK/x.bin"
"$LMF" convert "$WORK/hf" --to onnx --kv-cache --out "$WORK/x-onnx" --quiet && [ -s "$WORK/x-onnx/model.onnx" ] \
  && grep -q '"num_key_value_heads"' "$WORK/x-onnx/config.json" \
  && grep -qa 'model.layers.1.mlp.gate_proj.weight' "$WORK/x-onnx/model.onnx" \
  && grep -qa 'past_key_values.1.value' "$WORK/x-onnx/model.onnx" \
  && pass "llama exports to ONNX with its Hugging Face names (tests/test_onnx_runtime.sh runs it)" \
  || fail "llama to ONNX: $(ls "$WORK/x-onnx" 2>&1)"

# a Hugging Face Llama checkpoint lmforge did not write (tests/lib/llama_foreign.py: laid out as
# transformers' save_pretrained does, bf16 in two shards with an index, eos_token_id a list, keys
# lmforge does not use; untied and tied): it evaluates, samples, and goes back out as bf16 with
# the same tensors bit for bit (tests/test_llama_torch.sh checks its numbers against PyTorch)
here=$(cd "$(dirname "$0")" && pwd)
for kind in untied tied; do
  python3 "$here/lib/llama_foreign.py" "$WORK/foreign_$kind" "$kind" || fail "writing the $kind checkpoint"
  "$LMF" sample --model "$WORK/foreign_$kind" --prompt "1 2 3" --tokens 6 --temperature 0 \
    >"$WORK/fs.txt" 2>"$WORK/fs.err" && [ "$(wc -w <"$WORK/fs.txt")" -eq 9 ] \
    && pass "a foreign $kind checkpoint samples (prompt 1 2 3: $(cat "$WORK/fs.txt"))" \
    || fail "sample from the foreign $kind checkpoint: $(cat "$WORK/fs.txt" "$WORK/fs.err")"
  "$LMF" convert "$WORK/foreign_$kind" --to hf --dtype bf16 --out "$WORK/foreign_${kind}_out" --quiet \
    && python3 "$here/lib/st_same.py" "$WORK/foreign_$kind" "$WORK/foreign_${kind}_out" >"$WORK/same.txt" \
    && pass "the foreign $kind checkpoint goes back out as the same bf16 tensors ($(cat "$WORK/same.txt"))" \
    || fail "foreign $kind round trip: $(cat "$WORK/same.txt" 2>/dev/null)"
done
# with a Llama 3-style tokenizer.json beside it, a text prompt starts with the template's
# <|begin_of_text|> (id 256) as transformers' tokenizer(text) does: the continuation of "hi" is
# that of the ids 256 104 105 (and not that of 104 105), decoded; no prompt starts from 256
python3 "$here/lib/llama_foreign.py" "$WORK/foreign_tok" untied tokenizer || fail "writing the tokenizer"
"$LMF" sample --model "$WORK/foreign_tok" --prompt "hi" --tokens 6 --temperature 0 >"$WORK/ft_text.txt" 2>&1
"$LMF" sample --model "$WORK/foreign_untied" --prompt "256 104 105" --tokens 6 --temperature 0 >"$WORK/ft_bos.txt" 2>&1
"$LMF" sample --model "$WORK/foreign_untied" --prompt "104 105" --tokens 6 --temperature 0 >"$WORK/ft_nobos.txt" 2>&1
"$LMF" sample --model "$WORK/foreign_tok" --tokens 4 --temperature 0 >"$WORK/ft_none.txt" 2>&1
"$LMF" sample --model "$WORK/foreign_untied" --prompt "256" --tokens 4 --temperature 0 >"$WORK/ft_none_ids.txt" 2>&1
if python3 - "$WORK"/ft_text.txt "$WORK"/ft_bos.txt "$WORK"/ft_nobos.txt "$WORK"/ft_none.txt "$WORK"/ft_none_ids.txt <<'PY'
import sys
def text(path, skip):  # the ids a run printed, after the prompt's `skip`, decoded
    ids = [int(x) for x in open(path).read().split()][skip:]
    names = ["<|begin_of_text|>", "<|end_of_text|>"] + ["<|reserved_special_token_%d|>" % k for k in range(42)]
    return b"".join(bytes([i]) if i < 256 else names[i - 256].encode() for i in ids)
got = open(sys.argv[1], "rb").read().rstrip(b"\n")
want, nobos = b"hi" + text(sys.argv[2], 3), b"hi" + text(sys.argv[3], 2)
none, none_want = open(sys.argv[4], "rb").read().rstrip(b"\n"), text(sys.argv[5], 1)
print(repr(got), repr(want), repr(nobos), repr(none), repr(none_want))
sys.exit(0 if got == want and want != nobos and none == none_want else 1)
PY
then pass "sample puts the template's <|begin_of_text|> before a text prompt"
else fail "sample with a templated tokenizer: $(head -c 300 "$WORK/ft_text.txt")"; fi
grep -q '"torch_dtype": *"bfloat16"' "$WORK/foreign_tied_out/config.json" \
  && pass "a bf16 export's config.json says torch_dtype bfloat16" \
  || fail "bf16 export's torch_dtype: $(grep torch_dtype "$WORK/foreign_tied_out/config.json")"

# the README's Llama lines: the 405B plan as printed there
readme_plan=$(grep -o 'build/lmforge plan --model llama3-405b .*' "$here/../README.md" | head -1)
[ -n "$readme_plan" ] || fail "README.md has no llama3-405b plan line"
# shellcheck disable=SC2086
"$LMF" ${readme_plan#build/lmforge } >"$WORK/plan405.txt" 2>&1 \
  && grep -q "16384 devices" "$WORK/plan405.txt" && grep -q "fits" "$WORK/plan405.txt" \
  && pass "the README's llama3-405b plan runs: $(grep -m1 '^#1' "$WORK/plan405.txt")" \
  || fail "the README's plan line ($readme_plan): $(head -c 400 "$WORK/plan405.txt")"

# refused settings: one line naming the file and the setting
sed 's/"hidden_act": "silu"/"hidden_act": "silu", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}/' \
  "$WORK/llama.json" >"$WORK/scaled.json"
expect_error "rope_scaling refused" 2 "scaled.json: rope_scaling of type llama3 is not supported" -- \
  "$LMF" train --config "$WORK/scaled.json" --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --out "$WORK/bad"
sed 's/"num_key_value_heads": 2/"num_key_value_heads": 3/' "$WORK/llama.json" >"$WORK/kv3.json"
expect_error "key/value heads that do not divide refused" 2 "kv3.json: .*key/value heads do not divide" -- \
  "$LMF" train --config "$WORK/kv3.json" --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --out "$WORK/bad"

# the presets train too
"$LMF" train --model llama-tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 3 --batch 2 --seq 16 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/run4" && [ -s "$WORK/run4/model.safetensors" ] \
  && pass "--model llama-tiny trains" || fail "--model llama-tiny"
# plan: the published shapes, parameters and per-device weights through the description
# (tp 8: each rank holds 1/8 of every product and of both 128256-row embeddings, the norms whole:
# 32 x (218103808/8 + 8192) + 2 x 16032 x 4096 + 4096 = 1,004,015,616 bf16 weights)
"$LMF" plan --model llama3-8b --cluster h100-cluster --nodes 16 --tp 8 --seq 4096 --json \
  >"$WORK/plan.json" 2>"$WORK/plan.err" || fail "plan llama3-8b: $(cat "$WORK/plan.err")"
grep -q '"parameters": 8030261248' "$WORK/plan.json" && \
  awk 'match($0, /"weights": [0-9.e+]+/) { w = substr($0, RSTART + 11, RLENGTH - 11) + 0; ok = w > 2008031000 && w < 2008032400 } END { exit !ok }' \
    "$WORK/plan.json" && pass "plan prices llama3-8b's parameters and tensor-parallel weights" \
  || fail "plan llama3-8b: $(head -c 400 "$WORK/plan.json")"
"$LMF" bench --model llama-tiny --batch 2 --seq 16 --steps 1 --warmup-steps 0 --json >"$WORK/bench.json" \
  2>/dev/null && grep -q '"model": "llama-tiny"' "$WORK/bench.json" && pass "bench runs a Llama case" \
  || fail "bench llama-tiny"
finish
