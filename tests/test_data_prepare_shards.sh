#!/usr/bin/env bash
# Sharded data preparation: JSON Lines (one compressed) into token files of a fixed size plus a
# manifest; the validation split in OUT/val/ holds the documents val.bin of an unsharded
# preparation holds (and the train files the rest); byte-identical at 1, 2 and 3 ranks under mpirun; a crash mid-way leaves only complete
# token files and the manifest, and the rerun continues to the same bytes; a finished directory
# is left alone; another plan for the same directory is refused; a bad line is named.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"
export OMP_NUM_THREADS=1
cd "$WORK" || exit 1
for i in 1 2 3 4 5; do
  for j in $(seq 1 $((i * 40))); do
    echo "{\"id\": $j, \"text\": \"document $i.$j: the quick brown fox jumps over $((j % 7)) lazy dogs\"}"
  done >in$i.jsonl
done
if command -v zstd >/dev/null; then zstd -q --rm in3.jsonl -o in3.jsonl.zst; fi
IN=(in1.jsonl in2.jsonl in3.jsonl* in4.jsonl in5.jsonl)
prep() { "$LMF" data prepare --bytes --input "${IN[@]}" --shard-tokens 3000 --threads 1 "$@"; }

prep --out ref --quiet || fail "prepare"
n=$(ls ref/train_*.bin | wc -l)
# the tokens, counted independently from the inputs' texts: bytes + 1 end-of-text per document
want=0
for f in in1.jsonl in2.jsonl in4.jsonl in5.jsonl; do
  want=$((want + $(sed 's/.*"text": "\(.*\)"}/\1/' "$f" | awk '{ n += length($0) + 1 } END { print n }')))
done
if [ -f in3.jsonl.zst ]; then t3=$(zstd -dc in3.jsonl.zst); else t3=$(cat in3.jsonl); fi
want=$((want + $(echo "$t3" | sed 's/.*"text": "\(.*\)"}/\1/' | awk '{ n += length($0) + 1 } END { print n }')))
tokens_of() { "$LMF" data inspect --data "$1" --batch 1 --seq 1 --steps 0 --json | grep -o '"tokens": [0-9]*' | head -1 | grep -o '[0-9]*$'; }
nv=$(ls ref/val/val_*.bin | wc -l)
got=$(( $(tokens_of ref) + $(tokens_of ref/val) ))
[ "$got" = "$want" ] && [ "$nv" -ge 1 ] && grep -q '"complete": true' ref/manifest.json \
  && grep -q '"val/val_000000.bin"' ref/manifest.json \
  && [ ! -e ref/.parts ] && pass "$n train and $nv val token files of 3000 tokens, $want tokens in all, manifest complete" \
  || fail "token files: $n + $nv, tokens $got, expected $want; $(ls -a ref)"
# the tokens of a token file set, joined, without headers
joined() { for f in "$@"; do tail -c +1025 "$f"; done; }
# the split matches an unsharded preparation's val.bin, for the default fraction (inside the last
# input), 0.5 (inside the fourth of five inputs) and 0.6 (exactly at the fourth input's start)
for frac in 0.05 0.5 0.6; do
  "$LMF" data prepare --bytes --input "${IN[@]}" --val-fraction $frac --threads 1 --out flat$frac --quiet >/dev/null \
    || fail "unsharded prepare $frac"
  if [ $frac = 0.05 ]; then d=ref; else d=sh$frac; prep --val-fraction $frac --out $d --quiet || fail "sharded $frac"; fi
  cmp -s <(joined $d/train_*.bin) <(joined flat$frac/train.bin) \
    && cmp -s <(joined $d/val/val_*.bin) <(joined flat$frac/val.bin) \
    && pass "--val-fraction $frac: the train and val files hold train.bin's and val.bin's tokens" \
    || fail "--val-fraction $frac: the sharded split differs from val.bin"
done
prep --val-fraction 0 --out noval --quiet || fail "prepare without validation"
[ ! -e noval/val ] && cmp -s <(joined noval/train_*.bin) <(joined ref/train_*.bin ref/val/val_*.bin) \
  && pass "--val-fraction 0: no val/, every document in the train files" || fail "--val-fraction 0: $(ls noval)"
echo '{"text": "only one"}' >one.jsonl
expect_error "one document cannot be split" 1 "too small: 1 document" -- \
  "$LMF" data prepare --bytes --input one.jsonl --shard-tokens 3000 --out onedoc
sizes=$(for f in ref/train_*.bin; do stat -c %s "$f"; done | sort -u | wc -l)
[ "$sizes" -le 2 ] && pass "all token files but the last of one size" || fail "sizes differ"

# a crash after 7 files (5 inputs, then 2 token files): only complete files, and the manifest
prep --out crashed --quiet --test-crash-after 7 && fail "the crash hook did not stop the run"
[ -n "$(ls crashed/val 2>/dev/null)" ] && fail "the crash came before any validation file"
bins=$(ls crashed/*.bin 2>/dev/null | wc -l)
[ "$bins" -eq 2 ] && [ -f crashed/manifest.json ] && grep -q '"complete": false' crashed/manifest.json \
  && "$LMF" data inspect --data crashed --batch 1 --seq 1 --steps 0 >/dev/null \
  && pass "after a crash: 2 complete token files and the manifest" || fail "after the crash: $(ls -a crashed)"
out=$(prep --out crashed) || fail "rerun"
echo "$out" | grep -q "inputs tokenized 0, kept 5; files written $((n + nv - 2)), kept 2" \
  && diff -r ref crashed >/dev/null && pass "the rerun continues: same bytes as an uninterrupted run" \
  || fail "rerun: $out; $(diff -r ref crashed | head -3)"
prep --out crashed | grep -q "complete already" && pass "a complete directory is left alone" || fail "complete rerun"
expect_error "another plan for the directory is refused" 1 "describes another preparation" -- \
  "$LMF" data prepare --bytes --input in1.jsonl --shard-tokens 3000 --out crashed
echo '{"text": "fine"}' >bad.jsonl; echo '{"text": 7}' >>bad.jsonl
expect_error "a bad line is named" 1 "bad\.jsonl:2:" -- \
  "$LMF" data prepare --bytes --input in1.jsonl bad.jsonl --shard-tokens 3000 --out badout
expect_error "a malformed shard size" 2 "--shard-tokens" -- \
  "$LMF" data prepare --bytes --input in1.jsonl --shard-tokens 3X --out x

if ! command -v mpirun >/dev/null; then
  echo "mpirun not found: the rank-count checks are skipped"; finish || exit 1; exit 77
fi
source "$HERE/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
for np in 2 3; do
  "${MPIRUN[@]}" -np $np "$LMF" data prepare --bytes --input "${IN[@]}" --shard-tokens 3000 \
    --threads 1 --quiet --out np$np >/dev/null 2>&1 || fail "np $np"
  diff -r ref np$np >/dev/null && pass "np $np: byte-identical to np 1" || fail "np $np differs"
done
lmf_sanitizer_verdict
[ "$lmf_fail_count" -eq 0 ] || fail "sanitizer reports"
finish
