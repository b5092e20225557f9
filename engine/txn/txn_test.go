package txn

import (
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"quartet/engine"
	"quartet/engine/commitlog"
	"quartet/segment"
)

func openEngine(t *testing.T, dir string) *engine.Engine {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOSync}, lg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func openAll(t *testing.T, dir string) (*engine.Engine, *commitlog.Store) {
	t.Helper()
	e := openEngine(t, dir)
	cl, err := commitlog.Open(e, commitlog.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e, cl
}

type offs chan int64

func (c offs) Done(_, off int64, err error) {
	if err != nil {
		off = -1
	}
	c <- off
}

type checker struct {
	mu     sync.Mutex
	checks map[int64]int
	live   bool
}

func (c *checker) check(h *Half) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return false
	}
	c.checks[h.Offset]++
	return true
}

func (c *checker) count(off int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks[off]
}

func TestPrepareCommitRollbackCheckRestart(t *testing.T) {
	dir := t.TempDir()
	e, cl := openAll(t, dir)
	if _, err := cl.CreateTopic("dest", 1); err != nil {
		t.Fatal(err)
	}
	dest := cl.Queue("dest", 0)
	ck := &checker{checks: map[int64]int{}, live: true}
	cfg := Config{Topic: "half", CheckInterval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, CheckMax: 3}
	s, err := Open(e, cl, cfg, ck.check, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := make(offs, 4)
	for _, v := range []string{"commit", "rollback", "undecided"} {
		if err := s.Prepare("g", "dest", 0, []byte(v), []segment.Header{{Key: []byte("h"), Value: []byte(v)}}, o); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := <-o, <-o, <-o
	if a != 0 || b != 1 || c != 2 {
		t.Fatal(a, b, c)
	}
	if dest.Max() != 0 {
		t.Fatal("half message visible")
	}
	got := make(chan error, 1)
	if err := s.Commit(a, nil, func(_ int, _ int64, err error) { got <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(b); err == nil {
		t.Fatal("second rollback accepted")
	}
	if dest.Max() != 1 || s.Pending() != 1 {
		t.Fatalf("hw %d pending %d", dest.Max(), s.Pending())
	}
	deadline := time.Now().Add(5 * time.Second)
	for ck.count(c) < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if ck.count(a) != 0 || ck.count(b) != 0 || ck.count(c) < 1 {
		t.Fatalf("checks %v", ck.checks)
	}
	// Restart: the undecided half is pending again with its check count.
	ck.live = false
	s.Close()
	cl.Close()
	e.Close()
	e, cl = openAll(t, dir)
	defer e.Close()
	defer cl.Close()
	ck2 := &checker{checks: map[int64]int{}, live: true}
	s, err = Open(e, cl, cfg, ck2.check, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if h, ok := s.Get(c); !ok || string(h.Value) != "undecided" || h.Topic != "dest" || h.Group != "g" || len(h.Headers) != 1 || h.Checks < 1 {
		t.Fatalf("after restart: %+v %v", h, ok)
	}
	if s.Pending() != 1 {
		t.Fatalf("pending %d", s.Pending())
	}
	// Bounded checks: discarded after CheckMax.
	deadline = time.Now().Add(5 * time.Second)
	for s.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.Pending() != 0 || ck.count(c)+ck2.count(c) > cfg.CheckMax {
		t.Fatalf("pending %d, checks %d+%d", s.Pending(), ck.count(c), ck2.count(c))
	}
	dest = cl.Queue("dest", 0)
	if dest.Max() != 1 {
		t.Fatal("discarded half delivered")
	}
}
