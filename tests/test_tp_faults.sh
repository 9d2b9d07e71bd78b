#!/usr/bin/env bash
# A tensor-parallel rank that stalls (SIGSTOP) inside the group's collectives: the other rank
# gives up after --comm-timeout, names itself, the tensor-parallel group, the step and the
# stopped rank, and the job ends instead of hanging.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
LMF=${1:?usage: test_tp_faults.sh PATH_TO_lmforge}
if [ ! -x "$(dirname "$LMF")/mpi_comm_check" ] || ! command -v mpirun >/dev/null; then
    echo "test_tp_faults: skipped (this build has no MPI)"
    exit 77
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
for i in $(seq 1 3000); do echo "line $i of some text to make tokens from, with words"; done >"$WORK/a.txt"
"$LMF" data prepare --bytes --val-fraction 0 --input "$WORK/a.txt" --out "$WORK/a" >/dev/null 2>&1
lmf_check $? "preparing the token file"

t0=$(lmf_now)
timeout 90 "${MPIRUN[@]}" -np 2 "$LMF" train --model tiny --vocab-size 320 --seq 32 --batch 2 \
    --threads 1 --sample-tokens 0 --eval-every 0 --log-every 1 --tp 2 --data "$WORK/a/train.bin" \
    --out "$WORK/run" --steps 100000 --comm-timeout 3 >"$WORK/s.out" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 600); do grep -q "^step 3/" "$WORK/s.out" && break; sleep 0.1; done
ranks=$(pgrep -P "$(pgrep -P "$pid" -x mpirun || echo "$pid")")
victim=$(echo "$ranks" | tail -1)
vrank=$(tr '\0' '\n' <"/proc/$victim/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
kill -STOP "$victim"
wait "$pid"
rc=$?
out=$(cat "$WORK/s.out")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
lmf_check $? "exit code $rc (want a failure, not a hang): $out"
lmf_elapsed_below "$t0" 60
lmf_check $? "the job took too long to stop"
other=$((1 - vrank))
# the survivor waits in one of the group's collectives (named with the group), or, less often,
# in the step's loss all-reduce over the whole job (named with the world rank alone)
echo "$out" | grep -qE "rank $other of 2( in tensor-parallel group 0 \(world rank $other\))? \(step [0-9]+\): [a-z_]+: .*not complete after 3\.[0-9] s.*rank $vrank did not answer within 1\.0 s: stopped \(SIGSTOP\)"
lmf_check $? "the message does not name the rank, group, step and stopped rank: $out"
lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_tp_faults: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_tp_faults: ok"
