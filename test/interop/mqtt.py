#!/usr/bin/env python3
"""MQTT interop with python3-paho-mqtt: MQTT 3.1.1 and 5 over TCP and
WebSocket (/mqtt), QoS 0/1/2 publish and subscribe, retained messages.
Usage: mqtt.py HOST:PORT WSHOST:WSPORT"""
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

addr, ws = sys.argv[1], sys.argv[2]
failed = False


def client(cid, proto, transport):
    kw = {"client_id": cid, "protocol": proto, "transport": transport}
    if proto != mqtt.MQTTv5:
        kw["clean_session"] = True
    c = mqtt.Client(**kw)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    host, port = (ws if transport == "websockets" else addr).rsplit(":", 1)
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    return c


def check(name, cond, detail=""):
    global failed
    if cond:
        print("ok   python paho " + name)
    else:
        print("FAIL python paho " + name + " " + str(detail))
        failed = True


def scenario(proto, pname, transport):
    tag = "%s/%s/%d" % (pname, transport, os.getpid())
    got = []
    cond = threading.Condition()

    got2 = []

    def on_message(_c, _u, m):
        with cond:
            got.append((m.topic, m.payload.decode(), m.qos, m.retain))
            cond.notify_all()

    def on_message2(_c, _u, m):
        with cond:
            got2.append((m.topic, m.payload.decode(), m.qos, bool(m.retain)))
            cond.notify_all()

    sub = client("py-sub-" + tag.replace("/", "-"), proto, transport)
    sub.on_message = on_message
    base = "interop/py/" + tag
    r = sub.subscribe(base + "/#", qos=2)
    time.sleep(0.5)
    pub = client("py-pub-" + tag.replace("/", "-"), proto, transport)
    for q in (0, 1, 2):
        info = pub.publish("%s/q%d" % (base, q), "hello-%d" % q, qos=q)
        info.wait_for_publish()
    with cond:
        cond.wait_for(lambda: len(got) >= 3, timeout=5)
    want = sorted(("%s/q%d" % (base, q), "hello-%d" % q, q, False) for q in (0, 1, 2))
    check("%s %s QoS 0/1/2" % (pname, transport), sorted(got) == want, got)
    # retained
    pub.publish(base + "/ret", "kept", qos=1, retain=True).wait_for_publish()
    sub2 = client("py-sub2-" + tag.replace("/", "-"), proto, transport)
    sub2.on_message = on_message2
    sub2.subscribe(base + "/ret", qos=1)
    with cond:
        cond.wait_for(lambda: len(got2) >= 1, timeout=5)
    check("%s %s retained" % (pname, transport), got2[:1] == [(base + "/ret", "kept", 1, True)], got2)
    pub.publish(base + "/ret", "", qos=1, retain=True).wait_for_publish()
    for c in (sub, sub2, pub):
        c.disconnect()
        c.loop_stop()


for proto, pname in ((mqtt.MQTTv311, "3.1.1"), (mqtt.MQTTv5, "5")):
    for transport in ("tcp", "websockets"):
        try:
            scenario(proto, pname, transport)
        except Exception as e:  # noqa: BLE001
            check("%s %s" % (pname, transport), False, repr(e))

sys.exit(1 if failed else 0)
