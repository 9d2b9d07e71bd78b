#!/usr/bin/env bash
# Tensor parallelism against data parallelism on one machine, measured in one run: the same
# model, batch and sequence trained by two ranks of one thread each as two data-parallel
# replicas (`mpirun -np 2`), as one tensor-parallel pair (`--tp 2`) and with sequence
# parallelism (`--tp 2 --sp`), in alternating rounds. Prints each layout's median tokens/s
# (steps after the first two), the ratio to data parallelism, the time per step in
# tensor-parallel collectives, and each rank's activation memory from the trainer's start-up
# line.
#   bench/tp_vs_dp.sh [LMFORGE] [MODEL] [BATCH] [SEQ] [STEPS] [ROUNDS]
# Defaults: build/lmforge gpt2 8 256 6 2 (GPT-2 124M, B=8, T=256).
set -eu
lmf=${1:-build/lmforge}
model=${2:-gpt2}
batch=${3:-8}
seq=${4:-256}
steps=${5:-6}
rounds=${6:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# random GPT-2 token ids in an llm.c token file: the speed does not depend on the text
python3 - "$work/tokens.bin" <<'PY'
import random, struct, sys
n = 1 << 20
random.seed(1)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
    f.write(struct.pack(f"<{n}H", *(random.randrange(50257) for _ in range(n))))
PY
# the global batch: two replicas' micro-batches, or one pair's micro-batch twice
gb=$((2 * batch * seq))
run() { # NAME EXTRA...: one training run; its per-step lines go to $work/NAME.ROUND
  local name="$1"; shift
  mpirun --allow-run-as-root -np 2 --bind-to core "$lmf" train --model "$model" \
    --data "$work/tokens.bin" --batch "$batch" --seq "$seq" --global-batch "$gb" \
    --vocab-size 50257 --steps "$steps" --threads 1 --eval-every 0 --sample-tokens 0 \
    --log-every 1 --out "$work/run-$name" "$@" </dev/null 2>"$work/$name.$round" >/dev/null ||
    { echo "bench/tp_vs_dp.sh: the $name run failed:" >&2; tail -5 "$work/$name.$round" >&2; exit 1; }
  rm -rf "$work/run-$name"
}
for round in $(seq 1 "$rounds"); do
  run dp
  run tp --tp 2
  run tpsp --tp 2 --sp
done
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
field() { # NAME KEY: the values of KEY on the step lines after step 2, every round
  cat "$work/$1".* | grep '^step [0-9]*/' | awk -v k="$2" '{ split($2, s, "/"); if (s[1] <= 2) next;
    for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'
}
act() { grep -o 'activations [0-9.]* MB' "$work/$1.1" | head -1 | awk '{ print $2 }'; }
dp=$(field dp tok/s | median)
echo "model $model, batch $batch x $seq, 2 ranks x 1 thread, $steps steps x $rounds rounds"
printf "%-22s %10s %8s %14s %16s\n" layout tok/s ratio tp_comm_ms/step activations_MB
for name in dp tp tpsp; do
  t=$(field "$name" tok/s | median)
  c=$(field "$name" tp_comm_ms | median)
  a=$(act "$name")
  label=$([ "$name" = dp ] && echo "data parallel" || ([ "$name" = tp ] && echo "--tp 2" || echo "--tp 2 --sp"))
  awk -v l="$label" -v t="$t" -v d="$dp" -v c="${c:-0}" -v a="$a" -v ad="$(act dp)" \
    'BEGIN { printf "%-22s %10.0f %8.3f %14.1f %10.1f (%.2fx)\n", l, t, t / d, c, a, a / ad }'
done
