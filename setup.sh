#!/usr/bin/env bash
# lmforge set-up: install missing Debian/Ubuntu packages, configure, build, then run one job.
#   ./setup.sh train [train flags...]   build, then train the default model and print a sample
#   ./setup.sh test                     build, then run the whole test suite (also sanitizers)
#   ./setup.sh build                    only install and build
set -euo pipefail
cd "$(dirname "$0")"

job="${1:-train}"
[ $# -gt 0 ] && shift

# Why each package is here: docs/dependencies.md
packages=(build-essential cmake pkg-config libopenblas-dev libopenmpi-dev openmpi-bin
          libjansson-dev libutf8proc-dev libxxhash-dev libzstd-dev libcmocka-dev libmicrohttpd-dev
          libcairo2-dev libpng-dev
          fortunes)
if [ "$job" = test ]; then
  packages+=(clang libclang-rt-dev iproute2 procps time python3 python3-regex python3-torch prometheus chromium
             fonts-dejavu-core)
  # npm (tests: ONNX Runtime from onnxruntime-node, js-tiktoken as an independent encoder);
  # NodeSource's nodejs carries its own npm, so Debian's only when there is none
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc 2>/dev/null || echo 2)
werror=OFF
[ "${CI:-}" = true ] && werror=ON
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLMF_WERROR="$werror" >/dev/null
cmake --build build -j "$jobs"

case "$job" in
  build) ;;
  train)
    exec build/lmforge train "$@" ;;
  test)
    # Open MPI as root needs these; tests start several ranks on a few cores.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    echo "== tests (release build)" >&2
    ctest --test-dir build --output-on-failure -j 2 "$@"
    echo "== tests (address + undefined sanitizers)" >&2
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMF_SANITIZE=ON -DLMF_WERROR="$werror" >/dev/null
    cmake --build build-asan -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp":print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan --output-on-failure -j 2 -LE nosan "$@"
    if [ -x scripts/fuzz.sh ]; then
      echo "== fuzzing (bounded)" >&2
      scripts/fuzz.sh "${LMF_FUZZ_SECONDS:-15}"
    fi
    ;;
  *)
    echo "usage: ./setup.sh [train|test|build] [args...]" >&2; exit 2 ;;
esac
