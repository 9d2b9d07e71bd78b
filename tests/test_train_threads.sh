#!/usr/bin/env bash
# The threads a rank runs when --threads is not given: one process alone takes every processor
# it may run on; OMP_NUM_THREADS decides when set; --threads overrides both; ranks started
# together by mpirun share the machine's processors (at least one thread each), so more ranks
# than cores never multiply the threads (they did: every rank took all cores, and 4 ranks on 2
# cores ran 20 steps of a tiny model 30-90x slower than with one thread each).
source "$(dirname "$0")/lib/common.sh"
if ! command -v mpirun >/dev/null; then
  echo "test_train_threads: skipped (no mpirun)"
  exit 77
fi
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
unset OMP_NUM_THREADS OMP_THREAD_LIMIT OPENBLAS_NUM_THREADS
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/data" || fail "prepare data"
args=(--model tiny --vocab-size 257 --data "$WORK/data/data/train.bin" --steps 2 --batch 2 --seq 32 --global-batch 256
      --eval-every 0 --sample-tokens 0)
online=$(getconf _NPROCESSORS_ONLN)
mine=$(nproc) # the processors this process may run on (OMP_NUM_THREADS is unset)
n=0
# threads NAME EXPECTED COMMAND...: the start-up line of the run says EXPECTED threads/rank
threads() {
  local name="$1" want="$2"; shift 2
  n=$((n + 1))
  "$@" --out "$WORK/run$n" >"$WORK/out.txt" 2>&1 </dev/null || { fail "$name: $(tail -3 "$WORK/out.txt")"; return; }
  local got
  got=$(sed -n 's/.* \([0-9][0-9]*\) threads\/rank.*/\1/p' "$WORK/out.txt" | head -1)
  [ "$got" = "$want" ] && pass "$name: $want threads/rank" || fail "$name: ${got:-no} threads/rank, want $want: $(grep threads "$WORK/out.txt")"
}
threads "alone" "$mine" "$LMF" train "${args[@]}"
threads "alone, OMP_NUM_THREADS=3" 3 env OMP_NUM_THREADS=3 "$LMF" train "${args[@]}"
threads "alone, --threads 1 over OMP_NUM_THREADS=3" 1 env OMP_NUM_THREADS=3 "$LMF" train "${args[@]}" --threads 1
share=$((online / 4)); [ "$share" -gt "$mine" ] && share=$mine; [ "$share" -lt 1 ] && share=1
threads "4 ranks share the machine" "$share" "${MPIRUN[@]}" --bind-to none -np 4 "$LMF" train "${args[@]}"
threads "2 ranks, OMP_NUM_THREADS=1" 1 "${MPIRUN[@]}" --bind-to none -np 2 -x OMP_NUM_THREADS=1 "$LMF" train "${args[@]}"
threads "2 ranks, --threads 2" 2 "${MPIRUN[@]}" --bind-to none -np 2 "$LMF" train "${args[@]}" --threads 2
lmf_sanitizer_verdict
[ "$lmf_fail_count" -eq 0 ] || FAILS=$((FAILS + lmf_fail_count))
finish
