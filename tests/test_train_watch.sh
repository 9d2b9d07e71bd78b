#!/usr/bin/env bash
# What a training writes for the dashboard: run.json with the steps, model, options and layout
# from the start; every --profile-every steps the step's time by phase and each rank's peak
# memory; every --sample-every steps a sample of the model's text (under MPI with ZeRO-3 and
# tensor parallelism too); and the one-line errors of sampling that cannot work.
source "$(dirname "$0")/lib/common.sh"
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }
make_corpus "$WORK/corpus"
common=(--model tiny --batch 2 --seq 16 --sample-tokens 0 --eval-every 0 --quiet --threads 1)
"$LMF" train "${common[@]}" --corpus "$WORK/corpus" --bpe-vocab 0 --steps 20 --profile-every 5 \
  --sample-every 10 --sample-prompt "the quick" --out "$WORK/r" || fail "train"

python3 - "$WORK/r" >"$WORK/checks" 2>&1 <<'PY' || fail "the checks of the run directory: $(tail -n 3 "$WORK/checks")"
import json, sys
d = sys.argv[1]
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
def check(name, ok, detail=""):
    print(f"ok: {name}" if ok else f"FAIL: {name}: {detail}")
steps = [l for l in lines if "loss" in l]
phases = [l for l in lines if "phases" in l]
mem = [l for l in lines if "rss_bytes" in l]
samples = [l for l in lines if "sample" in l]
check("20 step lines", len(steps) == 20, len(steps))
check("phases of steps 4, 9, 14, 19", [p["step"] for p in phases] == [4, 9, 14, 19], phases)
names = sorted(phases[0]["phases"]) if phases else []
check("the model's phases, the optimizer and the rest",
      names == ["attention_s", "elementwise_s", "loss_s", "matmul_s", "optimizer_s", "other_s"], names)
check("phases add up to the step's time",
      all(abs(sum(p["phases"].values()) - p["step_seconds"]) <= 1e-5 + 1e-4 * p["step_seconds"] and
          min(p["phases"].values()) >= 0 and p["phases"]["matmul_s"] > 0 and p["phases"]["optimizer_s"] > 0 for p in phases), phases)
check("memory of the one rank at the profiled steps",
      [m["step"] for m in mem] == [4, 9, 14, 19] and all(len(m["rss_bytes"]) == 1 and
      1 << 20 < m["rss_bytes"][0] < 1 << 34 for m in mem), mem)
check("samples after 10 and 20 steps", [s["step"] for s in samples] == [10, 20], samples)
check("each sample continues its prompt",
      all(s["prompt"] == "the quick" and s["sample"].startswith("the quick") and
          len(s["sample"]) > len("the quick") for s in samples), samples)
check("every line names the run", all(l.get("run") == lines[0]["run"] for l in lines))
r = json.load(open(d + "/run.json"))
check("run.json: steps, model, options, layout",
      (r["total_steps"], r["model"]["n_layer"], r["model"]["n_embd"], r["train"]["steps"],
       r["layout"]["world_size"], r["layout"]["tp_size"], r["layout"]["tokens_per_step"],
       r["run_id"]) == (20, 2, 64, 20, 1, 1, 32, lines[0]["run"]), r)
PY
while IFS= read -r line; do
  case "$line" in ok:*) pass "${line#ok: }" ;; FAIL:*) fail "${line#FAIL: }" ;; esac
done <"$WORK/checks"

# samples of a run without a tokenizer are token ids; a prompt then cannot be encoded
data=(--data "$WORK/r/data/train.bin" --vocab-size 257)
"$LMF" train "${common[@]}" "${data[@]}" --steps 10 --sample-every 5 --out "$WORK/ids" || fail "train on token files"
grep '"sample"' "$WORK/ids/metrics.jsonl" | grep -qE '"sample":"[0-9]+( [0-9]+){63}"' \
  && pass "samples without a tokenizer are 64 token ids" || fail "id samples: $(grep '"sample"' "$WORK/ids/metrics.jsonl")"
expect_error "a prompt without a tokenizer" 1 "sample prompt needs the run's tokenizer.*leave the prompt out" -- \
  "$LMF" train "${common[@]}" "${data[@]}" --steps 10 --sample-every 5 --sample-prompt hi --out "$WORK/np"
[ ! -s "$WORK/np/metrics.jsonl" ] && pass "refused before the first step" || fail "steps ran before the refusal"
expect_error "a bad --sample-every" 2 "sample-every" -- "$LMF" train --sample-every -1
"$LMF" train "${common[@]}" "${data[@]}" --steps 10 --profile-every 0 --out "$WORK/off" || fail "train"
! grep -qE '"phases"|"rss_bytes"|"sample"' "$WORK/off/metrics.jsonl" && pass "--profile-every 0 writes no profile" \
  || fail "profile lines with --profile-every 0"

