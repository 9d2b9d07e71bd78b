#!/usr/bin/env bash
# Data specs naming paths that hold the spec's own characters: a backslash escapes a comma, a
# colon, a glob character or itself, in data inspect, in train --data/--val-data and in a
# mixture file; without the escape the error names the piece of the path it split off.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=1
D="$WORK/my,data"
mkdir -p "$D"
for i in $(seq 1 60); do echo "line $i: the quick brown fox jumps over the lazy dog."; echo %; done >"$D/text.txt"
"$LMF" data prepare --bytes --input "$D/text.txt" --doc-separator % --val-fraction 0.2 --out "$D/0.5:web[1]" \
  --quiet >/dev/null || fail "prepare"
E="$WORK/my\\,data/0.5\\:web\\[1\\]"   # the same directory, escaped for a spec
tokens=$(( ($(stat -c %s "$D/0.5:web[1]/train.bin") - 1024) / 2 ))

out=$("$LMF" data inspect --data "$E/train.bin" --batch 1 --seq 8 --steps 1 --json) || fail "inspect: $out"
echo "$out" | grep -q "\"tokens\": $tokens," && pass "inspect: an escaped file path ($tokens tokens)" \
  || fail "inspect escaped path: $out"
out=$("$LMF" data inspect --data "$E" --batch 1 --seq 8 --steps 1 --json) || fail "inspect dir: $out"
echo "$out" | grep -q '"files": 2,' && pass "inspect: an escaped directory (train.bin and val.bin)" || fail "inspect dir: $out"
out=$("$LMF" data inspect --data "$E/tr*.bin" --batch 1 --seq 8 --steps 1 --json) || fail "inspect glob: $out"
echo "$out" | grep -q "\"tokens\": $tokens," && pass "inspect: a glob under an escaped directory" \
  || fail "inspect glob: $out"
out=$("$LMF" data inspect --data "3:$E/train.bin,1:$E/val.bin" --batch 1 --seq 8 --steps 100 --json) \
  || fail "inspect mixture: $out"
echo "$out" | grep -q '"name": "[^"]*my,data/0.5:web\[1\]/val.bin", "files": 1' \
  && echo "$out" | grep -q '"weight": 0.75' && pass "inspect: a weighted mixture of escaped paths" \
  || fail "inspect mixture: $out"
cat >"$WORK/mix.json" <<JSON
{"sources": [{"name": "web", "weight": 1, "data": "my\\\\,data/0.5\\\\:web\\\\[1\\\\]/train.bin"}]}
JSON
out=$("$LMF" data inspect --data "$WORK/mix.json" --batch 1 --seq 8 --steps 1 --json) || fail "inspect json: $out"
echo "$out" | grep -q "\"tokens\": $tokens," && pass "inspect: a mixture file with escaped paths" \
  || fail "inspect json: $out"

"$LMF" train --model tiny --vocab-size 257 --data "$E/train.bin" --val-data "$E/val.bin" --steps 2 \
  --batch 2 --seq 16 --eval-every 2 --sample-tokens 0 --out "$WORK/run" >"$WORK/train.out" 2>&1 \
  && pass "train: escaped --data and --val-data" || fail "train: $(tail -c 600 "$WORK/train.out")"

expect_error "unescaped comma: the error names the piece" 1 "my: " -- \
  "$LMF" data inspect --data "$WORK/my,data/x.bin"
expect_error "a lone backslash at the end" 2 "lone backslash" -- \
  "$LMF" data inspect --data "$E/train.bin\\"
finish
