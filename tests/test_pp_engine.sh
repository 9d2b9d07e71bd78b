#!/usr/bin/env bash
# The pipeline engine under mpirun (tests/mpi/pp_engine.c): GPipe, 1F1B, interleaved 1F1B and ZB-H1 on
# 2 and 4 stages, both families, even and uneven layer splits, give the whole model's loss and
# gradients, and its evaluation loss on every stage through the forward-only pass (which leaves
# the gradients alone); shapes it cannot run are refused with a message saying what to change.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
build=${LMF_BUILD_DIR:-$(dirname "$1")}
prog=$build/mpi_pp_engine
if [ ! -x "$prog" ] || ! command -v mpirun >/dev/null; then
    echo "test_pp_engine: skipped (this build has no MPI)"
    exit 77
fi

# np schedule V M family [split]
while read -r np sched v m fam split; do
    out=$(timeout 120 "${MPIRUN[@]}" -np "$np" "$prog" "$sched" "$v" "$m" "$fam" $split </dev/null 2>&1)
    rc=$?
    lmf_check "$rc" "np=$np $sched V=$v M=$m $fam $split: exit code $rc: $out"
    echo "$out" | grep -q "pp_engine $sched P=$np V=$v M=$m $fam: ok"
    lmf_check $? "np=$np $sched V=$v M=$m $fam $split: no ok line: $out"
done <<'CASES'
1 1f1b 1 3 gpt2
2 gpipe 1 4 gpt2
2 1f1b 1 4 gpt2 3,5
2 1f1b 1 1 llama
2 1f1b 1 5 llama
2 interleaved 2 4 gpt2
2 interleaved 2 4 llama 1,3,2,2
4 1f1b 1 6 gpt2
4 gpipe 1 3 llama
2 zb 1 4 gpt2 3,5
4 zb 1 6 llama
CASES

# refusals: more chunks than layers, a split that does not add up
while read -r np sched v m split want; do
    args=()
    [ "$split" != - ] && args=("$split")
    out=$(timeout 60 "${MPIRUN[@]}" -np "$np" "$prog" "$sched" "$v" "$m" gpt2 "${args[@]}" </dev/null 2>&1)
    rc=$?
    [ "$rc" -eq 2 ]
    lmf_check $? "np=$np $sched V=$v $split: exit code $rc, want 2: $out"
    echo "$out" | grep -q "$want"
    lmf_check $? "np=$np $sched V=$v $split: no message '$want': $out"
done <<'CASES'
2 interleaved 8 8 - at least one layer
2 1f1b 1 4 3,4 adds up to 7 layers, the model has 8
CASES

# a stalled stage: the others stop the job after the 2 s time-out, naming the rank, the step,
# the virtual stage, the micro-batch and the direction they waited in
t0=$(lmf_now)
out=$(LMF_PP_TEST_STALL=1 timeout 60 "${MPIRUN[@]}" -x LMF_PP_TEST_STALL -np 2 "$prog" 1f1b 1 4 gpt2 </dev/null 2>&1)
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
lmf_check $? "stall: exit code $rc (want a failure, not a hang)"
lmf_elapsed_below "$t0" 25
lmf_check $? "stall: the job took too long to stop"
echo "$out" | grep -Eq "rank 0 of 2 \(step 1, pipeline stage 0, micro-batch [0-9]+, (forward|backward)\): receive: not complete after 2\.[0-9] s"
lmf_check $? "stall: no message naming rank, step, stage and micro-batch: $out"

lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_pp_engine: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_pp_engine: ok"
