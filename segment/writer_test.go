package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"quartet/internal/uring"
)

func writerModes(t *testing.T, fn func(t *testing.T, mode IOMode)) {
	for _, mode := range []IOMode{IOSync, IOUring, ioUringInline} {
		t.Run(string(mode), func(t *testing.T) {
			if mode != IOSync {
				if err := uring.Available(); err != nil {
					t.Skip(err)
				}
			}
			fn(t, mode)
		})
	}
}

func openTemp(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), name), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func startWriter(t *testing.T, mode IOMode, plan *FaultPlan) Writer {
	t.Helper()
	w, err := NewFaultWriter(mode, slog.New(slog.DiscardHandler), plan)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[IOMode]IOMode{ioUringInline: IOUring}[mode]; w.Mode() != mode && w.Mode() != want {
		t.Fatalf("mode %s, want %s", w.Mode(), mode)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// gate holds the writer goroutine inside a Done callback so the test can
// queue an exact round behind it.
type gate struct {
	entered, release chan struct{}
	req              Request
}

func newGate(fd int) *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	g.req = Request{FD: fd, Pos: 1 << 40, Done: func(*Request, error) {
		close(g.entered)
		<-g.release
	}}
	return g
}

// hold submits the gate request and waits until the writer is blocked in it.
func (g *gate) hold(w Writer) {
	w.Submit(&g.req)
	<-g.entered
}

type result struct {
	seq int
	err error
}

// collector records Done calls.
type collector struct {
	mu   sync.Mutex
	got  map[*Request]result
	seq  int
	wg   sync.WaitGroup
	once map[*Request]int
}

func newCollector() *collector {
	return &collector{got: map[*Request]result{}, once: map[*Request]int{}}
}

func (c *collector) req(fd int, pos int64, data []byte, sync bool) *Request {
	c.wg.Add(1)
	return &Request{FD: fd, Pos: pos, Data: data, Sync: sync, Done: c.done}
}

func (c *collector) done(r *Request, err error) {
	c.mu.Lock()
	c.once[r]++
	c.got[r] = result{c.seq, err}
	c.seq++
	c.mu.Unlock()
	c.wg.Done()
}

func (c *collector) check(t *testing.T) {
	t.Helper()
	c.wg.Wait()
	for r, n := range c.once {
		if n != 1 {
			t.Errorf("request fd %d pos %d: Done called %d times", r.FD, r.Pos, n)
		}
	}
}

func fileBytes(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriterContents: many FDs, concurrent producers, random sizes, sync and
// no-sync; every byte lands where it should and completions per FD come in
// submission order.
func TestWriterContents(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		w := startWriter(t, mode, nil)
		const files, perFile = 8, 300
		var wg sync.WaitGroup
		want := make([][]byte, files)
		fds := make([]*os.File, files)
		for i := range files {
			fds[i] = openTemp(t, fmt.Sprintf("f%d", i))
		}
		for i := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), 1))
				var pos int64
				var mu sync.Mutex
				next := 0
				var inner sync.WaitGroup
				var buf bytes.Buffer
				for k := range perFile {
					n := rng.IntN(5000)
					data := make([]byte, n)
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					buf.Write(data)
					inner.Add(1)
					r := &Request{FD: int(fds[i].Fd()), Pos: pos, Data: data, Sync: rng.IntN(3) == 0,
						Done: func(r *Request, err error) {
							mu.Lock()
							if err != nil {
								t.Errorf("file %d req %d: %v", i, k, err)
							}
							if next != k {
								t.Errorf("file %d: completion %d, want %d", i, k, next)
							}
							next++
							mu.Unlock()
							inner.Done()
						}}
					pos += int64(n)
					w.Submit(r)
				}
				inner.Wait()
				want[i] = buf.Bytes()
			}()
		}
		wg.Wait()
		for i := range files {
			if got := fileBytes(t, fds[i]); !bytes.Equal(got, want[i]) {
				t.Errorf("file %d: %d bytes on disk, want %d (contents differ)", i, len(got), len(want[i]))
			}
		}
		st := w.Stats()
		if st.Requests != files*perFile || st.Failures != 0 {
			t.Errorf("stats %+v", st)
		}
		t.Logf("stats %+v", st)
	})
}

