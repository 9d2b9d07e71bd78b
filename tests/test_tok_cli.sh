#!/usr/bin/env bash
# lmforge tokenizer train|encode|decode|info: files written, determinism, round trips, special
# tokens, cl100k's pattern (training, tiktoken files, data prepare), GPT-2's and cl100k_base's
# ids (when $LMF_SHARED_DIR has them), and one-line errors.
source "$(dirname "$0")/lib/common.sh"
make_corpus "$WORK/corpus"
tok="$WORK/tok"

"$LMF" tokenizer train --input "$WORK/corpus/animals" "$WORK/corpus/sayings" --vocab-size 300 \
  --out "$tok" --quiet >"$WORK/train.txt" || fail "train"
for f in encoder.json vocab.bpe tokenizer.json; do
  [ -s "$tok/$f" ] && pass "train wrote $f" || fail "train did not write $f"
done
grep -q "300-id vocabulary" "$WORK/train.txt" && pass "train summary" || fail "train summary: $(cat "$WORK/train.txt")"
head -1 "$tok/vocab.bpe" | grep -qx "#version: 0.2" && pass "vocab.bpe header" || fail "vocab.bpe header"
[ "$(($(wc -l <"$tok/vocab.bpe") - 1))" -eq 43 ] && pass "43 merges = 300 - 256 - 1" || fail "merge count"
"$LMF" tokenizer info --tokenizer "$tok" >"$WORK/info.txt" || fail "info"
grep -qx "vocab_size 300" "$WORK/info.txt" && grep -qx "end_of_text 299" "$WORK/info.txt" \
  && pass "info" || fail "info: $(cat "$WORK/info.txt")"

# training is deterministic, also across thread counts
"$LMF" tokenizer train --input "$WORK/corpus/animals" "$WORK/corpus/sayings" --vocab-size 300 \
  --out "$WORK/tok2" --threads 1 --quiet >/dev/null || fail "second train"
same=1
for f in encoder.json vocab.bpe tokenizer.json; do cmp -s "$tok/$f" "$WORK/tok2/$f" || same=0; done
[ $same -eq 1 ] && pass "two trainings give identical files" || fail "trainings differ"

# round trips: text ids and binary ids, the corpus and random bytes (invalid UTF-8 included)
cat "$WORK/corpus/animals" "$WORK/corpus/sayings" >"$WORK/all.txt"
head -c 200000 /dev/urandom >"$WORK/random.bin"
for f in all.txt random.bin; do
  "$LMF" tokenizer encode --tokenizer "$tok" <"$WORK/$f" | "$LMF" tokenizer decode --tokenizer "$tok" >"$WORK/back"
  cmp -s "$WORK/back" "$WORK/$f" && pass "text-id round trip of $f" || fail "text-id round trip of $f"
  "$LMF" tokenizer encode --tokenizer "$tok" --binary <"$WORK/$f" \
    | "$LMF" tokenizer decode --tokenizer "$tok" --binary >"$WORK/back"
  cmp -s "$WORK/back" "$WORK/$f" && pass "binary round trip of $f" || fail "binary round trip of $f"
done
ids=$(printf 'the quick' | "$LMF" tokenizer encode --tokenizer "$tok")
n=$(printf 'the quick' | "$LMF" tokenizer encode --tokenizer "$tok" --binary | wc -c)
[ "$n" -eq $((4 * $(echo "$ids" | wc -w))) ] && pass "binary is 4 bytes an id" || fail "binary size $n for '$ids'"

# special tokens: text unless allowed
ids=$(printf '<|endoftext|>' | "$LMF" tokenizer encode --tokenizer "$tok" --allow-special)
[ "$ids" = "299" ] && pass "allowed special token" || fail "allowed special token: '$ids'"
ids=$(printf '<|endoftext|>' | "$LMF" tokenizer encode --tokenizer "$tok")
[ "$(echo "$ids" | wc -w)" -gt 1 ] && pass "special token as plain text" || fail "plain special: '$ids'"
out=$(echo "299" | "$LMF" tokenizer decode --tokenizer "$tok")
[ "$out" = "<|endoftext|>" ] && pass "decode special token" || fail "decode special: '$out'"

# custom special tokens
"$LMF" tokenizer train --input "$WORK/all.txt" --vocab-size 300 --special "<s>" "</s>" --out "$WORK/tok3" \
  --quiet >/dev/null || fail "train with --special"
ids=$(printf '<s>x</s>' | "$LMF" tokenizer encode --tokenizer "$WORK/tok3" --allow-special)
[ "$ids" = "298 120 299" ] && pass "custom special tokens" || fail "custom special tokens: '$ids'"

# cl100k's pattern: trained, saved as tokenizer.json alone, loaded back with its pattern, usable
# by data prepare; a hand-made tiktoken file (the 256 bytes and "ab") by path and in a directory
"$LMF" tokenizer train --pattern cl100k --input "$WORK/all.txt" --vocab-size 300 --out "$WORK/tokc" \
  --quiet >/dev/null || fail "train --pattern cl100k"
