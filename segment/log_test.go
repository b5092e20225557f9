package segment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// faultWriter is a minimal pwrite+fdatasync Writer on its own goroutine whose
// writes or syncs can be made to fail or write short, for fault injection.
type faultWriter struct {
	ch        chan *Request
	failWrite atomic.Int32 // fail the next N writes
	failSync  atomic.Int32 // fail the next N syncs
	short     atomic.Int32 // write only half of the next N writes, then fail
	wg        sync.WaitGroup
}

func newFaultWriter() *faultWriter {
	w := &faultWriter{ch: make(chan *Request, 4096)}
	w.wg.Add(1)
	go w.run()
	return w
}

func (w *faultWriter) run() {
	defer w.wg.Done()
	for r := range w.ch {
		var err error
		if len(r.Data) > 0 {
			switch {
			case w.failWrite.Add(-1) >= 0:
				err = unix.EIO
			case w.short.Add(-1) >= 0:
				unix.Pwrite(r.FD, r.Data[:len(r.Data)/2], r.Pos)
				err = unix.ENOSPC
			default:
				_, err = unix.Pwrite(r.FD, r.Data, r.Pos)
			}
		}
		if err == nil && r.Sync {
			if w.failSync.Add(-1) >= 0 {
				err = unix.EIO
			} else {
				err = unix.Fdatasync(r.FD)
			}
		}
		r.Done(r, err)
	}
}

func (w *faultWriter) Submit(r *Request)  { w.ch <- r }
func (w *faultWriter) Stats() WriterStats { return WriterStats{} }
func (w *faultWriter) Mode() IOMode       { return IOSync }
func (w *faultWriter) Close() error       { close(w.ch); w.wg.Wait(); return nil }

// waiter collects append completions.
type waiter struct {
	mu   sync.Mutex
	wg   sync.WaitGroup
	base []int64
	errs []error
}

func (w *waiter) AppendDone(base int64, err error) {
	w.mu.Lock()
	w.base = append(w.base, base)
	w.errs = append(w.errs, err)
	w.mu.Unlock()
	w.wg.Done()
}

func testBatch(t testing.TB, n int, valueBytes int, ts int64) []byte {
	t.Helper()
	var b BatchBuilder
	b.Reset()
	for i := 0; i < n; i++ {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, valueBytes)
		b.Add(ts+int64(i), []byte(fmt.Sprintf("k%d", i)), v, []Header{{Key: []byte("h"), Value: []byte("v")}})
	}
	return append([]byte(nil), b.Bytes()...)
}

