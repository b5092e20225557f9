#!/usr/bin/env bash
# Runs every interop script in this folder (kafka.sh, amqp.sh, ...) against
# one Quartet appliance started from bin/quartet on free loopback ports with
# a fresh data directory. A script exits 0 (pass), 77 (skipped: its client
# is not installed) or anything else (fail). Prints "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin="$top/bin/quartet"
[ -x "$bin" ] || { echo "interop: $bin missing (make build)"; exit 1; }

if [ -f "$here/package.json" ] && [ ! -d "$here/node_modules" ] && command -v npm >/dev/null; then
  (cd "$here" && npm install --no-audit --no-fund --silent) || echo "interop: npm install failed; node clients will skip"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
export KAFKA_ADDR="127.0.0.1:$(free_port)" AMQP_ADDR="127.0.0.1:$(free_port)" MQTT_ADDR="127.0.0.1:$(free_port)" \
       MQTT_WS_ADDR="127.0.0.1:$(free_port)" ROCKETMQ_NAMESRV_ADDR="127.0.0.1:$(free_port)" \
       ROCKETMQ_BROKER_ADDR="127.0.0.1:$(free_port)" HTTP_ADDR="127.0.0.1:$(free_port)"
data=$(mktemp -d)
log="$data/quartet.log"
"$bin" serve --data-dir "$data/data" --kafka "$KAFKA_ADDR" --amqp "$AMQP_ADDR" --mqtt "$MQTT_ADDR" \
  --mqtt-ws "$MQTT_WS_ADDR" --rocketmq-namesrv "$ROCKETMQ_NAMESRV_ADDR" \
  --rocketmq-broker "$ROCKETMQ_BROKER_ADDR" --http "$HTTP_ADDR" >"$log" 2>&1 &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  grep -q 'msg=ready' "$log" && break
  kill -0 "$pid" 2>/dev/null || { echo "interop: quartet exited:"; cat "$log"; exit 1; }
  sleep 0.1
done
grep -q 'msg=ready' "$log" || { echo "interop: quartet not ready:"; cat "$log"; exit 1; }
export QUARTET_LOG="$log" NODE_PATH="$here/node_modules"

passed=0 failed=0 skipped=0
for script in "$here"/*.sh; do
  name=$(basename "$script" .sh)
  case $name in run|*_bench) continue ;; esac # benchmarks are run by hand, not as tests
  echo "=== interop $name"
  timeout 300 bash "$script"
  rc=$?
  case $rc in
    0) passed=$((passed+1)); echo "--- PASS $name" ;;
    77) skipped=$((skipped+1)); echo "--- SKIP $name" ;;
    *) failed=$((failed+1)); echo "--- FAIL $name (exit $rc)"; tail -20 "$log" ;;
  esac
done
kill -0 "$pid" 2>/dev/null || { echo "interop: quartet died during the run"; cat "$log"; failed=$((failed+1)); }
echo "interop: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
