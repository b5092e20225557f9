package mqtt

import (
	"fmt"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

func TestQoSEndToEnd311(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	sink := newSink3()
	sub := connect3(t, b.addr, "sub", true, sink, nil)
	sub3(t, sub, "e2e/#", 2)
	pub := connect3(t, b.addr, "pub", true, nil, nil)
	for q := byte(0); q <= 2; q++ {
		for i := 0; i < 20; i++ {
			wait(t, pub.Publish(fmt.Sprintf("e2e/q%d", q), q, false, fmt.Sprint(i)))
		}
		for i := 0; i < 20; i++ {
			m := sink.next(t)
			if m.topic != fmt.Sprintf("e2e/q%d", q) || m.payload != fmt.Sprint(i) || m.qos != q {
				t.Fatalf("qos %d #%d: got %+v", q, i, m)
			}
		}
	}
}

func TestWildcardsAndOverlap311(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	sink := newSink3()
	sub := connect3(t, b.addr, "sub", true, sink, nil)
	sub3(t, sub, "a/+/c", 0)
	sub3(t, sub, "a/#", 1)
	sub3(t, sub, "#", 0)
	pub := connect3(t, b.addr, "pub", true, nil, nil)
	wait(t, pub.Publish("a/b/c", 1, false, "x"))
	m := sink.next(t)
	if m.topic != "a/b/c" || m.qos != 1 {
		t.Fatalf("overlap: %+v (want one copy at max QoS 1)", m)
	}
	sink.none(t, 200*time.Millisecond)
	wait(t, pub.Publish("$SYS/x", 0, false, "sys"))
	wait(t, pub.Publish("b", 0, false, "b"))
	if m := sink.next(t); m.topic != "b" {
		t.Fatalf("$-topic matched #: %+v", m)
	}
}

func TestRetained311(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	pub := connect3(t, b.addr, "pub", true, nil, nil)
	wait(t, pub.Publish("r/1", 1, true, "one"))
	wait(t, pub.Publish("r/2", 1, true, "two"))
	wait(t, pub.Publish("r/2", 1, true, "two-b")) // replace
	wait(t, pub.Publish("r/3", 1, true, "three"))
	wait(t, pub.Publish("r/3", 1, true, "")) // clear
	sink := newSink3()
	sub := connect3(t, b.addr, "sub", true, sink, nil)
	sub3(t, sub, "r/+", 1)
	got := map[string]string{}
	for i := 0; i < 2; i++ {
		m := sink.next(t)
		if !m.retained {
			t.Fatalf("not flagged retained: %+v", m)
		}
		got[m.topic] = m.payload
	}
	if got["r/1"] != "one" || got["r/2"] != "two-b" {
		t.Fatalf("retained: %v", got)
	}
	sink.none(t, 200*time.Millisecond)
	// live publish of a retained message to an existing subscriber: retain flag 0 (3.1.1)
	wait(t, pub.Publish("r/1", 0, true, "live"))
	if m := sink.next(t); m.retained || m.payload != "live" {
		t.Fatalf("live: %+v", m)
	}
}

func TestWillOnAbnormalDisconnect311(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	sink := newSink3()
	sub := connect3(t, b.addr, "sub", true, sink, nil)
	sub3(t, sub, "will/#", 1)
	// clean disconnect: no will
	c1 := connect3(t, b.addr, "w1", true, nil, func(o *paho3.ClientOptions) { o.SetWill("will/w1", "gone", 1, false) })
	c1.Disconnect(100)
	sink.none(t, 300*time.Millisecond)
	// abnormal: raw client with a will, connection dropped
	r := dialRaw(t, b.addr, Version311)
	r.send(AppendConnect(nil, &Connect{Version: Version311, CleanStart: true, KeepAlive: 30, ClientID: []byte("w2"),
		WillFlag: true, WillQoS: 1, WillTopic: []byte("will/w2"), WillPayload: []byte("lost")}))
	r.expect(CONNACK)
	r.c.Close()
	if m := sink.next(t); m.topic != "will/w2" || m.payload != "lost" {
		t.Fatalf("will: %+v", m)
	}
}

func TestPersistentSessionOffline311(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, Config{})
	s1 := connect3(t, b.addr, "persist", false, nil, nil)
	sub3(t, s1, "off/#", 1)
	s1.Disconnect(100)
	pub := connect3(t, b.addr, "pub", true, nil, nil)
	for i := 0; i < 5; i++ {
		wait(t, pub.Publish("off/x", 1, false, fmt.Sprint(i)))
	}
	wait(t, pub.Publish("off/x", 0, false, "qos0-not-queued"))
	sink := newSink3()
	s2 := connect3(t, b.addr, "persist", false, sink, nil)
	if !s2.IsConnected() {
		t.Fatal("not connected")
	}
	for i := 0; i < 5; i++ {
		if m := sink.next(t); m.payload != fmt.Sprint(i) {
			t.Fatalf("#%d: %+v", i, m)
		}
	}
	sink.none(t, 200*time.Millisecond)
	s2.Disconnect(100)
	// queue two more while offline, then restart the broker
	wait(t, pub.Publish("off/x", 1, false, "after-restart-1"))
	wait(t, pub.Publish("off/x", 2, false, "after-restart-2"))
	pub.Disconnect(100)
	time.Sleep(100 * time.Millisecond)
	b.stop()
	b2 := startBroker(t, dir, Config{})
	sink2 := newSink3()
	connect3(t, b2.addr, "persist", false, sink2, nil)
	if m := sink2.next(t); m.payload != "after-restart-1" {
		t.Fatalf("after restart: %+v", m)
	}
	if m := sink2.next(t); m.payload != "after-restart-2" {
		t.Fatalf("after restart: %+v", m)
	}
	// and the subscription itself survived the restart
	pub2 := connect3(t, b2.addr, "pub2", true, nil, nil)
	wait(t, pub2.Publish("off/y", 1, false, "live"))
	if m := sink2.next(t); m.payload != "live" {
		t.Fatalf("subscription lost across restart: %+v", m)
	}
}

