#!/usr/bin/env bash
# lmforge serve by plain HTTP: the JSON API and /metrics over run directories, metrics.jsonl
# appended to, torn, truncated and rewritten, requests that try to leave the run directories,
# malformed requests, the default loopback address, flag errors, and train --serve.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/serve.sh"
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }
trap 'stop_serve; rm -rf "$WORK"' EXIT

fake_run "$WORK/runs/a" 50
fake_run "$WORK/runs/b" 20
echo '{"step":0,"loss":777,"note":"SECRET-OUTSIDE"}' >"$WORK/secret.txt"
mkdir -p "$WORK/outside/step_00000099"
echo '{"step":99,"opts":{"steps":12345}}' >"$WORK/outside/step_00000099/trainer_state.json"
echo '{}' >"$WORK/outside/step_00000099/index.json"

# c: a run before its first checkpoint, with what run.json records at the start, profiled
# steps and memory records (and a rollback that drops those of the steps trained again)
mkdir -p "$WORK/runs/c"
cat >"$WORK/runs/c/run.json" <<'EOF'
{"format": "lmforge.run", "version": 1, "run_id": "00000000000000cc", "total_steps": 40,
 "model": {"family": "gpt2", "n_layer": 3, "n_head": 2, "n_embd": 48, "n_positions": 64, "vocab_size": 300},
 "train": {"steps": 40, "lr": 0.002}, "layout": {"world_size": 4, "tp_size": 2, "zero_stage": 2, "batch": 4,
 "seq": 16, "grad_accum": 1, "tokens_per_step": 128}}
EOF
awk 'BEGIN { for (i = 0; i < 12; i++) {
  printf "{\"step\":%d,\"loss\":4,\"lr\":0.001,\"grad_norm\":1,\"tokens_per_s\":64,\"mfu\":0.1}\n", i
  if ((i + 1) % 5 == 0) {
    printf "{\"step\":%d,\"step_seconds\":0.5,\"phases\":{\"matmul_s\":0.25,\"attention_s\":0.1,\"loss_s\":0.05,\"other_s\":0.1}}\n", i
    printf "{\"step\":%d,\"rss_bytes\":[%d,%d]}\n", i, 1000000 * (i + 1), 2000000 * (i + 1) }
  if (i == 4 || i == 9) printf "{\"step\":%d,\"sample\":\"once <b>upon</b> a time \\u00e9\",\"prompt\":\"once\"}\n", i + 1 } }' >"$WORK/runs/c/metrics.jsonl"