[ -s "$WORK/tokc/tokenizer.json" ] && [ ! -e "$WORK/tokc/vocab.bpe" ] \
  && pass "cl100k training writes tokenizer.json only" || fail "cl100k training files"
"$LMF" tokenizer info --tokenizer "$WORK/tokc" >"$WORK/info.txt" || fail "info cl100k"
grep -qx "pattern cl100k" "$WORK/info.txt" && pass "info: pattern cl100k" || fail "info cl100k: $(cat "$WORK/info.txt")"
grep -qx "pattern gpt2" <("$LMF" tokenizer info --tokenizer "$tok") && pass "info: pattern gpt2" || fail "info gpt2 pattern"
# "DON'T" is one piece with GPT-2's pattern up to the apostrophe and 'T apart with cl100k's
a=$(printf "1234567 DON'T" | "$LMF" tokenizer encode --tokenizer "$WORK/tokc" | "$LMF" tokenizer decode --tokenizer "$WORK/tokc")
[ "$a" = "1234567 DON'T" ] && pass "cl100k round trip" || fail "cl100k round trip: '$a'"
"$LMF" tokenizer encode --tokenizer "$WORK/tokc" <"$WORK/random.bin" | "$LMF" tokenizer decode --tokenizer "$WORK/tokc" >"$WORK/back"
cmp -s "$WORK/back" "$WORK/random.bin" && pass "cl100k round trip of random bytes" || fail "cl100k round trip of random bytes"
"$LMF" data prepare --tokenizer "$WORK/tokc" --input "$WORK/all.txt" --doc-separator % --out "$WORK/prep" \
  --quiet >"$WORK/prep.txt" && [ -s "$WORK/prep/train.bin" ] && pass "data prepare with a cl100k tokenizer" \
  || fail "data prepare with a cl100k tokenizer: $(cat "$WORK/prep.txt")"
mkdir -p "$WORK/tt"
for b in $(seq 0 255); do printf "$(printf '\\%03o' "$b")" | base64 | tr -d '\n'; echo " $b"; done >"$WORK/tt/tokenizer.model"
echo "YWI= 256" >>"$WORK/tt/tokenizer.model"
ids=$(printf 'abab ab' | "$LMF" tokenizer encode --tokenizer "$WORK/tt/tokenizer.model")
[ "$ids" = "256 256 32 256" ] && pass "tiktoken file by path" || fail "tiktoken file by path: '$ids'"
ids=$(printf 'abab ab' | "$LMF" tokenizer encode --tokenizer "$WORK/tt")
[ "$ids" = "256 256 32 256" ] && pass "tiktoken file in a directory" || fail "tiktoken file in a directory: '$ids'"
printf '\n\x0a\x05hello' >"$WORK/sp.model"; mkdir -p "$WORK/sp"; cp "$WORK/sp.model" "$WORK/sp/tokenizer.model"
expect_error "SentencePiece model" 1 "not a tiktoken BPE file.*SentencePiece" -- "$LMF" tokenizer encode --tokenizer "$WORK/sp/tokenizer.model"
expect_error "SentencePiece model in a directory" 1 "not a tiktoken BPE file" -- "$LMF" tokenizer encode --tokenizer "$WORK/sp"
expect_error "bad --pattern" 2 "--pattern: unknown pre-tokenizer pattern 'llama'" -- "$LMF" tokenizer train --input "$WORK/all.txt" --vocab-size 300 --pattern llama --out "$WORK/x"
sed -i 's/"Regex": "(?i:/"Regex": "(?:/' "$WORK/tokc/tokenizer.json"
expect_error "tokenizer.json Split with another pattern" 1 "Split has a pattern other than cl100k" -- "$LMF" tokenizer encode --tokenizer "$WORK/tokc"

c="${LMF_SHARED_DIR:-}/cl100k/cl100k_base.tiktoken"
if [ -n "${LMF_SHARED_DIR:-}" ] && [ -f "$c" ]; then
  ids=$(printf "Hello world, DON'T 1234567" | "$LMF" tokenizer encode --tokenizer "$c")
  [ "$ids" = "9906 1917 11 45373 17773 220 4513 10961 22" ] && pass "cl100k_base ids" || fail "cl100k_base ids: '$ids'"
  "$LMF" data prepare --tokenizer "$c" --input "$WORK/all.txt" --doc-separator % --out "$WORK/prep2" \
    --quiet >"$WORK/prep.txt" && grep -q "uint32, vocabulary 100277" "$WORK/prep.txt" \
    && pass "data prepare with cl100k_base: uint32 ids" || fail "data prepare with cl100k_base: $(cat "$WORK/prep.txt")"
else
  echo "SKIP: cl100k_base checks (no \$LMF_SHARED_DIR/cl100k)"
fi

