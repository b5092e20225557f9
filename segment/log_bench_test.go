package segment

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"quartet/internal/uring"
)

// BenchmarkLogAppend is the append benchmark: RecordBatch v2 batches of
// 16 × 1 KiB records (~16.6 KiB) appended to one Log by 1, 4 and 16 concurrent
// producers, io_uring vs pwritev writer, flush=sync vs async. Each producer
// keeps up to `inflight` appends outstanding (1: closed loop; 4: pipelined,
// as Kafka clients do with max.in.flight). One op = one batch append.
//
//	appends/fsync  batch appends completed per fdatasync (records/fsync = 16×)
//	p50-µs p99-µs  Append → AppendDone latency
//
// flush=async runs with the engine's background fdatasync every second, off
// the writer thread, as the appliance does.
// Run (see PERF.md):
//
//	flock /tmp/bench.lock go test -run '^$' -bench 'LogAppend' -count 5 ./segment/
func BenchmarkLogAppend(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name(), func(b *testing.B) {
			if c.mode != IOSync {
				if err := uring.Available(); err != nil {
					b.Skip(err)
				}
			}
			benchLogAppend(b, c)
		})
	}
}

// preallocBench is the PreallocBytes of the /prealloc cases.
const preallocBench = 4 << 20

type logBenchSlot struct {
	t0  time.Time
	lat *latencies
	ret chan *logBenchSlot
}

func (s *logBenchSlot) AppendDone(base int64, err error) {
	if err != nil {
		panic(err)
	}
	s.lat.add(time.Since(s.t0))
	s.ret <- s
}

func benchBatch() []byte {
	var bb BatchBuilder
	bb.Reset()
	value := make([]byte, benchRecordBytes)
	for i := range value {
		value[i] = byte(i * 7)
	}
	for i := range benchBatchRecords {
		bb.Add(time.Now().UnixMilli(), fmt.Appendf(nil, "key-%02d", i), value, nil)
	}
	return append([]byte(nil), bb.Bytes()...)
}

func benchLogAppend(b *testing.B, c benchCase) {
	w, err := NewWriter(c.mode, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	flush := FlushAsync
	if c.sync {
		flush = FlushSync
	}
	cfg := Config{Flush: flush}
	if c.prealloc {
		cfg.PreallocBytes = preallocBench
	}
	l, err := Open(b.TempDir(), cfg, w, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchBatch()

	per := (b.N + c.producers - 1) / c.producers
	lats := make([]*latencies, c.producers)
	slots := make([]chan *logBenchSlot, c.producers)
	for p := range c.producers {
		lats[p] = &latencies{ns: make([]int64, 0, per)}
		slots[p] = make(chan *logBenchSlot, c.inflight)
		for range c.inflight {
			slots[p] <- &logBenchSlot{lat: lats[p], ret: slots[p]}
		}
	}
	// Warm the Log's buffer pools.
	for range 4 * c.producers * c.inflight {
		s := <-slots[0]
		s.t0 = time.Now()
		if err := l.Append(batch, s); err != nil {
			b.Fatal(err)
		}
	}
	for range c.inflight {
		<-slots[0]
	}
	for range c.inflight {
		slots[0] <- &logBenchSlot{lat: lats[0], ret: slots[0]}
	}
	lats[0].ns = lats[0].ns[:0]

	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	before := w.Stats()
	b.ResetTimer()
	if !c.sync { // as the engine does under flush=async (FlushInterval 1 s)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					l.Flush()
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for p := range c.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := per
			if rest := b.N - p*per; rest < n {
				n = max(rest, 0)
			}
			for range n {
				s := <-slots[p]
				s.t0 = time.Now()
				if err := l.Append(batch, s); err != nil {
					panic(err)
				}
			}
			for range c.inflight {
				<-slots[p]
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportWriterStats(b, before, w.Stats())
	reportLatency(b, lats)
}
