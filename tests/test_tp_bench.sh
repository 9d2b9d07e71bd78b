#!/usr/bin/env bash
# `lmforge bench --tp`: a tensor-parallel group times the training step of one model split over
# its ranks and reports the time in the group's collectives; a launch of the wrong size and
# --sp without --tp are refused with one line.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
LMF=${1:?usage: test_tp_bench.sh PATH_TO_lmforge}
if [ ! -x "$(dirname "$LMF")/mpi_comm_check" ] || ! command -v mpirun >/dev/null; then
    echo "test_tp_bench: skipped (this build has no MPI)"
    exit 77
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
jnum() { grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: *//'; }
positive() { awk -v x="$1" 'BEGIN { exit !(x > 0) }'; }

for sp in "" --sp; do
    timeout 300 "${MPIRUN[@]}" -np 2 "$LMF" bench --tp 2 $sp --model tiny --batch 2 --seq 32 \
        --steps 2 --warmup-steps 1 --threads 1 --json >"$WORK/b.json" 2>"$WORK/b.err" </dev/null
    lmf_check $? "bench --tp 2 $sp: $(tail -3 "$WORK/b.err")"
    [ "$(grep -c '"model"' "$WORK/b.json")" = 1 ]
    lmf_check $? "bench --tp 2 $sp printed one case (rank 0 only): $(cat "$WORK/b.json")"
    grep -q "\"tp\": 2, \"sp\": $([ -n "$sp" ] && echo true || echo false)" "$WORK/b.json"
    lmf_check $? "bench --tp 2 $sp: the layout is not in the output: $(cat "$WORK/b.json")"
    positive "$(jnum "$WORK/b.json" tp_comm_s)" && positive "$(jnum "$WORK/b.json" tp_collectives)" \
        && positive "$(jnum "$WORK/b.json" tokens_per_s)"
    lmf_check $? "bench --tp 2 $sp: no collective time, calls or throughput: $(cat "$WORK/b.json")"
done
# the text report names the collectives' time
timeout 300 "${MPIRUN[@]}" -np 2 "$LMF" bench --tp 2 --model tiny --batch 2 --seq 32 --steps 1 \
    --warmup-steps 0 --threads 1 >"$WORK/t.out" 2>&1 </dev/null
lmf_check $? "bench --tp 2 (text): $(tail -3 "$WORK/t.out")"
grep -qE "tensor-parallel collectives: [0-9.]+ ms per step" "$WORK/t.out"
lmf_check $? "the text report has no collective time: $(cat "$WORK/t.out")"

# refusals: one line, exit 2
"$LMF" bench --tp 2 --model tiny --batch 2 --seq 32 --steps 1 >"$WORK/r.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "needs 2 ranks" "$WORK/r.out" && [ "$(wc -l <"$WORK/r.out")" = 1 ]
lmf_check $? "--tp 2 on one rank: exit $rc, $(cat "$WORK/r.out")"
"$LMF" bench --sp --model tiny --steps 1 >"$WORK/r.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "needs --tp" "$WORK/r.out"
lmf_check $? "--sp without --tp: exit $rc, $(cat "$WORK/r.out")"
lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_tp_bench: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_tp_bench: ok"
