#!/usr/bin/env bash
# Side-by-side benchmark (make bench-compare): Quartet against Mosquitto (MQTT)
# and RabbitMQ (AMQP) from Debian, alternating A B A B for $ROUNDS rounds; Kafka
# and RocketMQ against a raw TCP sink that reads and discards the same
# requests (the machine's ceiling). Everything runs on spare loopback ports and
# everything started here is stopped on exit. Results: $OUT (results.json,
# results.md, chart.svg, chart.html), copied to bench/results/latest.
#
# Knobs (environment): ROUNDS=3 DURATION=5s WARMUP=1s IDLE_CONNS=(per scenario)
#   SCENARIOS=comma list (quartet-bench scenarios) OUT=dir BUDGET_S=780
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
IDLE_CONNS=${IDLE_CONNS:-} # default: each idle scenario's own (10,000 MQTT, 5,000 AMQP)
SCENARIOS=${SCENARIOS:-mqtt-fanin-qos0-100,mqtt-fanin-qos1-100,mqtt-fanin-qos1-100-paho,amqp-transient-100,amqp-durable-confirm-100,kafka-p4,kafka-consume-cold,rocketmq-sync-4,mqtt-idle-10k,amqp-idle-5k}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP}
BUDGET_S=${BUDGET_S:-780} # the suite's share of the 15-minute budget
export GOFLAGS=${GOFLAGS:--mod=mod}

source "$ROOT/bench/peers.sh"

log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# 1. Peers from Debian, if missing.
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]} from Debian"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || true
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PATH=$PATH:/usr/sbin

# 2. Binaries.
if [ ! -x bin/quartet ] || [ ! -x bin/quartet-bench ] || [ -z "${NO_BUILD:-}" ]; then
	log "building bin/quartet and bin/quartet-bench"
	mkdir -p bin
	go build -trimpath -o bin/quartet ./appliance/cmd/quartet
	go build -trimpath -o bin/quartet-bench ./bench/cmd/quartet-bench
fi

WORK=$(mktemp -d /tmp/quartet-compare.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
	set +eu
	log "stopping everything started here"
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	stop_rabbitmq "$WORK/rabbitmq"
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# 3. Start the brokers.
read -r KAFKA AMQP MQTT NAMESRV RBROKER MOSQ RABBIT SINK < <(free_ports 8)

log "starting RabbitMQ on 127.0.0.1:$RABBIT (takes a while)"
start_rabbitmq "$RABBIT" "$WORK/rabbitmq" &
RABBIT_STARTER=$!

mkdir -p "$WORK/quartet"
bin/quartet serve --data-dir "$WORK/quartet" --log-level warn \
	--kafka "127.0.0.1:$KAFKA" --amqp "127.0.0.1:$AMQP" --mqtt "127.0.0.1:$MQTT" --mqtt-ws "" \
	--rocketmq-namesrv "127.0.0.1:$NAMESRV" --rocketmq-broker "127.0.0.1:$RBROKER" --http "" \
	>"$WORK/quartet.log" 2>&1 &
QPID=$!
PIDS+=("$QPID")
start_mosquitto "$MOSQ" "$WORK/mosquitto"
PIDS+=("$MOSQ_PID")
bin/quartet-bench sink --listen "127.0.0.1:$SINK" >"$WORK/sink.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")

QUARTET_OK=1
for p in "$KAFKA" "$AMQP" "$MQTT" "$NAMESRV"; do
	if ! wait_port 127.0.0.1 "$p" 20; then
		log "Quartet did not open port $p:"
		tail -20 "$WORK/quartet.log" >&2
		QUARTET_OK=0
		break
	fi
done
wait_port 127.0.0.1 "$SINK" 10
RABBIT_PID=
if wait "$RABBIT_STARTER"; then
	RABBIT_PID=$(cat "$WORK/rabbitmq/beam.pid" 2>/dev/null || true)
	log "RabbitMQ up (pid $RABBIT_PID)"
else
	log "RabbitMQ failed to start; AMQP runs without it"
fi

args=(suite --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP" --only "$SCENARIOS" --out "$OUT")
[ -n "$IDLE_CONNS" ] && args+=(--idle-conns "$IDLE_CONNS")
if [ "$QUARTET_OK" = 1 ]; then
	args+=(--mqtt "quartet=127.0.0.1:$MQTT@$QPID" --amqp "quartet=127.0.0.1:$AMQP@$QPID"
		--kafka "quartet=127.0.0.1:$KAFKA@$QPID" --rocketmq "quartet=127.0.0.1:$NAMESRV@$QPID")
fi
args+=(--mqtt "mosquitto=127.0.0.1:$MOSQ@$MOSQ_PID")
[ -n "$RABBIT_PID" ] && args+=(--amqp "rabbitmq=127.0.0.1:$RABBIT@$RABBIT_PID")
args+=(--kafka-ceiling "sink=127.0.0.1:$SINK@$SPID" --rocketmq-ceiling "sink=127.0.0.1:$SINK@$SPID")

# 4. One heavy benchmark at a time on this machine.
log "waiting for /tmp/bench.lock, then: quartet-bench ${args[*]}"
status=0
flock /tmp/bench.lock timeout --signal=INT --kill-after=20 "$BUDGET_S" bin/quartet-bench "${args[@]}" || status=$?

if [ -f "$OUT/results.json" ]; then
	rm -rf "$ROOT/bench/results/latest"
	mkdir -p "$ROOT/bench/results"
	cp -r "$OUT" "$ROOT/bench/results/latest"
	log "results: $OUT (copied to bench/results/latest)"
fi
if [ "$QUARTET_OK" != 1 ]; then
	log "Quartet was not measured (see above); peers and ceilings only"
	status=1
fi
exit "$status"