func openTestLog(t testing.TB, dir string, cfg Config, w Writer) *Log {
	t.Helper()
	l, err := Open(dir, cfg, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendWait(t testing.TB, l *Log, batch []byte) (int64, error) {
	t.Helper()
	var w waiter
	w.wg.Add(1)
	if err := l.Append(batch, &w); err != nil {
		return -1, err
	}
	w.wg.Wait()
	return w.base[0], w.errs[0]
}

func TestAppendReadRoundTrip(t *testing.T) {
	w := newFaultWriter()
	defer w.Close()
	l := openTestLog(t, t.TempDir(), Config{}, w)
	defer l.Close()
	for i := 0; i < 10; i++ {
		base, err := appendWait(t, l, testBatch(t, 3, 10, 1000))
		if err != nil {
			t.Fatal(err)
		}
		if base != int64(i*3) {
			t.Fatalf("append %d: base %d, want %d", i, base, i*3)
		}
	}
	if hw := l.HighWatermark(); hw != 30 {
		t.Fatalf("hw %d", hw)
	}
	got, err := l.ReadBytes(nil, 7, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	err = SplitBatches(got, func(h *BatchHeader, batch []byte) error {
		return ForEachRecord(batch, func(r *Record) error {
			offsets = append(offsets, r.Offset)
			if len(r.Value) != 10 || len(r.Headers) != 1 || string(r.Headers[0].Key) != "h" {
				return fmt.Errorf("bad record %+v", r)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if offsets[0] != 6 || offsets[len(offsets)-1] != 29 || len(offsets) != 24 {
		t.Fatalf("offsets %v", offsets)
	}
	if _, err := l.Read(31, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past hw: %v", err)
	}
	r, err := l.Read(30, 100)
	if err != nil || r.Len != 0 {
		t.Fatalf("read at hw: %+v %v", r, err)
	}
}

func TestReadMaxBytesWholeBatches(t *testing.T) {
	w := newFaultWriter()
	defer w.Close()
	l := openTestLog(t, t.TempDir(), Config{IndexIntervalBytes: 100}, w)
	defer l.Close()
	batch := testBatch(t, 2, 100, 1)
	for i := 0; i < 20; i++ {
		appendWait(t, l, batch)
	}
	size := int64(len(batch))
	for _, maxBytes := range []int{1, int(size), int(size) + 1, int(3*size) - 1, int(3 * size), 1 << 20} {
		r, err := l.Read(4, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(maxBytes) / size * size
		if want == 0 {
			want = size
		}
		if want > 18*size {
			want = 18 * size
		}
		if r.Len != want || r.FirstOffset != 4 || r.Pos != 2*size {
			t.Fatalf("maxBytes %d: %+v, want len %d", maxBytes, r, want)
		}
		r.Release()
	}
}

func TestRollIndexAndRetention(t *testing.T) {
	w := newFaultWriter()
	defer w.Close()
	dir := t.TempDir()
	batch := testBatch(t, 4, 200, time.Now().Add(-time.Hour).UnixMilli())
	cfg := Config{SegmentBytes: int64(len(batch)) * 5, IndexIntervalBytes: 1}
	l := openTestLog(t, dir, cfg, w)
	for i := 0; i < 23; i++ {
		appendWait(t, l, batch)
	}
	if st := l.Stats(); st.Segments != 5 {
		t.Fatalf("segments %d, want 5", st.Segments)
	}
	for off := int64(0); off < 92; off += 7 {
		r, err := l.Read(off, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.FirstOffset != off/4*4 {
			t.Fatalf("offset %d: first %d", off, r.FirstOffset)
		}
		r.Release()
	}
	l.Close()
	// Reopen after a clean close: indexes load, offsets continue.
	l = openTestLog(t, dir, cfg, w)
	if base, err := appendWait(t, l, batch); err != nil || base != 92 {
		t.Fatalf("append after reopen: %d %v", base, err)
	}
	l.SetConfig(Config{SegmentBytes: cfg.SegmentBytes, RetentionBytes: int64(len(batch)) * 12})
	if n := l.Retain(time.Now()); n != 3 {
		t.Fatalf("retention by bytes deleted %d segments, want 3", n)
	}
	if start := l.StartOffset(); start != 60 {
		t.Fatalf("start %d", start)
	}
	if _, err := l.Read(59, 10); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	l.SetConfig(Config{SegmentBytes: cfg.SegmentBytes, RetentionAge: time.Minute})
	if n := l.Retain(time.Now()); n != 1 {
		t.Fatalf("retention by age deleted %d, want 1 (never the active segment)", n)
	}
	if err := l.DeleteBefore(90); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTestLog(t, dir, cfg, w)
	defer l.Close()
	if start := l.StartOffset(); start != 90 {
		t.Fatalf("start after reopen %d, want 90", start)
	}
}

func TestOffsetForTime(t *testing.T) {
	w := newFaultWriter()
	defer w.Close()
	l := openTestLog(t, t.TempDir(), Config{SegmentBytes: 2000, IndexIntervalBytes: 1}, w)
	defer l.Close()
	for i := 0; i < 10; i++ {
		appendWait(t, l, testBatch(t, 5, 50, int64(1000*(i+1)))) // records at 1000(i+1) + 0..4
	}
	for _, c := range []struct{ ts, want int64 }{{0, 0}, {1002, 2}, {2003, 8}, {2005, 10}, {10004, 49}, {10005, -1}} {
		got, err := l.OffsetForTime(c.ts)
		if err != nil || got != c.want {
			t.Fatalf("ts %d: %d %v, want %d", c.ts, got, err, c.want)
		}
	}
}

// TestRecoveryTruncatesAtEveryByte cuts the newest segment at every byte of
// its last batch: recovery keeps exactly the whole batches before it.
func TestRecoveryTruncatesAtEveryByte(t *testing.T) {
	w := newFaultWriter()
	defer w.Close()
	dir := t.TempDir()
	l := openTestLog(t, dir, Config{}, w)
	batch := testBatch(t, 3, 40, 1)
	for i := 0; i < 4; i++ {
		appendWait(t, l, batch)
	}
	l.Close()
	path := segmentName(dir, 0, ".log")
	whole, _ := os.ReadFile(path)
	lastStart := len(whole) - len(batch)
	for cut := lastStart; cut < len(whole); cut++ {
		os.WriteFile(path, whole[:cut], 0o644)
		os.Remove(filepath.Join(dir, cleanMarker))
		l := openTestLog(t, dir, Config{}, w)
		if hw := l.HighWatermark(); hw != 9 {
			t.Fatalf("cut at %d: hw %d, want 9", cut, hw)
		}
		if base, err := appendWait(t, l, batch); err != nil || base != 9 {
			t.Fatalf("cut at %d: append %d %v", cut, base, err)
		}
		l.Close()
	}
	// A flipped byte inside the last batch is caught by the CRC.
	corrupt := append([]byte(nil), whole...)
	corrupt[len(corrupt)-3] ^= 0xff
	os.WriteFile(path, corrupt, 0o644)
	os.Remove(filepath.Join(dir, cleanMarker))
	l = openTestLog(t, dir, Config{}, w)
	defer l.Close()
	if hw := l.HighWatermark(); hw != 9 {
		t.Fatalf("corrupt tail: hw %d", hw)
	}
}

// TestFailedWriteFailsWaitersAndRepairs injects write, short-write and fsync
// failures: every append waiting on the failure fails, no read returns a
// partial batch, and appends resume afterwards at the right offset.
func TestFailedWriteFailsWaitersAndRepairs(t *testing.T) {
	for _, mode := range []string{"write", "short", "sync"} {
		t.Run(mode, func(t *testing.T) {
			w := newFaultWriter()
			defer w.Close()
			l := openTestLog(t, t.TempDir(), Config{}, w)
			defer l.Close()
			batch := testBatch(t, 2, 30, 1)
			appendWait(t, l, batch)
			switch mode {
			case "write":
				w.failWrite.Store(1)
			case "short":
				w.short.Store(1)
			case "sync":
				w.failSync.Store(1)
			}
			var wt waiter
			failed := 0
			for i := 0; i < 5; i++ {
				wt.wg.Add(1)
				if err := l.Append(batch, &wt); err != nil {
					wt.wg.Done()
					failed++
				}
			}
			wt.wg.Wait()
			for i, err := range wt.errs {
				if err == nil {
					t.Fatalf("append %d after the failure succeeded", i)
				}
			}
			if hw := l.HighWatermark(); hw != 2 {
				t.Fatalf("hw %d, want 2", hw)
			}
			got, err := l.ReadBytes(nil, 0, 1<<20)
			if err != nil || !bytes.Equal(got[12:], batch[12:]) {
				t.Fatalf("read after failure: %d bytes, %v", len(got), err)
			}
			if base, err := appendWait(t, l, batch); err != nil || base != 2 {
				t.Fatalf("append after repair: %d %v", base, err)
			}
		})
	}
}

func TestAppendRejectsCorrupt(t *testing.T) {
	w := newFaultWriter()
	defer w.Close()
	l := openTestLog(t, t.TempDir(), Config{}, w)
	defer l.Close()
	b := testBatch(t, 2, 10, 1)
	b[len(b)-1] ^= 1
	if err := l.Append(b, nil); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("corrupt crc: %v", err)
	}
	b = testBatch(t, 2, 10, 1)
	b[offMagic] = 1
	if err := l.Append(b, nil); !errors.Is(err, ErrUnsupportedMagic) {
		t.Fatalf("magic: %v", err)
	}
	if err := l.Append(b[:30], nil); !errors.Is(err, ErrShortBatch) {
		t.Fatalf("short: %v", err)
	}
}

type countDone struct{ wg sync.WaitGroup }

func (c *countDone) AppendDone(int64, error) { c.wg.Done() }

// testWriters makes each Writer a test runs against: the fault writer,
// pwritev and, where the kernel allows it, io_uring.
func testWriters() map[string]func() (Writer, error) {
	writers := map[string]func() (Writer, error){
		"fault": func() (Writer, error) { return newFaultWriter(), nil },
		"sync":  func() (Writer, error) { return NewWriter(IOSync, nil) },
	}
	if UringAvailable() == nil {
		writers["uring"] = func() (Writer, error) { return NewWriter(IOUring, nil) }
	}
	return writers
}

func TestAppendDoesNotAllocate(t *testing.T) {
	for name, mk := range testWriters() {
		for _, flush := range []FlushMode{FlushAsync, FlushSync, "sync+prealloc"} {
			t.Run(name+"/"+string(flush), func(t *testing.T) {
				cfg := Config{Flush: flush}
				if flush == "sync+prealloc" {
					cfg = Config{Flush: FlushSync, PreallocBytes: 1 << 20}
				}
				w, err := mk()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				l := openTestLog(t, t.TempDir(), cfg, w)
				defer l.Close()
				batch := testBatch(t, 16, 1000, 1)
				var c countDone
				for i := 0; i < 100; i++ { // warm the pools
					c.wg.Add(1)
					l.Append(batch, &c)
				}
				c.wg.Wait()
				allocs := testing.AllocsPerRun(200, func() {
					c.wg.Add(1)
					if err := l.Append(batch, &c); err != nil {
						t.Fatal(err)
					}
					c.wg.Wait()
				})
				if allocs != 0 {
					t.Fatalf("%.2f allocations per append", allocs)
				}
			})
		}
	}
}

func TestCompressedRecords(t *testing.T) {
	// A gzip batch as produced by a client: built by hand here from an
	// uncompressed body.
	plain := testBatch(t, 3, 20, 5)
	for _, c := range []int{CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd} {
		b := compressBatchForTest(t, plain, c)
		var n int
		err := ForEachRecord(b, func(r *Record) error {
			if len(r.Value) != 20 {
				return fmt.Errorf("value %q", r.Value)
			}
			n++
			return nil
		})
		if err != nil || n != 3 {
			t.Fatalf("codec %d: %d records, %v", c, n, err)
		}
	}
}

func TestWalkRecordsSkipsControlAndPartial(t *testing.T) {
	a := testBatch(t, 2, 5, 1)
	ctl := testBatch(t, 1, 5, 1)
	ctl[offAttributes+1] |= AttrControl
	SetLogAppendTime(ctl, 1) // recompute the CRC after changing the attributes
	b := append(append(append([]byte(nil), a...), ctl...), a[:20]...)
	n := 0
	if err := WalkRecords(b, func(*Record) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("%d records, %v", n, err)
	}
}

// TestReadEndOffset: a Range's EndOffset is one past the last offset of its
// last batch, for every start offset and size limit, across segments.
func TestReadEndOffset(t *testing.T) {
	l := manyBatchLog(t)
	_, hw, _ := l.Offsets()
	for off := int64(0); off <= hw; off++ {
		for _, maxBytes := range []int{1, 300, 700, 1500, 5000, 1 << 20} {
			r, err := l.Read(off, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			want := off
			if r.Len > 0 {
				b := make([]byte, r.Len)
				if _, err := r.File.ReadAt(b, r.Pos); err != nil {
					t.Fatal(err)
				}
				SplitBatches(b, func(h *BatchHeader, _ []byte) error {
					want = h.LastOffset() + 1
					return nil
				})
			}
			r.Release()
			if r.EndOffset != want {
				t.Fatalf("Read(%d, %d): EndOffset %d, want %d", off, maxBytes, r.EndOffset, want)
			}
		}
	}
}

// ScanRecords visits every record from any start offset (inside a batch
// too) to the high watermark, in order, once, across segments and for
// every chunk size.
func TestScanRecords(t *testing.T) {
	l := manyBatchLog(t)
	_, hw, _ := l.Offsets()
	for from := int64(0); from <= hw; from++ {
		for _, chunk := range []int{1, 700, 1 << 20} {
			want := from
			err := l.ScanRecords(from, chunk, func(r *Record) error {
				if r.Offset != want {
					return fmt.Errorf("record %d, want %d", r.Offset, want)
				}
				want++
				return nil
			})
			if err != nil || want != hw {
				t.Fatalf("from %d chunk %d: ended at %d of %d: %v", from, chunk, want, hw, err)
			}
		}
	}
}

// manyBatchLog is a log of 40 batches of 1–4 records over several small
// segments with a dense index; it is closed at the end of the test.
func manyBatchLog(t *testing.T) *Log {
	w := newFaultWriter()
	t.Cleanup(func() { w.Close() })
	l := openTestLog(t, t.TempDir(), Config{SegmentBytes: 4 << 10, IndexIntervalBytes: 512}, w)
	t.Cleanup(func() { l.Close() })
	for i := 0; i < 40; i++ {
		if _, err := appendWait(t, l, testBatch(t, 1+i%4, 60, 1)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}
