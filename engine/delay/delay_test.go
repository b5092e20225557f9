package delay

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"quartet/engine"
	"quartet/engine/commitlog"
	"quartet/segment"
)

func openEngine(t *testing.T, dir string) *engine.Engine {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOSync}, lg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type done chan error

func (d done) Done(_, _ int64, err error) { d <- err }

func openAll(t *testing.T, dir string) (*engine.Engine, *commitlog.Store) {
	t.Helper()
	e := openEngine(t, dir)
	cl, err := commitlog.Open(e, commitlog.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e, cl
}

func records(t *testing.T, q *commitlog.Queue) []segment.Record {
	t.Helper()
	var out []segment.Record
	var buf []byte
	if _, err := q.Scan(0, 1000, &buf, func(_, _ int64, r *segment.Record) error {
		c := segment.Record{Offset: r.Offset, Value: append([]byte(nil), r.Value...)}
		for _, h := range r.Headers {
			c.Headers = append(c.Headers, segment.Header{Key: append([]byte(nil), h.Key...), Value: append([]byte(nil), h.Value...)})
		}
		out = append(out, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func waitRecords(t *testing.T, q *commitlog.Queue, n int, within time.Duration) []segment.Record {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if rs := records(t, q); len(rs) >= n {
			return rs
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d records after %v", n, within)
	return nil
}

func TestScheduleDeliversOnTimeAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e, cl := openAll(t, dir)
	if _, err := cl.CreateTopic("dest", 2); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Topic: "sched", Levels: []time.Duration{300 * time.Millisecond, 2 * time.Second}}
	s, err := Open(e, cl, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := []segment.Header{{Key: []byte("k"), Value: []byte("v")}}
	d := make(done, 2)
	start := time.Now()
	if err := s.Schedule(1, "dest", 1, []byte("fast"), hs, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Schedule(2, "dest", 1, []byte("slow"), nil, d); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Schedule(19, "dest", 0, nil, nil, d); err == nil {
		t.Fatal("level 19 accepted")
	}
	rs := waitRecords(t, cl.Queue("dest", 1), 1, 5*time.Second)
	if el := time.Since(start); el < 300*time.Millisecond || string(rs[0].Value) != "fast" {
		t.Fatalf("%q after %v", rs[0].Value, el)
	}
	if len(rs[0].Headers) != 1 || string(rs[0].Headers[0].Key) != "k" {
		t.Fatalf("headers %v", rs[0].Headers)
	}
	// Restart before the slow one is due.
	s.Close()
	cl.Close()
	e.Close()
	e, cl = openAll(t, dir)
	defer e.Close()
	defer cl.Close()
	s, err = Open(e, cl, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs = waitRecords(t, cl.Queue("dest", 1), 2, 5*time.Second)
	if el := time.Since(start); el < 2*time.Second || string(rs[1].Value) != "slow" {
		t.Fatalf("%q after %v", rs[1].Value, el)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(records(t, cl.Queue("dest", 1))); n != 2 {
		t.Fatalf("%d records (fast delivered twice?)", n)
	}
}
