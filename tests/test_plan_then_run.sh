#!/usr/bin/env bash
# Plan, then run: `lmforge plan --model gpt3-175b --cluster azure-openai-2020 --search` prints
# the command of its best layout (dp x tp x pp on 9,984 V100s); the same command scaled down to
# a 3-layer GPT-2 and 8 ranks on this machine (its --tp and --pp kept where 2 fit, its ZeRO
# stage, recomputation, --sp and --schedule kept; the model, the batch and the step count of a
# short run; no --dtype: lmforge's CPU trainer runs fp32) trains with the single rank's loss
# at each of 20 steps within 1e-5 relative.
source "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
if ! command -v mpirun >/dev/null || ! command -v python3 >/dev/null; then
  echo "test_plan_then_run: skipped (no mpirun or python3)"
  exit 77
fi
LMF_TESTS=$(cd "$(dirname "$0")" && pwd)
. "$LMF_TESTS/lib/matches_single.sh"
matches_setup 3

"$LMF" plan --model gpt3-175b --cluster azure-openai-2020 --search >"$WORK/plan.txt" \
  || fail "plan --search: $(tail -3 "$WORK/plan.txt")"
cmdline=$(sed -n 's/^command  *//p' "$WORK/plan.txt")
echo "planned: $cmdline"
read -r -a words <<<"$cmdline"
[ "${words[0]}" = mpirun ] && [ "${words[1]}" = -np ] || fail "not an mpirun command: $cmdline"
# the layout's flags, scaled to 8 ranks: tp and pp of 2 where the plan has them, the rest data
# parallel
tp=1 pp=1 kept=()
for ((i = 3; i < ${#words[@]}; i++)); do
  w=${words[i]}
  case "$w" in
    --tp) [ "${words[i + 1]}" -gt 1 ] && tp=2; i=$((i + 1)) ;;
    --pp) [ "${words[i + 1]}" -gt 1 ] && pp=2; i=$((i + 1)) ;;
    --zero | --recompute | --schedule | --virtual-stages) kept+=("$w" "${words[i + 1]}"); i=$((i + 1)) ;;
    --sp) kept+=("$w") ;;
    --npernode | --model | --config | --seq | --batch | --global-batch | --steps | --dtype) i=$((i + 1)) ;;
    lmforge | train) ;;
    *) fail "the planned command has '$w', which this test does not scale" ;;
  esac
done
dp=$((8 / (tp * pp)))
rows=$((12 / dp)) # the global batch of common[]: 12 rows of 32 tokens
[ $((rows * dp)) -eq 12 ] || { fail "$dp replicas do not divide the 12 rows"; rows=1; }
batch=$rows
[ $((rows % 2)) -eq 0 ] && batch=$((rows / 2)) # two micro-batches per replica where they fit
[ "$tp" -gt 1 ] && kept+=(--tp "$tp")
[ "$pp" -gt 1 ] && kept+=(--pp "$pp")
echo "scaled:  mpirun -np 8 lmforge train ${kept[*]} --batch $batch (dp $dp)"
[ "$tp" -gt 1 ] && [ "$pp" -gt 1 ] && pass "the plan is a 3-D layout (--tp and --pp)" \
  || fail "the plan for 9,984 devices is not 3-D: $cmdline"

"$LMF" train --config "$WORK/gpt2.json" "${common[@]}" --batch 12 --out "$WORK/ref" \
  || fail "one rank"
mpi 8 train --config "$WORK/gpt2.json" "${common[@]}" "${kept[@]}" --batch "$batch" \
  --out "$WORK/run" >"$WORK/out.txt" 2>&1 || fail "the scaled command: $(tail -3 "$WORK/out.txt")"
series_close "the planned layout at 8 ranks" losses loss "$WORK/ref" "$WORK/run" 20 1e-5

lmf_sanitizer_verdict
if [ "$FAILS" -ne 0 ] || [ "$lmf_fail_count" -ne 0 ]; then
  echo "test_plan_then_run: $FAILS check(s) failed"; exit 1
fi
echo "test_plan_then_run: ok ($PASSES checks)"
