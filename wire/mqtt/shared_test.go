package mqtt

import (
	"fmt"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// sharedPair starts a broker with cfg, member A of $share/g/sh/# (raw: it
// never acknowledges) and member B (paho, acknowledging), publishes n QoS 1
// messages with paho and returns A, the broker and a collector of what B
// got.
func sharedPair(t *testing.T, dir string, cfg Config, aClean bool, n int) (a *raw, b *broker, collect func(want int) map[string]int) {
	b = startBroker(t, dir, cfg)
	a = dialRaw(t, b.addr, Version311)
	a.connect("share-a", aClean, nil)
	a.subscribe(1, "$share/g/sh/#", 1)
	got := make(chan string, 1000)
	bc := connect3(t, b.addr, "share-b", true, nil, nil)
	wait(t, bc.Subscribe("$share/g/sh/#", 1, func(_ paho3.Client, m paho3.Message) { got <- string(m.Payload()) }))
	pub := connect3(t, b.addr, "share-pub", true, nil, nil)
	for i := range n {
		wait(t, pub.Publish("sh/x", 1, false, fmt.Sprint("m", i)))
	}
	seen := map[string]int{}
	collect = func(want int) map[string]int {
		t.Helper()
		for len(seen) < want {
			select {
			case p := <-got:
				seen[p]++
			case <-time.After(10 * time.Second):
				t.Fatalf("member B got %d distinct messages, want %d (handovers %d, dropped %d)",
					len(seen), want, b.srv.stats.SharedHandovers.Load(), b.srv.stats.Dropped.Load())
			}
		}
		return seen
	}
	return a, b, collect
}

// A shared-subscription member whose queue is full hands the message to
// another member instead of dropping it: A (window 2, queue bound 16)
// holds 18 and member B gets the other 42 of 60; nothing is dropped.
func TestSharedMemberQueueFullHandsOver(t *testing.T) {
	const n = 60
	_, b, collect := sharedPair(t, t.TempDir(), Config{InflightMessagesMax: 2, QueueMessagesMax: 16}, true, n)
	collect(n - 18)
	if d := b.srv.stats.Dropped.Load(); d != 0 {
		t.Fatalf("%d messages dropped", d)
	}
	if h := b.srv.stats.SharedHandovers.Load(); h == 0 {
		t.Fatal("no handovers")
	}
}

// A shared-subscription member that disconnects with QoS 1 messages sent
// and unacknowledged, or still queued, hands them to another member: B
// ends up with all 40 although A took about half and acknowledged none.
func TestSharedMemberDisconnectHandsOver(t *testing.T) {
	const n = 40
	a, b, collect := sharedPair(t, t.TempDir(), Config{InflightMessagesMax: 2}, true, n)
	a.c.Close() // A goes away without acknowledging
	seen := collect(n)
	for i := range n {
		if seen[fmt.Sprint("m", i)] == 0 {
			t.Fatalf("m%d never reached member B", i)
		}
	}
	if d := b.srv.stats.Dropped.Load(); d != 0 {
		t.Fatalf("%d messages dropped", d)
	}
	if h := b.srv.stats.SharedHandovers.Load(); h < 3 {
		t.Fatalf("%d handovers, want A's share (at least its window 2 and a queued one)", h)
	}
}

// The same for a persistent member: what it handed over is no longer its
// own, so after a broker restart it does not get those messages again.
func TestSharedPersistentMemberDisconnectHandsOver(t *testing.T) {
	const n = 40
	dir := t.TempDir()
	a, b, collect := sharedPair(t, dir, Config{InflightMessagesMax: 2}, false, n)
	a.c.Close()
	collect(n)
	waitOffline(t, b, "share-a")
	b.stop()
	b2 := startBroker(t, dir, Config{InflightMessagesMax: 2})
	a2 := dialSub(t, b2.addr, "share-a", true)
	a2.quiet(300 * time.Millisecond)
}
