#!/usr/bin/env bash
# Run directories: a fresh run never damages another run (refused, or moved aside on request),
# every run has an identity in run.json, its checkpoints and each metrics line; one training per
# directory at a time (a lock that kill -9 releases); a resume keeps every metrics line of
# completed work; a failed start leaves no empty directory; --resume refuses flags that
# contradict its checkpoint; --model tiny runs with the default --seq.
source "$(dirname "$0")/lib/common.sh"
export OMP_NUM_THREADS=1
make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/prep" || fail "prepare data"
data=(--data "$WORK/prep/data/train.bin" --val-data "$WORK/prep/data/val.bin")
common=(--model tiny "${data[@]}" --vocab-size 257 --batch 4 --seq 32 --eval-every 10
        --eval-batches 2 --sample-tokens 0 --quiet)
run_id() { sed -n 's/.*"run_id": *"\([0-9a-f]*\)".*/\1/p' "$1/run.json"; }

# ---- a fresh run into a directory that holds another run ----
R="$WORK/R"
"$LMF" train "${common[@]}" --steps 20 --save-every 5 --out "$R" || fail "first run"
id1=$(run_id "$R")
[ ${#id1} -eq 16 ] && pass "run.json holds a run id ($id1)" || fail "run.json: $(cat "$R/run.json")"
sum_model=$(cksum <"$R/model.safetensors")
sum_metrics=$(cksum <"$R/metrics.jsonl")
expect_error "fresh run into another run's directory" 2 \
  "$R holds another run .*run $id1.*--resume $R.*another --out.*--move-aside.*$R\.$id1" -- \
  "$LMF" train "${common[@]}" --steps 8 --save-every 4 --seed 99 --out "$R"
[ "$(cksum <"$R/model.safetensors")" = "$sum_model" ] && [ "$(cksum <"$R/metrics.jsonl")" = "$sum_metrics" ] &&
  [ "$(cat "$R/checkpoints/latest")" = "step_00000020" ] && [ -d "$R/checkpoints/step_00000010" ] &&
  pass "the refused run left the first run as it was" || fail "the first run was changed"
n=$(grep -c "\"run\":\"$id1\"" "$R/metrics.jsonl")
[ "$n" -eq "$(wc -l <"$R/metrics.jsonl")" ] && [ "$(grep -c '"loss"\|"val_loss"' "$R/metrics.jsonl")" -eq 22 ] && pass "every metrics line names the run" \
  || fail "metrics lines with run $id1: $n of $(wc -l <"$R/metrics.jsonl")"
grep -q "\"run_id\": \"$id1\"" "$R/checkpoints/step_00000020/trainer_state.json" \
  && pass "the checkpoint names the run" || fail "trainer_state.json lacks run_id $id1"

# --move-aside: the old run goes to R.ID whole, the new one starts in R
"$LMF" train "${common[@]}" --steps 8 --save-every 4 --seed 99 --out "$R" --move-aside || fail "--move-aside run"
id2=$(run_id "$R")
[ -n "$id2" ] && [ "$id2" != "$id1" ] && pass "the new run has its own id" || fail "ids $id1 / $id2"
[ "$(cksum <"$R.$id1/model.safetensors")" = "$sum_model" ] && [ "$(cksum <"$R.$id1/metrics.jsonl")" = "$sum_metrics" ] &&
  [ "$(ls "$R.$id1/checkpoints" | tr '\n' ' ')" = "latest step_00000010 step_00000015 step_00000020 " ] &&
  pass "the old run is whole in $R.$id1" || fail "moved run: $(ls "$R.$id1" "$R.$id1/checkpoints")"
[ "$(ls "$R/checkpoints" | tr '\n' ' ')" = "latest step_00000004 step_00000008 " ] &&
  [ "$(grep -c '"loss"' "$R/metrics.jsonl")" -eq 8 ] && [ "$(grep -vc "\"run\":\"$id2\"" "$R/metrics.jsonl")" -eq 0 ] &&
  pass "the new run's directory holds only the new run" || fail "new run: $(ls "$R/checkpoints")"
"$LMF" train --resume "$R" --steps 12 --quiet --sample-tokens 0 || fail "resume the new run"
[ "$(run_id "$R")" = "$id2" ] && grep -q "\"run_id\": \"$id2\"" "$R/checkpoints/step_00000012/trainer_state.json" &&
  [ "$(grep -c '"loss"' "$R/metrics.jsonl")" -eq 12 ] && [ "$(grep -vc "\"run\":\"$id2\"" "$R/metrics.jsonl")" -eq 0 ] &&
  pass "a resume continues the same run" || fail "resume: $(tail -2 "$R/metrics.jsonl")"

# a run directory moved elsewhere resumes with the token files it holds (the default data)
mv "$WORK/prep" "$WORK/prep-moved"
"$LMF" train --resume "$WORK/prep-moved" --steps 3 --quiet --sample-tokens 0 2>"$WORK/mv.err" &&
  grep -qE '"data": *"data/train.bin"' "$WORK/prep-moved/checkpoints/step_00000003/trainer_state.json" &&
  pass "a moved run directory resumes from its own data" || fail "resume of a moved run: $(cat "$WORK/mv.err")"
mv "$WORK/prep-moved" "$WORK/prep"

# ---- --resume semantics ----
expect_error "--resume with a contradicting --model" 2 "--model mini .*contradicts the model of the checkpoint .*step_00000012 .2 layers" -- \
  "$LMF" train --resume "$R" --model mini --steps 30
expect_error "--resume with a contradicting --vocab-size" 2 "--vocab-size 300 .*vocab 300.*contradicts.*vocab 257" -- \
  "$LMF" train --resume "$R" --vocab-size 300 --steps 30
expect_error "--resume with --init" 2 "--init $WORK/prep contradicts --resume.*step_00000012" -- \
  "$LMF" train --resume "$R" --init "$WORK/prep" --steps 30
expect_error "--resume with fewer --steps than done" 2 "checkpoint is at step 12, past --steps 10: nothing to train" -- \
  "$LMF" train --resume "$R" --steps 10
"$LMF" train --resume "$R" --model tiny --vocab-size 257 --steps 13 --quiet --sample-tokens 0 \
  && pass "--resume with flags that agree with the checkpoint" || fail "--resume --model tiny refused"

# ---- the lock: a second training into a directory in use is refused at once ----
L="$WORK/L"
"$LMF" train "${common[@]}" --steps 100000 --save-every 2 --eval-every 0 --out "$L" 2>/dev/null &
pid=$!
for _ in $(seq 300); do [ -f "$L/checkpoints/latest" ] && break; sleep 0.1; done
expect_error "second training into a directory in use" 2 "$L is in use by another training \(pid $pid\)" -- \
  "$LMF" train "${common[@]}" --steps 4 --out "$L" --move-aside
expect_error "resume of a directory in use" 2 "$L is in use by another training \(pid $pid\)" -- \
  "$LMF" train --resume "$L"
kill -9 "$pid"; wait "$pid" 2>/dev/null
step=$((10#$(sed 's/step_//' "$L/checkpoints/latest")))
"$LMF" train --resume "$L" --steps $((step + 2)) --quiet --sample-tokens 0 \
  && pass "kill -9 released the lock: resumed from step $step" || fail "resume after kill -9"

# two trainings started together into one directory: one trains, the other is refused
P="$WORK/P"
"$LMF" train "${common[@]}" --steps 30 --save-every 5 --out "$P" 2>"$WORK/p1.err" & p1=$!
"$LMF" train "${common[@]}" --steps 30 --save-every 5 --seed 5 --out "$P" 2>"$WORK/p2.err" & p2=$!
rc1=0; rc2=0; wait $p1 || rc1=$?; wait $p2 || rc2=$?
refused=$(cat "$WORK/p1.err" "$WORK/p2.err" | grep -cE "is in use by another training|holds another run")
[ $((rc1 + rc2)) -eq 2 ] && [ "$refused" -eq 1 ] && [ "$(grep -c '"loss"' "$P/metrics.jsonl")" -eq 30 ] &&
  [ "$(grep -vc "\"run\":\"$(run_id "$P")\"" "$P/metrics.jsonl")" -eq 0 ] &&
  pass "of two trainings started together one ran, one was refused" ||
  fail "simultaneous starts: exits $rc1 $rc2; $(cat "$WORK/p1.err" "$WORK/p2.err" | head -3)"

# ---- evaluation lines of completed work survive a resume ----
E="$WORK/E"
"$LMF" train "${common[@]}" --steps 20 --stop-after 10 --out "$E" || fail "run stopped after 10"
"$LMF" train --resume "$E" --quiet --sample-tokens 0 || fail "resume E"
[ "$(grep -c '^{"step":10,"val_loss"' "$E/metrics.jsonl")" -eq 1 ] && [ "$(grep -c '"val_loss"' "$E/metrics.jsonl")" -eq 2 ] &&
  [ "$(grep -c '"loss"' "$E/metrics.jsonl")" -eq 20 ] && pass "the evaluation at the checkpoint's step is kept" \
  || fail "evaluation lines after resume: $(grep val_loss "$E/metrics.jsonl")"

# ---- a failed start leaves no directory it made; a failed run's directory can be reused ----
expect_error "missing data" 1 "nope.bin" -- "$LMF" train "${common[@]}" --data "$WORK/nope.bin" --steps 2 --out "$WORK/F/run"
[ ! -e "$WORK/F/run" ] && pass "a failed start removed the directory it made" || fail "left $(ls -A "$WORK/F/run")"
mkdir "$WORK/G"
expect_error "missing data into an existing directory" 1 "nope.bin" -- "$LMF" train "${common[@]}" --data "$WORK/nope.bin" --steps 2 --out "$WORK/G"
[ -d "$WORK/G" ] && [ -z "$(ls -A "$WORK/G")" ] && pass "an existing directory is kept, and left empty" || fail "G: $(ls -A "$WORK/G")"
"$LMF" train "${common[@]}" --steps 2 --out "$WORK/G" && pass "the directory of a failed start takes a fresh run" || fail "rerun into G"

# a default-data preparation that fails leaves nothing, so the rerun fails the same way
mkdir -p "$WORK/small"; printf 'one fortune\n' >"$WORK/small/only"
for try in 1 2; do
  expect_error "corpus too small (try $try)" 1 "too small" -- \
    "$LMF" train --model tiny --corpus "$WORK/small" --bpe-vocab 300 --steps 1 --quiet --out "$WORK/S"
done
[ ! -e "$WORK/S" ] && pass "the failed default data left no run directory" || fail "left: $(ls -A "$WORK/S")"

# ---- --steps 0 ends with the checkpoint of the initial weights, which a resume continues ----
"$LMF" train "${common[@]}" --steps 0 --out "$WORK/Z" || fail "--steps 0"
[ "$(cat "$WORK/Z/checkpoints/latest" 2>/dev/null)" = "step_00000000" ] && [ -f "$WORK/Z/checkpoints/step_00000000/index.json" ] \
  && pass "--steps 0 writes the checkpoint of step 0" || fail "--steps 0: $(ls -A "$WORK/Z" "$WORK/Z/checkpoints" 2>&1 | tr '\n' ' ')"
"$LMF" train --resume "$WORK/Z" --steps 3 --quiet --sample-tokens 0 && [ "$(grep -c '"loss"' "$WORK/Z/metrics.jsonl")" -eq 3 ] \
  && pass "a resume continues from step 0" || fail "resume from step 0"

# ---- --model tiny with the default --seq (longer than its context) ----
"$LMF" train --model tiny "${data[@]}" --vocab-size 257 --steps 2 --batch 2 --eval-every 0 --sample-tokens 0 \
  --out "$WORK/T" 2>"$WORK/T.err" && grep -q "batch 2 x 64" "$WORK/T.err" \
  && pass "--model tiny trains with --seq 64 by default" || fail "--model tiny: $(tail -2 "$WORK/T.err")"
finish
