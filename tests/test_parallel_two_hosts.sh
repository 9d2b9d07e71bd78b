#!/usr/bin/env bash
# Two "hosts" on one machine: two network namespaces joined by a veth pair, a 2-rank
# `lmforge train` (data-parallel, and one --tp 2 pair split over the hosts) and a 4-rank 3-D
# layout (dp, tp, pp) = (1, 2, 2), two pipeline stages of one --tp 2 pair each, one stage per
# host as clusters place them, started by mpirun across them over TCP (Open MPI's rsh launcher
# with an agent that enters the other namespace). Its losses must equal the one-host runs
# (np = 1 and np = 2) within 1e-5 relative at every step. Needs root and network namespaces;
# skipped otherwise.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/mpi/common.sh
. "$here/mpi/common.sh"
lmforge=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

skip() {
    echo "test_parallel_two_hosts: skipped ($1)"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v mpirun >/dev/null || skip "no mpirun"
command -v unshare >/dev/null || skip "no unshare (util-linux)"
[ -x "$lmforge" ] || { echo "FAIL: no lmforge at $lmforge"; exit 1; }
build=${LMF_BUILD_DIR:-$(dirname "$lmforge")}
[ -x "$build/mpi_comm_check" ] || skip "this build has no MPI"

work=$(mktemp -d)
tag=$$
nsa=lmf${tag}a nsb=lmf${tag}b
net=10.77.$((tag % 200 + 20))
cleanup() {
    local ns pid
    for ns in "$nsa" "$nsb"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$work" "$lmf_san_dir"
}
trap cleanup EXIT

ip netns add "$nsa" 2>/dev/null || skip "cannot create network namespaces here"
ip netns add "$nsb" || exit 1
ip link add "v${tag}a" type veth peer name "v${tag}b" || skip "cannot create a veth pair"
ip link set "v${tag}a" netns "$nsa" && ip link set "v${tag}b" netns "$nsb" || exit 1
ip -n "$nsa" addr add "$net.1/24" dev "v${tag}a" && ip -n "$nsb" addr add "$net.2/24" dev "v${tag}b"
ip -n "$nsa" link set lo up && ip -n "$nsb" link set lo up
ip -n "$nsa" link set "v${tag}a" up && ip -n "$nsb" link set "v${tag}b" up
if command -v ping >/dev/null; then
    ip netns exec "$nsa" ping -c 1 -W 5 "$net.2" >/dev/null ||
        { echo "FAIL: the namespaces do not reach each other"; exit 1; }
fi

# The agent Open MPI uses instead of ssh: "agent HOST COMMAND..." runs COMMAND in HOST's
# namespace, with its own host name (a UTS namespace), as a second machine would have.
cat >"$work/agent" <<EOF
#!/bin/sh
host=\$1
shift
case \$host in
$net.1) ns=$nsa name=hosta ;;
$net.2) ns=$nsb name=hostb ;;
*) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$name; \$*"
EOF
chmod +x "$work/agent"
printf '%s slots=1\n%s slots=1\n' "$net.1" "$net.2" >"$work/hosts"
printf '%s slots=2\n%s slots=2\n' "$net.1" "$net.2" >"$work/hosts2"

# Training data: the default corpus, prepared once by a short one-rank run.
cd "$work" || exit 1
common=(train --model tiny --steps 12 --batch 2 --seq 32 --global-batch 256 --threads 1
        --sample-tokens 0 --eval-every 0 --log-every 1)
"$lmforge" "${common[@]}" --steps 1 --out prep >prep.log 2>&1 || { cat prep.log; exit 1; }
vocab=$(grep -o '"vocab_size": *[0-9]*' prep/config.json | grep -o '[0-9]*$')
common+=(--data "$work/prep/data/train.bin" --vocab-size "$vocab")

"$lmforge" "${common[@]}" --out one1 >one1.log 2>&1
lmf_check $? "one host, one rank: $(tail -3 one1.log)"
timeout 300 "${MPIRUN[@]}" -np 2 "$lmforge" "${common[@]}" --out one2 >one2.log 2>&1
lmf_check $? "one host, two ranks: $(tail -3 one2.log)"

