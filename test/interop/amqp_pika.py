#!/usr/bin/env python3
"""pika against Quartet: publisher confirms, manual-ack consumer, topic exchange."""
import os, sys, time
import pika

host, port = (os.environ.get("AMQP_ADDR") or sys.argv[1]).rsplit(":", 1)
params = pika.ConnectionParameters(host=host, port=int(port), credentials=pika.PlainCredentials("guest", "guest"))
conn = pika.BlockingConnection(params)
ch = conn.channel()
ch.confirm_delivery()
ch.exchange_declare("pika.topic", exchange_type="topic", durable=True)
q = ch.queue_declare("pika.q", durable=True).method.queue
ch.queue_bind(q, "pika.topic", routing_key="sensors.*.temp")
other = ch.queue_declare("", exclusive=True).method.queue
ch.queue_bind(other, "pika.topic", routing_key="sensors.#")
n = 50
for i in range(n):
    # BlockingChannel.basic_publish raises on nack/return with confirms on.
    ch.basic_publish("pika.topic", f"sensors.{i % 5}.temp", f"m{i}".encode(),
                     pika.BasicProperties(delivery_mode=2, headers={"i": i}), mandatory=True)
ch.basic_publish("pika.topic", "sensors.x.humidity", b"only-other")
try:
    ch.basic_publish("pika.topic", "nobody.home", b"x", mandatory=True)
    print("pika: unroutable mandatory publish was not returned"); sys.exit(1)
except pika.exceptions.UnroutableError:
    pass

ch.basic_qos(prefetch_count=10)
got = []
def on_msg(c, method, props, body):
    got.append((body.decode(), props.headers.get("i")))
    c.basic_ack(method.delivery_tag)
    if len(got) == n:
        c.stop_consuming()
ch.basic_consume(q, on_msg)
deadline = time.time() + 10
conn.call_later(10, ch.stop_consuming)
ch.start_consuming()
if [b for b, _ in got] != [f"m{i}" for i in range(n)] or [i for _, i in got] != list(range(n)):
    print("pika: topic queue got", got[:5], "...", len(got)); sys.exit(1)
m = ch.queue_declare(other, passive=True).method.message_count
if m != n + 1:
    print("pika: sensors.# queue has", m, "want", n + 1); sys.exit(1)
# nack with requeue -> redelivered
ch.basic_publish("", q, b"again")
method, props, body = ch.basic_get(q)
ch.basic_nack(method.delivery_tag, requeue=True)
method, props, body = ch.basic_get(q, auto_ack=True)
if body != b"again" or not method.redelivered:
    print("pika: requeue failed", body, method); sys.exit(1)
ch.queue_delete(q)
ch.exchange_delete("pika.topic")
conn.close()
print(f"pika {pika.__version__}: ok ({n} confirmed, topic routed, manual acks, nack/requeue)")
