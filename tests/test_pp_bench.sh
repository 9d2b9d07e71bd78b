#!/usr/bin/env bash
# `lmforge bench --pp`: two ranks run a model's two stages through GPipe, 1F1B and ZB-H1 and
# report, per schedule, tokens/s, each stage's measured bubble and compute, and the schedule's
# own bubble with equal action times: (P-1)/(M+P-1) for GPipe and 1F1B (computed here), and
# for ZB-H1 less than half of that; the interleaved schedule's two chunks per stage and its own
# bubble; a comma list of schedules and a config.json model; a launch of the wrong size and the pipeline's options
# without --pp are refused with one line.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
LMF=${1:?usage: test_pp_bench.sh PATH_TO_lmforge}
if [ ! -x "$(dirname "$LMF")/mpi_comm_check" ] || ! command -v mpirun >/dev/null; then
    echo "test_pp_bench: skipped (this build has no MPI)"
    exit 77
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
M=4
timeout 300 "${MPIRUN[@]}" -np 2 "$LMF" bench --pp 2 --model tiny --batch 2 --seq 32 \
    --micro-batches $M --steps 2 --warmup-steps 1 --json >"$WORK/b.json" 2>"$WORK/b.err" </dev/null
lmf_check $? "bench --pp 2: $(tail -3 "$WORK/b.err")"
[ "$(grep -c '"schedule"' "$WORK/b.json")" = 3 ]
lmf_check $? "bench --pp 2 printed three schedules (rank 0 only): $(cat "$WORK/b.json")"
# schedule_bubble of each schedule; the stages' bubbles in [0, 1), busy time > 0, layers 1 + 1
field() { grep "\"schedule\": \"$1\"" "$WORK/b.json" | grep -o "\"$2\": *[-0-9.eE+]*" | sed 's/.*: *//'; }
for s in gpipe 1f1b zb; do
    line=$(grep "\"schedule\": \"$s\"" "$WORK/b.json")
    [ "$(field "$s" bubble | wc -l)" = 2 ] &&
        field "$s" bubble | awk '{ if (!($1 >= 0 && $1 < 1)) exit 1 }' &&
        field "$s" busy_s | awk '{ if (!($1 > 0)) exit 1 }' &&
        [ "$(field "$s" layers | tr '\n' ' ')" = "1 1 " ] &&
        awk -v t="$(field "$s" tokens_per_s)" 'BEGIN { exit !(t > 0) }'
    lmf_check $? "bench --pp 2 $s: stage figures out of range: $line"
done
for s in gpipe 1f1b; do
    awk -v b="$(field $s schedule_bubble)" -v m=$M 'BEGIN { w = 1 / (m + 1); d = b - w; exit !(d < 1e-4 && d > -1e-4) }'
    lmf_check $? "$s: schedule bubble $(field $s schedule_bubble), (P-1)/(M+P-1) = 1/$((M + 1))"
done
awk -v z="$(field zb schedule_bubble)" -v o="$(field 1f1b schedule_bubble)" 'BEGIN { exit !(z > 0 && z <= o / 2) }'
lmf_check $? "zb's schedule bubble $(field zb schedule_bubble) is not at most half of 1f1b's $(field 1f1b schedule_bubble)"

# the text report: one line per schedule with both stages; a config.json as the model; with
# 1f1b and zb both run, the ratio of their mean bubbles (the means printed on their lines)
printf '{"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 64, "vocab_size": 256}\n' >"$WORK/m.json"
timeout 300 "${MPIRUN[@]}" -np 2 "$LMF" bench --pp 2 --schedule 1f1b,zb --model "$WORK/m.json" \
    --batch 2 --seq 32 --micro-batches 2 --steps 1 --warmup-steps 0 --rounds 3 >"$WORK/t.out" 2>&1 </dev/null
lmf_check $? "bench --pp 2 --schedule 1f1b,zb --rounds 3 (text): $(tail -3 "$WORK/t.out")"
# --rounds 3: the two schedules in turn, three times; each reported by its median round
[ "$(grep -cE "^  round [123] (1f1b|zb) +bubble [0-9.]+%" "$WORK/t.out")" = 6 ]
lmf_check $? "not six round lines: $(cat "$WORK/t.out")"
for s in 1f1b zb; do
    rounds=$(sed -n "s/^  round [123] $s *bubble \([0-9.]*\)%.*/\1/p" "$WORK/t.out" | sort -g | sed -n 2p)
    got=$(grep "^$s " "$WORK/t.out" | sed -E 's/.* step [0-9.]+ s  bubble ([0-9.]+)%.*/\1/')
    [ -n "$rounds" ] && [ "$rounds" = "$got" ]
    lmf_check $? "$s: reported bubble $got% is not the median round's $rounds%"