start_serve "$WORK/runs/a" "$WORK/runs/b" "$WORK/runs/c" || { fail "serve start"; finish; exit 1; }
hostport=${URL#http://}; hostport=${hostport%/}; host=${hostport%:*}; port=${hostport##*:}
check() { # check NAME ACTUAL EXPECTED
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi
}

# the runs and their status (expected values from fake_run's definition); 50 steps to go at
# 2000 tokens/step and 1049 tokens/s
run_checks <<EOC
three runs listed | api/runs | [r["name"] for r in j["runs"]] | ['a', 'b', 'c']
step of a | api/runs | j["runs"][0]["step"] | 50
total steps from trainer_state | api/runs | j["runs"][0]["total_steps"] | 100
last loss of a | api/runs | j["runs"][0]["loss"] | 4.51
checkpoint of a | api/runs | j["runs"][0]["checkpoint_step"] | 50
checkpoint age about 100 s | api/runs | 95 < j["runs"][0]["checkpoint_age_seconds"] < 130 | True
ETA from throughput | api/runs | round(j["runs"][0]["eta_seconds"], 1) | $(awk 'BEGIN{printf "%.1f", 50*2000/1049}')
ranks | api/runs | (j["runs"][0]["world_size"], j["runs"][0]["zero_stage"]) | (2, 1)
all rows | api/runs/a/metrics | len(j["rows"]) | 50
rows since 45 | api/runs/a/metrics?since=45 | [r[0] for r in j["rows"]] | [45, 46, 47, 48, 49]
val since 30 | api/runs/a/metrics?since=30 | j["val"] | [[30, 4.5], [40, 4.5], [50, 4.5]]
a row's columns | api/runs/a/metrics?since=49 | j["rows"][0] | [49, 4.51, 0.001, 1.049, 1049.0, 0.25]
config | api/runs/b/config | (j["model"]["n_embd"], j["train"]["steps"], j["layout"]["tokens_per_step"]) | (64, 40, 2000)
checkpoints | api/runs/a/checkpoints | [(c["name"], c["complete"], c["latest"]) for c in j["checkpoints"]] | [('step_00000050', True, True)]
EOC

# before the first checkpoint: total steps, ETA, ranks and the configuration from run.json
# (28 steps to go at 128 tokens/step and 64 tokens/s: 56 s); step time by phase and memory
run_checks <<EOC
total steps from run.json | api/runs | j["runs"][2]["total_steps"] | 40
ETA from run.json's layout | api/runs | j["runs"][2]["eta_seconds"] | 56.0
ranks from run.json | api/runs | (j["runs"][2]["world_size"], j["runs"][2]["tp_size"], j["runs"][2]["zero_stage"]) | (4, 2, 2)
no tensor parallelism known (from a checkpoint) | api/runs | j["runs"][0]["tp_size"] | None
layout in the config | api/runs/c/config | (j["layout"]["world_size"], j["layout"]["tp_size"]) | (4, 2)
config from run.json | api/runs/c/config | (j["checkpoint_step"], j["model"]["n_embd"], j["train"]["lr"], j["layout"]["tokens_per_step"]) | (None, 48, 0.002, 128)
phases of profiled steps | api/runs/c/metrics | [(p["step"], p["seconds"], sorted(p["phases"].items())) for p in j["phases"]] | [(4, 0.5, [('attention', 0.1), ('loss', 0.05), ('matmul', 0.25), ('other', 0.1)]), (9, 0.5, [('attention', 0.1), ('loss', 0.05), ('matmul', 0.25), ('other', 0.1)])]
memory per rank | api/runs/c/metrics | j["memory"] | [[4, [5000000, 10000000]], [9, [10000000, 20000000]]]
phases since 5 | api/runs/c/metrics?since=5 | [p["step"] for p in j["phases"]] | [9]
samples | api/runs/c/metrics | j["samples"] | [{'step': 5, 'prompt': 'once', 'text': 'once <b>upon</b> a time é'}, {'step': 10, 'prompt': 'once', 'text': 'once <b>upon</b> a time é'}]
EOC
echo '{"step":12,"rolled_back_to":6}' >>"$WORK/runs/c/metrics.jsonl"
echo "a rollback drops later phases, memory and samples | api/runs/c/metrics | ([p['step'] for p in j['phases']], [m[0] for m in j['memory']], [x['step'] for x in j['samples']]) | ([4], [4], [5])" | run_checks

# server-sent events of run c: every record first, then what is appended, the bound on open
# streams (16), and the places of clients that went away freed
while IFS= read -r line; do
  case "$line" in
    ok:*) pass "${line#ok: }" ;;
    FAIL:*) fail "${line#FAIL: }" ;;
    *) echo "$line" ;;
  esac
done < <(python3 "$(dirname "$0")/lib/sse_check.py" "$host" "$port" c "$WORK/runs/c/metrics.jsonl" 6 16)

# Prometheus text: HELP and TYPE for each family, one sample per run
prom=$($PROBE get "${URL}metrics")
check "/metrics status" "${prom%% *}" 200
grep -q '^# TYPE lmforge_loss gauge$' <<<"$prom" && grep -q '^# HELP lmforge_loss ' <<<"$prom" \
  && pass "HELP and TYPE lines" || fail "HELP/TYPE lines: $prom"
grep -q '^lmforge_loss{run="a"} 4.51$' <<<"$prom" && pass "lmforge_loss of a" || fail "lmforge_loss: $(grep lmforge_loss <<<"$prom")"
grep -q '^lmforge_step{run="b"} 20$' <<<"$prom" && pass "lmforge_step of b" || fail "lmforge_step"
grep -q '^lmforge_checkpoint_age_seconds{run="a"} ' <<<"$prom" && pass "checkpoint age metric" || fail "checkpoint age metric"
grep -q '^# TYPE lmforge_skipped_steps_total counter$' <<<"$prom" && pass "counters end in _total" || fail "counter type"
# run c: its latest profiled step and memory record (the ones sse_check.py appended), one
# sample per phase and per rank; runs a and b have none
want='lmforge_step_phase_seconds{run="c",phase="matmul"} 0.3
lmforge_step_phase_seconds{run="c",phase="loss"} 0.1
lmforge_step_phase_seconds{run="c",phase="other"} 0.1
lmforge_peak_resident_memory_bytes{run="c",rank="0"} 1000
lmforge_peak_resident_memory_bytes{run="c",rank="1"} 2000'
got=$(grep -E '^lmforge_(step_phase_seconds|peak_resident_memory_bytes)\{' <<<"$prom" | sort)
[ "$got" = "$(sort <<<"$want")" ] && pass "phase seconds and each rank's memory, labelled" \
  || fail "phase and memory samples: $got"
