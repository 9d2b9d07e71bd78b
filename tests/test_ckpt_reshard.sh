#!/usr/bin/env bash
# Universal resume: a checkpoint written at np=2 ZeRO-2 resumes at np=1 ZeRO-0 and at np=3 ZeRO-3
# (and one written at np=3 ZeRO-3 resumes at np=2 ZeRO-1); the losses continue those of the
# uninterrupted np=2 run within a relative 1e-4 (float sums in another order), the data order
# is the same (equal loader positions), and a changed global batch or sequence is refused.
source "$(dirname "$0")/lib/common.sh"
# MPI settings, and sanitizer reports judged by lmf_sanitizer_verdict (Open MPI's own leaks aside)
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null; then
  echo "test_ckpt_reshard: skipped (no mpirun)"
  exit 77
fi
mpi() { local np="$1"; shift; timeout 120 mpirun --allow-run-as-root --oversubscribe -np "$np" \
          -x OMP_NUM_THREADS=1 "$LMF" "$@"; }
export OMP_NUM_THREADS=1
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/data" || fail "prepare data"
# 12 rows of 32 tokens per step: np=2 x batch 6, np=1 x batch 6 x 2 micro-steps, np=3 x batch 4
common=(--model tiny --data "$WORK/data/data/train.bin" --vocab-size 257 --steps 20 --seq 32
        --global-batch 384 --lr 3e-3 --warmup 2 --seed 5 --eval-every 0 --save-every 5
        --sample-tokens 0 --quiet)

mpi 2 train "${common[@]}" --batch 6 --zero 2 --out "$WORK/ref" || fail "reference np=2 zero=2"
mpi 2 train "${common[@]}" --batch 6 --zero 2 --out "$WORK/a" --stop-after 10 || fail "np=2 zero=2 to step 10"
ix="$WORK/a/checkpoints/step_00000010/index.json"
grep -q '"world_size": 2' "$ix" && grep -q '"zero_stage": 2' "$ix" && \
  [ "$(grep -c '"kind":"shard"' "$ix")" -eq 2 ] && pass "step 10 has two shards from np=2 ZeRO-2" \
  || fail "index of step 10: $(head -c 600 "$ix")"
for r in b c; do cp -a "$WORK/a" "$WORK/$r"; done

# close RUN: every loss equals the reference's within 1e-4 relative (steps before 10 exactly)
close() {
  local name="$1" run="$2"
  local a b
  a=$(losses "$WORK/ref/metrics.jsonl"); b=$(losses "$run/metrics.jsonl")
  if losses_follow "$WORK/ref/metrics.jsonl" "$run/metrics.jsonl" 20 10; then
    pass "$name: 20 losses, continuing the reference within 1e-4"
  else
    fail "$name: losses $(paste -d' ' <(echo "$a") <(echo "$b") | tail -10 | tr '\n' ';')"
  fi
  # the same data order: the loader stands where the reference's does
  local p q
  p=$(grep -A3 '"loader"' "$WORK/ref/checkpoints/step_00000020/trainer_state.json" | tr -d ' \n')
  q=$(grep -A3 '"loader"' "$run/checkpoints/step_00000020/trainer_state.json" | tr -d ' \n')
  [ -n "$p" ] && [ "$p" = "$q" ] && pass "$name: same data position as the reference ($p)" \
    || fail "$name: data position $q, reference $p"
}

"$LMF" train --resume "$WORK/b" --zero 0 --quiet --sample-tokens 0 || fail "resume at np=1 zero=0"
close "np=2 zero=2 -> np=1 zero=0" "$WORK/b"
grep -q '"world_size": 1' "$WORK/b/checkpoints/step_00000020/index.json" \
  && pass "np=1 writes a one-shard checkpoint" || fail "np=1 checkpoint index"

mpi 3 train --resume "$WORK/c" --zero 3 --batch 4 --quiet --sample-tokens 0 --stop-after 15 \
  || fail "resume at np=3 zero=3"
[ "$(grep -c '"kind":"shard"' "$WORK/c/checkpoints/step_00000015/index.json")" -eq 3 ] \
  && pass "np=3 ZeRO-3 writes three shards" || fail "np=3 checkpoint index"
# and the ZeRO-3 checkpoint resumes at np=2 ZeRO-1
mpi 2 train --resume "$WORK/c" --zero 1 --batch 6 --quiet --sample-tokens 0 \
  || fail "resume of the np=3 zero=3 checkpoint at np=2 zero=1"
close "np=2 zero=2 -> np=3 zero=3 -> np=2 zero=1" "$WORK/c"

# a different number of tokens per step, or of tokens per row, would change the data order
cp -a "$WORK/a" "$WORK/d"
expect_error "other global batch refused" 1 "tokens per step.*keep --global-batch 384 and --seq 32" -- \
  "$LMF" train --resume "$WORK/d" --global-batch 192 --batch 6 --quiet --sample-tokens 0
if mpi 3 train --resume "$WORK/d" --zero 3 --quiet --sample-tokens 0 2>"$WORK/d.err"; then
  fail "np=3 with batch 6 (576 tokens per micro-step round) was accepted"
else
  grep -q "not a multiple of batch x seq x data-parallel ranks" "$WORK/d.err" && pass "np=3 needs another --batch" \
    || fail "np=3 batch 6: $(head -2 "$WORK/d.err")"
fi
# pre-emption under mpirun: SIGTERM to one rank (rank 1) is enough: all ranks finish the step,
# write the checkpoint together and exit 0; the run then resumes to the reference's end
timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 \
  -x OMP_NUM_THREADS=1 "$LMF" train --test-ckpt-write-delay 300 "${common[@]/--quiet/--log-every}" 1 \
  --batch 6 --zero 2 --out "$WORK/sig" >/dev/null 2>"$WORK/sig.err" &
pid=$!
for i in $(seq 200); do grep -q "^step 1/20" "$WORK/sig.err" && break; sleep 0.1; done
ranks=$(pgrep -P "$(pgrep -P "$pid" -x mpirun || echo "$pid")")
kill -TERM "$(echo "$ranks" | sed -n 2p)"
rc=0
wait "$pid" || rc=$?
s=$(grep -o "stopped by SIGTERM after step [0-9]*" "$WORK/sig.err" | grep -o '[0-9]*$')
if [ "$rc" -eq 0 ] && [ -n "$s" ] && [ "$(cat "$WORK/sig/checkpoints/latest")" = "$(printf 'step_%08d' "$s")" ]; then
  pass "SIGTERM to one of two ranks: exit 0 after step $s with its checkpoint"
else
  fail "SIGTERM under mpirun: exit $rc: $(grep -v '^step' "$WORK/sig.err" | tail -3)"
fi
mpi 2 train --resume "$WORK/sig" --quiet --sample-tokens 0 || fail "resume after SIGTERM"
close "np=2 pre-empted by SIGTERM and resumed" "$WORK/sig"

lmf_sanitizer_verdict
[ "$lmf_fail_count" -eq 0 ] || fail "sanitizer reports"
finish
