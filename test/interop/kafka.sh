#!/usr/bin/env bash
# Kafka interop: clients that are not Go against a running Quartet.
#   bash test/interop/kafka.sh [host:port]     (default $KAFKA_ADDR, then 127.0.0.1:9092)
# kcat (librdkafka) produce + consume with a group, kafka-python and
# confluent-kafka (kafka_client.py), kafkajs (kafka.js). Each checks every
# message arrived once and in order per partition, and that the group's
# committed offsets are resumed. Exit 0 pass, 77 no client installed, 1 fail.
set -u
addr=${1:-${KAFKA_ADDR:-127.0.0.1:9092}}
here=$(cd "$(dirname "$0")" && pwd)
ran=0 failed=0

pass() { echo "ok   $1"; ran=$((ran+1)); }
bad() { echo "FAIL $1"; ran=$((ran+1)); failed=$((failed+1)); }

# --- kcat: 200 keyed messages into a 1-partition auto-created topic and a
# 3-partition topic (created by the first Python/Node admin available, else
# auto-created with 1), consumed with a balanced consumer group.
if command -v kcat >/dev/null; then
  topic="interop-kcat-$RANDOM$RANDOM"
  n=200
  seq 0 $((n-1)) | awk '{print "k" ($1 % 7) ":m" $1}' |
    kcat -b "$addr" -P -t "$topic" -K: -X acks=all -X enable.idempotence=true -z lz4 2>&1
  out=$(mktemp)
  timeout 60 kcat -b "$addr" -G "g-$topic" -X auto.offset.reset=earliest -e -q \
    -f '%p %o %k %s\n' "$topic" >"$out" 2>/dev/null
  if awk -v n=$n '
      { if ($4 in seen) { print "duplicate " $4; bad=1 } seen[$4]=1
        if (($1 in last) && $2 <= last[$1]) { print "out of order p" $1; bad=1 } last[$1]=$2
        split($4, a, "m"); v=a[2]+0
        if (($3 in lk) && v < lk[$3]) { print "key " $3 " out of order"; bad=1 } lk[$3]=v }
      END { c=0; for (k in seen) c++; if (c != n) { print "got " c " of " n; bad=1 } exit bad }' "$out"; then
    # The group committed on close: a second run sees only new messages.
    echo "k0:late" | kcat -b "$addr" -P -t "$topic" -K: 2>&1
    timeout 60 kcat -b "$addr" -G "g-$topic" -X auto.offset.reset=earliest -e -q -f '%s\n' "$topic" >"$out" 2>/dev/null
    if [ "$(cat "$out")" = "late" ]; then pass "kcat produce/consume with group ($n messages, lz4, idempotent)"
    else bad "kcat: after commit the group saw: $(head -3 "$out" | tr '\n' ' ')"; fi
  else
    bad "kcat produce/consume"
  fi
  rm -f "$out"
else
  echo "skip kcat (not installed)"
fi

# --- Python clients (Debian's python3-kafka / python3-confluent-kafka may
# live in /usr/bin/python3 while python3 on PATH is another interpreter).
pyrun() { # client
  local py
  for py in python3 /usr/bin/python3; do
    command -v "$py" >/dev/null || continue
    local out rc
    out=$(timeout 120 "$py" "$here/kafka_client.py" "$addr" "$1" 2>&1)
    rc=$?
    [ $rc -eq 77 ] && continue # this interpreter lacks the client; try the next
    printf '%s\n' "$out"
    return $rc
  done
  return 77
}
for client in kafka-python confluent; do
  pyrun "$client"
  case $? in
    0) pass "$client" ;;
    77) echo "skip $client (not installed)" ;;
    *) bad "$client" ;;
  esac
done

# --- kafkajs
if command -v node >/dev/null; then
  NODE_PATH="${NODE_PATH:-$here/node_modules}" timeout 120 node "$here/kafka.js" "$addr"
  case $? in
    0) pass kafkajs ;;
    77) echo "skip kafkajs (npm install --prefix test/interop kafkajs)" ;;
    *) bad kafkajs ;;
  esac
else
  echo "skip kafkajs (no node)"
fi

echo "kafka interop: $ran run, $failed failed"
[ $ran -eq 0 ] && exit 77
[ $failed -eq 0 ]
