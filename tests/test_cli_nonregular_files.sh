#!/usr/bin/env bash
# A FIFO, a directory or a device given where a file is read (--data, --config, --init,
# --input, --model) is refused at once by name and kind, instead of blocking on the FIFO
# forever or failing later with an unrelated message.
. "$(dirname "$0")/lib/common.sh"
mkfifo "$WORK/fifo"
mkdir "$WORK/dir"
fifo=$WORK/fifo
T="timeout 20"
kind='is a FIFO \(named pipe\), not a regular file'
expect_error "train --data FIFO" 1 "token file $fifo $kind" -- \
  $T "$LMF" train --data "$fifo" --steps 1 --out "$WORK/r1"
expect_error "train --val-data FIFO" 1 "token file $fifo $kind" -- \
  $T "$LMF" train --data "$fifo" --val-data "$fifo" --steps 1 --out "$WORK/r2"
# a directory is a data spec (its *.bin files); an empty one is named as such
expect_error "train --data directory" 1 "directory $WORK/dir holds no token files" -- \
  $T "$LMF" train --data "$WORK/dir" --steps 1 --out "$WORK/r3"
expect_error "train --data device" 1 "token file /dev/null is a character device" -- \
  $T "$LMF" train --data /dev/null --steps 1 --out "$WORK/r4"
expect_error "train --config FIFO" 2 "$fifo $kind" -- \
  $T "$LMF" train --config "$fifo" --data "$WORK/none.bin" --steps 1 --out "$WORK/r5"
for i in $(seq 1 200); do echo "line $i of some text to make tokens from"; done >"$WORK/text.txt"
"$LMF" data prepare --bytes --val-fraction 0 --input "$WORK/text.txt" --out "$WORK/tok" >/dev/null 2>&1 ||
  fail "data prepare of a small text"
expect_error "train --init FIFO" 1 "model $fifo $kind" -- \
  $T "$LMF" train --init "$fifo" --data "$WORK/tok/train.bin" --steps 1 --out "$WORK/r6"
expect_error "data prepare --input FIFO" 1 "input $fifo $kind" -- \
  $T "$LMF" data prepare --bytes --input "$fifo" --out "$WORK/d2"
expect_error "tokenizer train --input FIFO" 1 "$fifo: $kind" -- \
  $T "$LMF" tokenizer train --input "$fifo" --vocab-size 300 --out "$WORK/t"
expect_error "eval --model FIFO" 1 "model $fifo $kind" -- \
  $T "$LMF" eval --model "$fifo" --data "$WORK/none.bin"
expect_error "sample --model FIFO" 1 "model $fifo $kind" -- \
  $T "$LMF" sample --model "$fifo"
expect_error "sample --model device" 1 "model /dev/zero is a character device" -- \
  $T "$LMF" sample --model /dev/zero
finish
