package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"quartet/internal/uring"
)

// Benchmarks of the writer alone: each producer submits 16 KiB writes (what a
// 16 × 1 KiB-record batch weighs) appended to one file, positions assigned
// under a mutex in submission order (as the Log does), with up to `inflight`
// requests outstanding per producer. Metrics:
//
//	appends/fsync  completed Sync requests per fdatasync (group commit)
//	p50-µs p99-µs  append latency, Submit → Done
//
// Run (see PERF.md): flock /tmp/bench.lock go test -run '^$' -bench 'Writer' -count 5 ./segment/

const (
	benchRecordBytes  = 1024
	benchBatchRecords = 16
	benchAppendBytes  = benchRecordBytes * benchBatchRecords
)

type benchCase struct {
	mode      IOMode
	sync      bool
	producers int
	inflight  int
	files     int // writer benchmark: producer p appends to file p%files (0: 1)
	prealloc  bool
}

func (c benchCase) name() string {
	flush := "async"
	if c.sync {
		flush = "sync"
	}
	name := fmt.Sprintf("io=%s/flush=%s/producers=%d/inflight=%d", c.mode, flush, c.producers, c.inflight)
	if c.files > 1 {
		name += fmt.Sprintf("/files=%d", c.files)
	}
	if c.prealloc {
		name += "/prealloc"
	}
	return name
}

func benchCases() []benchCase {
	var cs []benchCase
	// io mode innermost: the two writers of a case run back to back, so
	// their ratio is less exposed to load drifting on a shared machine.
	for _, sync := range []bool{true, false} {
		for _, p := range []int{1, 4, 16} {
			for _, inflight := range []int{1, 4, 8} {
				for _, mode := range benchModes {
					cs = append(cs, benchCase{mode: mode, sync: sync, producers: p, inflight: inflight})
				}
				if sync { // Config.PreallocBytes, beside the same case without it
					cs = append(cs, benchCase{mode: IOSync, sync: sync, producers: p, inflight: inflight, prealloc: true})
				}
			}
		}
	}
	return cs
}

// benchModes: io=uring-inline is the io_uring writer with pwritev writes and
// ring fsyncs (see ioUringInline), measured against the other two.
var benchModes = []IOMode{IOUring, ioUringInline, IOSync}

// BenchmarkWriterFiles: 16 producers each appending to its own file (16
// partitions): per round the pwritev writer runs one fdatasync after another,
// the io_uring writers submit them all at once.
func BenchmarkWriterFiles(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, mode := range benchModes {
			c := benchCase{mode: mode, sync: sync, producers: 16, inflight: 1, files: 16}
			b.Run(c.name(), func(b *testing.B) {
				if mode != IOSync {
					if err := uring.Available(); err != nil {
						b.Skip(err)
					}
				}
				benchWriter(b, c)
			})
		}
	}
}

// latencies collects per-append latencies (ns). One per producer, appended
// to only on the writer goroutine; read after the run.
type latencies struct {
	ns []int64
}

func (l *latencies) add(d time.Duration) {
	if len(l.ns) < cap(l.ns) {
		l.ns = append(l.ns, int64(d))
	}
}

func reportLatency(b *testing.B, ls []*latencies) {
	var all []int64
	for _, l := range ls {
		all = append(all, l.ns...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		i := int(p * float64(len(all)-1))
		return float64(all[i]) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

func reportWriterStats(b *testing.B, before, after WriterStats) {
	if fs := after.Fsyncs - before.Fsyncs; fs > 0 {
		b.ReportMetric(float64(after.SyncedReqs-before.SyncedReqs)/float64(fs), "appends/fsync")
		b.ReportMetric(float64(after.FsyncTimeTotal-before.FsyncTimeTotal)/float64(fs)/1e3, "fsync-µs")
	}
	if w := after.Writes - before.Writes; w > 0 {
		b.ReportMetric(float64(after.Requests-before.Requests)/float64(w), "appends/write")
	}
}

type benchSlot struct {
	req Request
	t0  time.Time
	lat *latencies
	ret chan *benchSlot
}

func BenchmarkWriter(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name(), func(b *testing.B) {
			if c.mode != IOSync {
				if err := uring.Available(); err != nil {
					b.Skip(err)
				}
			}
			benchWriter(b, c)
		})
	}
}

func benchWriter(b *testing.B, c benchCase) {
	w, err := NewWriter(c.mode, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	nfiles := max(c.files, 1)
	type file struct {
		fd  int
		mu  sync.Mutex // assigns positions in submission order, like the Log
		end int64
	}
	files := make([]*file, nfiles)
	dir := b.TempDir()
	for i := range files {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("seg%d", i)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		files[i] = &file{fd: int(f.Fd())}
	}
	data := make([]byte, benchAppendBytes)
	for i := range data {
		data[i] = byte(i)
	}

	per := (b.N + c.producers - 1) / c.producers
	lats := make([]*latencies, c.producers)
	slots := make([]chan *benchSlot, c.producers)
	for p := range c.producers {
		lats[p] = &latencies{ns: make([]int64, 0, per)}
		slots[p] = make(chan *benchSlot, c.inflight)
		for range c.inflight {
			s := &benchSlot{lat: lats[p], ret: slots[p]}
			s.req = Request{FD: files[p%nfiles].fd, Data: data, Sync: c.sync, Done: func(r *Request, err error) {
				if err != nil {
					panic(err)
				}
				s.lat.add(time.Since(s.t0))
				s.ret <- s
			}}
			slots[p] <- s
		}
	}
	b.SetBytes(benchAppendBytes)
	b.ReportAllocs()
	before := w.Stats()
	b.ResetTimer()
	var wg sync.WaitGroup
	for p := range c.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := per
			if rest := b.N - p*per; rest < n {
				n = max(rest, 0)
			}
			f := files[p%nfiles]
			for range n {
				s := <-slots[p]
				s.t0 = time.Now()
				f.mu.Lock()
				s.req.Pos = f.end
				f.end += benchAppendBytes
				w.Submit(&s.req)
				f.mu.Unlock()
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
