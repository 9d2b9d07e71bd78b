# Shared settings of the mpirun-driven tests (sourced by tests/test_parallel_mpi.sh, test_parallel_matches_single.sh, test_parallel_two_hosts.sh).
# One OpenMP thread per rank; more ranks than cores allowed; running as root allowed (CI);
# shared-memory transfers without cross-memory attach, which containers often forbid.
export OMP_NUM_THREADS=1
export OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)

lmf_fail_count=0
# lmf_check CONDITION_STATUS MESSAGE: count and report a failed check
lmf_check() {
    if [ "$1" -ne 0 ]; then
        echo "FAIL: $2" >&2
        lmf_fail_count=$((lmf_fail_count + 1))
    fi
}

# lmf_now: seconds since the epoch, with decimals
lmf_now() { date +%s.%N; }
# lmf_elapsed_below START LIMIT: status 0 when less than LIMIT seconds passed since START
lmf_elapsed_below() { awk -v s="$1" -v e="$(lmf_now)" -v l="$2" 'BEGIN { exit !(e - s < l) }'; }

# Sanitizer builds (-DLMF_SANITIZE=ON): Open MPI's own allocations show up as leaks from
# plugins it has already unloaded (no symbols, so tests/lsan.supp cannot name them). Reports go
# to files instead and are judged by lmf_sanitizer_verdict: any AddressSanitizer or
# UndefinedBehaviorSanitizer error, or a leak whose stack passes through lmforge's own code,
# fails the test. Harmless otherwise.
# The leak check at a rank's exit stops the rank's threads (Open MPI's among them) with a
# tracer thread, and that tracer itself sometimes dies ("Tracer caught signal 11": seen with its
# report once, and as the same abort of a resumed rank twice before, always after the run's work
# was done, only when other tests ran beside it). With abort_on_error it would
# abort a rank that ran correctly, so ranks exit instead (exitcode 0, which the leak reports
# need anyway) and the verdict, not the exit status, judges every report.
lmf_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lmf_san_dir=$(mktemp -d)
trap 'rm -rf "$lmf_san_dir"' EXIT
export ASAN_OPTIONS="log_path=$lmf_san_dir/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}:abort_on_error=0"
export LSAN_OPTIONS="exitcode=0:suppressions=$lmf_root/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

lmf_sanitizer_verdict() {
    local f bad=0
    for f in "$lmf_san_dir"/asan*; do
        [ -e "$f" ] || continue
        # an error, an undefined-behaviour report, or a CHECK of the sanitizer's own
        if grep -qE "ERROR: AddressSanitizer|runtime error:|Sanitizer CHECK failed" "$f"; then
            echo "FAIL: sanitizer error:" >&2
            cat "$f" >&2
            bad=1
        fi
        # the leak check's tracer died: that rank's leaks went unchecked, which is said, not
        # failed (the run itself is judged by its exit status and its results)
        if grep -q "LeakSanitizer has encountered a fatal error" "$f"; then
            echo "note: the leak check of one rank did not run: $(grep -m1 "Tracer caught\|fatal error" "$f")" >&2
        fi
        # leak reports are blank-line separated blocks; ours have frames in this source tree
        if awk -v root="$lmf_root" 'BEGIN { RS = "" }
                /(Direct|Indirect) leak/ && (index($0, root "/src/") || index($0, root "/tests/") ||
                                             / in lmf_/) { found = 1; print }
                END { exit !found }' "$f" >&2; then
            echo "FAIL: a leak in lmforge code ($f)" >&2
            bad=1
        fi
    done
    rm -f "$lmf_san_dir"/asan*
    lmf_check "$bad" "sanitizer report"
}