// TestWriterRound: one deterministic round with gaps, overwrites, an empty
// sync request, and more contiguous requests than IOV_MAX.
func TestWriterRound(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		w := startWriter(t, mode, nil)
		f, g := openTemp(t, "a"), openTemp(t, "b")
		gt := newGate(int(g.Fd()))
		gt.hold(w)
		c := newCollector()
		var want []byte
		var reqs []*Request
		// 3000 contiguous 3-byte requests (> IOV_MAX iovecs).
		for i := range 3000 {
			d := []byte{byte(i), byte(i >> 8), 'x'}
			reqs = append(reqs, c.req(int(f.Fd()), int64(3*i), d, false))
			want = append(want, d...)
		}
		// A gap, then a write after it.
		reqs = append(reqs, c.req(int(f.Fd()), 10000, []byte("after-gap"), false))
		want = append(want, make([]byte, 10000-len(want))...)
		want = append(want, "after-gap"...)
		// An overwrite of earlier bytes (later in submission order wins).
		reqs = append(reqs, c.req(int(f.Fd()), 0, []byte("OVR"), false))
		copy(want, "OVR")
		// A pure fdatasync and a write to another file.
		reqs = append(reqs, c.req(int(f.Fd()), int64(len(want)), nil, true))
		reqs = append(reqs, c.req(int(g.Fd()), 0, []byte("other"), true))
		before := w.Stats()
		for _, r := range reqs {
			w.Submit(r)
		}
		close(gt.release)
		c.check(t)
		for i, r := range reqs {
			if res := c.got[r]; res.err != nil || res.seq != i {
				t.Fatalf("req %d: %+v", i, res)
			}
		}
		if got := fileBytes(t, f); !bytes.Equal(got, want) {
			t.Fatalf("file a: %d bytes, want %d", len(got), len(want))
		}
		if got := fileBytes(t, g); string(got) != "other" {
			t.Fatalf("file b: %q", got)
		}
		st := w.Stats()
		if d := st.Fsyncs - before.Fsyncs; d != 2 {
			t.Errorf("fsyncs in round = %d, want 2 (one per FD)", d)
		}
		// 3000 iovecs need 3 writes, then the gap, the overwrite, and file b.
		if d := st.Writes - before.Writes; d != 6 {
			t.Errorf("writes in round = %d, want 6", d)
		}
	})
}

// TestGroupCommit: N sync requests queued behind a busy round share one
// fdatasync.
func TestGroupCommit(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		w := startWriter(t, mode, nil)
		f := openTemp(t, "a")
		gt := newGate(int(f.Fd()))
		gt.hold(w)
		c := newCollector()
		before := w.Stats()
		for i := range 100 {
			w.Submit(c.req(int(f.Fd()), int64(i*10), []byte("0123456789"), true))
		}
		close(gt.release)
		c.check(t)
		st := w.Stats()
		if st.Fsyncs-before.Fsyncs != 1 || st.SyncedReqs-before.SyncedReqs != 100 {
			t.Fatalf("fsyncs %d synced %d", st.Fsyncs-before.Fsyncs, st.SyncedReqs-before.SyncedReqs)
		}
		if st.FsyncTimeTotal <= 0 {
			t.Fatal("no fsync time")
		}
		ext, ok := ExtStats(w)
		var n uint64
		for _, v := range ext.FsyncLatency {
			n += v
		}
		if !ok || n != st.Fsyncs || ext.Rounds < 2 {
			t.Fatalf("ext %+v", ext)
		}
		t.Logf("backend %s", ext.Backend)
	})
}

func TestShortWrites(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		plan := &FaultPlan{Write: func(fd int, pos int64, n int) (int, error) { return min(n, 7), nil }}
		w := startWriter(t, mode, plan)
		f := openTemp(t, "a")
		gt := newGate(int(f.Fd()))
		gt.hold(w)
		c := newCollector()
		var want []byte
		for i := range 20 {
			d := bytes.Repeat([]byte{byte('a' + i)}, 5+i)
			w.Submit(c.req(int(f.Fd()), int64(len(want)), d, i%2 == 0))
			want = append(want, d...)
		}
		close(gt.release)
		c.check(t)
		for r, res := range c.got {
			if res.err != nil {
				t.Fatalf("pos %d: %v", r.Pos, res.err)
			}
		}
		if got := fileBytes(t, f); !bytes.Equal(got, want) {
			t.Fatalf("got %q\nwant %q", got, want)
		}
		if ext, _ := ExtStats(w); ext.ShortWrites == 0 {
			t.Fatal("no short writes counted")
		}
	})
}

