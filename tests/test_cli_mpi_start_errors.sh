#!/usr/bin/env bash
# A start-up error that comes before the ranks have a communicator (a bad flag, an unknown
# preset) is printed once under mpirun however many ranks, by rank 0; a rank whose rank 0 did
# not fail the same way (an MPMD job) still prints its own line, as does a rank whose launcher
# keeps the job going; without a launcher the line is printed at once.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
LMF=${1:?usage: test_cli_mpi_start_errors.sh PATH_TO_lmforge}

# count_lines TEXT PATTERN: lines of TEXT holding PATTERN
count_lines() { printf '%s\n' "$1" | grep -c -- "$2"; }

# no launcher: printed, exit 2
out=$(env -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_RANK "$LMF" train --lr abc 2>&1)
rc=$?
[ "$rc" -eq 2 ] && [ "$(count_lines "$out" "error: --lr expects a number, got 'abc'")" -eq 1 ]
lmf_check $? "without a launcher: rc $rc, output: $out"

# a rank 1 whose launcher does not end the job (its variables, no mpirun): still printed
out=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 "$LMF" plan --model nosuch --cluster local 2>&1)
rc=$?
[ "$rc" -eq 2 ] && [ "$(count_lines "$out" "lmforge plan: error: unknown model preset 'nosuch'")" -eq 1 ]
lmf_check $? "rank 1 of a launcher that keeps the job: rc $rc, output: $out"

if ! command -v mpirun >/dev/null || [ ! -x "$(dirname "$LMF")/mpi_comm_check" ]; then
    [ "$lmf_fail_count" -eq 0 ] || exit 1
    echo "test_cli_mpi_start_errors: skipped the mpirun cases (this build has no MPI)"
    exit 77
fi

# every rank fails the same way: one line, the job fails
for np in 2 3; do
    out=$(timeout 60 "${MPIRUN[@]}" -np "$np" "$LMF" train --lr abc 2>&1)
    rc=$?
    n=$(count_lines "$out" "lmforge train: error: --lr expects a number, got 'abc'")
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$n" -eq 1 ]
    lmf_check $? "train --lr abc on $np ranks: rc $rc, $n lines: $out"
done
out=$(timeout 60 "${MPIRUN[@]}" -np 3 "$LMF" plan --model nosuch --cluster local 2>&1)
rc=$?
n=$(count_lines "$out" "lmforge plan: error: unknown model preset 'nosuch'")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$n" -eq 1 ]
lmf_check $? "plan --model nosuch on 3 ranks: rc $rc, $n lines: $out"

# rank 0 runs something else (an MPMD job): rank 1's own error is printed, and the job ends
out=$(timeout 60 "${MPIRUN[@]}" -np 1 sleep 30 : -np 1 "$LMF" train --steps xyz 2>&1)
rc=$?
n=$(count_lines "$out" "lmforge train: error: --steps expects")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$n" -eq 1 ]
lmf_check $? "rank 1 failing alone: rc $rc, $n lines: $out"

lmf_sanitizer_verdict
[ "$lmf_fail_count" -eq 0 ] || exit 1
echo "test_cli_mpi_start_errors: ok"
