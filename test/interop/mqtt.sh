#!/usr/bin/env bash
# MQTT interop with clients that are not Go: mosquitto_pub/mosquitto_sub
# (MQTT 3.1.1 and 5, QoS 0/1/2, retained set/replace/clear), python3-paho-mqtt
# and MQTT.js (npm "mqtt"), each over TCP and WebSocket (path /mqtt,
# subprotocol "mqtt").
#   MQTT_ADDR=127.0.0.1:1883 MQTT_WS_ADDR=127.0.0.1:8083 test/interop/mqtt.sh
#   test/interop/mqtt.sh 127.0.0.1:1883 127.0.0.1:8083
# Exit 0 pass, 77 no client installed, 1 fail.
set -u
here=$(cd "$(dirname "$0")" && pwd)
ADDR=${MQTT_ADDR:-${1:-127.0.0.1:1883}}
WS=${MQTT_WS_ADDR:-${2:-127.0.0.1:8083}}
HOST=${ADDR%:*}; PORT=${ADDR##*:}
ran=0 fail=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run_id=$$

if command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null; then
  ran=1
  for V in mqttv31 mqttv311 mqttv5; do
    for Q in 0 1 2; do
      t="interop/$run_id/mosq/$V/$Q"
      mosquitto_sub -h "$HOST" -p "$PORT" -V "$V" -q "$Q" -t "$t" -C 3 -W 10 -F '%q %p' >"$tmp/sub" 2>"$tmp/sub.err" &
      sp=$!
      sleep 1
      for i in 1 2 3; do
        mosquitto_pub -h "$HOST" -p "$PORT" -V "$V" -q "$Q" -t "$t" -m "m$i" || bad "mosquitto_pub $V q$Q"
      done
      wait "$sp"; rc=$?
      want=$(printf '%s m1\n%s m2\n%s m3' "$Q" "$Q" "$Q")
      if [ $rc -eq 0 ] && [ "$(cat "$tmp/sub")" = "$want" ]; then ok "mosquitto $V QoS $Q"
      else bad "mosquitto $V QoS $Q: rc=$rc got: $(tr '\n' '|' <"$tmp/sub") $(cat "$tmp/sub.err")"; fi
    done
    # retained: set, replace, read back with the retain flag, clear
    t="interop/$run_id/mosq/$V/retained"
    mosquitto_pub -h "$HOST" -p "$PORT" -V "$V" -q 1 -r -t "$t" -m first
    mosquitto_pub -h "$HOST" -p "$PORT" -V "$V" -q 1 -r -t "$t" -m second
    got=$(mosquitto_sub -h "$HOST" -p "$PORT" -V "$V" -t "$t" -C 1 -W 5 -F '%r %p' 2>&1)
    [ "$got" = "1 second" ] && ok "mosquitto $V retained replace" || bad "mosquitto $V retained: got '$got'"
    mosquitto_pub -h "$HOST" -p "$PORT" -V "$V" -q 1 -r -t "$t" -n
    mosquitto_sub -h "$HOST" -p "$PORT" -V "$V" -t "$t" -C 1 -W 2 >"$tmp/cleared" 2>/dev/null
    [ ! -s "$tmp/cleared" ] && ok "mosquitto $V retained clear" || bad "mosquitto $V retained clear: got '$(cat "$tmp/cleared")'"
  done
  # persistent session (3.1.1 clean session off, QoS 1) across a client reconnect
  t="interop/$run_id/mosq/persist"
  mosquitto_sub -h "$HOST" -p "$PORT" -V mqttv311 -q 1 -c -i "mosq-persist-$run_id" -t "$t" -C 1 -W 3 -E >/dev/null 2>&1
  mosquitto_pub -h "$HOST" -p "$PORT" -V mqttv311 -q 1 -t "$t" -m queued
  got=$(mosquitto_sub -h "$HOST" -p "$PORT" -V mqttv311 -q 1 -c -i "mosq-persist-$run_id" -t "$t" -C 1 -W 5 2>&1)
  [ "$got" = queued ] && ok "mosquitto persistent session" || bad "mosquitto persistent session: got '$got'"
else
  echo "skip mosquitto clients: not installed"
fi

PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import paho.mqtt.client' 2>/dev/null; then PY=$p; break; fi
done
if [ -n "$PY" ]; then
  ran=1
  "$PY" "$here/mqtt.py" "$ADDR" "$WS" || fail=1
else
  echo "skip python3-paho-mqtt: not installed"
fi

if command -v node >/dev/null && NODE_PATH="${NODE_PATH:-$here/node_modules}" node -e 'require("mqtt")' 2>/dev/null; then
  ran=1
  NODE_PATH="${NODE_PATH:-$here/node_modules}" node "$here/mqtt.js" "$ADDR" "$WS" || fail=1
else
  echo "skip MQTT.js: npm install --prefix test/interop mqtt"
fi

[ $ran -eq 0 ] && exit 77
[ $fail -eq 0 ] && { echo "mqtt interop: PASS"; exit 0; }
echo "mqtt interop: FAIL"; exit 1
