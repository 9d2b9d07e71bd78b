#!/usr/bin/env bash
# lmforge train under mpirun when one rank differs: a rank that cannot start (missing data)
# stops every rank within seconds with its own message, ranks started with different options
# or data are refused with the options and ranks named, such a start-up failure is printed
# once however many ranks (2, 3) and every rank exits non-zero, rank 0 failing alone before
# the first step (its dashboard's port taken) ends the job at once, a checkpoint write failing
# on rank 1, on a read-only or full disk is reported with the failing rank named, a text
# --prompt without a tokenizer is refused before the training, and a rank failing after the start
# stops the job at once instead of leaving the others waiting for --comm-timeout (300 s); a
# graceful SIGTERM to every rank stops them without a word about another rank failing; a rank
# stopped by SIGSTOP is the one named when the others time out.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
LMF=${1:?usage: test_train_mpi_errors.sh PATH_TO_lmforge}
if [ ! -x "$(dirname "$LMF")/mpi_comm_check" ] || ! command -v mpirun >/dev/null; then
    echo "test_train_mpi_errors: skipped (this build has no MPI)"
    exit 77
fi
WORK=$(mktemp -d)
trap 'umount "$WORK/mnt/ro" "$WORK/mnt/full" 2>/dev/null; rm -rf "$WORK" "$lmf_san_dir"' EXIT

for i in $(seq 1 3000); do echo "line $i of some text to make tokens from, with words"; done >"$WORK/a.txt"
for i in $(seq 1 3000); do echo "another line $i, of other text to make tokens from"; done >"$WORK/b.txt"
"$LMF" data prepare --bytes --val-fraction 0 --input "$WORK/a.txt" --out "$WORK/a" >/dev/null 2>&1 &&
    "$LMF" data prepare --bytes --val-fraction 0 --input "$WORK/b.txt" --out "$WORK/b" >/dev/null 2>&1
lmf_check $? "preparing the token files"
A=(train --model tiny --vocab-size 320 --seq 32 --batch 2 --steps 4 --threads 1
   --sample-tokens 0 --eval-every 0 --quiet)

# run NAME SECONDS rank0-args -- rank1-args: both sides of an MPMD job; sets $out, $rc
run() {
    local name=$1 limit=$2; shift 2
    local r0=() r1=()
    while [ "$1" != "--" ]; do r0+=("$1"); shift; done
    shift
    r1=("$@")
    local t0; t0=$(lmf_now)
    out=$(timeout 60 "${MPIRUN[@]}" -np 1 "$LMF" "${A[@]}" "${r0[@]}" : -np 1 "$LMF" "${A[@]}" "${r1[@]}" 2>&1)
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
    lmf_check $? "$name: exit code $rc (want a failure, not success or a hang): $out"
    lmf_elapsed_below "$t0" "$limit"
    lmf_check $? "$name: the job took more than $limit s to stop: $out"
}
want() { echo "$out" | grep -q -e "$2"; lmf_check $? "$1: no '$2' in: $out"; }

d=$WORK/a/train.bin
run "missing data on rank 1" 20 --data "$d" --out "$WORK/r1" -- --data /nonexistent.bin --out "$WORK/r1"
want "missing data on rank 1" "rank 1 of 2: cannot open token file /nonexistent.bin: No such file"

run "different options" 20 --data "$d" --out "$WORK/r2" -- --data "$d" --out "$WORK/r2" \
    --lr 0.002 --grad-clip 0.5 --seed 7 --batch 4 --no-shuffle --kernels ref --recompute full
for f in "--lr: rank 0 has '0.001', rank 1 has '0.002'" "--grad-clip: rank 0 has '1', rank 1 has '0.5'" \
         "--seed: rank 0 has '1337', rank 1 has '7'" "--batch: rank 0 has '2', rank 1 has '4'" \
         "--no-shuffle: rank 0 has 'off', rank 1 has 'on'" "--kernels: rank 0 has 'fast', rank 1 has 'ref'" \
         "--recompute:"; do
    want "different options" "$f"
done
run "different data and run settings" 20 --data "$d" --out "$WORK/r3" -- --data "$WORK/b/train.bin" \
    --out "$WORK/r3" --zero 1 --steps 5 --save-every 2 --model mini
for f in "--data: rank 0 has '1 files, [0-9]* tokens, content hash [0-9a-f]*', rank 1 has" \
         "--zero: rank 0 has '0', rank 1 has '1'" "--steps: rank 0 has '4', rank 1 has '5'" \
         "--save-every: rank 0 has '0', rank 1 has '2'" "--model/--config.*n_layer 2.*differs: rank 1"; do
    want "different data and run settings" "$f"
done
echo "$out" | grep -q "MPI_ERR"
[ $? -ne 0 ]; lmf_check $? "different data: a raw MPI error: $out"

