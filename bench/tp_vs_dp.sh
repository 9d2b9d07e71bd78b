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
. "$(dirname "$0")/mpi_runs.sh"
random_tokens "$work/tokens.bin"
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
