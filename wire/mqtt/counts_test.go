package mqtt

import (
	"testing"
	"time"
)

// TestMessageCounts drives every path that counts (or must not count) a
// message with paho.mqtt.golang and a raw client, and checks MessageCounts
// exactly after each step.
func TestMessageCounts(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	var in, out uint64
	check := func(step string, dIn, dOut uint64) {
		t.Helper()
		in += dIn
		out += dOut
		// the counters are bumped on the loops: wait for them to settle
		deadline := time.Now().Add(5 * time.Second)
		for {
			gin, gout := b.srv.MessageCounts()
			if gin == in && gout == out {
				return
			}
			if gin > in || gout > out || time.Now().After(deadline) {
				t.Fatalf("%s: MessageCounts() = %d, %d; want %d, %d", step, gin, gout, in, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	pub := connect3(t, b.addr, "cnt-pub", true, nil, nil)
	wait(t, pub.Publish("nobody/x", 1, false, "x"))
	check("publish to no subscriber", 1, 0)

	sinkA, sinkB := newSink3(), newSink3()
	a := connect3(t, b.addr, "cnt-a", true, sinkA, nil)
	sub3(t, a, "c/#", 2)
	sub3(t, a, "c/+", 0) // overlaps c/#: still one copy
	bb := connect3(t, b.addr, "cnt-b", true, sinkB, nil)
	sub3(t, bb, "c/x", 0)
	for q := byte(0); q <= 2; q++ {
		wait(t, pub.Publish("c/x", q, false, "m"))
		sinkA.next(t)
		sinkB.next(t)
		check("fan-out to two sessions", 1, 2)
	}

	// retained: counted in when published, out when sent on subscribe
	wait(t, pub.Publish("ret/t", 1, true, "r"))
	check("retained, no subscriber", 1, 0)
	sub3(t, bb, "ret/#", 1)
	if m := sinkB.next(t); !m.retained {
		t.Fatalf("not retained: %+v", m)
	}
	check("retained sent on subscribe", 0, 1)

	// a QoS 2 PUBLISH resent (DUP) before PUBREL is one message
	r := dialRaw(t, b.addr, Version311)
	r.connect("cnt-raw", true, nil)
	p := &Publish{QoS: 2, PacketID: 7, Topic: []byte("c/x"), Payload: []byte("q2")}
	r.publish(p)
	r.expect(PUBREC)
	p.Dup = true
	r.publish(p)
	r.expect(PUBREC)
	r.send(AppendAck(nil, Version311, PUBREL, 7, 0, nil))
	r.expect(PUBCOMP)
	sinkA.next(t)
	sinkB.next(t)
	check("QoS 2 resent before PUBREL", 1, 2)
	sinkA.none(t, 100*time.Millisecond)

	// a protocol violation is not a message
	r.publish(&Publish{Topic: []byte("c/+"), Payload: []byte("bad")})
	if closed, _ := r.closed(2 * time.Second); !closed {
		t.Fatal("wildcard PUBLISH did not close the connection")
	}
	check("refused PUBLISH", 0, 0)

	// a resend with DUP after reconnect is another delivered copy
	rd := dialRaw(t, b.addr, Version311)
	rd.connect("cnt-rd", false, nil)
	rd.subscribe(1, "rd", 1)
	wait(t, pub.Publish("rd", 1, false, "once"))
	rd.readPublish()
	check("first delivery", 1, 1)
	rd.c.Close() // without PUBACK
	rd2 := dialRaw(t, b.addr, Version311)
	rd2.connect("cnt-rd", false, nil)
	if d := rd2.readPublish(); !d.Dup {
		t.Fatal("not resent with DUP")
	}
	check("resent after reconnect", 0, 1)
}