# Two hosts: mpirun runs in the first namespace; TCP only, on the veth subnet.
two_hosts() {
    local np=2 hosts="$work/hosts"
    if [ "$1" = -np4 ]; then np=4 hosts="$work/hosts2"; shift; fi
    timeout 300 ip netns exec "$nsa" unshare --uts sh -c 'hostname hosta; exec "$@"' sh \
        "${MPIRUN[@]}" -np "$np" --hostfile "$hosts" --mca plm_rsh_agent "$work/agent" \
        --mca btl tcp,self --mca btl_tcp_if_include "$net.0/24" \
        --mca oob_tcp_if_include "$net.0/24" -x OMP_NUM_THREADS -x LSAN_OPTIONS -x ASAN_OPTIONS "$@"
}
# where the ranks run: rank 1 must be on the second host, seeing only its own address
two_hosts sh -c 'echo "rank $OMPI_COMM_WORLD_RANK $(hostname) $(ip -o -4 addr show | grep -c "'"$net"'")"' \
    >where.log 2>&1
grep -q "^rank 0 hosta 1$" where.log && grep -q "^rank 1 hostb 1$" where.log
lmf_check $? "two hosts: ranks are not placed one per namespace: $(cat where.log)"
two_hosts "$lmforge" "${common[@]}" --out "$work/two" >two.log 2>&1
rc=$?
lmf_check $rc "two hosts: exit code $rc: $(tail -20 two.log)"
grep -q "2 ranks" two.log
lmf_check $? "two hosts: the run did not report 2 ranks: $(head -5 two.log)"

# tensor parallelism across the two hosts: one --tp 2 pair split over them
two_hosts "$lmforge" "${common[@]}" --tp 2 --out "$work/two_tp" >two_tp.log 2>&1
rc=$?
lmf_check $rc "two hosts, --tp 2: exit code $rc: $(tail -20 two_tp.log)"

# a 3-D layout: stage 0 (ranks 0-1, a --tp 2 pair) on the first host, stage 1 on the second;
# the activations and their gradients cross between the hosts
two_hosts -np4 sh -c 'echo "rank $OMPI_COMM_WORLD_RANK $(hostname)"' >where4.log 2>&1
grep -q "^rank 1 hosta$" where4.log && grep -q "^rank 2 hostb$" where4.log
lmf_check $? "two hosts, 4 ranks: not two per namespace in rank order: $(cat where4.log)"
two_hosts -np4 "$lmforge" "${common[@]}" --tp 2 --pp 2 --out "$work/two_3d" >two_3d.log 2>&1
rc=$?
lmf_check $rc "two hosts, --tp 2 --pp 2: exit code $rc: $(tail -20 two_3d.log)"

# losses of every step: same as one host
losses() { grep -o '"loss":[-0-9.e+]*' "$1/metrics.jsonl" | cut -d: -f2; }
compare() {
    paste <(losses "$1") <(losses "$2") | awk -v n=12 '
        { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * ($2 < 0 ? -$2 : $2)) bad++; rows++ }
        END { exit !(rows == n && bad == 0) }'
}
if [ -f two/metrics.jsonl ]; then
    compare two one2
    lmf_check $? "two hosts vs one host (2 ranks): losses differ: $(paste <(losses two) <(losses one2) | tr '\n' ' ')"
    compare two one1
    lmf_check $? "two hosts vs one rank: losses differ: $(paste <(losses two) <(losses one1) | tr '\n' ' ')"
    echo "losses (two hosts, one host np=2, one host np=1):"
    paste <(losses two) <(losses one2) <(losses one1)
fi
if [ -f two_tp/metrics.jsonl ]; then
    compare two_tp one1
    lmf_check $? "two hosts --tp 2 vs one rank: losses differ: $(paste <(losses two_tp) <(losses one1) | tr '\n' ' ')"
fi
if [ -f two_3d/metrics.jsonl ]; then
    compare two_3d one1
    lmf_check $? "two hosts --tp 2 --pp 2 vs one rank: losses differ: $(paste <(losses two_3d) <(losses one1) | tr '\n' ' ')"
    echo "losses (two hosts at (dp, tp, pp) = (1, 2, 2), one host np=1):"
    paste <(losses two_3d) <(losses one1)
else
    lmf_check 1 "two hosts --tp 2 --pp 2: no metrics"
fi
lmf_sanitizer_verdict
if [ "$lmf_fail_count" -ne 0 ]; then
    echo "test_parallel_two_hosts: $lmf_fail_count check(s) failed"
    exit 1
fi
echo "test_parallel_two_hosts: ok"
