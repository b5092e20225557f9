package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"quartet/segment"
)

type doneWait struct {
	wg   sync.WaitGroup
	base int64
	err  error
}

func (d *doneWait) AppendDone(base int64, err error) { d.base, d.err = base, err; d.wg.Done() }

func openTest(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := Open(Config{DataDir: dir, IO: segment.IOSync}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func batch(values ...string) []byte {
	var b segment.BatchBuilder
	b.Reset()
	for _, v := range values {
		b.Add(0, nil, []byte(v), nil)
	}
	return append([]byte(nil), b.Bytes()...)
}

func TestTopicsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir)
	tp, err := e.CreateTopic("orders", 3, TopicConfig{RetentionMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTopic("orders", 1, TopicConfig{}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := e.CreateTopic("bad/name", 1, TopicConfig{}); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("bad name: %v", err)
	}
	var d doneWait
	d.wg.Add(1)
	if err := tp.Partition(1).Append(batch("a", "b"), &d); err != nil {
		t.Fatal(err)
	}
	d.wg.Wait()
	if d.err != nil || d.base != 0 {
		t.Fatalf("append: %d %v", d.base, d.err)
	}
	if err := e.CreatePartitions("orders", 5); err != nil {
		t.Fatal(err)
	}
	e.CreateTopic("gone", 1, TopicConfig{})
	if err := e.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	e.Meta().Put("offsets", "g1/orders/1", []byte("2"), func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	id := tp.ID
	e.Close()

	e = openTest(t, dir)
	defer e.Close()
	tp, ok := e.Topic("orders")
	if !ok || len(tp.Partitions()) != 5 || tp.ID != id || tp.Config().RetentionMs != 1000 {
		t.Fatalf("after restart: %v %+v", ok, tp)
	}
	if _, ok := e.Topic("gone"); ok {
		t.Fatal("deleted topic came back")
	}
	if hw := tp.Partition(1).HighWatermark(); hw != 2 {
		t.Fatalf("hw %d", hw)
	}
	if v, ok := e.Meta().Get("offsets", "g1/orders/1"); !ok || string(v) != "2" {
		t.Fatalf("meta after restart: %q %v", v, ok)
	}
}

func TestWaitWokenByAppend(t *testing.T) {
	e := openTest(t, t.TempDir())
	defer e.Close()
	tp, _ := e.CreateTopic("t", 1, TopicConfig{})
	p := tp.Partition(0)
	woke := make(chan struct{})
	p.Wait(0, func() { close(woke) })
	cancelled := p.Wait(0, func() { t.Error("cancelled waiter fired") })
	if !cancelled() {
		t.Fatal("cancel reported nothing removed")
	}
	select {
	case <-woke:
		t.Fatal("woke before any append")
	case <-time.After(20 * time.Millisecond):
	}
	var d doneWait
	d.wg.Add(1)
	p.Append(batch("x"), &d)
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken by append")
	}
	fired := false
	p.Wait(0, func() { fired = true })
	if !fired {
		t.Fatal("waiter past the high watermark not fired at once")
	}
}

func TestMetaCompactsOnOpen(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir)
	var wg sync.WaitGroup
	for i := 0; i < 3000; i++ {
		wg.Add(1)
		e.Meta().Put("k", fmt.Sprintf("key%d", i%10), []byte(fmt.Sprint(i)), func(error) { wg.Done() })
	}
	wg.Wait()
	e.Close()
	e = openTest(t, dir)
	if e.Meta().records != 10 {
		t.Fatalf("records after compaction %d, want 10", e.Meta().records)
	}
	e.Close()
	e = openTest(t, dir)
	defer e.Close()
	n := 0
	e.Meta().Range("k", func(key string, v []byte) bool {
		n++
		if key == "key3" && string(v) != "2993" {
			t.Fatalf("key3 = %s", v)
		}
		return true
	})
	if n != 10 {
		t.Fatalf("%d keys", n)
	}
}

// TestMetaReplaysPreallocatedTail copies the data directory while the engine
// is open, as a crash would leave it: the metadata log's active segment ends
// in preallocated zeros, which replay must skip without losing a record.
func TestMetaReplaysPreallocatedTail(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir)
	defer e.Close()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		e.Meta().Put("k", fmt.Sprintf("key%d", i), []byte(fmt.Sprint(i)), func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	crash := t.TempDir()
	if err := os.CopyFS(crash, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(crash, "meta", "*.log"))
	if len(segs) != 1 {
		t.Fatalf("meta segments %v", segs)
	}
	if st, err := os.Stat(segs[0]); err != nil || st.Size() < internalPreallocBytesDefault {
		t.Fatalf("meta segment not preallocated: %v %v", st.Size(), err)
	}
	c := openTest(t, crash)
	defer c.Close()
	for i := 0; i < 100; i++ {
		if v, ok := c.Meta().Get("k", fmt.Sprintf("key%d", i)); !ok || string(v) != fmt.Sprint(i) {
			t.Fatalf("key%d = %q %v", i, v, ok)
		}
	}
}

// BenchmarkMetaPut is one Put at a time, each waiting for its completion
// (fdatasync'd under flush=sync): the latency a group-offset commit or an
// MQTT session record pays, with and without preallocation.
func BenchmarkMetaPut(b *testing.B) {
	for _, pre := range []struct {
		name  string
		bytes int64
	}{{"prealloc", 0}, {"noprealloc", -1}} {
		b.Run(pre.name, func(b *testing.B) {
			e, err := Open(Config{DataDir: b.TempDir(), IO: segment.IOSync, InternalPreallocBytes: pre.bytes}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			v := make([]byte, 100)
			done := make(chan error, 1)
			b.ReportAllocs()
			b.SetBytes(int64(len(v)))
			for i := 0; b.Loop(); i++ {
				e.Meta().Put("k", fmt.Sprintf("key%d", i%1000), v, func(err error) { done <- err })
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
