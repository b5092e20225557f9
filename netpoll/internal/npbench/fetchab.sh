#!/usr/bin/env bash
# fetchab.sh: sendfile against copy across processes (netpoll/README.md,
# "sendfile vs copy"). Each round runs every variant in turn: an npbench
# server with a file of SIZE bytes, then NCLIENTS npbench fetch clients for
# 2 s; prints MB/s, the server's CPU per MB (/proc/PID/stat) and the clients'.
#
#   bash netpoll/internal/npbench/fetchab.sh SIZE ROUNDS NCLIENTS VARIANT...
#   VARIANT = sendfile|copy ":" cubic|reno|bbr|host   (host: the host's default)
#   e.g. flock /tmp/bench.lock bash netpoll/internal/npbench/fetchab.sh 1048576 5 1 sendfile:cubic copy:cubic sendfile:host copy:host
set -eu
size=$1 rounds=$2 nclients=$3
shift 3
top=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$top" && go build -o "$work/npbench" ./netpoll/internal/npbench)
hz=$(getconf CLK_TCK)
for r in $(seq "$rounds"); do
  for v in "$@"; do
    mode=${v%%:*} cc=${v##*:}
    [ "$cc" = host ] && cc=""
    threshold=-1
    [ "$mode" = copy ] && threshold=1099511627776
    "$work/npbench" -mode server -impl gnet -file "$size" -copy-threshold "$threshold" -cc "$cc" >"$work/srv.out" 2>"$work/srv.err" &
    srv=$!
    for _ in $(seq 50); do grep -q ADDRS "$work/srv.out" && break; sleep 0.1; done
    addr=$(awk '/ADDRS/{print $2}' "$work/srv.out")
    t0=$(awk '{print $14+$15}' "/proc/$srv/stat")
    pids=""
    for j in $(seq "$nclients"); do
      "$work/npbench" -mode fetch -addrs "$addr" -size "$size" -dur 2s >"$work/fetch.$j" &
      pids="$pids $!"
    done
    # shellcheck disable=SC2086
    wait $pids
    t1=$(awk '{print $14+$15}' "/proc/$srv/stat")
    kill "$srv"
    wait "$srv" 2>/dev/null || true
    cat "$work"/fetch.* | python3 -c "
import sys, json
runs = [json.loads(l) for l in sys.stdin]
mb_s = sum(x['mb_per_s'] for x in runs)
srv_us = ($t1 - $t0) / $hz * 1e6 / (mb_s * 2)
cli_us = sum(x['cpu_us_per_mb'] for x in runs) / len(runs)
reads = sum(x['reads_per_fetch'] for x in runs) / len(runs)
print('round=$r size=$size clients=$nclients variant=$v mb_s=%d server_us_per_mb=%d client_us_per_mb=%d reads_per_fetch=%.1f' % (mb_s, srv_us, cli_us, reads))"
    rm -f "$work"/fetch.*
  done
done