# a start-up failure every rank learns (lmf_comm_agree, lmf_comm_agree_values) is printed once,
# by rank 0, whichever rank failed, and every rank still exits non-zero: mpirun is told not to
# end the job at the first failed rank, so that each rank's own exit code is recorded
# once NAME NP PATTERN -- per-rank arguments (RANK in them is replaced by the rank's number)
once() {
    local name=$1 np=$2 pat=$3; shift 4
    rm -f "$WORK"/rc.*
    out=$(timeout 60 "${MPIRUN[@]}" --mca orte_abort_on_non_zero_status 0 -np "$np" bash -c \
          'r=$OMPI_COMM_WORLD_RANK; "${@//RANK/$r}"; echo $? >"'"$WORK"'/rc.$r"' _ "$LMF" "$@" 2>&1)
    local lines; lines=$(echo "$out" | grep -c "lmforge train: error")
    [ "$lines" -eq 1 ]; lmf_check $? "$name (-np $np): $lines error lines, want 1: $out"
    want "$name (-np $np)" "$pat"
    local r
    for r in $(seq 0 $((np - 1))); do
        [ -s "$WORK/rc.$r" ] && [ "$(cat "$WORK/rc.$r")" -ne 0 ]
        lmf_check $? "$name (-np $np): rank $r exited with '$(cat "$WORK/rc.$r" 2>/dev/null)', want non-zero"
    done
}
for np in 2 3; do
    once "missing data on every rank" "$np" "error: rank 0 of $np: cannot open token file /nonexistent.bin" -- \
        "${A[@]}" --data /nonexistent.bin --out "$WORK/o1"
    last=$((np - 1))
    # the last rank alone reads a missing file: its message, printed by rank 0
    for r in $(seq 0 $((last - 1))); do cp "$d" "$WORK/a/train$r.bin"; done
    rm -f "$WORK/a/train$last.bin"
    once "missing data on rank $last" "$np" "error: rank $last of $np: cannot open token file $WORK/a/train$last.bin" -- \
        "${A[@]}" --data "$WORK/a/trainRANK.bin" --out "$WORK/o2"
    once "different options" "$np" "error: the ranks were started with different options: --seed: rank 0 has '0', rank 1 has '1'" -- \
        "${A[@]}" --data "$d" --seed RANK --out "$WORK/o3"
done

