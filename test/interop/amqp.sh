#!/usr/bin/env bash
# AMQP 0-9-1 interop against a running Quartet: amqp-tools (rabbitmq-c),
# python3-pika and amqplib (node). Address from $AMQP_ADDR or $1 (host:port).
# Exit 0 pass, 77 when no client is installed, 1 on failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
addr=${AMQP_ADDR:-${1:-}}
[ -n "$addr" ] || { echo "usage: AMQP_ADDR=host:port $0"; exit 2; }
export AMQP_ADDR=$addr
url="amqp://guest:guest@$addr"
ran=0 failed=0

if command -v amqp-publish >/dev/null && command -v amqp-get >/dev/null; then
  ran=$((ran + 1))
  if (
    set -e
    q=$(amqp-declare-queue -u "$url" -d -q tools.q)
    [ "$q" = tools.q ]
    for i in 1 2 3; do amqp-publish -u "$url" -r tools.q -p -C text/plain -b "tools-$i"; done
    [ "$(amqp-get -u "$url" -q tools.q)" = tools-1 ]
    out=$(timeout 10 amqp-consume -u "$url" -q tools.q -c 2 cat)
    [ "$out" = "tools-2tools-3" ]
    # A consumer bound to amq.topic through a server-named queue.
    (timeout 10 amqp-consume -u "$url" -e amq.topic -r 'logs.#' -c 1 cat > /tmp/amqp-tools.$$) &
    sleep 1
    amqp-publish -u "$url" -e amq.topic -r logs.app.error -b routed
    wait
    [ "$(cat /tmp/amqp-tools.$$)" = routed ]
    rm -f /tmp/amqp-tools.$$
    amqp-delete-queue -u "$url" -q tools.q >/dev/null
  ); then echo "amqp-tools: ok (declare, publish persistent, get, consume, topic)"; else echo "amqp-tools: FAIL"; failed=$((failed + 1)); fi
fi

py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import pika' 2>/dev/null; then py=$p; break; fi
done
if [ -n "$py" ]; then
  ran=$((ran + 1))
  timeout 60 "$py" "$here/amqp_pika.py" || { echo "pika: FAIL"; failed=$((failed + 1)); }
fi

if command -v node >/dev/null && [ -d "$here/node_modules/amqplib" ]; then
  ran=$((ran + 1))
  (cd "$here" && timeout 60 node amqp.js) || { echo "amqplib: FAIL"; failed=$((failed + 1)); }
fi

[ "$ran" -gt 0 ] || { echo "amqp: no client installed"; exit 77; }
[ "$failed" -eq 0 ] || exit 1
echo "amqp: $ran clients ok"