// TestWriteError checks the failure rules for one round.
func TestWriteError(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		var armed atomic.Bool
		plan := &FaultPlan{Write: func(fd int, pos int64, n int) (int, error) {
			if armed.Load() && pos >= 100 && pos < 200 {
				return 0, unix.EIO
			}
			return n, nil
		}}
		w := startWriter(t, mode, plan)
		f, g := openTemp(t, "a"), openTemp(t, "b")
		fa, fb := int(f.Fd()), int(g.Fd())
		gt := newGate(fb)
		gt.hold(w)
		armed.Store(true)
		c := newCollector()
		r0 := c.req(fa, 0, []byte("sync-before"), true) // written, but its fsync never runs: fails
		r1 := c.req(fa, 11, []byte("plain"), false)     // written: succeeds
		rb := c.req(fb, 0, []byte("other-file"), true)  // other FD: succeeds
		r2 := c.req(fa, 100, []byte("boom"), false)     // fails
		r3 := c.req(fa, 104, []byte("later"), false)    // later on same FD: fails
		r4 := c.req(fa, 300, nil, false)                // later on same FD (empty): fails
		for _, r := range []*Request{r0, r1, rb, r2, r3, r4} {
			w.Submit(r)
		}
		close(gt.release)
		c.check(t)
		expect := map[*Request]bool{r0: true, r1: false, rb: false, r2: true, r3: true, r4: true}
		names := map[*Request]string{r0: "r0", r1: "r1", rb: "rb", r2: "r2", r3: "r3", r4: "r4"}
		for r, fail := range expect {
			err := c.got[r].err
			if (err != nil) != fail {
				t.Errorf("%s: err %v, want failure %v", names[r], err, fail)
			}
			if fail && !errors.Is(err, unix.EIO) {
				t.Errorf("%s: err %v does not wrap EIO", names[r], err)
			}
		}
		if got := fileBytes(t, f); string(got) != "sync-beforeplain" {
			t.Errorf("file a = %q", got)
		}
		// No sticky state: the next round on the same FD is written.
		armed.Store(false)
		c2 := newCollector()
		r5 := c2.req(fa, 16, []byte("again"), true)
		w.Submit(r5)
		c2.check(t)
		if err := c2.got[r5].err; err != nil {
			t.Fatal(err)
		}
		if got := fileBytes(t, f); string(got) != "sync-beforeplainagain" {
			t.Errorf("file a = %q", got)
		}
		if st := w.Stats(); st.Failures != 4 {
			t.Errorf("failures %d", st.Failures)
		}
	})
}

// TestShortThenError: a short write whose retry fails fails the request that
// was partly written.
func TestShortThenError(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		calls := 0
		plan := &FaultPlan{Write: func(fd int, pos int64, n int) (int, error) {
			calls++
			if calls == 1 {
				return 6, nil // all of "first" and one byte of "second"
			}
			return 0, nil // no progress: io.ErrShortWrite
		}}
		w := startWriter(t, mode, plan)
		f := openTemp(t, "a")
		gt := newGate(int(f.Fd()) + 1000) // an fd with no requests of its own
		gt.hold(w)
		c := newCollector()
		r0 := c.req(int(f.Fd()), 0, []byte("first"), false)
		r1 := c.req(int(f.Fd()), 5, []byte("second"), false)
		w.Submit(r0)
		w.Submit(r1)
		close(gt.release)
		c.check(t)
		if err := c.got[r0].err; err != nil {
			t.Errorf("r0: %v", err)
		}
		if err := c.got[r1].err; !errors.Is(err, io.ErrShortWrite) {
			t.Errorf("r1: %v", err)
		}
	})
}

func TestFsyncError(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		plan := &FaultPlan{Fsync: func(fd int) error { return unix.EIO }}
		w := startWriter(t, mode, plan)
		f := openTemp(t, "a")
		gt := newGate(int(f.Fd()) + 1000)
		gt.hold(w)
		c := newCollector()
		r0 := c.req(int(f.Fd()), 0, []byte("a"), false)
		r1 := c.req(int(f.Fd()), 1, []byte("b"), true)
		r2 := c.req(int(f.Fd()), 2, []byte("c"), false)
		w.Submit(r0)
		w.Submit(r1)
		w.Submit(r2)
		close(gt.release)
		c.check(t)
		if c.got[r0].err != nil || c.got[r2].err != nil {
			t.Errorf("non-sync requests failed: %v %v", c.got[r0].err, c.got[r2].err)
		}
		if err := c.got[r1].err; !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), "fdatasync") {
			t.Errorf("r1: %v", err)
		}
	})
}

