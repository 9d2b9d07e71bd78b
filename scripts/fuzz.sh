#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, -DLMF_FUZZ=ON) into build-fuzz and run each fuzz/fuzz_*.c
# target for SECONDS seconds (default 20) from its seed corpus; exit non-zero on any crash.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   e.g. scripts/fuzz.sh 60 fuzz_tokens
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${1:-20}
shift || true
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$secs'" >&2
  exit 2
fi
build=${LMF_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${LMF_FUZZ_JOBS:-2}

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null; then
  echo "fuzz.sh: $CC not found; libFuzzer needs clang (apt-get install clang)" >&2
  exit 2
fi
CC=$CC cmake -S "$root" -B "$build" -DLMF_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLMF_WITH_MPI=OFF >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in "$root"/fuzz/fuzz_*.c; do
    targets+=("$(basename "$src" .c)")
  done
fi
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

failed=()
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  seeds=$root/fuzz/seeds/$name
  corpus=$build/corpus/$name       # grows across runs; the seeds stay untouched
  artifacts=$build/artifacts/$name/
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus")
  [ -d "$seeds" ] && dirs+=("$seeds")
  echo "== $t: ${secs}s, corpus ${dirs[*]}"
  if ! "$build/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts" -print_final_stats=1 "${dirs[@]}" \
      >"$build/$t.log" 2>&1; then
    echo "!! $t failed; the crashing input is under $artifacts; log: $build/$t.log" >&2
    tail -n 40 "$build/$t.log" >&2
    failed+=("$t")
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb" "$build/$t.log" | sed 's/^/   /'
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} target(s) ran ${secs}s without a crash"