done
for s in 1f1b zb; do
    grep -qE "^$s .* tok/s .*stage 0 [0-9.]+% \(1 layers, busy [0-9.]+ s\) stage 1" "$WORK/t.out"
    lmf_check $? "the text report has no $s line with both stages: $(cat "$WORK/t.out")"
done
! grep -q "^gpipe" "$WORK/t.out"
lmf_check $? "gpipe ran though --schedule named 1f1b,zb: $(cat "$WORK/t.out")"
mean() { grep "^$1 " "$WORK/t.out" | sed -E 's/.* step [0-9.]+ s  bubble ([0-9.]+)%.*/\1/'; }
ratio=$(sed -n 's/^bubble, zb over 1f1b: \([0-9.]*\)x.*/\1/p' "$WORK/t.out")
awk -v r="$ratio" -v z="$(mean zb)" -v o="$(mean 1f1b)" 'BEGIN {
    if (r == "" || o == "") exit 1
    if (o + 0 < 0.5) exit 0 # a mean under 0.05% rounds too coarsely to check the ratio
    e = z / o - r; exit !(e < 0.01 + 0.06 * z / o && e > -0.01 - 0.06 * z / o) }'
lmf_check $? "the zb over 1f1b ratio '$ratio' does not match the printed means $(mean zb)% and $(mean 1f1b)%"

# the interleaved schedule: two model chunks per stage of a 4-layer model (2 layers per stage),
# its own bubble (P-1)/(V*M+P-1) with equal action times (1/9 at V = 2, M = 4: computed here),
# and its ratio to 1F1B's printed
printf '{"n_layer": 4, "n_head": 2, "n_embd": 64, "n_positions": 64, "vocab_size": 256}\n' >"$WORK/m4.json"
timeout 300 "${MPIRUN[@]}" -np 2 "$LMF" bench --pp 2 --schedule 1f1b,interleaved --model "$WORK/m4.json" \
    --batch 2 --seq 32 --micro-batches 4 --steps 1 --warmup-steps 0 --json >"$WORK/i.json" 2>&1 </dev/null
lmf_check $? "bench --pp 2 --schedule 1f1b,interleaved: $(tail -3 "$WORK/i.json")"
line=$(grep '"schedule": "interleaved"' "$WORK/i.json")
sb=$(echo "$line" | grep -o '"schedule_bubble": *[0-9.]*' | sed 's/.*: *//')
awk -v b="$sb" 'BEGIN { d = b - 1 / 9; exit !(b != "" && d < 1e-4 && d > -1e-4) }'
lmf_check $? "interleaved schedule bubble '$sb', (P-1)/(V*M+P-1) = 1/9: $line"
[ "$(echo "$line" | grep -o '"layers": 2' | wc -l)" = 2 ]
lmf_check $? "interleaved: not 2 layers (two chunks) on each stage: $line"
timeout 300 "${MPIRUN[@]}" -np 2 "$LMF" bench --pp 2 --schedule 1f1b,interleaved --model "$WORK/m4.json" \
    --batch 2 --seq 32 --micro-batches 4 --steps 1 --warmup-steps 0 >"$WORK/i.out" 2>&1 </dev/null
grep -qE "^bubble, interleaved over 1f1b: [0-9.]+x \(the schedule alone with 2 chunks: 0\.56x\)" "$WORK/i.out"
lmf_check $? "no interleaved-over-1f1b ratio (schedules alone (1/9)/(1/5) = 0.56x): $(cat "$WORK/i.out")"

# refusals: one line, exit 2
refuse() { # WHAT PATTERN ARGS...
    local what="$1" pat="$2" rc; shift 2
    "$@" >"$WORK/r.out" 2>&1 </dev/null
    rc=$?
    [ "$rc" = 2 ] && grep -q -- "$pat" "$WORK/r.out" && [ "$(wc -l <"$WORK/r.out")" = 1 ]
    lmf_check $? "$what: exit $rc, $(cat "$WORK/r.out")"
}
refuse "--pp 2 on one rank" "needs 2 ranks" "$LMF" bench --pp 2 --model tiny --steps 1
refuse "--schedule without --pp" "give --pp 2 or more" "$LMF" bench --schedule zb --model tiny
refuse "--rounds without --pp" "give --pp 2 or more" "$LMF" bench --rounds 3 --model tiny
refuse "--virtual-stages without interleaved" "runs the interleaved schedule" "$LMF" bench --pp 2 --schedule 1f1b --virtual-stages 2 --model tiny
refuse "--schedule 1f1b,,zb" "not a list of pipeline schedules" "$LMF" bench --pp 2 --schedule 1f1b,,zb --model tiny
refuse "--model with a missing config" "cannot open" "$LMF" bench --model "$WORK/none.json"
lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_pp_bench: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_pp_bench: ok"
