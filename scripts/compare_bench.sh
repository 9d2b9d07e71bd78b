#!/usr/bin/env bash
# Is one lmforge build slower than another? `lmforge bench` of both, alternated in one run so
# that both see the same machine, several rounds; the median tokens/s per case and their ratio.
#   scripts/compare_bench.sh OLD_LMFORGE NEW_LMFORGE [ROUNDS] [bench flags...]
# e.g. scripts/compare_bench.sh /tmp/old/lmforge build/lmforge 5 --steps 3 --warmup-steps 1
set -euo pipefail
old="${1:?usage: compare_bench.sh OLD_LMFORGE NEW_LMFORGE [ROUNDS] [bench flags...]}"
new="${2:?usage: compare_bench.sh OLD_LMFORGE NEW_LMFORGE [ROUNDS] [bench flags...]}"
rounds="${3:-5}"
shift $(( $# < 3 ? $# : 3 ))
out=$(mktemp -d "${TMPDIR:-/tmp}/lmf-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  # alternate which goes first, so neither always runs on a warmer (or busier) machine
  if [ $((r % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for which in $order; do
    bin="$old"; [ "$which" = new ] && bin="$new"
    "$bin" bench --json "$@" >>"$out/$which.jsonl"
  done
done
python3 - "$out/old.jsonl" "$out/new.jsonl" <<'EOF'
import json, statistics, sys
def load(p):
    by = {}
    for line in open(p):
        j = json.loads(line)
        by.setdefault((j["model"], j["batch"], j["seq"]), []).append(j)
    return by
old, new = load(sys.argv[1]), load(sys.argv[2])
print("%-8s %4s %5s  %12s %12s  %7s  %s" % ("model", "B", "T", "old tok/s", "new tok/s", "new/old", "MFU old/new (median)"))
for key in old:
    o = statistics.median(x["tokens_per_s"] for x in old[key])
    n = statistics.median(x["tokens_per_s"] for x in new[key])
    mo = statistics.median(x["mfu"] for x in old[key]); mn = statistics.median(x["mfu"] for x in new[key])
    print("%-8s %4d %5d  %12.1f %12.1f  %7.3f  %.1f%% / %.1f%%" % (key[0], key[1], key[2], o, n, n / o, 100 * mo, 100 * mn))
EOF
