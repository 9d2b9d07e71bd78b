#!/usr/bin/env bash
# Communicator and data-parallel engine under mpirun with 1, 2 and 3 ranks: collectives on odd,
# uneven and empty sizes, non-blocking overlap, ZeRO 0-3 against a serial reference, and
# failures (a rank missing a collective, a rank killed) that must stop every rank in bounded time.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
build=${LMF_BUILD_DIR:-$(dirname "$1")}
prog=$build/mpi_comm_check
if [ ! -x "$prog" ] || ! command -v mpirun >/dev/null; then
    echo "test_parallel_mpi: skipped (this build has no MPI)"
    exit 77
fi

for np in 1 2 3; do
    for mode in collectives engine; do
        out=$(timeout 120 "${MPIRUN[@]}" -np "$np" "$prog" "$mode" 2>&1)
        rc=$?
        lmf_check "$rc" "np=$np $mode: exit code $rc: $out"
        echo "$out" | grep -q "comm_check $mode: ok ($np ranks)"
        lmf_check $? "np=$np $mode: no ok line: $out"
    done
done

# A rank misses the collective of step 17: the others time out after 2 s, name themselves,
# the operation and the step, and stop the job (well before the 30 s the late rank sleeps).
for np in 2 3; do
    t0=$(lmf_now)
    out=$(timeout 60 "${MPIRUN[@]}" -np "$np" "$prog" timeout 2>&1)
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
    lmf_check $? "np=$np timeout: exit code $rc (want a failure, not a hang)"
    lmf_elapsed_below "$t0" 20
    lmf_check $? "np=$np timeout: the job took too long to stop"
    echo "$out" | grep -Eq "rank [0-9] of $np \(step 17\): allreduce: not complete after 2\.[0-9] s"
    lmf_check $? "np=$np timeout: no time-out message naming rank, operation and step: $out"
done

# Rank 1 is killed at step 3: mpirun names it, the survivors report where they were, with the
# default SIGTERM action and with a program's own SIGTERM handler installed before or after the
# communicator (a trainer's graceful stop).
for mode in die die-handler-before die-handler-after; do
    t0=$(lmf_now)
    out=$(timeout 60 "${MPIRUN[@]}" -np 3 "$prog" "$mode" 2>&1)
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
    lmf_check $? "$mode: exit code $rc (want a failure, not a hang)"
    lmf_elapsed_below "$t0" 20
    lmf_check $? "$mode: the job took too long to stop"
    echo "$out" | grep -q "rank 1 .*exited on signal 9"
    lmf_check $? "$mode: the dead rank is not named: $out"
    echo "$out" | grep -Eq "rank [02] of 3 \(step 3\): stopped by signal 15 while waiting in allreduce"
    lmf_check $? "$mode: no survivor reports the step: $out"
done

lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_parallel_mpi: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_parallel_mpi: ok"
