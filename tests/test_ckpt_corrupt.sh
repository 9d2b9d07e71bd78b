#!/usr/bin/env bash
# Damaged checkpoints never load: a flipped byte, a truncated, missing or swapped shard, an edited
# index, trainer state or config, a broken `latest` each give one error line naming the file.
# Failed writes (file size limit, full tmpfs, one MPI rank failing) leave the previous checkpoint
# intact and loadable, and the run continues from it exactly.
source "$(dirname "$0")/lib/common.sh"
# MPI settings, and sanitizer reports judged by lmf_sanitizer_verdict (Open MPI's own leaks aside)
. "$(dirname "$0")/mpi/common.sh"
trap 'rm -rf "$WORK" "$lmf_san_dir"' EXIT
export OMP_NUM_THREADS=2
make_corpus "$WORK/corpus"
rest=(--steps 20 --batch 4 --seq 32 --lr 3e-3 --warmup 2 --eval-every 0 --save-every 5
      --sample-tokens 0 --quiet)
common=(--model tiny --corpus "$WORK/corpus" --bpe-vocab 0 "${rest[@]}")

"$LMF" train "${common[@]}" --out "$WORK/ref" || fail "reference run"
"$LMF" train "${common[@]}" --out "$WORK/base" --stop-after 10 || fail "base run"
"$LMF" train "${common[@]}" --seed 99 --out "$WORK/other" --stop-after 10 || fail "other run"
ck=checkpoints/step_00000010
[ -s "$WORK/base/$ck/index.json" ] && pass "base run has $ck" || fail "base run has no $ck"

