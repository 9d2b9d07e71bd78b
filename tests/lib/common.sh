# Shared helpers for the CLI tests (sourced). $LMF is the lmforge binary.
set -u
LMF="${1:?usage: test.sh PATH_TO_lmforge}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lmf-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0

pass() { PASSES=$((PASSES + 1)); echo "ok: $1"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $1" >&2; }

# expect_error NAME EXIT_CODE PATTERN -- command...: the command must exit with EXIT_CODE and
# print exactly one line on stderr that matches PATTERN (grep -E).
expect_error() {
  local name="$1" code="$2" pat="$3"; shift 4
  local err="$WORK/err.txt" rc=0
  "$@" >/dev/null 2>"$err" || rc=$?
  local lines; lines=$(wc -l <"$err")
  if [ "$rc" -ne "$code" ]; then fail "$name: exit $rc, expected $code; stderr: $(head -c 400 "$err")"; return; fi
  if [ "$lines" -ne 1 ]; then fail "$name: $lines stderr lines, expected 1: $(head -c 400 "$err")"; return; fi
  if ! grep -qE -e "$pat" "$err"; then fail "$name: stderr does not match /$pat/: $(cat "$err")"; return; fi
  pass "$name"
}

# the "loss" values of metrics.jsonl step lines, one per line
losses() { grep -o '"loss": *[-0-9.e+]*' "$1" | sed 's/.*: *//'; }
# losses_follow REF RUN N K: RUN's metrics.jsonl has N losses, its first K equal REF's and every one
# is within a relative 1e-4 of REF's (float sums in another order)
losses_follow() {
  local a b
  a=$(losses "$1"); b=$(losses "$2")
  [ "$(echo "$b" | wc -l)" -eq "$3" ] && [ "$(echo "$a" | head -"$4")" = "$(echo "$b" | head -"$4")" ] &&
    paste <(echo "$a") <(echo "$b") | awk '{ d = $1 - $2; if (d < 0) d = -d;
                                           if (d > 1e-4 * ($1 < 0 ? -$1 : $1)) exit 1 }'
}
val_losses() { grep -o '"val_loss": *[-0-9.e+]*' "$1" | sed 's/.*: *//'; }

# a small deterministic corpus in fortune format (records separated by "%" lines)
make_corpus() {
  local dir="$1"; mkdir -p "$dir"
  local i
  for i in $(seq 1 600); do
    echo "the quick brown fox number $((i % 7)) jumps over the lazy dog $((i % 5)) times."
    echo "%"
  done >"$dir/animals"
  for i in $(seq 1 300); do
    echo "a stitch in time saves $((i % 9)) and a penny saved is a penny earned."
    echo "%"
  done >"$dir/sayings"
}

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}