# GPT-2's vocabulary, through the CLI
g="${LMF_SHARED_DIR:-}/gpt2"
if [ -n "${LMF_SHARED_DIR:-}" ] && [ -f "$g/encoder.json" ]; then
  ids=$(printf 'Hello world' | "$LMF" tokenizer encode --tokenizer "$g")
  [ "$ids" = "15496 995" ] && pass "GPT-2 ids" || fail "GPT-2 ids: '$ids'"
  ids=$(printf 'Hello world' | "$LMF" tokenizer encode --tokenizer "$g/encoder.json")
  [ "$ids" = "15496 995" ] && pass "GPT-2 ids via encoder.json" || fail "GPT-2 ids via encoder.json: '$ids'"
else
  echo "SKIP: GPT-2 checks (no \$LMF_SHARED_DIR/gpt2)"
fi

# Llama 3's post-processor template (a small Llama 3.1-shaped tokenizer.json written by
# test_tok_llama3; the ids are derived by hand there): encode puts <|begin_of_text|> (264) in
# front of the input, as transformers' tokenizer(text) does; --no-template leaves it out
L3FIX="${LMF_BUILD_DIR:-$(dirname "$LMF")}/test_tok_llama3"
if [ -x "$L3FIX" ] && "$L3FIX" --write-fixture "$WORK/llama31.json"; then
  got=$(printf 'Hello world!' | "$LMF" tokenizer encode --tokenizer "$WORK/llama31.json")
  [ "$got" = "264 258 111 263 33" ] && pass "encode adds Llama 3's <|begin_of_text|>" || fail "encode with template: '$got'"
  got=$(printf 'Hello world!' | "$LMF" tokenizer encode --tokenizer "$WORK/llama31.json" --no-template)
  [ "$got" = "258 111 263 33" ] && pass "--no-template: the text's ids alone" || fail "--no-template: '$got'"
  got=$(printf 'Hello world!' | "$LMF" tokenizer encode --binary --tokenizer "$WORK/llama31.json" | od -An -tu4 | tr -s ' \n' ' ')
  [ "$got" = " 264 258 111 263 33 " ] && pass "--binary has the template too" || fail "binary with template: '$got'"
  got=$(printf '<|python_tag|>Hello<|eom_id|>' | "$LMF" tokenizer encode --allow-special --tokenizer "$WORK/llama31.json")
  [ "$got" = "264 274 258 111 272" ] && pass "Llama 3.1's renamed special tokens" || fail "3.1 specials: '$got'"
  "$LMF" tokenizer info --tokenizer "$WORK/llama31.json" | grep -qx 'template <|begin_of_text|> TEXT' \
    && pass "info shows the template" || fail "info template"
  "$LMF" tokenizer info --tokenizer "$tok" | grep -qx 'template TEXT' && pass "info: no template" || fail "info no template"
else
  fail "$L3FIX --write-fixture failed (it is built with the tests)"
fi

# errors: one line, exit 2 for usage, 1 for run-time failures
expect_error "no subcommand" 2 "missing subcommand" -- "$LMF" tokenizer
expect_error "unknown subcommand" 2 "unknown subcommand 'frob'" -- "$LMF" tokenizer frob
expect_error "encode without --tokenizer" 2 "--tokenizer DIR is required" -- "$LMF" tokenizer encode
expect_error "vocab too small" 2 "--vocab-size must be between" -- "$LMF" tokenizer train --input "$WORK/all.txt" --vocab-size 3 --out "$WORK/x"
expect_error "train without --out" 2 "required" -- "$LMF" tokenizer train --input "$WORK/all.txt" --vocab-size 300
expect_error "missing input" 1 "nope.txt: cannot open" -- "$LMF" tokenizer train --input "$WORK/nope.txt" --vocab-size 300 --out "$WORK/x"
expect_error "special equal to a byte" 2 "special token 'a'" -- "$LMF" tokenizer train --input "$WORK/all.txt" --vocab-size 300 --special a --out "$WORK/x"
expect_error "missing tokenizer dir" 1 "nodir" -- "$LMF" tokenizer encode --tokenizer "$WORK/nodir"
mkdir -p "$WORK/bad"
echo '{"model": {"type": "BPE", "vocab": {' >"$WORK/bad/tokenizer.json"
expect_error "corrupt tokenizer.json" 1 "tokenizer.json: not valid JSON" -- "$LMF" tokenizer encode --tokenizer "$WORK/bad"
expect_error "id out of range" 1 "id 300 .*not in the vocabulary" -- sh -c "echo '1 300' | '$LMF' tokenizer decode --tokenizer '$tok'"
expect_error "not a number" 1 "unexpected byte" -- sh -c "echo '1 x' | '$LMF' tokenizer decode --tokenizer '$tok'"
expect_error "binary input not a multiple of 4" 1 "stray bytes" -- sh -c "printf 'abcde' | '$LMF' tokenizer decode --binary --tokenizer '$tok'"
finish
