#!/usr/bin/env bash
# cl100k_base against an independent encoder: js-tiktoken from the npm registry (installed under
# the build directory on first use) writes a varied text (contractions in mixed case, digit
# runs, whitespace and newline runs, CRLF, many scripts, emoji, long pieces, random code
# points), its ids for that text, its own ranks as a tiktoken file and a Llama 3 style
# tokenizer.json built from them; lmforge must give the same ids from both files, with and
# without special tokens. Needs no ../shared. Skipped when node/npm or the registry is missing.
source "$(dirname "$0")/lib/common.sh"
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test_tok_cl100k_npm: skipped (node and npm not found)"; exit 77
fi
mods="${LMF_BUILD_DIR:-$WORK}/test-npm"
if [ ! -f "$mods/node_modules/js-tiktoken/package.json" ]; then
  mkdir -p "$mods"
  if ! timeout 300 npm install --prefix "$mods" --no-audit --no-fund --no-save --silent \
      js-tiktoken@1.0.21 >"$WORK/npm.log" 2>&1; then
    echo "test_tok_cl100k_npm: skipped (npm install js-tiktoken failed: $(tail -1 "$WORK/npm.log"))"
    exit 77
  fi
fi
node "$here/lib/cl100k_reference.js" "$mods/node_modules" "$WORK" 20261203 120000 \
  || { fail "the reference encoder did not run"; finish; exit 1; }
[ "$(wc -w <"$WORK/ids.txt")" -gt 30000 ] || fail "reference ids: too few"

check() { # name tokenizer text expected [flags]
  "$LMF" tokenizer encode --tokenizer "$2" "${@:5}" <"$3" | tr -d '\n' >"$WORK/ours.txt" \
    || { fail "$1: lmforge encode"; return; }
  if cmp -s "$WORK/ours.txt" "$4"; then pass "$1 ($(wc -w <"$4") ids)"
  else fail "$1: ids differ from js-tiktoken's at id $(cmp "$WORK/ours.txt" "$4" | head -1)"; fi
}
check "tiktoken file, varied text" "$WORK/cl100k_base.tiktoken" "$WORK/text.txt" "$WORK/ids.txt"
check "tiktoken file, special tokens allowed" "$WORK/cl100k_base.tiktoken" "$WORK/special.txt" \
  "$WORK/special_ids.txt" --allow-special
check "tokenizer.json (Split + ByteLevel), varied text" "$WORK/hf" "$WORK/text.txt" "$WORK/ids.txt"
check "tokenizer.json, special tokens allowed" "$WORK/hf/tokenizer.json" "$WORK/special.txt" \
  "$WORK/special_ids.txt" --allow-special
# and back: lmforge's decoding of the reference ids is the text
"$LMF" tokenizer decode --tokenizer "$WORK/hf" <"$WORK/ids.txt" >"$WORK/back.txt" || fail "decode"
cmp -s "$WORK/back.txt" "$WORK/text.txt" && pass "the reference ids decode to the text" \
  || fail "decoding the reference ids does not give the text"
finish
