#!/usr/bin/env bash
# The dependency rule of docs/architecture.md holds in the code: no forbidden include or call
# between modules, no private header used outside its module, no cycle between the files of a
# module, MPI only in src/parallel/, exit() only in src/cli/ (scripts/check_deps.py).
set -u
src="${LMF_SOURCE_DIR:?}"
if ! command -v python3 >/dev/null; then
  echo "test_dependency_rule: skipped (no python3)"
  exit 77
fi
python3 "$src/scripts/check_deps.py" --root "$src"
