# Shared settings of the mpirun-driven tests (sourced by tests/test_comm_mpi.sh, test_dist_*.sh).
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