func TestRedeliveryWithDup(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	r := dialRaw(t, b.addr, Version311)
	r.connect("redeliver", false, nil)
	r.subscribe(1, "rd/#", 2)
	pub := connect3(t, b.addr, "pub", true, nil, nil)
	wait(t, pub.Publish("rd/1", 1, false, "q1"))
	wait(t, pub.Publish("rd/2", 2, false, "q2"))
	p1 := r.readPublish()
	p2 := r.readPublish()
	if p1.Dup || p2.Dup || p1.QoS != 1 || p2.QoS != 2 {
		t.Fatalf("first delivery: %+v %+v", p1, p2)
	}
	r.c.Close() // no acks
	r2 := dialRaw(t, b.addr, Version311)
	ca := r2.connect("redeliver", false, nil)
	if !ca.SessionPresent {
		t.Fatal("session not present")
	}
	d1 := r2.readPublish()
	d2 := r2.readPublish()
	if !d1.Dup || !d2.Dup || string(d1.Payload) != "q1" || string(d2.Payload) != "q2" || d1.PacketID != p1.PacketID {
		t.Fatalf("redelivery: %+v %+v", d1, d2)
	}
	r2.send(AppendAck(nil, Version311, PUBACK, d1.PacketID, 0, nil))
	r2.send(AppendAck(nil, Version311, PUBREC, d2.PacketID, 0, nil))
	h, body := r2.expect(PUBREL)
	if h.Flags != 2 || len(body) != 2 {
		t.Fatal("bad PUBREL")
	}
	// drop again after PUBREC: the PUBREL must be resent
	r2.c.Close()
	r3 := dialRaw(t, b.addr, Version311)
	r3.connect("redeliver", false, nil)
	r3.expect(PUBREL)
	r3.send(AppendAck(nil, Version311, PUBCOMP, d2.PacketID, 0, nil))
	if closed, _ := r3.closed(200 * time.Millisecond); closed {
		t.Fatal("closed")
	}
}

func TestProtocolViolations(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	cases := []struct {
		name string
		v    byte
		pkt  []byte
	}{
		{"second CONNECT", Version311, AppendConnect(nil, &Connect{Version: Version311, CleanStart: true, ClientID: []byte("x2")})},
		{"wildcard in PUBLISH", Version311, AppendPublish(nil, Version311, &Publish{Topic: []byte("a/+"), Payload: []byte("x")})},
		{"invalid UTF-8 topic", Version5, AppendPublish(nil, Version5, &Publish{Topic: []byte{'a', 0xff}, Payload: []byte("x")})},
		{"remaining length 5 bytes", Version311, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"reserved type 0", Version5, []byte{0x00, 0x00}},
		{"bad SUBSCRIBE flags", Version311, []byte{0x80, 0x06, 0, 1, 0, 1, 'a', 0}},
	}
	for _, c := range cases {
		r := dialRaw(t, b.addr, c.v)
		r.connect("viol-"+c.name, true, nil)
		r.send(c.pkt)
		closed, disc := r.closed(2 * time.Second)
		if !closed {
			t.Errorf("%s: connection not closed", c.name)
		}
		if c.v == Version5 && (len(disc) == 0 || disc[0] < 0x80) {
			t.Errorf("%s: no MQTT 5 DISCONNECT reason (%x)", c.name, disc)
		}
	}
	// the broker still serves others
	sink := newSink3()
	s := connect3(t, b.addr, "after", true, sink, nil)
	sub3(t, s, "ok", 0)
	wait(t, s.Publish("ok", 0, false, "fine"))
	sink.next(t)
}