// TestRealWriteError uses a read-only fd so the kernel itself fails the write.
func TestRealWriteError(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		w := startWriter(t, mode, nil)
		f := openTemp(t, "a")
		ro, err := os.Open(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		c := newCollector()
		r := c.req(int(ro.Fd()), 0, []byte("x"), true)
		w.Submit(r)
		c.check(t)
		if err := c.got[r].err; !errors.Is(err, unix.EBADF) {
			t.Fatalf("err %v, want EBADF", err)
		}
	})
}

func TestWriterClose(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		w, err := NewWriter(mode, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := openTemp(t, "a")
		c := newCollector()
		for i := range 50 {
			w.Submit(c.req(int(f.Fd()), int64(i), []byte{'a' + byte(i%26)}, true))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c.check(t) // every queued request completed by Close
		if len(fileBytes(t, f)) != 50 {
			t.Fatal("not all written")
		}
		r := c.req(int(f.Fd()), 0, []byte("z"), false)
		w.Submit(r)
		c.check(t)
		if !errors.Is(c.got[r].err, ErrWriterClosed) {
			t.Fatalf("after close: %v", c.got[r].err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWriterAuto(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	w, err := NewWriter(IOAuto, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := IOSync
	if uring.Available() == nil && autoPrefersUring {
		want = IOUring
	}
	if w.Mode() != want {
		t.Fatalf("auto chose %s, want %s; log: %s", w.Mode(), want, logs.String())
	}
	t.Logf("log: %s", logs.String())
}

func TestWriterAutoPrefersUring(t *testing.T) {
	if err := uring.Available(); err != nil {
		t.Skip(err)
	}
	autoPrefersUring = true
	defer func() { autoPrefersUring = false }()
	w, err := NewWriter(IOAuto, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Mode() != IOUring {
		t.Fatalf("mode %s", w.Mode())
	}
}

func TestWriterAutoFallback(t *testing.T) {
	old := uringAvailable
	uringAvailable = func() error { return fmt.Errorf("%w: test says no", uring.ErrUnavailable) }
	defer func() { uringAvailable = old }()
	var logs bytes.Buffer
	w, err := NewWriter(IOAuto, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Mode() != IOSync {
		t.Fatalf("mode %s", w.Mode())
	}
	if !strings.Contains(logs.String(), "test says no") {
		t.Fatalf("fallback not logged with its reason: %s", logs.String())
	}
	// With io_uring preferred, auto still falls back when it is unavailable.
	autoPrefersUring = true
	defer func() { autoPrefersUring = false }()
	logs.Reset()
	w2, err := NewWriter(IOAuto, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if w2.Mode() != IOSync || !strings.Contains(logs.String(), "test says no") {
		t.Fatalf("mode %s, log %s", w2.Mode(), logs.String())
	}
	if _, err := NewWriter(IOUring, nil); err == nil || !errors.Is(err, uring.ErrUnavailable) {
		t.Fatalf("io=uring when unavailable: %v", err)
	}
	if _, err := NewWriter("bogus", nil); err == nil {
		t.Fatal("bogus mode accepted")
	}
}

// TestWriterZeroAlloc: Submit + completion allocate nothing in steady state.
func TestWriterZeroAlloc(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		w := startWriter(t, mode, nil)
		f := openTemp(t, "a")
		done := make(chan struct{}, 1)
		data := make([]byte, 1024)
		var pos int64
		r := &Request{FD: int(f.Fd()), Data: data, Done: func(*Request, error) { done <- struct{}{} }}
		step := func() {
			r.Pos = pos
			pos += int64(len(data))
			r.Sync = pos%(64<<10) == 0
			w.Submit(r)
			<-done
		}
		for range 200 {
			step()
		}
		if n := testing.AllocsPerRun(2000, step); n != 0 {
			t.Fatalf("%v allocs per Submit+complete", n)
		}
	})
}

// TestWriterManyOps: a round with more ops than the ring has SQEs (many FDs,
// and one FD with a chain of non-contiguous writes longer than the ring).
func TestWriterManyOps(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		w := startWriter(t, mode, nil)
		const nfiles = 150
		files := make([]*os.File, nfiles)
		for i := range files {
			files[i] = openTemp(t, fmt.Sprintf("f%d", i))
		}
		gt := newGate(int(files[0].Fd()))
		gt.hold(w)
		c := newCollector()
		for i, f := range files {
			w.Submit(c.req(int(f.Fd()), 0, []byte(fmt.Sprintf("file-%03d", i)), true))
		}
		// 600 writes with 1-byte gaps on one fd: 600 ops in one chain.
		long := files[0]
		want := []byte("file-000")
		for i := range 600 {
			pos := int64(8 + 2*i)
			w.Submit(c.req(int(long.Fd()), pos+1, []byte{byte('A' + i%26)}, i%100 == 99))
			want = append(want, 0, byte('A'+i%26))
		}
		close(gt.release)
		c.check(t)
		for r, res := range c.got {
			if res.err != nil {
				t.Fatalf("fd %d pos %d: %v", r.FD, r.Pos, res.err)
			}
		}
		for i, f := range files[1:] {
			if got := string(fileBytes(t, f)); got != fmt.Sprintf("file-%03d", i+1) {
				t.Fatalf("file %d = %q", i+1, got)
			}
		}
		if got := fileBytes(t, long); !bytes.Equal(got, want) {
			t.Fatalf("long chain file differs: %d bytes, want %d", len(got), len(want))
		}
		if st := w.Stats(); st.Fsyncs != nfiles {
			t.Fatalf("fsyncs %d, want %d", st.Fsyncs, nfiles)
		}
	})
}

// TestWriterRandomFaults: random short writes and failures over several FDs
// and many rounds. Every request completes exactly once, per-FD completions
// come in submission order, and every request reported successful has its
// bytes on disk.
func TestWriterRandomFaults(t *testing.T) {
	writerModes(t, func(t *testing.T, mode IOMode) {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(7, uint64(len(mode))))
		plan := &FaultPlan{
			Write: func(fd int, pos int64, n int) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				switch x := rng.IntN(100); {
				case x < 3:
					return 0, unix.EIO
				case x < 20 && n > 1:
					return 1 + rng.IntN(n-1), nil
				}
				return n, nil
			},
			Fsync: func(fd int) error {
				mu.Lock()
				defer mu.Unlock()
				if rng.IntN(100) < 5 {
					return unix.EIO
				}
				return nil
			},
		}
		w := startWriter(t, mode, plan)
		const files, perFile = 4, 400
		var wg sync.WaitGroup
		for i := range files {
			f := openTemp(t, fmt.Sprintf("f%d", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				prng := rand.New(rand.NewPCG(uint64(i), 9))
				type sent struct {
					pos  int64
					data []byte
				}
				var (
					cmu  sync.Mutex
					next int
					ok   []sent
					done sync.WaitGroup
				)
				var pos int64
				for k := range perFile {
					data := make([]byte, 1+prng.IntN(3000))
					for j := range data {
						data[j] = byte(prng.Uint32())
					}
					// Non-overlapping regions, sometimes with gaps.
					p := pos + int64(prng.IntN(2)*prng.IntN(100))
					pos = p + int64(len(data))
					done.Add(1)
					w.Submit(&Request{FD: int(f.Fd()), Pos: p, Data: data, Sync: prng.IntN(2) == 0,
						Done: func(r *Request, err error) {
							cmu.Lock()
							if next != k {
								t.Errorf("fd %d: completion %d, want %d", r.FD, k, next)
							}
							next++
							if err == nil {
								ok = append(ok, sent{r.Pos, r.Data})
							}
							cmu.Unlock()
							done.Done()
						}})
				}
				done.Wait()
				disk := fileBytes(t, f)
				for _, s := range ok {
					end := s.pos + int64(len(s.data))
					if end > int64(len(disk)) || !bytes.Equal(disk[s.pos:end], s.data) {
						t.Errorf("fd %d: successful write at %d (%d bytes) not on disk", f.Fd(), s.pos, len(s.data))
						return
					}
				}
			}()
		}
		wg.Wait()
		st := w.Stats()
		ext, _ := ExtStats(w)
		t.Logf("requests %d failures %d short writes %d rounds %d", st.Requests, st.Failures, ext.ShortWrites, ext.Rounds)
		// A failure fails the rest of its round on that file, so when a file's
		// requests all land in one round none of them may succeed: only the
		// plan as a whole is checked to have injected faults.
		if st.Failures == 0 {
			t.Errorf("the fault plan injected no failure in %d requests", st.Requests)
		}
	})
}