# rank 0 alone fails after the trainer is made, before the first step (the dashboard's port is
# taken): the job ends at once with its message instead of rank 0 waiting in MPI_Finalize for
# ranks that wait in the first step's collective for rank 0
if command -v python3 >/dev/null; then
    python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(60)' >"$WORK/port" &
    holder=$!
    for _ in $(seq 1 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
    port=$(cat "$WORK/port")
    t0=$(lmf_now)
    out=$(timeout 60 "${MPIRUN[@]}" -np 2 "$LMF" "${A[@]}" --data "$d" --serve "$port" --out "$WORK/busy" 2>&1)
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; lmf_check $? "port taken: exit code $rc (want a failure, not a hang): $out"
    lmf_elapsed_below "$t0" 20; lmf_check $? "port taken: the job took more than 20 s to stop: $out"
    want "port taken" "cannot listen on 127.0.0.1 port $port"
    kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
else
    echo "port taken case skipped (no python3 to hold a port)"
fi

# a checkpoint that rank 1 cannot write: the message every rank prints names rank 1, once
run "rank 1 cannot write its checkpoint shard" 30 --data "$d" --out "$WORK/f1" --save-every 2 \
    --test-ckpt-fail-rank 1 -- --data "$d" --out "$WORK/f1" --save-every 2 --test-ckpt-fail-rank 1
want "rank 1 cannot write" "not written (the previous one is intact): rank 1 of 2: cannot write .*shard-00001-of-00002"
echo "$out" | grep -q "rank 0 of 2: rank 1 of 2"
[ $? -ne 0 ]; lmf_check $? "rank 1 cannot write: rank 0 named before rank 1: $out"

# a run directory on a read-only file system, and a disk too small for the first checkpoint
# (small tmpfs mounts, where mounting is permitted)
mnt=$WORK/mnt
mkdir -p "$mnt/ro" "$mnt/full"
if mount -t tmpfs -o size=1m,ro tmpfs "$mnt/ro" 2>/dev/null; then
    run "read-only run directory" 20 --data "$d" --out "$mnt/ro/run" -- --data "$d" --out "$mnt/ro/run"
    want "read-only run directory" "cannot create directory $mnt/ro/run: Read-only file system"
    n=$(echo "$out" | grep -c "lmforge train: error"); [ "$n" -eq 1 ]
    lmf_check $? "read-only run directory: $n error lines, want 1: $out"
    umount "$mnt/ro"
    mount -t tmpfs -o size=300k tmpfs "$mnt/full"
    run "full disk" 30 --data "$d" --out "$mnt/full/run" --save-every 2 -- --data "$d" --out "$mnt/full/run" --save-every 2
    want "full disk" "checkpoint step 2 not written (the previous one is intact): rank [01] of 2: cannot write .*: no space left on device"
    [ ! -e "$mnt/full/run/checkpoints/latest" ]; lmf_check $? "full disk: a checkpoint appeared"
    umount "$mnt/full"
else
    echo "read-only and full disk cases skipped (mounting a tmpfs is not permitted here)"
fi

# a text prompt for the final sample, and the run (on --data) has no tokenizer: refused before
# the training instead of after it, once, and nothing is left behind
out=$(timeout 60 "${MPIRUN[@]}" -np 2 "$LMF" "${A[@]}" --prompt hello --sample-tokens 5 \
      --data "$d" --out "$WORK/p1" 2>&1)
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; lmf_check $? "text prompt: exit code $rc: $out"
want "text prompt" "error: --prompt is text but $WORK/p1 has no tokenizer to encode it"
n=$(echo "$out" | grep -c "lmforge train: error"); [ "$n" -eq 1 ]
lmf_check $? "text prompt: $n error lines, want 1: $out"
[ ! -e "$WORK/p1" ]; lmf_check $? "text prompt: the run started: $(ls "$WORK/p1" 2>/dev/null)"

# rank 0 cannot open metrics.jsonl once training starts (a link into a missing directory, which
# is no run's evidence); rank 1 is already in step 1
mkdir -p "$WORK/r4"
ln -s "$WORK/missing/metrics.jsonl" "$WORK/r4/metrics.jsonl"
run "rank 0 fails after the start" 30 --data "$d" --out "$WORK/r4" -- --data "$d" --out "$WORK/r4"
want "rank 0 fails after the start" "rank 0 of 2.*metrics.jsonl"

# a graceful stop under mpirun: SIGTERM to each rank (as Slurm sends it to every task) while
# the ranks agree between micro-steps: they stop together with a checkpoint, and no rank
# claims that another one failed
for trial in 1; do
    run_dir=$WORK/g$trial
    timeout 120 "${MPIRUN[@]}" -np 2 "$LMF" "${A[@]/--quiet/--log-every}" 1 --data "$d" \
        --out "$run_dir" --steps 100000 --grad-accum 20 >"$WORK/g.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do grep -q "^step 1/" "$WORK/g.out" && break; sleep 0.1; done
    ranks=$(pgrep -P "$(pgrep -P "$pid" -x mpirun || echo "$pid")")
    kill -TERM $ranks
    wait "$pid"
    rc=$?
    out=$(cat "$WORK/g.out")
    [ "$rc" -eq 0 ]; lmf_check $? "graceful SIGTERM $trial: exit $rc: $out"
    want "graceful SIGTERM $trial" "stopped by SIGTERM after step [0-9]*; checkpoint saved"
    echo "$out" | grep -q "another rank failed"
    [ $? -ne 0 ]; lmf_check $? "graceful SIGTERM $trial: a rank says another one failed: $out"
done

# a rank that stalls (SIGSTOP) after a few steps: the others time out (--comm-timeout 3), ask
# every rank whether it is there, and name the stopped one
run_dir=$WORK/stall
t0=$(lmf_now)
timeout 60 "${MPIRUN[@]}" -np 2 "$LMF" "${A[@]/--quiet/--log-every}" 1 --data "$d" --out "$run_dir" \
    --steps 100000 --comm-timeout 3 >"$WORK/s.out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "^step 3/" "$WORK/s.out" && break; sleep 0.1; done
ranks=$(pgrep -P "$(pgrep -P "$pid" -x mpirun || echo "$pid")")
victim=$(echo "$ranks" | tail -1)
vrank=$(tr '\0' '\n' <"/proc/$victim/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
kill -STOP "$victim"
wait "$pid"
rc=$?
out=$(cat "$WORK/s.out")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; lmf_check $? "SIGSTOP: exit code $rc (want a failure, not a hang): $out"
lmf_elapsed_below "$t0" 40; lmf_check $? "SIGSTOP: the job took too long to stop"
want "SIGSTOP" "not complete after 3\.[0-9] s .*; rank $vrank did not answer within 1\.0 s: stopped (SIGSTOP)"
other=$((1 - vrank))
echo "$out" | grep -q "rank $other did not answer"
[ $? -ne 0 ]; lmf_check $? "SIGSTOP: the running rank $other is blamed: $out"

lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_train_mpi_errors: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_train_mpi_errors: ok"
