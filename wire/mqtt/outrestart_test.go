package mqtt

import (
	"fmt"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// rawSub is a raw persistent-session subscriber that records what it gets.
type rawSub struct {
	*raw
}

func dialSub(t *testing.T, addr, id string, wantPresent bool) rawSub {
	t.Helper()
	r := dialRaw(t, addr, Version311)
	if ca := r.connect(id, false, nil); ca.SessionPresent != wantPresent {
		t.Fatalf("session present %v, want %v", ca.SessionPresent, wantPresent)
	}
	return rawSub{r}
}

// next reads the next PUBLISH or PUBREL: for a PUBREL, p is nil.
func (s rawSub) next() (p *Publish, pubrel uint16) {
	s.t.Helper()
	h, body, err := s.read(5 * time.Second)
	if err != nil {
		s.t.Fatalf("raw read: %v", err)
	}
	switch h.Type {
	case PUBLISH:
		p = &Publish{}
		if err := DecodePublish(p, s.v, h.Flags, body); err != nil {
			s.t.Fatal(err)
		}
		return p, 0
	case PUBREL:
		var a Ack
		if err := DecodeAck(&a, s.v, PUBREL, h.Flags, body); err != nil {
			s.t.Fatal(err)
		}
		return nil, a.PacketID
	}
	s.t.Fatalf("raw: got %s, want PUBLISH or PUBREL", packetName(h.Type))
	return nil, 0
}

func (s rawSub) ack(typ byte, id uint16) { s.send(AppendAck(nil, s.v, typ, id, 0, nil)) }

// quiet asserts nothing more arrives for d.
func (s rawSub) quiet(d time.Duration) {
	s.t.Helper()
	if h, _, err := s.read(d); err == nil {
		s.t.Fatalf("unexpected %s", packetName(h.Type))
	}
}

// Outbound QoS 1/2 deliveries in flight to a persistent session when the
// broker stops are resent after the restart with the same packet id and
// DUP, and a QoS 2 delivery already PUBREC'd gets PUBREL, not the PUBLISH
// again (MQTT 3.1.1 §4.4): the subscriber sees each QoS 2 message once.
// Deliveries from the live queue (made durable at shutdown).
func TestOutboundInflightSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, Config{})
	sub := dialSub(t, b.addr, "osub", false)
	sub.subscribe(1, "o/#", 2)
	pub := connect3(t, b.addr, "opub", true, nil, nil)
	warmPacketIDs(t, pub, sub, "o/warm")
	wait(t, pub.Publish("o/a", 1, false, "A"))
	wait(t, pub.Publish("o/b", 2, false, "B"))
	wait(t, pub.Publish("o/c", 2, false, "C"))
	ids := map[string]uint16{}
	for range 3 {
		p, _ := sub.next()
		if p == nil || p.Dup {
			t.Fatalf("first delivery: %+v", p)
		}
		ids[string(p.Payload)] = p.PacketID
	}
	sub.ack(PUBREC, ids["C"]) // C received; A and B unacknowledged
	if _, rel := sub.next(); rel != ids["C"] {
		t.Fatalf("PUBREL %d, want %d", rel, ids["C"])
	}

	b.stop()
	b2 := startBroker(t, dir, Config{})
	sub2 := dialSub(t, b2.addr, "osub", true)
	expectResend(t, sub2, ids, "A", "B", "C")
	waitNoInflight(t, b2, "osub")

	// acknowledged deliveries are gone for good
	b2.stop()
	b3 := startBroker(t, dir, Config{})
	sink := newSink3()
	c := connect3(t, b3.addr, "osub", false, sink, nil)
	sink.none(t, 300*time.Millisecond)
	// and the session goes on with a real client
	pub3 := connect3(t, b3.addr, "opub", true, nil, nil)
	wait(t, pub3.Publish("o/d", 2, false, "D"))
	if m := sink.next(t); m.payload != "D" || m.dup {
		t.Fatalf("got %+v", m)
	}
	sink.none(t, 200*time.Millisecond)
	c.Disconnect(100)
}

