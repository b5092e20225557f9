package mqtt

import (
	"fmt"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"quartet/netpoll"
)

// loopConn is a fakeConn whose Execute queues fn for a later run, like a
// connection on another event loop, and which records read pauses.
type loopConn struct {
	fakeConn
	queued []func(netpoll.Conn)
	paused bool
}

func (l *loopConn) Execute(fn func(netpoll.Conn)) error { l.queued = append(l.queued, fn); return nil }
func (l *loopConn) PauseReads()                         { l.paused = true }
func (l *loopConn) ResumeReads()                        { l.paused = false }

// run runs what other goroutines handed to l's loop.
func (l *loopConn) run() {
	for len(l.queued) > 0 {
		fn := l.queued[0]
		l.queued = l.queued[1:]
		fn(l)
	}
}

// A subscriber that has been idle (caught up, nothing to send) for longer
// than the stall timeout is not stalled: a burst to it must pause the
// publisher at the queue's high-water mark rather than overflow its queue
// and drop. (Before: the stall clock ran from the last delivery, so an idle
// subscriber counted as stalled and lost the burst past QueueMessagesMax.)
func TestIdleSubscriberIsNotStalled(t *testing.T) {
	srv, err := New(nil, Config{SysInterval: -1, InflightMessagesMax: 16, QueueMessagesMax: 500,
		QueueHighMessages: 128, StallTimeout: time.Second}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h := srv.Protocol().Handler
	open := func(id string) *loopConn {
		lc := &loopConn{}
		lc.ctx = h.OnOpen(lc)
		if err := h.OnFrame(lc, AppendConnect(nil, &Connect{Version: Version311, CleanStart: true, ClientID: []byte(id)})); err != nil {
			t.Fatal(err)
		}
		lc.run()
		return lc
	}
	sub := open("sub")
	if err := h.OnFrame(sub, AppendSubscribe(nil, Version311, &Subscribe{PacketID: 1, Subs: []Subscription{{Filter: []byte("fc/#"), QoS: 1}}})); err != nil {
		t.Fatal(err)
	}
	pub := open("pub")
	ss := sub.ctx.(*conn).sess
	// the subscriber has taken everything and been idle for 10 stall timeouts
	ss.Lock()
	ss.Progress = srv.now.Load() - int64(10*time.Second)
	ss.Unlock()

	// the publisher's burst arrives in one read; the subscriber's loop has
	// not run yet
	sent := 0
	for i := 0; i < 1000 && !pub.paused; i++ {
		f := AppendPublish(nil, Version311, &Publish{QoS: 1, PacketID: uint16(i + 1), Topic: []byte("fc/x"), Payload: []byte("m")})
		if err := h.OnFrame(pub, f); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if !pub.paused {
		t.Fatalf("publisher not paused after %d publishes to an idle subscriber", sent)
	}
	ss.Lock()
	q := ss.QueueLen()
	ss.Unlock()
	if q != 128 || sent != 128 {
		t.Fatalf("paused after %d publishes with %d queued, want 128", sent, q)
	}
	if d := srv.Stats().Dropped.Load(); d != 0 {
		t.Fatalf("%d dropped", d)
	}
	// the subscriber's loop runs: it is sent its window; as it acknowledges,
	// the queue drains to half the high-water mark and the publisher resumes
	sub.run()
	for id := 1; pub.paused && id <= 128; id++ {
		if err := h.OnFrame(sub, AppendAck(nil, Version311, PUBACK, uint16(id), 0, nil)); err != nil {
			t.Fatal(err)
		}
		pub.run()
	}
	if pub.paused {
		t.Fatal("publisher still paused after the subscriber drained its queue")
	}
	// woken, the publisher may go past the high-water mark by its credit,
	// then pauses again
	for i := 0; i < 1000 && !pub.paused; i++ {
		f := AppendPublish(nil, Version311, &Publish{QoS: 1, PacketID: uint16(i + 1), Topic: []byte("fc/x"), Payload: []byte("m")})
		if err := h.OnFrame(pub, f); err != nil {
			t.Fatal(err)
		}
	}
	ss.Lock()
	q = ss.QueueLen()
	ss.Unlock()
	if want := 128 + int(srv.publishCredit()); !pub.paused || q != want {
		t.Fatalf("paused %v with %d queued, want paused with %d", pub.paused, q, want)
	}
}

// With a queue bound below the default high-water mark (QueueMessagesMax
// 16), a slow but live QoS 1 subscriber still loses nothing: the publisher
// pauses at half the bound instead of the queue overflowing. (Before the
// high-water mark was clamped, the queue filled to 16 and dropped.)
func TestSmallQueueBoundIsLossless(t *testing.T) {
	const n = 200
	b := startBroker(t, t.TempDir(), Config{InflightMessagesMax: 2, QueueMessagesMax: 16})
	got := make(chan string, n)
	sub := connect3(t, b.addr, "small-q-sub", true, nil, nil)
	wait(t, sub.Subscribe("smallq/#", 1, func(_ paho3.Client, m paho3.Message) {
		time.Sleep(2 * time.Millisecond) // slow, but well inside the stall timeout
		got <- string(m.Payload())
	}))
	pub := connect3(t, b.addr, "small-q-pub", true, nil, nil)
	toks := make([]paho3.Token, n)
	for i := range n {
		toks[i] = pub.Publish("smallq/x", 1, false, fmt.Sprint("m", i))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case p := <-got:
			seen[p] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber got %d of %d, dropped %d", len(seen), n, b.srv.stats.Dropped.Load())
		}
	}
	if d := b.srv.stats.Dropped.Load(); d != 0 {
		t.Fatalf("%d dropped", d)
	}
}