grep -q '^# TYPE lmforge_step_phase_seconds gauge$' <<<"$prom" \
  && grep -q '^# TYPE lmforge_peak_resident_memory_bytes gauge$' <<<"$prom" \
  && pass "phase and memory families typed" || fail "phase/memory TYPE lines"
if command -v promtool >/dev/null; then
  promtool check metrics <<<"${prom#* }" >"$WORK/promtool" 2>&1 && pass "promtool accepts /metrics" \
    || fail "promtool check metrics: $(head -n 5 "$WORK/promtool")"
fi

# metrics.jsonl as it is written: a torn last line, its completion, junk, faults, truncation
m="$WORK/runs/b/metrics.jsonl"
printf '{"step":20,"loss":3.0,"lr":0.001,"grad_n' >>"$m"
echo "torn last line waits | api/runs/b/metrics | len(j['rows']) | 20" | run_checks
printf 'orm":1,"tokens_per_s":5,"mfu":0.1}\nnot json at all\n{"step":21,"skipped":"nan","bad_in_row":1}\n{"step":21,"spike":9.5,"running_mean":3.1}\n' >>"$m"
run_checks <<EOC
completed line read, junk passed over | api/runs/b/metrics | len(j["rows"]) | 21
events | api/runs/b/metrics?since=21 | [e["kind"] for e in j["events"]] | ['skipped', 'spike']
skipped and spikes counted | api/runs | (j["runs"][1]["skipped_steps"], j["runs"][1]["loss_spikes"], j["runs"][1]["step"]) | (1, 1, 22)
EOC
gen0=$($PROBE json "${URL}api/runs/b/metrics" 'j["generation"]')
printf '{"step":22,"rolled_back_to":15}\n' >>"$m"
echo "a rollback drops the steps trained again | api/runs/b/metrics | (max(r[0] for r in j['rows']), j['generation'] != $gen0) | (14, True)" | run_checks
head -n 5 "$m" >"$m.new" && cat "$m.new" >"$m" # truncated in place
echo "truncated file read again | api/runs/b/metrics | [r[0] for r in j['rows']] | [0, 1, 2, 3, 4]" | run_checks
sed 's/"loss":5,/"loss":7,/' "$m" >"$m.new" && cat "$m.new" "$m.new" >"$m" # rewritten, longer
echo "rewritten file read again | api/runs/b/metrics | (len(j['rows']), j['rows'][0][1]) | (10, 7.0)" | run_checks
: >"$m"
echo "emptied file | api/runs/b/metrics | len(j['rows']) | 0" | run_checks

# nothing outside the run directories: encoded dots and slashes, backslashes, NUL, symlinks
paths=('/api/runs/../../etc/passwd' '/api/runs/%2e%2e/metrics' '/api/runs/%2E%2E%2f%2e%2e/config'
       '/..%2f..%2fetc%2fpasswd' '/api/runs/a%5c..%5c/config' '/api/runs/a%00/config'
       '//etc/passwd' '/api/runs/a/metrics?since=-1' '/api/runs/a/metrics?since=1e3'
       '/api/runs/a/metrics?sinse=3' '/%ZZ' '/api/runs/etc/config')
codes=($(for p in "${paths[@]}"; do printf 'GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n\n' "$p"; done |
         $PROBE raws "$host" "$port"))
for i in "${!paths[@]}"; do
  case "${codes[$i]:-none}" in 400|404) pass "rejected ${paths[$i]} (${codes[$i]})";; *) fail "${paths[$i]}: status ${codes[$i]:-none}";; esac
