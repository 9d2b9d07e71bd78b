#!/usr/bin/env bash
# Same seed, same data, two lmforge builds: are the losses and final weights bit-identical?
#   scripts/compare_runs.sh OLD_LMFORGE NEW_LMFORGE [WORK_DIR]
# Runs (1) the 2-layer `tiny` model for 20 steps with evaluation, checkpoints, a resume and
# recomputation, and (2) GPT-2 124M for 3 steps, with each binary on the same token files,
# then compares every loss, learning rate, gradient norm and validation loss in metrics.jsonl
# (timing fields excluded) and model.safetensors byte for byte. Exit 0 when all are identical.
set -euo pipefail
old="${1:?usage: compare_runs.sh OLD_LMFORGE NEW_LMFORGE [WORK_DIR]}"
new="${2:?usage: compare_runs.sh OLD_LMFORGE NEW_LMFORGE [WORK_DIR]}"
work="${3:-$(mktemp -d "${TMPDIR:-/tmp}/lmf-compare.XXXXXX")}"
mkdir -p "$work"

# a corpus: some fortunes when installed, else generated text
corpus="$work/corpus.txt"
if [ -d /usr/share/games/fortunes ]; then
  cat /usr/share/games/fortunes/{computers,science,linux} 2>/dev/null | head -c 400000 >"$corpus" || true
fi
if [ ! -s "$corpus" ]; then
  for i in $(seq 1 4000); do echo "line $i: the quick brown fox $((i % 13)) jumps over $((i % 7)) lazy dogs"; echo "%"; done >"$corpus"
fi
"$old" data prepare --bytes --input "$corpus" --out "$work/data" --doc-separator % --quiet

# the fields that must match; timing fields (tok/s, MFU) are left out
# (the step, evaluation and fault lines; profiled steps' timings and samples are not compared)
numbers() { grep -E '"(loss|val_loss|skipped|rolled_back_to)":' "$1" |
  grep -o '"\(step\|loss\|lr\|grad_norm\|val_loss\|skipped\|rolled_back_to\)": *[^,}]*'; }

status=0
compare() { # NAME FLAGS...
  local name="$1"; shift
  for which in old new; do
    local bin="$old"; [ "$which" = new ] && bin="$new"
    rm -rf "$work/$name-$which"
    "$bin" train "$@" --data "$work/data/train.bin" --val-data "$work/data/val.bin" \
      --out "$work/$name-$which" --sample-tokens 0 --quiet
  done
  if cmp -s <(numbers "$work/$name-old/metrics.jsonl") <(numbers "$work/$name-new/metrics.jsonl"); then
    echo "$name: metrics identical ($(numbers "$work/$name-new/metrics.jsonl" | grep -c '"loss"') loss values)"
  else
    echo "$name: METRICS DIFFER"; diff <(numbers "$work/$name-old/metrics.jsonl") <(numbers "$work/$name-new/metrics.jsonl") | head; status=1
  fi
  if cmp -s "$work/$name-old/model.safetensors" "$work/$name-new/model.safetensors"; then
    echo "$name: model.safetensors identical ($(sha256sum <"$work/$name-new/model.safetensors" | cut -c1-16))"
  else
    echo "$name: WEIGHTS DIFFER"; status=1
  fi
}

common=(--vocab-size 257 --seed 7 --threads 2)
compare tiny --model tiny "${common[@]}" --steps 20 --batch 4 --seq 64 --eval-every 5 --save-every 10
compare tiny-full --model tiny "${common[@]}" --steps 12 --batch 4 --seq 64 --eval-every 6 --recompute full --grad-accum 2
compare gpt2 --model gpt2 --seed 7 --threads 2 --steps 3 --batch 2 --seq 64 --eval-every 3 --eval-batches 2
# a resumed run: stop after step 10, resume to 20; against the uninterrupted one above
for which in old new; do
  bin="$old"; [ "$which" = new ] && bin="$new"
  rm -rf "$work/resume-$which"
  "$bin" train --model tiny "${common[@]}" --steps 20 --batch 4 --seq 64 --eval-every 5 --save-every 10 \
    --data "$work/data/train.bin" --val-data "$work/data/val.bin" --out "$work/resume-$which" \
    --sample-tokens 0 --quiet --stop-after 10
  "$bin" train --resume "$work/resume-$which" --sample-tokens 0 --quiet
done
if cmp -s "$work/resume-old/model.safetensors" "$work/resume-new/model.safetensors" &&
   cmp -s "$work/resume-new/model.safetensors" "$work/tiny-new/model.safetensors"; then
  echo "resume: model.safetensors identical to each other and to the uninterrupted run"
else
  echo "resume: WEIGHTS DIFFER"; status=1
fi
exit $status
