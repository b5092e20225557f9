#!/usr/bin/env python3
"""Kafka interop against Quartet with a Python client.

usage: kafka_client.py ADDR kafka-python|confluent

Creates a 3-partition topic, produces keyed messages, consumes them with a
consumer group, and checks that every message arrived exactly once and in
order per partition; then checks that the group's committed offsets make a
second consumer of the same group see only new messages.
Exit 0 pass, 77 client not installed, 1 fail.
"""
import sys
import time
import uuid

N = 300
PARTS = 3


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(got, sent_keys_by_part=None):
    """got: list of (partition, offset, key, value)."""
    seen = set()
    last = {}
    for p, o, k, v in got:
        if v in seen:
            fail("duplicate message %s" % v)
        seen.add(v)
        if p in last and o <= last[p]:
            fail("out of order on partition %d: %d after %d" % (p, o, last[p]))
        last[p] = o
    want = set("m%d" % i for i in range(N))
    if seen != want:
        fail("missing %d messages, e.g. %s" % (len(want - seen), sorted(want - seen)[:5]))
    # Keyed messages: each key's values must be in send order.
    per_key = {}
    for p, o, k, v in sorted(got, key=lambda x: (x[0], x[1])):
        per_key.setdefault(k, []).append(int(v[1:]))
    for k, vs in per_key.items():
        if vs != sorted(vs):
            fail("key %s out of order: %s" % (k, vs[:10]))


def run_kafka_python(addr):
    try:
        from kafka import KafkaProducer, KafkaConsumer
        from kafka.admin import KafkaAdminClient, NewTopic
    except ImportError:
        print("SKIP: kafka-python not installed")
        sys.exit(77)
    topic = "interop-kpy-" + uuid.uuid4().hex[:8]
    grp = "g-" + topic
    adm = KafkaAdminClient(bootstrap_servers=addr, client_id="interop")
    adm.create_topics([NewTopic(topic, num_partitions=PARTS, replication_factor=1)])
    adm.close()
    prod = KafkaProducer(bootstrap_servers=addr, acks="all", linger_ms=5, compression_type="gzip")
    for i in range(N):
        prod.send(topic, key=("k%d" % (i % 10)).encode(), value=("m%d" % i).encode())
    prod.flush()
    prod.close()

    def consume(expect, timeout=30):
        c = KafkaConsumer(topic, bootstrap_servers=addr, group_id=grp, auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=3000)
        got = []
        deadline = time.time() + timeout
        while len(got) < expect and time.time() < deadline:
            batch = c.poll(timeout_ms=1000)
            for tp, msgs in batch.items():
                for m in msgs:
                    got.append((m.partition, m.offset, m.key.decode(), m.value.decode()))
        c.commit()
        c.close()
        return got

    got = consume(N)
    check(got)
    # Committed offsets: the group resumes after them.
    prod = KafkaProducer(bootstrap_servers=addr, acks="all")
    prod.send(topic, key=b"k0", value=b"late").get(timeout=10)
    prod.close()
    again = consume(1)
    if [g[3] for g in again] != ["late"]:
        fail("after commit, the group saw %s" % [g[3] for g in again][:5])
    print("kafka-python: %d messages once and in order, group resumed at committed offsets" % N)


def run_confluent(addr):
    try:
        from confluent_kafka import Producer, Consumer, TopicPartition
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        print("SKIP: confluent-kafka not installed")
        sys.exit(77)
    topic = "interop-ck-" + uuid.uuid4().hex[:8]
    grp = "g-" + topic
    adm = AdminClient({"bootstrap.servers": addr})
    for t, f in adm.create_topics([NewTopic(topic, num_partitions=PARTS, replication_factor=1)]).items():
        f.result(timeout=10)
    prod = Producer({"bootstrap.servers": addr, "enable.idempotence": True, "compression.type": "zstd",
                     "linger.ms": 5})
    errs = []
    for i in range(N):
        prod.produce(topic, key=("k%d" % (i % 10)).encode(), value=("m%d" % i).encode(),
                     on_delivery=lambda err, msg: errs.append(err) if err else None)
        prod.poll(0)
    if prod.flush(30) != 0:
        fail("producer flush left messages")
    if errs:
        fail("delivery errors: %s" % errs[:3])

    def consume(expect, timeout=30):
        c = Consumer({"bootstrap.servers": addr, "group.id": grp, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "partition.assignment.strategy": "cooperative-sticky"})
        c.subscribe([topic])
        got = []
        deadline = time.time() + timeout
        while len(got) < expect and time.time() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                fail("consumer error %s" % m.error())
            got.append((m.partition(), m.offset(), m.key().decode(), m.value().decode()))
        if got:
            c.commit(asynchronous=False)
        c.close()
        return got

    got = consume(N)
    check(got)
    prod.produce(topic, key=b"k0", value=b"late")
    prod.flush(10)
    again = consume(1)
    if [g[3] for g in again] != ["late"]:
        fail("after commit, the group saw %s" % [g[3] for g in again][:5])
    print("confluent-kafka: %d messages once and in order, group resumed at committed offsets" % N)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    {"kafka-python": run_kafka_python, "confluent": run_confluent}[sys.argv[2]](sys.argv[1])
