# Helpers for the run-server tests (sourced after common.sh).

# fake_run DIR N: a run directory whose metrics.jsonl has steps 0..N-1 with loss 5 - step/100,
# lr 1e-3, grad_norm 1 + step/1000, tokens/s 1000 + step, mfu 0.25, a val_loss every 10 steps,
# and one complete checkpoint at step N (index.json dated 100 s ago) named by checkpoints/latest.
fake_run() {
  local dir="$1" n="$2"
  mkdir -p "$dir/checkpoints/$(printf step_%08d "$n")"
  awk -v n="$n" 'BEGIN {
    for (i = 0; i < n; i++) {
      printf "{\"step\":%d,\"loss\":%.6g,\"lr\":0.001,\"grad_norm\":%.6g,\"tokens_per_s\":%d,\"mfu\":0.25}\n", i, 5 - i / 100, 1 + i / 1000, 1000 + i
      if ((i + 1) % 10 == 0) printf "{\"step\":%d,\"val_loss\":4.5}\n", i + 1
    } }' >"$dir/metrics.jsonl"
  local ck; ck="$dir/checkpoints/$(printf step_%08d "$n")"
  echo '{"format":"lmforge.checkpoint"}' >"$ck/index.json"
  echo '{"n_layer":2,"n_head":2,"n_embd":64,"vocab_size":257}' >"$ck/config.json"
  printf '{"step":%d,"world_size":2,"zero_stage":1,"tokens_per_step":2000,"batch":4,"seq":32,"grad_accum":1,"opts":{"steps":%d,"lr":0.001}}\n' \
    "$n" $((2 * n)) >"$ck/trainer_state.json"
  touch -d "@$(($(date +%s) - 100))" "$ck/index.json"
  printf 'step_%08d\n' "$n" >"$dir/checkpoints/latest"
}

# start_serve ARGS...: lmforge serve on a free port in the background; sets SERVE_PID, URL
start_serve() {
  "$LMF" serve --port 0 "$@" >"$WORK/serve.url" 2>"$WORK/serve.err" &
  SERVE_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    URL=$(head -n 1 "$WORK/serve.url" 2>/dev/null)
    [ -n "$URL" ] && return 0
    sleep 0.1
  done
  echo "lmforge serve did not start: $(cat "$WORK/serve.err")" >&2
  return 1
}
# stop_serve: SIGTERM, then the exit status must be 0 (a sanitizer report makes it non-zero)
stop_serve() {
  [ -n "${SERVE_PID:-}" ] || return 0
  local rc=0
  kill "$SERVE_PID" 2>/dev/null
  wait "$SERVE_PID" 2>/dev/null || rc=$?
  SERVE_PID=
  [ "$rc" -eq 0 ] && pass "lmforge serve stopped cleanly" \
    || fail "lmforge serve exited with $rc: $(tail -n 20 "$WORK/serve.err")"
}

# http_probe: tests/lib/http_probe.py
PROBE="python3 $(dirname "${BASH_SOURCE[0]}")/http_probe.py"

# run_checks < LINES: http_probe.py checks against $URL, counted into PASSES and FAILS
run_checks() {
  local out line
  out=$($PROBE checks "$URL")
  while IFS= read -r line; do
    case "$line" in
      ok:*) pass "${line#ok: }" ;;
      FAIL:*) fail "${line#FAIL: }" ;;
    esac
  done <<<"$out"
}
