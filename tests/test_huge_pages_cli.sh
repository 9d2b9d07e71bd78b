#!/usr/bin/env bash
# lmforge starts itself once more with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 when the kernel
# gives transparent huge pages on request ("[madvise]"), so that every malloc of the process
# (the MPI library's, the BLAS's) is on huge pages; a GLIBC_TUNABLES that names the tunable
# already is the user's choice and is kept, other tunables stay. Seen from outside: the running
# train's environment, and its page faults (/usr/bin/time) against a run with
# glibc.malloc.hugetlb=0.
source "$(dirname "$0")/lib/common.sh"
build=${LMF_BUILD_DIR:-$(dirname "$LMF")}

mode=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true)
case "$mode" in
  *"[madvise]"*) ;;
  *) echo "skipped: transparent huge pages are not in madvise mode here ($mode)"; exit 77 ;;
esac
sanitized=0 # AddressSanitizer's allocator is not glibc's: the tunable changes nothing there
grep -q '^LMF_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && sanitized=1

make_corpus "$WORK/corpus"
"$LMF" train --model tiny --corpus "$WORK/corpus" --bpe-vocab 0 --steps 1 --batch 4 --seq 32 \
  --eval-every 0 --sample-tokens 0 --quiet --out "$WORK/data" >/dev/null 2>&1 || fail "prepare data"
train=(train --data "$WORK/data/data/train.bin" --model mini --batch 4 --seq 64 --threads 1
       --eval-every 0 --sample-tokens 0 --quiet)

# the environment of a running train (its GLIBC_TUNABLES line), read while it runs: the last
# reading, as the first may come before the program started itself again
rm -rf "$WORK/env"
env -u GLIBC_TUNABLES "$LMF" "${train[@]}" --steps 15 --out "$WORK/env" >/dev/null 2>&1 &
pid=$!
seen=""
for _ in $(seq 1 200); do
  kill -0 "$pid" 2>/dev/null || break
  e=$(tr '\0' '\n' </proc/$pid/environ 2>/dev/null | grep '^GLIBC_TUNABLES=' || true)
  [ -n "$e" ] && seen=$e
  sleep 0.05
done
wait "$pid" || fail "train failed"
[ "$seen" = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" ] && pass "started again with glibc.malloc.hugetlb=1" \
  || fail "the running train's environment: '$seen'"

if [ "$sanitized" = 1 ]; then
  echo "page fault checks skipped (sanitizer build)"
  finish; exit $?
fi
if [ ! -x /usr/bin/time ]; then
  echo "page fault checks skipped: no /usr/bin/time"
  finish; exit $?
fi
# faults TUNABLES: minor page faults of a 3-step train (GLIBC_TUNABLES unset when "-")
faults() {
  local out="$WORK/f$RANDOM" e=(env GLIBC_TUNABLES="$1")
  [ "$1" = - ] && e=(env -u GLIBC_TUNABLES)
  "${e[@]}" /usr/bin/time -o "$out.t" -f "%R" "$LMF" "${train[@]}" --steps 3 --out "$out" >/dev/null 2>&1 \
    || { fail "train with GLIBC_TUNABLES=$1"; echo 0; return; }
  tail -n 1 "$out.t"
}
plain=$(faults -)
off=$(faults glibc.malloc.hugetlb=0)
other=$(faults glibc.malloc.check=0)
echo "minor page faults of 3 steps: $plain as started, $off with glibc.malloc.hugetlb=0, $other with glibc.malloc.check=0"
[ "$plain" -gt 0 ] && [ $((plain * 4)) -lt "$off" ] && pass "huge pages: under a quarter of the faults" \
  || fail "faults: $plain as started against $off without huge pages"
[ "$other" -gt 0 ] && [ $((other * 4)) -lt "$off" ] && pass "other tunables kept, huge pages added" \
  || fail "faults with glibc.malloc.check=0: $other against $off without huge pages"
finish
