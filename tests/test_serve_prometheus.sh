#!/usr/bin/env bash
# A real Prometheus (Debian's) scrapes lmforge serve on loopback and answers queries for the
# run's lmforge_loss, its phases and its ranks' memory: the text format is what Prometheus reads.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/serve.sh"
command -v prometheus >/dev/null || { echo "skip: needs prometheus (apt-get install prometheus)"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }
PROM_PID=
trap 'stop_serve; [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID"; rm -rf "$WORK"' EXIT

fake_run "$WORK/runs/alpha" 30 # last loss 5 - 29/100 = 4.71
# a profiled step of two ranks: its phases and each rank's memory
echo '{"step":29,"step_seconds":0.5,"phases":{"matmul_s":0.25,"optimizer_s":0.125,"dp_comm_s":0.0625,"other_s":0.0625}}' >>"$WORK/runs/alpha/metrics.jsonl"
echo '{"step":29,"rss_bytes":[3000000,4000000]}' >>"$WORK/runs/alpha/metrics.jsonl"
odd="$WORK/runs/we\"ird\\ $(printf '\xff')name" # a directory name to escape in a label
fake_run "$odd" 5
start_serve "$WORK/runs/alpha" "$odd" || { fail "serve start"; finish; exit 1; }
target=${URL#http://}; target=${target%/}
# a free port for Prometheus itself
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: lmforge
    static_configs:
      - targets: ['$target']
EOC
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$WORK/prom.log" 2>&1 &
PROM_PID=$!
q="http://127.0.0.1:$pport/api/v1/query?query=lmforge_loss%7Brun%3D%22alpha%22%7D"
got=
for ((i = 0; i < 60; i++)); do
  got=$($PROBE json "$q" 'j["data"]["result"][0]["value"][1] if j["data"]["result"] else ""' 2>/dev/null) || got=
  [ -n "$got" ] && break
  sleep 0.5
done
[ "$got" = "4.71" ] && pass "Prometheus has lmforge_loss{run=\"alpha\"} = 4.71" \
  || fail "Prometheus query: '$got'; log: $(tail -5 "$WORK/prom.log")"
# the scrape itself reported healthy, with no parse error
health=$($PROBE json "http://127.0.0.1:$pport/api/v1/targets" '[(t["health"], t["lastError"]) for t in j["data"]["activeTargets"]]')
[ "$health" = "[('up', '')]" ] && pass "scrape healthy (labels escaped)" || fail "targets: $health"
odd_step=$($PROBE json "http://127.0.0.1:$pport/api/v1/query?query=lmforge_step%7Brun%3D%22we_ird___name%22%7D" 'j["data"]["result"][0]["value"][1]')
[ "$odd_step" = 5 ] && pass "the oddly named run scraped" || fail "odd run: '$odd_step'"
# a counter and the checkpoint age are there too
age=$($PROBE json "http://127.0.0.1:$pport/api/v1/query?query=lmforge_checkpoint_age_seconds" 'float(j["data"]["result"][0]["value"][1]) > 90')
[ "$age" = True ] && pass "checkpoint age scraped" || fail "checkpoint age: $age"
# the phases add up to the step in PromQL; the second rank's memory by its label
q_sum="sum%20by%20(run)%20(lmforge_step_phase_seconds%7Brun%3D%22alpha%22%7D)"
ph=$($PROBE json "http://127.0.0.1:$pport/api/v1/query?query=$q_sum" 'j["data"]["result"][0]["value"][1]')
[ "$ph" = 0.5 ] && pass "sum of the phases scraped" || fail "phase sum: '$ph'"
q_mem="lmforge_peak_resident_memory_bytes%7Brun%3D%22alpha%22%2Crank%3D%221%22%7D"
mem=$($PROBE json "http://127.0.0.1:$pport/api/v1/query?query=$q_mem" 'j["data"]["result"][0]["value"][1]')
[ "$mem" = 4000000 ] && pass "rank 1's memory scraped" || fail "rank 1 memory: '$mem'"
finish
