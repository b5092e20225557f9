package queue

import (
	"sync"
	"testing"
	"time"
)

func msg(body string) *Message { return &Message{Body: []byte(body), TTL: -1} }

func bodies(es []Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, string(e.Msg.Body))
	}
	return s
}

func TestOverflowModes(t *testing.T) {
	var mu sync.Mutex
	var dead []string
	dl := func(q *Queue, es []Entry, r Reason) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range es {
			dead = append(dead, string(r)+":"+string(e.Msg.Body))
		}
	}
	cfg := DefaultConfig("q")
	cfg.MaxLength, cfg.DeadLetter = 2, dl
	q := New(cfg)
	for _, b := range []string{"a", "b", "c"} {
		if !q.Publish(msg(b)) {
			t.Fatal("drop-head refused")
		}
	}
	if got := bodies(q.Pull(nil, 10, 0, true, nil)); len(got) != 2 || got[0] != "b" {
		t.Fatalf("drop-head: %v", got)
	}
	if len(dead) != 1 || dead[0] != "maxlen:a" {
		t.Fatalf("dead %v", dead)
	}
	cfg.Overflow = RejectPublish
	q = New(cfg)
	q.Publish(msg("a"))
	q.Publish(msg("b"))
	if q.Publish(msg("c")) {
		t.Fatal("reject-publish accepted")
	}
	cfg.Overflow = RejectPublishDLX
	dead = nil
	q = New(cfg)
	q.Publish(msg("a"))
	q.Publish(msg("b"))
	if q.Publish(msg("c")) || len(dead) != 1 || dead[0] != "maxlen:c" {
		t.Fatalf("reject-publish-dlx: %v", dead)
	}
}

func TestTTLTimerDeadLetters(t *testing.T) {
	got := make(chan Reason, 4)
	cfg := DefaultConfig("q")
	cfg.MessageTTL = 20
	cfg.DeadLetter = func(q *Queue, es []Entry, r Reason) {
		for range es {
			got <- r
		}
	}
	q := New(cfg)
	q.Publish(msg("x"))
	m := msg("y")
	m.TTL = 5
	q.Publish(m)
	for i := 0; i < 2; i++ {
		select {
		case r := <-got:
			if r != ReasonExpired {
				t.Fatal(r)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no expiry")
		}
	}
	if r, _, _ := q.Counts(); r != 0 {
		t.Fatal("ready", r)
	}
}

func TestPrioritiesAndRequeue(t *testing.T) {
	cfg := DefaultConfig("q")
	cfg.MaxPriority = 5
	q := New(cfg)
	for i, p := range []uint8{0, 9, 3} {
		m := msg(string(rune('a' + i)))
		m.Priority = p
		q.Publish(m)
	}
	es := q.Pull(nil, 1, 0, false, nil)
	if bodies(es)[0] != "b" {
		t.Fatal(bodies(es))
	}
	q.Requeue(es)
	es = q.Pull(nil, 3, 0, false, nil)
	if got := bodies(es); got[0] != "b" || got[1] != "c" || got[2] != "a" || !es[0].Redelivered {
		t.Fatal(got)
	}
	if _, u, _ := q.Counts(); u != 3 {
		t.Fatal("unacked", u)
	}
	q.Ack(es)
	if _, u, _ := q.Counts(); u != 0 {
		t.Fatal("unacked", u)
	}
}

func TestSingleActiveAndWake(t *testing.T) {
	cfg := DefaultConfig("q")
	cfg.SingleActive = true
	q := New(cfg)
	woke := map[string]int{}
	c1 := &Consumer{Tag: "1"}
	c1.Wake = func() { woke["1"]++ }
	c2 := &Consumer{Tag: "2"}
	c2.Wake = func() { woke["2"]++ }
	q.Subscribe(c1, false)
	q.Subscribe(c2, false)
	q.Publish(msg("a"))
	if woke["1"] != 1 || woke["2"] != 0 {
		t.Fatal(woke)
	}
	if es := q.Pull(c2, 10, 0, false, nil); len(es) != 0 {
		t.Fatal("inactive consumer pulled")
	}
	q.Unsubscribe(c1)
	if woke["2"] != 1 {
		t.Fatal("failover did not wake", woke)
	}
	if es := q.Pull(c2, 10, 0, false, nil); len(es) != 1 {
		t.Fatal("active consumer got nothing")
	}
}

func TestDeliveryLimit(t *testing.T) {
	cfg := DefaultConfig("q")
	cfg.DeliveryLimit = 1
	var dead int
	cfg.DeadLetter = func(q *Queue, es []Entry, r Reason) { dead += len(es) }
	q := New(cfg)
	q.Publish(msg("a"))
	q.Requeue(q.Pull(nil, 1, 0, false, nil))
	q.Requeue(q.Pull(nil, 1, 0, false, nil))
	if dead != 1 {
		t.Fatal("dead", dead)
	}
}

func BenchmarkPublishPull(b *testing.B) {
	q := New(DefaultConfig("q"))
	m := msg("0123456789abcdef")
	buf := make([]Entry, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		q.Publish(m)
		buf = q.Pull(nil, 1, 0, true, buf[:0])
	}
}
