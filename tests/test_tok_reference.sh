#!/usr/bin/env bash
# Cross-check against an independent encoder: GPT-2's published algorithm (regex pattern + BPE
# loop) written in Python with the `regex` module reads the same encoder.json + vocab.bpe (or
# tokenizer.json) and must give the same ids as lmforge, for tokenizers lmforge trained with
# GPT-2's and with cl100k's pattern, and for GPT-2's own files.
# Skipped (visibly) when python3 or its regex module is missing.
source "$(dirname "$0")/lib/common.sh"
# the first python3 that has the regex module (Debian's python3-regex, or a user install)
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c "import regex" 2>/dev/null; then PY="$(command -v "$p")"; break; fi
done
if [ -z "$PY" ]; then
  echo "test_tok_reference: skipped (python3 with the 'regex' module not found)"
  exit 77
fi
python3() { "$PY" "$@"; }
cat >"$WORK/ref.py" <<'PY'
import json, sys, regex
def byte_alphabet():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
ALPHA = byte_alphabet()
vocab_dir, text_path, pattern = sys.argv[1], sys.argv[2], sys.argv[3]
if pattern == "gpt2":
    enc = json.load(open(vocab_dir + "/encoder.json", encoding="utf-8"))
    lines = open(vocab_dir + "/vocab.bpe", encoding="utf-8").read().split("\n")
    ranks = {tuple(l.split()): i for i, l in enumerate(x for x in lines[1:] if x)}
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
else:  # cl100k_base's pattern (as tiktoken publishes it); the BPE of tokenizer.json
    model = json.load(open(vocab_dir + "/tokenizer.json", encoding="utf-8"))["model"]
    enc = model["vocab"]
    ranks = {tuple(m.split(" ")): i for i, m in enumerate(model["merges"])}
    pat = regex.compile(r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
cache = {}
def bpe(word):
    if word in cache: return cache[word]
    parts = list(word)
    while len(parts) > 1:
        pairs = [(parts[i], parts[i + 1]) for i in range(len(parts) - 1)]
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks: break
        out, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                out.append(parts[i] + parts[i + 1]); i += 2
            else:
                out.append(parts[i]); i += 1
        parts = out
    cache[word] = parts
    return parts
text = open(text_path, "rb").read().decode("utf-8", errors="surrogateescape")
ids = []
for piece in pat.findall(text):
    b = piece.encode("utf-8", errors="surrogateescape")
    ids.extend(enc[t] for t in bpe("".join(ALPHA[x] for x in b)))
print(" ".join(map(str, ids)))
PY
cat >"$WORK/gen.py" <<'PY'
import random, sys, unicodedata
random.seed(int(sys.argv[1]))
ascii = ["'s", "'t", "'re", "'ll", "'S", "'RE", "'Ll", "'\u017f", "'", "\r", "x\r\n", ". \r\n", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", " \n",
         "hello", " world", "The", "don't", "123", "4567", "3.14", ",", ".", "!!", "?", "<|endoftext|>", "_"]
spaces = [0x85, 0xA0, 0x1680, 0x2000, 0x2009, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x0B, 0x0C, 0x1C]
def cp():
    while True:
        r = random.random()
        c = (random.randint(0x80, 0x7FF) if r < 0.3 else random.randint(0x800, 0xFFFF) if r < 0.6
             else random.choice(spaces) if r < 0.7 else random.randint(0x1F300, 0x1FAFF))
        # assigned in this Python's Unicode data (so every Unicode version involved agrees)
        if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn":
            return c
out = bytearray()
while len(out) < int(sys.argv[2]):
    r = random.random()
    if r < 0.5: out += random.choice(ascii).encode()
    elif r < 0.85: out += chr(cp()).encode()
    else: out += random.choice([b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xff", b"\xf0\x9f\x98", b"\xc0\xaf"])
open(sys.argv[3], "wb").write(bytes(out))
PY

# the text: the default corpus when installed, else a generated one; plus random Unicode
if [ -d /usr/share/games/fortunes ]; then
  find /usr/share/games/fortunes -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat >"$WORK/text.txt"
else
  make_corpus "$WORK/corpus"; cat "$WORK/corpus"/* >"$WORK/text.txt"
fi
python3 "$WORK/gen.py" 1 300000 "$WORK/random.bin"

check() { # name vocab_dir text_file [pattern]
  "$LMF" tokenizer encode --tokenizer "$2" <"$3" >"$WORK/ours.txt" || { fail "$1: lmforge encode"; return; }
  python3 "$WORK/ref.py" "$2" "$3" "${4:-gpt2}" >"$WORK/ref.txt" || { fail "$1: reference encode"; return; }
  if cmp -s "$WORK/ours.txt" "$WORK/ref.txt"; then pass "$1 ($(wc -w <"$WORK/ours.txt") ids)"
  else fail "$1: ids differ from the reference"; fi
}
"$LMF" tokenizer train --input "$WORK/text.txt" --vocab-size 8000 --out "$WORK/tok" --quiet >/dev/null \
  || fail "train"
check "trained vocabulary, corpus" "$WORK/tok" "$WORK/text.txt"
check "trained vocabulary, random Unicode and invalid UTF-8" "$WORK/tok" "$WORK/random.bin"
# cl100k's pattern on a part of the corpus (the Python reference is the slow half of this test)
head -c 600000 "$WORK/text.txt" >"$WORK/part.txt"
"$LMF" tokenizer train --pattern cl100k --input "$WORK/part.txt" "$WORK/random.bin" --vocab-size 4000 \
  --out "$WORK/tok100k" --quiet >/dev/null || fail "train --pattern cl100k"
[ ! -e "$WORK/tok100k/encoder.json" ] && grep -q '"Split"' "$WORK/tok100k/tokenizer.json" \
  && pass "cl100k vocabulary saved as tokenizer.json with a Split pre-tokenizer" \
  || fail "cl100k vocabulary files"
check "trained cl100k vocabulary, corpus" "$WORK/tok100k" "$WORK/part.txt" cl100k
check "trained cl100k vocabulary, random Unicode and invalid UTF-8" "$WORK/tok100k" "$WORK/random.bin" cl100k
g="${LMF_SHARED_DIR:-}/gpt2"
if [ -n "${LMF_SHARED_DIR:-}" ] && [ -f "$g/encoder.json" ] && [ -f "$g/vocab.bpe" ]; then
  check "GPT-2, corpus" "$g" "$WORK/text.txt"
  check "GPT-2, random Unicode and invalid UTF-8" "$g" "$WORK/random.bin"
else
  echo "SKIP: GPT-2 checks (no \$LMF_SHARED_DIR/gpt2)"
fi
finish
