#!/usr/bin/env bash
# Data-parallel training equals serial training: np = 1, 2, 3 x ZeRO 0..3, 20 steps (and the
# Llama family at np = 2 x ZeRO 0..3, 10 steps), same
# seed, data and global batch; every step's loss within 1e-5 (relative) of the serial run and
# the final weights within 1e-4 (absolute), checked by tests/mpi/ddp_gpt.c on rank 0.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
build=${LMF_BUILD_DIR:-$(dirname "$1")}
prog=$build/mpi_ddp_gpt
if [ ! -x "$prog" ] || ! command -v mpirun >/dev/null; then
    echo "test_parallel_matches_single: skipped (this build has no MPI)"
    exit 77
fi

for np in 1 2 3; do
    for zero in 0 1 2 3; do
        # small buckets (8 KB) so every layer is reduced on its own, overlapping the backward
        out=$(timeout 120 "${MPIRUN[@]}" -np "$np" "$prog" "$zero" 20 8192 2>&1)
        rc=$?
        lmf_check "$rc" "np=$np zero=$zero: exit code $rc: $out"
        echo "$out" | grep -q "ddp_gpt zero=$zero np=$np: ok"
        lmf_check $? "np=$np zero=$zero: no ok line: $out"
        echo "$out" | grep "final weights" | sed "s/^/np=$np zero=$zero: /"
    done
done
# the Llama family over the same engine: 2 ranks, every ZeRO stage
for zero in 0 1 2 3; do
    out=$(timeout 120 "${MPIRUN[@]}" -np 2 "$prog" "$zero" 10 8192 llama 2>&1)
    rc=$?
    lmf_check "$rc" "llama np=2 zero=$zero: exit code $rc: $out"
    echo "$out" | grep -q "ddp_gpt zero=$zero np=2: ok"
    lmf_check $? "llama np=2 zero=$zero: no ok line: $out"
    echo "$out" | grep "final weights" | sed "s/^/llama np=2 zero=$zero: /"
done
lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_parallel_matches_single: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_parallel_matches_single: ok"