fresh() { rm -rf "$WORK/c"; cp -a "$WORK/base" "$WORK/c"; }
resume() { "$LMF" train --resume "$WORK/c" --quiet --sample-tokens 0 "$@"; }
flip() { # flip the bits of one byte of file $1 at offset $2
  local b; b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
shard="$WORK/c/$ck/shard-00000-of-00001.safetensors"
size() { stat -c %s "$1"; }

fresh; flip "$shard" $(( $(size "$shard") / 2 ))
expect_error "flipped data byte" 1 "shard-00000-of-00001.safetensors: checksum mismatch" -- resume
fresh; flip "$shard" 40
expect_error "flipped header byte" 1 "step_00000010/shard-00000-of-00001.safetensors" -- resume
fresh; truncate -s -1000 "$shard"
expect_error "truncated shard" 1 "shard-00000-of-00001.safetensors: [0-9]+ bytes, but index.json lists [0-9]+: the file is truncated" -- resume
fresh; rm "$shard"
expect_error "missing shard" 1 "shard-00000-of-00001.safetensors: missing, but index.json lists it" -- resume
fresh; cp "$WORK/other/$ck/shard-00000-of-00001.safetensors" "$shard"
expect_error "shard swapped from another run" 1 "shard-00000-of-00001.safetensors: belongs to checkpoint [0-9a-f]+, but index.json is for checkpoint [0-9a-f]+" -- resume
fresh; sed -i 's/"bytes":\([0-9]*\)/"bytes":1\1/' "$WORK/c/$ck/index.json"
expect_error "index edited" 2 "step_00000010/index.json: checksum mismatch" -- resume
fresh; head -c 300 "$WORK/base/$ck/index.json" >"$WORK/c/$ck/index.json"
expect_error "index truncated" 2 "step_00000010/index.json: not valid JSON" -- resume
fresh; rm "$WORK/c/$ck/index.json"
expect_error "index missing" 2 "latest names step_00000010, but .*step_00000010 is missing or incomplete" -- resume
fresh; sed -i 's/"epoch": 0/"epoch": 1/' "$WORK/c/$ck/trainer_state.json"
expect_error "trainer state edited" 2 "step_00000010/trainer_state.json: checksum mismatch" -- resume
fresh; sed -i 's/"n_embd": 64/"n_embd": 32/' "$WORK/c/$ck/config.json"
expect_error "config edited" 1 "step_00000010/config.json: checksum mismatch" -- resume
fresh; echo "step_x" >"$WORK/c/checkpoints/latest"
expect_error "latest garbage" 2 "checkpoints/latest: does not name a checkpoint" -- resume
fresh; cp "$WORK/other/$ck/index.json" "$WORK/c/$ck/index.json"
expect_error "index from another run" 2 "step_00000010/trainer_state.json: .*index.json lists" -- resume

# the undamaged copy resumes and reproduces the reference run bit for bit
fresh
resume || fail "resume of the undamaged copy"
diff <(losses "$WORK/ref/metrics.jsonl") <(losses "$WORK/c/metrics.jsonl") >/dev/null \
  && pass "undamaged copy resumes exactly" || fail "resumed losses differ from the reference"

# check_intact NAME RUN: after a failed write, step 10 is still the newest checkpoint, nothing
# partial is left, and the run resumes from it reproducing the reference
check_intact() {
  local name="$1" run="$2"
  if [ "$(cat "$run/checkpoints/latest")" = "step_00000010" ] && [ ! -e "$run/checkpoints/step_00000015" ] &&
     [ -z "$(ls -A "$run/checkpoints" | grep '^\.tmp-')" ]; then
    pass "$name: step 10 is still the newest checkpoint, no partial one left"
  else
    fail "$name: checkpoints now: $(ls -A "$run/checkpoints"), latest $(cat "$run/checkpoints/latest")"
  fi
  "$LMF" train --resume "$run" --quiet --sample-tokens 0 >/dev/null 2>"$WORK/intact.err" \
    || fail "$name: resume after the failed write: $(cat "$WORK/intact.err")"
  diff <(losses "$WORK/ref/metrics.jsonl") <(losses "$run/metrics.jsonl") >/dev/null \
    && pass "$name: the run continues exactly from step 10" || fail "$name: losses differ after resuming"
}

# a file size limit (ulimit -f, in KiB) below one shard (1.5 MB): the write of step 15 fails
fresh
expect_error "file size limit" 1 "checkpoint step 15 not written \\(the previous one is intact\\): cannot write .*/checkpoints/.tmp-step_00000015/shard-00000-of-00001.safetensors .*file too large" -- \
  bash -c "ulimit -f 1200; exec \"\$0\" train --resume \"\$1\" --quiet --sample-tokens 0" "$LMF" "$WORK/c"
check_intact "file size limit" "$WORK/c"

# a full disk: the run directory's checkpoints on a small tmpfs (needs mount rights, e.g. root)
mkdir -p "$WORK/tmpfs"
if mount -t tmpfs -o size=2600k tmpfs "$WORK/tmpfs" 2>/dev/null; then
  trap 'umount "$WORK/tmpfs" 2>/dev/null; rm -rf "$WORK" "$lmf_san_dir"' EXIT
  fresh
  rm -rf "$WORK/c/checkpoints/step_00000005"
  mv "$WORK/c/checkpoints" "$WORK/tmpfs/checkpoints"
  ln -s "$WORK/tmpfs/checkpoints" "$WORK/c/checkpoints"
  expect_error "full disk (tmpfs)" 1 "checkpoint step 15 not written \\(the previous one is intact\\): cannot write .*shard-00000-of-00001.safetensors.*no space left on device" -- \
    "$LMF" train --resume "$WORK/c" --quiet --sample-tokens 0
  # what is left on the full disk is checked back on a roomy one
  rm "$WORK/c/checkpoints"
  cp -a "$WORK/tmpfs/checkpoints" "$WORK/c/checkpoints"
  umount "$WORK/tmpfs"
  check_intact "full disk (tmpfs)" "$WORK/c"
else
  echo "note: tmpfs case skipped (mount not permitted here); the file size limit case covers a full disk"
fi

# one rank of two fails its write: every rank reports it, nothing partial appears
if command -v mpirun >/dev/null; then
  rm -rf "$WORK/m"
  # (the data is prepared beforehand: ranks do not share the preparation of the default data)
  timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$LMF" train \
    --model tiny --data "$WORK/base/data/train.bin" --vocab-size 257 "${rest[@]}" --out "$WORK/m" --stop-after 10 2>"$WORK/m.err" || fail "mpirun base run: $(cat "$WORK/m.err")"
  rc=0
  timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 \
    -x OMP_NUM_THREADS=1 "$LMF" train --resume "$WORK/m" --test-ckpt-fail-rank 1 --quiet \
    --sample-tokens 0 2>"$WORK/m.err" || rc=$?
  n=$(grep -c "checkpoint step 15 not written (the previous one is intact): .*shard-00001-of-00002.safetensors: injected failure" "$WORK/m.err")
  [ "$rc" -ne 0 ] && [ "$n" -eq 2 ] && pass "a failing rank is reported by both ranks" \
    || fail "mpirun failed write: rc $rc, $n matching lines: $(cat "$WORK/m.err")"
  timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$LMF" train \
    --resume "$WORK/m" --quiet --sample-tokens 0 2>/dev/null || fail "mpirun resume after the failure"
  [ "$(cat "$WORK/m/checkpoints/latest")" = "step_00000020" ] && pass "the 2-rank run finished from step 10" \
    || fail "2-rank run after the failure"
fi
lmf_sanitizer_verdict
[ "$lmf_fail_count" -eq 0 ] || fail "sanitizer reports"
finish
