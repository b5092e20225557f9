package mqtt

import (
	"fmt"
	"runtime"
	"testing"

	"quartet/engine/session"
	"quartet/engine/trie"
)

// TestManySessionsAreCheap: 100,000 offline persistent sessions with one
// subscription each cost memory only (no file, goroutine or timer each).
func TestManySessionsAreCheap(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	srv, err := New(nil, Config{SysInterval: -1}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	for i := 0; i < n; i++ {
		ss := session.New(fmt.Sprintf("device-%06d", i), srv.cfg.QueueMessagesMax)
		ss.Num = uint64(i + 1)
		ss.Persistent, ss.ExpirySec = true, 0xFFFFFFFF
		f := fmt.Sprintf("devices/%06d/cmd", i)
		ss.Subs = map[string]session.Subscription{f: {Filter: f, Opts: 1}}
		srv.sessions.Put(ss)
		srv.trie.Subscribe(f, trie.Sub[*session.Session]{S: ss, Opts: 1})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d persistent sessions with one subscription: %.0f bytes each (heap), goroutines %d -> %d",
		n, per, g0, runtime.NumGoroutine())
	if per > 4096 {
		t.Fatalf("%.0f bytes per idle session", per)
	}
	// a message to one of them is queued
	m := session.NewMessage([]byte("devices/004242/cmd"), []byte("x"), nil)
	m.QoS = 1
	if srv.route(m, nil) != 1 {
		t.Fatal("not routed")
	}
	m.Release()
}
