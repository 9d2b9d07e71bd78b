# Shared by the two-rank layout benchmarks (sourced by bench/tp_vs_dp.sh and bench/pp_vs_dp.sh):
# one thread per rank, Open MPI as root with its default shared-memory transport (set
# OMPI_MCA_btl_vader_single_copy_mechanism=none where a container forbids cross-memory attach:
# large messages then move only while a rank is inside an MPI call), a token file of random
# GPT-2 ids, and the medians of the progress lines' fields.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# random_tokens FILE: 2^20 random GPT-2 token ids in an llm.c token file (the speed does not
# depend on the text)
random_tokens() {
  python3 - "$1" <<'PY'
import random, struct, sys
n = 1 << 20
random.seed(1)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
    f.write(struct.pack(f"<{n}H", *(random.randrange(50257) for _ in range(n))))
PY
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# field NAME KEY: the values of KEY (a trailing % dropped) on the step lines after step 2 of
# $work/NAME.* (every round)
field() {
  cat "$work/$1".* | grep '^step [0-9]*/' | awk -v k="$2" '{ split($2, s, "/"); if (s[1] <= 2) next;
    for (i = 1; i < NF; i++) if ($i == k) { v = $(i + 1); sub(/%$/, "", v); print v } }'
}
