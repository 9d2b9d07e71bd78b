#!/usr/bin/env bash
# Pipeline parallelism against data parallelism on one machine, measured in one run: the same
# model and global batch of M micro-batches trained by two ranks of one thread each as two
# data-parallel replicas (`mpirun -np 2`) and as a two-stage pipeline (`--pp 2`) with GPipe,
# 1F1B and ZB-H1, in alternating rounds. Prints each layout's median tokens/s (steps after the
# first two), the ratio to data parallelism, and the pipeline's measured bubble (rank 0's stage
# idle during the step's forwards and backwards) beside the schedule's own with equal forward,
# input-gradient and weight-gradient times (`lmforge plan --explain-schedule`: (P-1)/(M+P-1)
# for GPipe and 1F1B).
#   bench/pp_vs_dp.sh [LMFORGE] [MODEL] [BATCH] [SEQ] [M] [STEPS] [ROUNDS]
# Defaults: build/lmforge gpt2 2 256 8 6 2 (GPT-2 124M, micro-batches of 2 x 256, M = 8).
set -eu
lmf=${1:-build/lmforge}
model=${2:-gpt2}
batch=${3:-2}
seq=${4:-256}
M=${5:-8}
steps=${6:-6}
rounds=${7:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/mpi_runs.sh"
random_tokens "$work/tokens.bin"
# the global batch: M micro-batches through the pipeline, M / 2 on each data-parallel replica
gb=$((M * batch * seq))
run() { # NAME EXTRA...: one training run; its per-step lines go to $work/NAME.ROUND
  local name="$1"; shift
  mpirun --allow-run-as-root -np 2 --bind-to core "$lmf" train --model "$model" \
    --data "$work/tokens.bin" --batch "$batch" --seq "$seq" --global-batch "$gb" \
    --vocab-size 50257 --steps "$steps" --threads 1 --eval-every 0 --sample-tokens 0 \
    --log-every 1 --out "$work/run-$name" "$@" </dev/null 2>"$work/$name.$round" >/dev/null ||
    { echo "bench/pp_vs_dp.sh: the $name run failed:" >&2; tail -5 "$work/$name.$round" >&2; exit 1; }
  rm -rf "$work/run-$name"
}
for round in $(seq 1 "$rounds"); do
  run dp
  run gpipe --pp 2 --schedule gpipe
  run 1f1b --pp 2 --schedule 1f1b
  run zb --pp 2 --schedule zb
done
dp=$(field dp tok/s | median)
echo "model $model, micro-batches of $batch x $seq, M = $M, 2 ranks x 1 thread, $steps steps x $rounds rounds"
printf "%-16s %10s %8s %12s %12s\n" layout tok/s ratio bubble_% schedule_%
for name in dp gpipe 1f1b zb; do
  t=$(field "$name" tok/s | median)
  b=$(field "$name" bubble | median)
  label=$([ "$name" = dp ] && echo "data parallel" || echo "--pp 2 $name")
  sim=-
  [ "$name" = dp ] || sim=$("$lmf" plan --explain-schedule "$name" --pp 2 --micro-batches "$M" |
    sed -n 's/^bubble \([0-9.]*\)%.*/\1/p')
  awk -v l="$label" -v t="$t" -v d="$dp" -v b="${b:-nan}" -v s="$sim" -v n="$name" \
    'BEGIN { if (n == "dp") printf "%-16s %10.0f %8.3f %12s %12s\n", l, t, t / d, "-", "-";
             else printf "%-16s %10.0f %8.3f %12.1f %12.1f\n", l, t, t / d, b, s }'
done
