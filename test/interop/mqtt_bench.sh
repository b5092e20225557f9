#!/usr/bin/env bash
# Whole-system MQTT benchmark: Quartet vs Mosquitto (Debian) under the same
# quartet-bench load in the same run, alternating A B A B. Reports broker CPU
# seconds, msgs (in+out) per broker CPU-second, delivered msgs/s, drops, p99.
#   test/interop/mqtt_bench.sh            (ROUNDS=2 DURATION=10s SCEN="qos0-100 qos1-100")
#   PUBMODE=raw: pre-encoded publishers batching their writes (bench/'s mqtt-fanin-* scenarios);
#   default paho (one write per publish).
#   QB_MQTT_SUB_SESSION=persistent: the subscribers are persistent sessions (clean session false),
#   so Quartet stores their QoS 1/2 messages before acknowledging the publisher.
# Heavy: run under flock /tmp/bench.lock. Needs bin/quartet, bin/quartet-bench
# (built here into $WORK if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SCEN=${SCEN:-"qos0-100 qos1-100 qos0-1024 qos1-1024 fanout100-qos0-100"}
WORK=$(mktemp -d /tmp/mqtt-bench.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
QB=${QB:-$WORK/quartet}
BB=${BB:-$WORK/quartet-bench}
[ -x "$QB" ] || go build -trimpath -o "$QB" ./appliance/cmd/quartet
[ -x "$BB" ] || go build -trimpath -o "$BB" ./bench/cmd/quartet-bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
QP=$(free_port); MP=$(free_port)
# outbound window comparable to Mosquitto's max_inflight_messages 20
printf '[mqtt]\ninflight_messages_max = %s\n' "${INFLIGHT:-64}" >"$WORK/quartet.toml"
"$QB" serve --config "$WORK/quartet.toml" --data-dir "$WORK/data" --mqtt "127.0.0.1:$QP" --kafka "" --amqp "" --http "" \
  --mqtt-ws "" --rocketmq-namesrv "" --rocketmq-broker "" >"$WORK/quartet.log" 2>&1 &
QPID=$!
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MP" >"$WORK/mosquitto.conf"
/usr/sbin/mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
MPID=$!
trap 'kill $QPID $MPID 2>/dev/null; wait $QPID $MPID 2>/dev/null; rm -rf "$WORK/data"' EXIT
sleep 1.5
kill -0 $QPID && kill -0 $MPID

run() { # name target pid scenario round
  local name=$1 target=$2 pid=$3 sc=$4 r=$5 args
  case $sc in
    qos0-100) args="--qos 0 --size 100 --producers 4" ;;
    qos1-100) args="--qos 1 --size 100 --producers 4" ;;
    qos0-1024) args="--qos 0 --size 1024 --producers 4" ;;
    qos1-1024) args="--qos 1 --size 1024 --producers 4" ;;
    fanout100-qos0-100) args="--qos 0 --size 100 --producers 1 --consumers 100 --rate 2000" ;;
  esac
  "$BB" mqtt --target "$target" --broker-pid "$pid" $args --pub-mode "${PUBMODE:-paho}" --duration "$DURATION" --warmup "$WARMUP" \
    --label "$name" --scenario "$sc" --out "$OUT/$sc-$name-$r" --quiet >"$OUT/$sc-$name-$r.txt" 2>&1 || true
  echo "== $sc $name round $r"; grep -v '^$' "$OUT/$sc-$name-$r.txt" | tail -n 12
}
for sc in $SCEN; do
  for r in $(seq "$ROUNDS"); do
    run quartet "127.0.0.1:$QP" $QPID "$sc" "$r"
    run mosquitto "127.0.0.1:$MP" $MPID "$sc" "$r"
  done
done
echo "results in $OUT"