done
ln -s "$WORK/secret.txt" "$WORK/runs/b/metrics.jsonl.link" && rm "$m" && mv "$WORK/runs/b/metrics.jsonl.link" "$m"
body=$($PROBE get "${URL}api/runs/b/metrics")
grep -q "777" <<<"$body" && fail "followed a symlinked metrics.jsonl" || pass "symlinked metrics.jsonl not followed"
ln -s "$WORK/outside/step_00000099" "$WORK/runs/a/checkpoints/step_00000099"
echo step_00000099 >"$WORK/runs/a/checkpoints/latest"
run_checks <<EOC
symlinked metrics.jsonl is an empty run | api/runs/b/metrics | len(j["rows"]) | 0
symlinked checkpoint not complete | api/runs/a/checkpoints | [(c["step"], c["complete"]) for c in j["checkpoints"]] | [(50, True), (99, False)]
its trainer state not read | api/runs | j["runs"][0]["total_steps"] | None
EOC

# malformed requests and huge headers get an error status; the server keeps answering
big=$(head -c 70000 /dev/zero | tr '\0' a)
reqs=('GET /x\r\n\r\n' 'GET /x HTTP/9.9\r\nHost: x\r\n\r\n' 'GET /x HTTP/1.1\r\nbad header\r\n\r\n'
      'GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n' 'GARBAGE\r\n\r\n'
      'DELETE /api/runs HTTP/1.1\r\nHost: x\r\n\r\n' "GET /api/runs HTTP/1.1\\r\\nHost: x\\r\\nX-Big: $big\\r\\n\\r\\n"
      "GET /$big HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" 'GET /api/runs HTTP/1.1\r\nHost: x\r\n\r\n')
# (a line that is no request line at all: libmicrohttpd closes the connection without a reply)
names=("request line without a version" "unknown HTTP version" "malformed header line" "bad Content-Length"
       "not HTTP at all" "unknown method" "huge header" "huge URL" "still serving")
want=(400 505 400 400 closed 405 431 414 200)
codes=($(printf '%s\n' "${reqs[@]}" | $PROBE raws "$host" "$port"))
for i in "${!names[@]}"; do check "${names[$i]}" "${codes[$i]:-none}" "${want[$i]}"; done
page=$($PROBE get "$URL")
check "the page" "${page:0:3}" 200
grep -q 'src="/app.js"' <<<"$page" && pass "page loads its script from lmforge" || fail "page script"
grep -qE 'https?://' <<<"$($PROBE get "${URL}app.js" | sed 's,http://www.w3.org/2000/svg,,')$($PROBE get "$URL")" \
  && fail "the page refers to another host" || pass "the page works offline"

# bound to the loopback address by default
if command -v ss >/dev/null; then
  ss -ltnH "sport = :$port" | grep -q "127.0.0.1:$port" && pass "listens on 127.0.0.1" \
    || fail "listening socket: $(ss -ltnH "sport = :$port")"
fi
stop_serve

# flag errors
expect_error "serve: missing directory" 2 "nope is not a directory" -- "$LMF" serve "$WORK/nope"
expect_error "serve: bad port" 2 "--port must be between" -- "$LMF" serve "$WORK/runs/a" --port 70000
expect_error "serve: bad host" 2 "cannot resolve host 'no such host'" -- "$LMF" serve "$WORK/runs/a" --host "no such host" --port 0
expect_error "train: bad --serve port" 2 "--serve PORT: 'x1' is not a port" -- "$LMF" train --serve x1
(cd "$WORK" && mkdir -p empty && cd empty && expect_error "serve: nothing to serve" 2 "none under runs/" -- "$LMF" serve)

# train --serve: the address is printed (even with --quiet) and the run is served while it trains
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --steps 100000 --batch 2 --seq 16 --sample-tokens 0 --corpus "$WORK/corpus" --quiet \
  --bpe-vocab 0 --out "$WORK/served" --serve 0 2>"$WORK/train.err" &
tp=$!
URL=
for ((i = 0; i < 200; i++)); do
  URL=$(grep -o "http://127.0.0.1:[0-9]*/" "$WORK/train.err" | head -n 1)
  n=$(cat "$WORK/served/metrics.jsonl" 2>/dev/null | grep -c '"loss"')
  [ -n "$URL" ] && [ "$n" -ge 3 ] && break
  sleep 0.1
done
[ -n "$URL" ] && pass "train --serve prints the address" || fail "train --serve output: $(cat "$WORK/train.err")"
echo "train --serve serves the run as it trains | api/runs | (j['runs'][0]['name'], j['runs'][0]['step'] >= 3) | ('served', True)" | run_checks
kill -TERM "$tp"; wait "$tp"
check "train --serve run stopped cleanly by SIGTERM" "$?" 0
finish
