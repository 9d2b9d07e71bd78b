// An independent cl100k_base encoder for test_tok_cl100k_npm: js-tiktoken (npm) writes a varied
// text, the ids it gives that text, its own cl100k_base ranks as a tiktoken file, and a
// tokenizer.json of the Llama 3 kind built from those ranks (every two-token split of a token a
// merge, ordered by the token's rank, then the parts' ranks).
// usage: node cl100k_reference.js NODE_MODULES_DIR OUT_DIR SEED BYTES
"use strict";
const fs = require("fs");
const path = require("path");
const [modules, out, seedArg, bytesArg] = process.argv.slice(2);
const { getEncoding } = require(path.join(modules, "js-tiktoken"));
const enc = getEncoding("cl100k_base");

// xorshift32, so the text is the same on every machine
let state = (Number(seedArg) >>> 0) || 1;
function rnd() {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];

const words = ["the", "The", "THE", "hello", " world", "don't", "DON'T", "Don'T", "we'Ve", "I'M",
  "they'LL", "she'D", "it'S", "you'RE", "'s", "'t", "'", "''", "rock'n'roll", "naïve", "café",
  "straße", "Ελληνικά", "русский", "日本語", "中文", "한국어", "العربية", "עברית", "हिन्दी", "ไทย",
  "😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "e\u0301", "ǅ", "ﬁ", "x²", "½", "Ⅻ", "٣٤٥", "१२३",
  "12", "123", "1234", "12345678901", "3.14159", "1,000,000", "2026-12-03", "v1.2.3",
  "(x)", "foo(bar)", "a+b", "$$$", "...", "!!!", "?!", "#tag", "@user", "<html>", "</p>", "{}", "[]",
  "\"quoted\"", "«guillemets»", "—", "…", "_under_", "CamelCase", "snake_case", "https://ex.am/p?q=1",
  "<|endoftext|>", "<|fim_prefix|>", "\t", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028"];
const spaces = [" ", " ", " ", "  ", "   ", "    ", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n",
  " \n", "  \n  ", "\t", "\t\t", " \t ", "\n \n", "\r", "\u000b", "\u000c", "\u00a0 ", " \u3000"];

function codePoint() {
  for (;;) {
    const r = rnd();
    const c = r < 0.4 ? 0x80 + Math.floor(rnd() * 0x780) : r < 0.8 ? 0x800 + Math.floor(rnd() * 0xF800)
      : 0x1F300 + Math.floor(rnd() * 0x800);
    const ch = String.fromCodePoint(c);
    // assigned, not a surrogate or private use; no U+0085 or U+FEFF (JavaScript's \s differs
    // from Unicode's White_Space on exactly those two)
    if (/\p{Cn}|\p{Cs}|\p{Co}/u.test(ch) || c === 0x85 || c === 0xfeff) continue;
    return ch;
  }
}

let text = "";
const want = Number(bytesArg);
while (Buffer.byteLength(text) < want) {
  const r = rnd();
  if (r < 0.45) text += pick(words);
  else if (r < 0.75) text += pick(spaces);
  else if (r < 0.9) text += codePoint();
  else if (r < 0.95) text += String(Math.floor(rnd() * 1e9));
  else if (r < 0.97) text += "ab".repeat(20 + Math.floor(rnd() * 100)); // long pieces
  else text += Array.from({ length: 150 }, () => pick("qwertyuiopasdfghjklzxcvbnm")).join("");
}
// js-tiktoken spells (?i:'s) as 's|'S, without Unicode's fold of ſ (U+017F) to s
text = text.replace(/'ſ/g, "'s");

fs.writeFileSync(path.join(out, "text.txt"), text);
fs.writeFileSync(path.join(out, "ids.txt"), enc.encode(text, [], []).join(" "));
const withSpecial = "one<|endoftext|>two <|fim_prefix|>x<|fim_suffix|><|endofprompt|>\n";
fs.writeFileSync(path.join(out, "special.txt"), withSpecial);
fs.writeFileSync(path.join(out, "special_ids.txt"), enc.encode(withSpecial, "all").join(" "));

// the ranks as a tiktoken file
const ranks = [];
for (const [rank, bytes] of enc.textMap) ranks[rank] = Buffer.from(bytes);
let lines = "";
ranks.forEach((b, r) => { lines += b.toString("base64") + " " + r + "\n"; });
fs.writeFileSync(path.join(out, "cl100k_base.tiktoken"), lines);

// tokenizer.json: GPT-2's byte-to-character alphabet spells the tokens
const alphabet = [];
{
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  bs.forEach((b, i) => { alphabet[b] = String.fromCodePoint(cs[i]); });
}
const spell = (b) => Array.from(b, (x) => alphabet[x]).join("");
const byBytes = new Map();
ranks.forEach((b, r) => byBytes.set(b.toString("latin1"), r));
const vocab = {};
const merges = [];
ranks.forEach((b, r) => {
  vocab[spell(b)] = r;
  const local = [];
  for (let k = 1; k < b.length; k++) {
    const l = byBytes.get(b.subarray(0, k).toString("latin1"));
    const rr = byBytes.get(b.subarray(k).toString("latin1"));
    if (l !== undefined && rr !== undefined) local.push([l, rr]);
  }
  local.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (const [l, rr] of local) merges.push(spell(ranks[l]) + " " + spell(ranks[rr]));
});
const specials = { "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
  "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276 };
const added = Object.entries(specials).map(([content, id]) => ({ id, content, single_word: false,
  lstrip: false, rstrip: false, normalized: false, special: true }));
const tj = {
  version: "1.0", truncation: null, padding: null, added_tokens: added, normalizer: null,
  pre_tokenizer: { type: "Sequence", pretokenizers: [
    { type: "Split", pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
      behavior: "Isolated", invert: false },
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] },
  post_processor: null,
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
};
fs.mkdirSync(path.join(out, "hf"), { recursive: true });
fs.writeFileSync(path.join(out, "hf", "tokenizer.json"), JSON.stringify(tj));
