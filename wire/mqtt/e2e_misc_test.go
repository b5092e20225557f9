package mqtt

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func TestKeepAliveOneAndAHalf(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	r := dialRaw(t, b.addr, Version5)
	p := &Connect{Version: Version5, CleanStart: true, KeepAlive: 1, ClientID: []byte("ka")}
	r.send(AppendConnect(nil, p))
	r.expect(CONNACK)
	start := time.Now()
	closed, disc := r.closed(6 * time.Second)
	el := time.Since(start)
	if !closed || el < 1400*time.Millisecond || el > 4*time.Second {
		t.Fatalf("closed %v after %v", closed, el)
	}
	if len(disc) == 0 || disc[0] != RCKeepAliveTimeout {
		t.Fatalf("disconnect reason %x", disc)
	}
	// pinging keeps it open
	r2 := dialRaw(t, b.addr, Version311)
	r2.send(AppendConnect(nil, &Connect{Version: Version311, CleanStart: true, KeepAlive: 1, ClientID: []byte("ka2")}))
	r2.expect(CONNACK)
	for i := 0; i < 4; i++ {
		time.Sleep(700 * time.Millisecond)
		r2.send([]byte{PINGREQ << 4, 0})
		r2.expect(PINGRESP)
	}
}

func TestSessionTakeoverAndExpiry5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	r1 := dialRaw(t, b.addr, Version5)
	var sp Properties
	sp.SessionExpiry = 1
	sp.Set(propSessionExpiry)
	r1.connect("dup", false, &sp)
	r1.subscribe(1, "tk", 1)
	r2 := dialRaw(t, b.addr, Version5)
	if ca := r2.connect("dup", false, &sp); !ca.SessionPresent {
		t.Fatal("takeover: session not present")
	}
	if closed, disc := r1.closed(2 * time.Second); !closed || len(disc) == 0 || disc[0] != RCSessionTakenOver {
		t.Fatalf("old connection: closed %v reason %x", closed, disc)
	}
	r2.send(AppendDisconnect(nil, Version5, DISCONNECT, RCSuccess, nil))
	time.Sleep(1600 * time.Millisecond) // past the 1 s expiry
	r3 := dialRaw(t, b.addr, Version5)
	if ca := r3.connect("dup", false, &sp); ca.SessionPresent {
		t.Fatal("session survived its expiry")
	}
}

func TestSysTopics(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{SysInterval: 100 * time.Millisecond})
	sink := newSink5()
	c, _ := connect5(t, b.addr, &paho.Connect{ClientID: "sys", CleanStart: true}, sink)
	c.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$SYS/broker/clients/connected", QoS: 0}}})
	m := sink.next(t)
	if m.Topic != "$SYS/broker/clients/connected" || len(m.Payload) == 0 {
		t.Fatalf("%s %q", m.Topic, m.Payload)
	}
}

func TestUnsubscribe(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	sink := newSink3()
	c := connect3(t, b.addr, "uns", true, sink, nil)
	sub3(t, c, "u/#", 1)
	wait(t, c.Publish("u/1", 1, false, "a"))
	sink.next(t)
	wait(t, c.Unsubscribe("u/#"))
	wait(t, c.Publish("u/1", 1, false, "b"))
	sink.none(t, 300*time.Millisecond)
}
