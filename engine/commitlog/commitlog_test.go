package commitlog

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"quartet/engine"
	"quartet/segment"
)

func openAll(t *testing.T, dir string) (*engine.Engine, *Store) {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOSync}, lg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(e, Config{}, lg)
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	return e, s
}

func closeAll(t *testing.T, e *engine.Engine, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

type result struct{ q, c int64 }

// appendWait appends n messages one per call to topic/queue and returns the
// offsets the completions reported.
func appendWait(t *testing.T, s *Store, topic string, queue int, vals ...string) []result {
	t.Helper()
	ch := make(chan result, len(vals))
	errs := make(chan error, len(vals))
	for _, v := range vals {
		err := s.Append(topic, queue, []Message{{Value: []byte(v)}}, CompleterFunc(func(q, c int64, err error) {
			if err != nil {
				errs <- err
				return
			}
			ch <- result{q, c}
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []result
	for range vals {
		select {
		case r := <-ch:
			out = append(out, r)
		case err := <-errs:
			t.Fatal(err)
		}
	}
	return out
}

// values reads a queue whole: queue offset → value.
func values(t *testing.T, s *Store, topic string, queue int) []string {
	t.Helper()
	q := s.Queue(topic, queue)
	var out []string
	var buf []byte
	next, err := q.Scan(q.Min(), 1<<20, &buf, func(qoff, coff int64, r *segment.Record) error {
		if qoff != q.Min()+int64(len(out)) {
			t.Fatalf("queue offset %d after %d values", qoff, len(out))
		}
		out = append(out, string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != q.Max() {
		t.Fatalf("scan ended at %d, max %d", next, q.Max())
	}
	return out
}

func TestInterleavedQueues(t *testing.T) {
	dir := t.TempDir()
	e, s := openAll(t, dir)
	if _, err := s.CreateTopic("t", 3); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		r := appendWait(t, s, "t", i%3, fmt.Sprintf("m%d", i))
		if r[0].q != int64(i/3) || r[0].c != int64(i) {
			t.Fatalf("message %d: queue offset %d commit offset %d", i, r[0].q, r[0].c)
		}
	}
	for q := 0; q < 3; q++ {
		vs := values(t, s, "t", q)
		if len(vs) != 10 || vs[0] != fmt.Sprintf("m%d", q) || vs[9] != fmt.Sprintf("m%d", 27+q) {
			t.Fatalf("queue %d: %v", q, vs)
		}
	}
	// A scan stopped by its callback resumes at the message it stopped on.
	var buf []byte
	n := 0
	next, err := s.Queue("t", 1).Scan(0, 100, &buf, func(_, _ int64, _ *segment.Record) error {
		if n == 4 {
			return ErrStop
		}
		n++
		return nil
	})
	if err != nil || next != 4 {
		t.Fatalf("stopped scan: next %d err %v", next, err)
	}
	fired := make(chan struct{})
	s.Queue("t", 2).Wait(10, func() { close(fired) })
	appendWait(t, s, "t", 0, "other")
	select {
	case <-fired:
		t.Fatal("waiter fired for another queue's message")
	default:
	}
	appendWait(t, s, "t", 2, "mine")
	<-fired
	closeAll(t, e, s)
}

func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	e, s := openAll(t, dir)
	s.CreateTopic("a", 2)
	s.CreateTopic("b", 1)
	for i := 0; i < 20; i++ {
		appendWait(t, s, "a", i%2, fmt.Sprintf("a%d", i))
		appendWait(t, s, "b", 0, fmt.Sprintf("b%d", i))
	}
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	// Past the checkpoint: these are found again by scanning the log.
	for i := 20; i < 25; i++ {
		appendWait(t, s, "a", i%2, fmt.Sprintf("a%d", i))
		appendWait(t, s, "b", 0, fmt.Sprintf("b%d", i))
	}
	want := map[string][]string{}
	for _, k := range []struct {
		t string
		q int
	}{{"a", 0}, {"a", 1}, {"b", 0}} {
		want[fmt.Sprint(k)] = values(t, s, k.t, k.q)
	}
	check := func(s *Store) {
		t.Helper()
		for _, k := range []struct {
			t string
			q int
		}{{"a", 0}, {"a", 1}, {"b", 0}} {
			got := values(t, s, k.t, k.q)
			if fmt.Sprint(got) != fmt.Sprint(want[fmt.Sprint(k)]) {
				t.Fatalf("%v after restart: %v, want %v", k, got, want[fmt.Sprint(k)])
			}
		}
		if tp, ok := s.Topic("a"); !ok || tp.Queues() != 2 {
			t.Fatal("topic a lost")
		}
	}
	// Stop without the final checkpoint (as a crash would).
	s.closed.Store(true)
	close(s.done)
	s.wg.Wait()
	e.Close()
	e, s = openAll(t, dir)
	if st := s.Stats(); st.End != 50 {
		t.Fatalf("end %d", st.End)
	}
	check(s)
	r := appendWait(t, s, "b", 0, "b25")
	if r[0].q != 25 || r[0].c != 50 {
		t.Fatalf("after recovery: queue offset %d commit offset %d", r[0].q, r[0].c)
	}
	want["{b 0}"] = append(want["{b 0}"], "b25")
	closeAll(t, e, s)

	// Clean restart from the final checkpoint.
	e, s = openAll(t, dir)
	check(s)
	closeAll(t, e, s)

	// A torn queue file (shorter than the checkpoint says): full rebuild.
	f := filepath.Join(dir, "internal", defaultName+".cq", queueFileName("a", 1))
	if err := os.Truncate(f, 8); err != nil {
		t.Fatal(err)
	}
	e, s = openAll(t, dir)
	check(s)
	closeAll(t, e, s)

	// A checkpoint past the log's end (the log lost its tail): entries past
	// the end are dropped.
	ck, err := decodeCheckpoint(mustRead(t, filepath.Join(dir, "internal", defaultName+".cq", checkpointName)))
	if err != nil {
		t.Fatal(err)
	}
	ck.end += 100
	for i := range ck.queues {
		ck.queues[i].entries++
	}
	cqDir := filepath.Join(dir, "internal", defaultName+".cq")
	for _, q := range ck.queues {
		fh, err := os.OpenFile(filepath.Join(cqDir, queueFileName(q.topic, q.id)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.Write([]byte{0, 0, 0, 0, 0, 0, 1, 0}) // commit offset 256, past the end
		fh.Close()
	}
	os.WriteFile(filepath.Join(cqDir, checkpointName), encodeCheckpoint(ck), 0o644)
	e, s = openAll(t, dir)
	check(s)
	closeAll(t, e, s)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyAndCheckpointCodec(t *testing.T) {
	k := appendKey(nil, "%RETRY%g", 7)
	if tp, id, ok := parseKey(k); !ok || tp != "%RETRY%g" || id != 7 {
		t.Fatalf("parseKey: %q %d %v", tp, id, ok)
	}
	for _, bad := range []string{"", "x", "\x001", "t\x00", "t\x00-1"} {
		if _, _, ok := parseKey([]byte(bad)); ok {
			t.Fatalf("parseKey accepted %q", bad)
		}
	}
	ck := &ckFile{end: 42, queues: []ckQueue{{"a", 0, 3}, {"b|c", 9, 0}}}
	got, err := decodeCheckpoint(encodeCheckpoint(ck))
	if err != nil || fmt.Sprint(*got) != fmt.Sprint(*ck) {
		t.Fatalf("checkpoint round trip: %v %v", got, err)
	}
	b := encodeCheckpoint(ck)
	b[5] ^= 1
	if _, err := decodeCheckpoint(b); err == nil {
		t.Fatal("corrupt checkpoint accepted")
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(&ckFile{end: 1, queues: []ckQueue{{"a", 0, 1}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ck, err := decodeCheckpoint(b)
		if err == nil {
			if _, err := decodeCheckpoint(encodeCheckpoint(ck)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Old entries leave memory once persisted and are read from the queue file.
func TestEntriesBeyondMemory(t *testing.T) {
	old := memEntriesMax
	memEntriesMax = 4
	defer func() { memEntriesMax = old }()
	dir := t.TempDir()
	e, s := openAll(t, dir)
	s.CreateTopic("t", 2)
	var want []string
	var commits []int64
	for i := 0; i < 20; i++ {
		r := appendWait(t, s, "t", i%2, fmt.Sprintf("m%d", i))
		if i%2 == 1 {
			want = append(want, fmt.Sprintf("m%d", i))
			commits = append(commits, r[0].c)
		}
	}
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	appendWait(t, s, "t", 1, "m21")
	want = append(want, "m21")
	commits = append(commits, 20)
	q := s.Queue("t", 1)
	q.mu.Lock()
	memBase, inMem := q.memBase, len(q.ents)
	q.mu.Unlock()
	if memBase != 6 || inMem != 5 {
		t.Fatalf("memBase %d, %d in memory", memBase, inMem)
	}
	check := func(s *Store) {
		t.Helper()
		q := s.Queue("t", 1)
		if got := values(t, s, "t", 1); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("values %v, want %v", got, want)
		}
		for i, c := range commits {
			if got, ok := q.CommitOffset(int64(i)); !ok || got != c {
				t.Fatalf("CommitOffset(%d) = %d %v, want %d", i, got, ok, c)
			}
			if got, ok := q.QueueOffset(c); !ok || got != int64(i) {
				t.Fatalf("QueueOffset(%d) = %d %v, want %d", c, got, ok, i)
			}
			if got := q.SearchCommit(c); got != int64(i) {
				t.Fatalf("SearchCommit(%d) = %d, want %d", c, got, i)
			}
			if c%2 == 1 { // c-1 is queue 0's
				if got := q.SearchCommit(c - 1); got != int64(i) {
					t.Fatalf("SearchCommit(%d) = %d, want %d", c-1, got, i)
				}
			}
		}
		if _, ok := q.QueueOffset(2); ok {
			t.Fatal("QueueOffset found another queue's record")
		}
		// A scan starting in the file and ending in memory.
		var buf []byte
		var got []string
		next, err := q.Scan(3, 5, &buf, func(_, _ int64, r *segment.Record) error {
			got = append(got, string(r.Value))
			return nil
		})
		if err != nil || next != 8 || fmt.Sprint(got) != fmt.Sprint(want[3:8]) {
			t.Fatalf("scan 3..8: %v next %d err %v", got, next, err)
		}
	}
	check(s)
	closeAll(t, e, s)
	e, s = openAll(t, dir)
	check(s)
	if st := s.Stats(); st.Entries > 8 {
		t.Fatalf("%d entries in memory after a restart", st.Entries)
	}
	closeAll(t, e, s)
}

// Retention deletes whole commit-log segments; every queue's start follows.
func TestRetentionMovesQueueStart(t *testing.T) {
	old := memEntriesMax
	memEntriesMax = 4
	defer func() { memEntriesMax = old }()
	dir := t.TempDir()
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOSync, SegmentBytes: 2048}, lg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(e, Config{RetentionBytes: 4096, SegmentBytes: 2048}, lg)
	if err != nil {
		t.Fatal(err)
	}
	s.CreateTopic("t", 2)
	body := string(make([]byte, 300))
	for i := 0; i < 40; i++ {
		appendWait(t, s, "t", i%2, body)
	}
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n := s.log.Retain(time.Now()); n == 0 {
		t.Fatal("retention deleted nothing")
	}
	s.trim()
	start := s.log.StartOffset()
	for id := 0; id < 2; id++ {
		q := s.Queue("t", id)
		min := q.Min()
		c, ok := q.CommitOffset(min)
		if min == 0 || !ok || c < start {
			t.Fatalf("queue %d: min %d commit %d %v, log start %d", id, min, c, ok, start)
		}
		if prev, ok := q.CommitOffset(min - 1); ok {
			t.Fatalf("queue %d: offset below min still mapped (%d)", id, prev)
		}
		if n := len(values(t, s, "t", id)); int64(n) != q.Max()-min {
			t.Fatalf("queue %d: %d readable, want %d", id, n, q.Max()-min)
		}
	}
	closeAll(t, e, s)
}
