# Functions of the tests that compare a parallel run with one rank's (sourced after common.sh and
# mpi/common.sh by test_tp_matches_single.sh and test_pp_matches_single.sh).

# matches_setup LAYERS: token data in $WORK/data, a GPT-2 ($WORK/gpt2.json) and a Llama model
# ($WORK/llama.json) of LAYERS layers with odd-sized heads and widths, and in common[] the
# options every run shares (20 steps of 12 rows of 32 tokens)
matches_setup() {
  export OMP_NUM_THREADS=1
  make_corpus "$WORK/corpus"
  "$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
    --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/data" || fail "prepare data"
  cat >"$WORK/gpt2.json" <<J
{"model_type": "gpt2", "n_layer": $1, "n_head": 4, "n_embd": 48, "n_positions": 64, "vocab_size": 257}
J
  cat >"$WORK/llama.json" <<J
{"model_type": "llama", "num_hidden_layers": $1, "num_attention_heads": 4, "num_key_value_heads": 2,
 "hidden_size": 48, "intermediate_size": 40, "max_position_embeddings": 64, "vocab_size": 257,
 "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}
J
  common=(--data "$WORK/data/data/train.bin" --steps 20 --seq 32 --global-batch 384 --lr 3e-3
          --warmup 2 --seed 5 --eval-every 0 --sample-tokens 0 --quiet)
}

# mpi NP ARGS...: lmforge under mpirun, one thread per rank, NP ranks oversubscribed
mpi() { local np="$1"; shift; timeout 600 mpirun --allow-run-as-root --oversubscribe -np "$np" \
          -x OMP_NUM_THREADS=1 "$LMF" "$@" </dev/null; }

# series_close NAME WHAT KEY REF RUN N TOL: REF's and RUN's metrics.jsonl both hold N values of
# KEY, each of RUN's within TOL relative of REF's
series_close() {
  local name="$1" what="$2" key="$3" n="$6" tol="$7" a b
  a=$(grep -o "\"$key\": *[-0-9.e+]*" "$4/metrics.jsonl" | sed 's/.*: *//')
  b=$(grep -o "\"$key\": *[-0-9.e+]*" "$5/metrics.jsonl" | sed 's/.*: *//')
  if [ "$(echo "$a" | grep -c .)" -eq "$n" ] && [ "$(echo "$b" | grep -c .)" -eq "$n" ] &&
     paste <(echo "$a") <(echo "$b") |
     awk -v t="$tol" '{ d = $1 - $2; if (d < 0) d = -d; if (d > t * ($1 < 0 ? -$1 : $1)) exit 1 }'; then
    pass "$name: $n $what within $tol of one rank's"
  else
    fail "$name: $what $(paste -d' ' <(echo "$a") <(echo "$b") | tr '\n' ';')"
  fi
}

# same NAME REF RUN: every loss of RUN within 1e-5 relative of REF's, and the final weights close
same() {
  local name="$1" ref="$2" run="$3"
  series_close "$name" losses loss "$ref" "$run" 20 1e-5
  local d
  d=$(python3 "$LMF_TESTS/lib/st_diff.py" "$ref/model.safetensors" "$run/model.safetensors" 2>&1)
  if awk -v d="${d%% *}" 'BEGIN { exit !(d + 0 <= 2e-5) }' 2>/dev/null; then
    pass "$name: final weights within 2e-5 (largest difference $d)"
  else
    fail "$name: final weights: $d"
  fi
}

# same_val_losses NAME REF RUN N: RUN evaluated N times, each validation loss within 1e-5
# relative of REF's
same_val_losses() { series_close "$1" "validation losses" val_loss "$2" "$3" "$4" 1e-5; }

# same_samples NAME REF RUN N: RUN wrote N samples, at REF's steps and with REF's text
same_samples() {
  local name="$1" a b
  a=$(grep -o '"step": *[0-9]*, *"sample": *"[^"]*"' "$2/metrics.jsonl")
  b=$(grep -o '"step": *[0-9]*, *"sample": *"[^"]*"' "$3/metrics.jsonl")
  if [ "$(echo "$a" | grep -c .)" -eq "$4" ] && [ "$a" = "$b" ]; then
    pass "$name: $4 samples equal to one rank's"
  else
    fail "$name: samples differ: '$a' vs '$b'"
  fi
}

# refused NAME PATTERN COMMAND...: a non-zero exit and the message
refused() {
  local name="$1" pat="$2"; shift 2
  local rc=0
  "$@" >"$WORK/err.txt" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] && grep -q -e "$pat" "$WORK/err.txt"; then pass "$name: refused"
  else fail "$name: exit $rc: $(head -c 400 "$WORK/err.txt")"; fi
}