// The same for deliveries of messages queued while the subscriber was
// offline (stored on arrival), when the broker stops without writing
// anything more (a crash): the packet id is written with the message's
// record when it is sent, the PUBREC'd state when PUBREC arrives.
func TestOutboundInflightSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, Config{})
	sub := dialSub(t, b.addr, "csub", false)
	sub.subscribe(1, "c/#", 2)
	pub := connect3(t, b.addr, "cpub", true, nil, nil)
	warmPacketIDs(t, pub, sub, "c/warm")
	sub.send(AppendDisconnect(nil, Version311, DISCONNECT, 0, nil))
	sub.closed(2 * time.Second)
	waitOffline(t, b, "csub")
	wait(t, pub.Publish("c/a", 1, false, "A"))
	wait(t, pub.Publish("c/b", 2, false, "B"))
	wait(t, pub.Publish("c/c", 2, false, "C"))

	sub = dialSub(t, b.addr, "csub", true)
	ids := map[string]uint16{}
	for range 3 {
		p, _ := sub.next()
		if p == nil || p.Dup {
			t.Fatalf("first delivery: %+v", p)
		}
		ids[string(p.Payload)] = p.PacketID
	}
	sub.ack(PUBREC, ids["C"])
	if _, rel := sub.next(); rel != ids["C"] {
		t.Fatalf("PUBREL %d, want %d", rel, ids["C"])
	}
	// the warm-up messages went through the live log while csub was
	// connected: their acknowledgements are durable within releaseIdle
	waitLiveReleased(t, b)
	b.srv.persist.closed.Store(true) // from here on nothing is written: a crash
	b.stop()

	b2 := startBroker(t, dir, Config{})
	sub2 := dialSub(t, b2.addr, "csub", true)
	expectResend(t, sub2, ids, "A", "B", "C")
	waitNoInflight(t, b2, "csub")
	b2.stop()
	b3 := startBroker(t, dir, Config{})
	sub3 := dialSub(t, b3.addr, "csub", true)
	sub3.quiet(300 * time.Millisecond)
}

// expectResend reads what a reconnected subscriber gets after a restart:
// QoS 1 a and QoS 2 b again with DUP and their old ids, PUBREL for
// PUBREC'd QoS 2 c (never its PUBLISH), then completes the flows.
func expectResend(t *testing.T, s rawSub, ids map[string]uint16, a, b, c string) {
	t.Helper()
	gotRel := false
	seen := map[string]bool{}
	for range 3 {
		p, rel := s.next()
		if p == nil {
			if rel != ids[c] {
				t.Fatalf("PUBREL %d, want %d", rel, ids[c])
			}
			gotRel = true
			continue
		}
		name := string(p.Payload)
		if name == c {
			t.Fatalf("%s resent as PUBLISH after its PUBREC, want PUBREL", c)
		}
		if !p.Dup || p.PacketID != ids[name] || seen[name] {
			t.Fatalf("resent %s: dup %v id %d, want dup and id %d", name, p.Dup, p.PacketID, ids[name])
		}
		seen[name] = true
	}
	if !gotRel || !seen[a] || !seen[b] {
		t.Fatalf("after restart: PUBREL %v, resent %v", gotRel, seen)
	}
	s.ack(PUBACK, ids[a])
	s.ack(PUBREC, ids[b])
	if _, rel := s.next(); rel != ids[b] {
		t.Fatalf("PUBREL %d, want %d", rel, ids[b])
	}
	s.ack(PUBCOMP, ids[b])
	s.ack(PUBCOMP, ids[c])
	s.quiet(200 * time.Millisecond)
}

// waitOffline waits until session id has no connection.
func waitOffline(t *testing.T, b *broker, id string) {
	t.Helper()
	ss, ok := b.srv.sessions.Get(id)
	if !ok {
		t.Fatalf("no session %s", id)
	}
	for deadline := time.Now().Add(5 * time.Second); ss.Online.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("session %s still online", id)
		}
	}
}

// warmPacketIDs moves the subscriber's packet ids away from 1 with three
// acknowledged QoS 1 deliveries, so a fresh numbering after a restart
// cannot match by chance.
func warmPacketIDs(t *testing.T, pub paho3.Client, sub rawSub, topic string) {
	t.Helper()
	for i := range 3 {
		wait(t, pub.Publish(topic, 1, false, fmt.Sprint("warm", i)))
		p, _ := sub.next()
		sub.ack(PUBACK, p.PacketID)
	}
}