# under MPI, rank 0 writes every rank's memory (under the sanitizers, leak checks off in the
# ranks: Open MPI's plugins, unloaded at exit, leave reports no suppression can name)
if command -v mpirun >/dev/null; then
  timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 \
    -x ASAN_OPTIONS=detect_leaks=0 "$LMF" train \
    "${common[@]}" "${data[@]}" --steps 10 --profile-every 5 --zero 1 --out "$WORK/mpi" >/dev/null 2>&1 \
    || fail "train under mpirun"
  python3 -c '
import json, sys
m = [json.loads(l) for l in open(sys.argv[1]) if "rss_bytes" in l]
sys.exit(0 if [x["step"] for x in m] == [4, 9] and all(len(x["rss_bytes"]) == 2 and min(x["rss_bytes"]) > 1 << 20 for x in m) else 1)
' "$WORK/mpi/metrics.jsonl" && pass "two ranks' memory in one line" \
    || fail "memory lines under MPI: $(grep rss_bytes "$WORK/mpi/metrics.jsonl")"
  # two replicas: the data-parallel communication is a phase of its own; the phases still add
  # up to the step
  python3 -c '
import json, sys
p = [json.loads(l) for l in open(sys.argv[1]) if "phases" in l]
ok = [x["step"] for x in p] == [4, 9] and all(
    sorted(x["phases"]) == ["attention_s", "dp_comm_s", "elementwise_s", "loss_s", "matmul_s", "optimizer_s", "other_s"]
    and x["phases"]["dp_comm_s"] > 0 and min(x["phases"].values()) >= 0
    and abs(sum(x["phases"].values()) - x["step_seconds"]) <= 1e-5 + 1e-4 * x["step_seconds"] for x in p)
sys.exit(0 if ok else 1)
' "$WORK/mpi/metrics.jsonl" && pass "the data-parallel communication timed as a phase" \
    || fail "phase lines under MPI: $(grep phases "$WORK/mpi/metrics.jsonl")"
  # samples where the weights are spread over the ranks: ZeRO-3 gathers them for rank 0, and
  # its samples are those of ZeRO-2 (the same training, the weights whole on every rank);
  # tensor parallelism puts the slices together, and its samples are a single process's
  samples() { python3 -c '
import json, sys
print(json.dumps([(l["step"], l["sample"]) for l in map(json.loads, open(sys.argv[1])) if "sample" in l]))
' "$1/metrics.jsonl"; }
  for layout in "zero2 --zero 2" "zero3 --zero 3" "tp2 --tp 2"; do
    set -- $layout
    timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 \
      -x ASAN_OPTIONS=detect_leaks=0 "$LMF" train "${common[@]}" "${data[@]}" --steps 10 \
      --sample-every 5 --profile-every 0 "${@:2}" --out "$WORK/$1" >"$WORK/$1.log" 2>&1 \
      || fail "train $layout under mpirun: $(tail -n 3 "$WORK/$1.log")"
  done
  "$LMF" train "${common[@]}" "${data[@]}" --steps 10 --sample-every 5 --profile-every 0 \
    --out "$WORK/one" >/dev/null 2>&1 || fail "train one process"
  z3=$(samples "$WORK/zero3")
  [[ "$z3" == '[[5, "'[0-9]*'"], [10, "'[0-9]*'"]]' ]] && [ "$z3" = "$(samples "$WORK/zero2")" ] \
    && pass "ZeRO-3 writes samples after 5 and 10 steps, those of ZeRO-2" \
    || fail "ZeRO-3 samples: $z3; ZeRO-2: $(samples "$WORK/zero2")"
  tp=$(samples "$WORK/tp2")
  [[ "$tp" == '[[5, "'[0-9]*'"], [10, "'[0-9]*'"]]' ]] && [ "$tp" = "$(samples "$WORK/one")" ] \
    && pass "tensor-parallel samples are those of one process" \
    || fail "tensor-parallel samples: $tp; one process: $(samples "$WORK/one")"
  python3 -c '
import json, sys
l = json.load(open(sys.argv[1] + "/run.json"))["layout"]
sys.exit(0 if (l["world_size"], l["tp_size"]) == (2, 2) else 1)
' "$WORK/tp2" && pass "run.json records the tensor-parallel group" || fail "tp layout: $(cat "$WORK/tp2/run.json")"
else
  echo "(no mpirun: the two-rank memory check and the distributed samples are not run)"
fi
finish
