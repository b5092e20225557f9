package mqtt

import (
	"testing"
	"time"
)

// A persistent session's inbound QoS 2 packet ids survive a broker restart:
// a PUBLISH resent with DUP after the restart (its PUBREC was lost) is
// acknowledged but not delivered again, and once released (PUBREL/PUBCOMP)
// the id carries a new message, also across a further restart. Subscriber:
// paho.mqtt.golang with a persistent session; publisher: a raw client, to
// play the lost PUBREC.
func TestQoS2InboundIDsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, Config{})
	sink := newSink3()
	sub := connect3(t, b.addr, "q2sub", false, sink, nil)
	sub3(t, sub, "q2/#", 2)

	pubSend := func(addr string, dup bool, payload string) *raw {
		t.Helper()
		r := dialRaw(t, addr, Version311)
		r.connect("q2pub", false, nil)
		r.publish(&Publish{QoS: 2, PacketID: 9, Dup: dup, Topic: []byte("q2/x"), Payload: []byte(payload)})
		r.expect(PUBREC)
		return r
	}
	pubSend(b.addr, false, "first") // its PUBREC is "lost": no PUBREL follows
	if m := sink.next(t); m.payload != "first" {
		t.Fatalf("got %+v", m)
	}
	// let the subscriber's own QoS 2 flow finish (outbound inflight state
	// is not what this test is about)
	waitNoInflight(t, b, "q2sub")

	b.stop()
	b2 := startBroker(t, dir, Config{})
	sink2 := newSink3()
	connect3(t, b2.addr, "q2sub", false, sink2, nil)
	r := pubSend(b2.addr, true, "first") // resent with DUP after the restart
	sink2.none(t, 300*time.Millisecond)
	r.send(AppendAck(nil, Version311, PUBREL, 9, 0, nil))
	r.expect(PUBCOMP)
	// the released id now carries a new message
	r.publish(&Publish{QoS: 2, PacketID: 9, Topic: []byte("q2/x"), Payload: []byte("second")})
	r.expect(PUBREC)
	if m := sink2.next(t); m.payload != "second" {
		t.Fatalf("got %+v", m)
	}
	r.send(AppendAck(nil, Version311, PUBREL, 9, 0, nil))
	r.expect(PUBCOMP)
	waitNoInflight(t, b2, "q2sub")

	// released ids stay released across a restart
	b2.stop()
	b3 := startBroker(t, dir, Config{})
	sink3 := newSink3()
	connect3(t, b3.addr, "q2sub", false, sink3, nil)
	pubSend(b3.addr, false, "third")
	if m := sink3.next(t); m.payload != "third" {
		t.Fatalf("got %+v", m)
	}
	sink3.none(t, 200*time.Millisecond)
}

// waitNoInflight waits until session id has no unacknowledged delivery.
func waitNoInflight(t *testing.T, b *broker, id string) {
	t.Helper()
	ss, ok := b.srv.sessions.Get(id)
	if !ok {
		t.Fatalf("no session %s", id)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ss.Lock()
		n := ss.InflightLen() + ss.QueueLen()
		ss.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s still has %d messages in flight or queued", id, n)
		}
	}
}
