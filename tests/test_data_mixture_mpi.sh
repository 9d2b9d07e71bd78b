#!/usr/bin/env bash
# A mixture across world sizes: a run at np=2 stopped at step 6 resumes at np=1 and at np=3;
# the losses continue those of the uninterrupted np=2 run within a relative 1e-4 (float sums in
# another order) and the loader ends where the reference's does (every source's epoch and
# position).
source "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null; then
  echo "test_data_mixture_mpi: skipped (no mpirun)"
  exit 77
fi
mpi() { local np="$1"; shift; timeout 120 "${MPIRUN[@]}" -np "$np" -x OMP_NUM_THREADS=1 "$LMF" "$@"; }
export OMP_NUM_THREADS=1
for n in small:3 mid:150 big:2000; do
  name=${n%%:*}
  for i in $(seq 1 "${n##*:}"); do echo "$name line $i: the quick brown fox jumps over the lazy dog."; done >"$WORK/$name.txt"
  "$LMF" data prepare --bytes --input "$WORK/$name.txt" --out "$WORK/$name" --val-fraction 0 --quiet \
    >/dev/null || fail "prepare $name"
done
MIX="0.2:$WORK/small/train.bin,0.5:$WORK/mid/train.bin,0.3:$WORK/big/train.bin"
# 12 rows of 16 tokens per step: np=2 x batch 6, np=1 x batch 6 x 2, np=3 x batch 4
common=(--model tiny --data "$MIX" --vocab-size 257 --steps 12 --seq 16 --global-batch 192
        --lr 3e-3 --warmup 2 --seed 5 --eval-every 0 --save-every 6 --sample-tokens 0 --quiet)
mpi 2 train "${common[@]}" --batch 6 --out "$WORK/ref" || fail "reference np=2"
mpi 2 train "${common[@]}" --batch 6 --out "$WORK/a" --stop-after 6 || fail "np=2 to step 6"
cp -a "$WORK/a" "$WORK/b"
"$LMF" train --resume "$WORK/a" --quiet --sample-tokens 0 || fail "resume at np=1"
mpi 3 train --resume "$WORK/b" --batch 4 --quiet --sample-tokens 0 || fail "resume at np=3"
state() { tr -d ' \n' <"$1/checkpoints/step_00000012/trainer_state.json" | grep -o '"loader":{[^}]*}'; }
for r in a:np=1 b:np=3; do
  run="$WORK/${r%%:*}" name=${r##*:}
  if losses_follow "$WORK/ref/metrics.jsonl" "$run/metrics.jsonl" 12 6; then
    pass "mixture resumed at $name: 12 losses, continuing the np=2 run within 1e-4"
  else
    fail "mixture resumed at $name: $(paste -d' ' <(losses "$WORK/ref/metrics.jsonl") <(losses "$run/metrics.jsonl") | tail -6 | tr '\n' ';')"
  fi
  p=$(state "$WORK/ref"); q=$(state "$run")
  [ -n "$p" ] && [ "$p" = "$q" ] && echo "$p" | grep -q '"sources":\[\[' \
    && pass "mixture resumed at $name: the loader state equals the reference's" \
    || fail "loader state at $name: $q, reference $p"
done
lmf_sanitizer_verdict
[ "$lmf_fail_count" -eq 0 ] || fail "sanitizer reports"
finish
