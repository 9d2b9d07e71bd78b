#!/usr/bin/env bash
# lmforge data prepare: token files that decode back to the documents joined by <|endoftext|>, the
# same token files on 1 and 2 threads, raw-byte mode sizes, the summary lines, and one-line errors.
source "$(dirname "$0")/lib/common.sh"
make_corpus "$WORK/corpus"
tok="$WORK/tok"
"$LMF" tokenizer train --input "$WORK/corpus/animals" "$WORK/corpus/sayings" --vocab-size 300 \
  --out "$tok" --quiet >/dev/null || fail "train tokenizer"

inputs=("$WORK/corpus/animals" "$WORK/corpus/sayings")
"$LMF" data prepare --tokenizer "$tok" --input "${inputs[@]}" --out "$WORK/d1" --doc-separator % \
  --val-fraction 0.1 --threads 1 >"$WORK/out1.txt" || fail "prepare, 1 thread"
"$LMF" data prepare --tokenizer "$tok" --input "${inputs[@]}" --out "$WORK/d2" --doc-separator % \
  --val-fraction 0.1 --threads 2 >"$WORK/out2.txt" || fail "prepare, 2 threads"
cmp -s "$WORK/d1/train.bin" "$WORK/d2/train.bin" && cmp -s "$WORK/d1/val.bin" "$WORK/d2/val.bin" \
  && pass "same token files on 1 and 2 threads" || fail "token files differ between thread counts"
grep -q "^prepared 900 documents" "$WORK/out1.txt" && grep -q "(90 documents)" "$WORK/out1.txt" \
  && pass "900 documents, 90 for validation" || fail "summary: $(cat "$WORK/out1.txt")"
grep -qE "^throughput: [0-9.]+ MB/s" "$WORK/out1.txt" && pass "throughput line" || fail "no throughput line"

# the token files' ids, decoded, are the documents each followed by <|endoftext|>
ids() { od -An -v -tu2 -j1024 "$1" | tr -s ' \n' '  '; }
{ ids "$WORK/d1/train.bin"; ids "$WORK/d1/val.bin"; } | "$LMF" tokenizer decode --tokenizer "$tok" >"$WORK/decoded"
awk 'FNR == 1 && doc != "" { printf "%s<|endoftext|>", doc; doc = "" }
     $0 == "%" { if (doc != "") printf "%s<|endoftext|>", doc; doc = ""; next }
     { doc = doc $0 "\n" }
     END { if (doc != "") printf "%s<|endoftext|>", doc }' "${inputs[@]}" >"$WORK/expected"
cmp -s "$WORK/decoded" "$WORK/expected" && pass "token files decode to the documents" || fail "decoded token files differ"
magic=$(od -An -tu4 -N4 "$WORK/d1/train.bin" | tr -d ' ')
[ "$magic" = "20240520" ] && pass "llm.c magic" || fail "magic $magic"

# raw bytes: 1 id per byte plus one end-of-text per document; uint16
"$LMF" data prepare --bytes --input "${inputs[@]}" --out "$WORK/d3" --val-fraction 0 >/dev/null || fail "bytes mode"
bytes=$(cat "${inputs[@]}" | wc -c)
size=$(stat -c %s "$WORK/d3/train.bin")
[ "$size" -eq $((1024 + 2 * (bytes + 2))) ] && pass "bytes mode size (2 files = 2 documents)" || fail "bytes mode size $size"
[ ! -e "$WORK/d3/val.bin" ] && pass "no val.bin with --val-fraction 0" || fail "val.bin written"

expect_error "no subcommand" 2 "missing subcommand" -- "$LMF" data
# --val-fraction 0 into a directory that has a val.bin (made with another tokenizer): it goes
"$LMF" data prepare --bytes --input "${inputs[@]}" --out "$WORK/d1" --val-fraction 0 >/dev/null || fail "prepare without val"
[ -s "$WORK/d1/train.bin" ] && [ ! -e "$WORK/d1/val.bin" ] && pass "--val-fraction 0 removes a stale val.bin" \
  || fail "val.bin left after --val-fraction 0"
[ -z "$(ls -A "$WORK/d1" | grep -v -x -e train.bin)" ] && pass "no temporary file left" || fail "left: $(ls -A "$WORK/d1")"
expect_error "both --tokenizer and --bytes" 2 "exactly one of --tokenizer" -- "$LMF" data prepare --tokenizer "$tok" --bytes --input "${inputs[@]}" --out "$WORK/e"
expect_error "no --out" 2 "required" -- "$LMF" data prepare --bytes --input "${inputs[@]}"
expect_error "bad fraction" 2 "--val-fraction must be between" -- "$LMF" data prepare --bytes --input "${inputs[@]}" --out "$WORK/e" --val-fraction 1.5
expect_error "missing input" 1 "nope.txt: cannot open" -- "$LMF" data prepare --bytes --input "$WORK/nope.txt" --out "$WORK/e"
printf 'one document\n' >"$WORK/one.txt"
expect_error "too small to split" 2 "too small: 1 document" -- "$LMF" data prepare --bytes --input "$WORK/one.txt" --out "$WORK/e"
[ ! -e "$WORK/e" ] && pass "a failed preparation leaves no directory" || fail "left $(ls -A "$WORK/e")"
expect_error "bad tokenizer" 1 "no tokenizer files" -- "$LMF" data prepare --tokenizer "$WORK" --input "${inputs[@]}" --out "$WORK/e"
finish
