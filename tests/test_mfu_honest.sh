#!/usr/bin/env bash
# One honest peak for every MFU: lmforge bench measures it (warmed, best of several trials,
# over the threads' CPU time, so other processes on the cores cannot lower it) and caches it
# per processor and thread count; a second bench and a training run reuse the cached figure and
# say so; no MFU they report exceeds 100%. (Only consistency is checked, not the machine's speed.)
. "$(dirname "$0")/lib/common.sh"
export HOME=$WORK/home
unset XDG_CACHE_HOME
mkdir -p "$HOME"
for i in $(seq 1 3000); do echo "line $i of some text to make tokens from, with words"; done >"$WORK/a.txt"
"$LMF" data prepare --bytes --val-fraction 0 --input "$WORK/a.txt" --out "$WORK/tok" >/dev/null 2>&1 || fail "data prepare"
json_num() { grep -o "\"$1\": *[-0-9.e+]*" | head -1 | sed 's/.*: *//'; }
json_str() { grep -o "\"$1\": *\"[^\"]*\"" | head -1 | sed 's/.*: *"//; s/"$//'; }

b1=$("$LMF" bench --model tiny --batch 2 --seq 32 --steps 3 --threads 1 --json 2>&1)
src1=$(echo "$b1" | json_str peak_source); peak1=$(echo "$b1" | json_num peak_gflops)
cache=$(ls "$HOME"/.cache/lmforge/fma-peak-*-1t.txt 2>/dev/null | head -1)
[ "$src1" = measured ] && [ -n "$cache" ] && pass "first bench measures the peak and caches it" ||
  fail "first bench: source '$src1', cache '$cache': $b1"
cached=$(sed -n 's/^gflops=//p' "$cache" 2>/dev/null)
awk -v a="$peak1" -v b="$cached" 'BEGIN { exit !(a > 0 && a - b < 0.01 && b - a < 0.01) }' &&
  pass "the cache holds the peak bench used ($cached GFLOP/s)" || fail "bench peak $peak1, cache '$cached'"

b2=$("$LMF" bench --model tiny --batch 2 --seq 32 --steps 3 --threads 1 --json 2>&1)
src2=$(echo "$b2" | json_str peak_source); peak2=$(echo "$b2" | json_num peak_gflops)
[ "$src2" = cached ] && [ "$peak2" = "$peak1" ] && pass "a second bench reuses the cached peak" ||
  fail "second bench: source '$src2', peak $peak2 (first $peak1)"
for b in "$b1" "$b2"; do
  m=$(echo "$b" | json_num mfu)
  awk -v m="$m" 'BEGIN { exit !(m > 0 && m <= 1) }' && pass "bench MFU $m within (0, 1]" ||
    fail "bench MFU '$m' outside (0, 1]: $b"
done

"$LMF" train --model tiny --vocab-size 320 --seq 32 --batch 2 --steps 30 --threads 1 \
  --sample-tokens 0 --eval-every 0 --data "$WORK/tok/train.bin" --out "$WORK/run" 2>"$WORK/train.err" ||
  fail "train: $(tail -3 "$WORK/train.err")"
grep -q "peak per rank: $(printf '%.1f' "$cached") GFLOP/s on 1 threads (cached in $cache" "$WORK/train.err" &&
  pass "training names the cached peak it uses" || fail "training's peak line: $(grep peak "$WORK/train.err")"
n=$(grep -c '"mfu"' "$WORK/run/metrics.jsonl")
bad=$(grep -o '"mfu": *[-0-9.e+]*' "$WORK/run/metrics.jsonl" | sed 's/.*: *//' |
  awk '$1 <= 0 || $1 > 1 { n++ } END { print n + 0 }')
[ "$n" -eq 30 ] && [ "$bad" -eq 0 ] && pass "30 steps of metrics.jsonl, every MFU within (0, 1]" ||
  fail "metrics.jsonl: $n MFU values, $bad outside (0, 1]"
finish
