package segment

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// waitIdle waits until nothing (append, zero-fill, background sync or trim)
// is in flight on l.
func waitIdle(l *Log) {
	l.mu.Lock()
	for !l.idleLocked() {
		l.drained.Wait()
	}
	l.mu.Unlock()
}

// dataSizes returns each segment's path and bytes of data.
func dataSizes(l *Log) map[string]int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := make(map[string]int64)
	for _, s := range l.segs {
		m[s.path] = s.size
	}
	return m
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads every record batch from offset 0 and checks each one.
func readAll(t *testing.T, l *Log) (batches int) {
	t.Helper()
	got, err := l.ReadBytes(nil, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); ; {
		err = SplitBatches(got, func(h *BatchHeader, b []byte) error {
			if _, _, err := ValidateBatch(b); err != nil {
				return err
			}
			if h.BaseOffset != off {
				return errors.New("offset gap")
			}
			off = h.LastOffset() + 1
			batches++
			return nil
		})
		if err != nil {
			t.Fatalf("batch %d: %v", batches, err)
		}
		_, hw, _ := l.Offsets()
		if off >= hw {
			return batches
		}
		if got, err = l.ReadBytes(nil, off, 1<<30); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPreallocZeroTail: with PreallocBytes the active segment's file runs
// ahead of its data with zeros; a sealed segment and, at Close, the active
// one are cut back to their data; a copy taken while the log is open (a
// crash) recovers every appended batch and drops the zeros.
func TestPreallocZeroTail(t *testing.T) {
	for name, mk := range testWriters() {
		t.Run(name, func(t *testing.T) {
			w, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			dir := t.TempDir()
			cfg := Config{Flush: FlushSync, SegmentBytes: 256 << 10, PreallocBytes: 64 << 10}
			l := openTestLog(t, dir, cfg, w)
			batch := testBatch(t, 3, 1500, 1)
			const n = 100 // ~460 KiB: at least one roll
			var wt waiter
			for i := range n { // a burst, then one at a time
				wt.wg.Add(1)
				if err := l.Append(batch, &wt); err != nil {
					t.Fatal(err)
				}
				if i >= n/2 {
					wt.wg.Wait()
				}
			}
			wt.wg.Wait()
			for _, err := range wt.errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			waitIdle(l)
			sizes := dataSizes(l)
			if len(sizes) < 2 {
				t.Fatalf("%d segments, want a roll", len(sizes))
			}
			l.mu.RLock()
			active := l.segs[len(l.segs)-1].path
			l.mu.RUnlock()
			for path, size := range sizes {
				fs := fileSize(t, path)
				if path == active && fs <= size {
					t.Fatalf("active segment: file %d bytes, data %d: no zeros ahead", fs, size)
				}
				if path != active && fs != size {
					t.Fatalf("sealed %s: file %d bytes, data %d", filepath.Base(path), fs, size)
				}
			}

			crash := t.TempDir()
			copyDir(t, dir, crash)
			w2, _ := mk()
			defer w2.Close()
			l2 := openTestLog(t, crash, cfg, w2)
			if _, hw, _ := l2.Offsets(); hw != 3*n {
				t.Fatalf("after a crash: hw %d, want %d", hw, 3*n)
			}
			if got := readAll(t, l2); got != n {
				t.Fatalf("after a crash: %d batches, want %d", got, n)
			}
			if base, err := appendWait(t, l2, batch); err != nil || base != 3*n {
				t.Fatalf("append after a crash: %d %v", base, err)
			}
			l2.Close()

			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for path, size := range sizes {
				if fs := fileSize(t, path); fs != size {
					t.Fatalf("after Close %s: file %d bytes, data %d", filepath.Base(path), fs, size)
				}
			}
		})
	}
}

// zeroFailWriter fails the next `fail` zero-fill requests.
type zeroFailWriter struct {
	Writer
	fail atomic.Int32
}

func (w *zeroFailWriter) Submit(r *Request) {
	if len(r.Data) > 0 && &r.Data[0] == &zeros[0] && w.fail.Add(-1) >= 0 {
		go r.Done(r, unix.EIO) // Submit runs under the Log's lock
		return
	}
	w.Writer.Submit(r)
}

// TestPreallocWriteFailure: a failed zero-fill costs only speed; a failed
// append with preallocation on is repaired as without it, zeros included.
func TestPreallocWriteFailure(t *testing.T) {
	fw := newFaultWriter()
	defer fw.Close()
	w := &zeroFailWriter{Writer: fw}
	w.fail.Store(1)
	cfg := Config{Flush: FlushSync, PreallocBytes: 64 << 10}
	l := openTestLog(t, t.TempDir(), cfg, w)
	defer l.Close()
	batch := testBatch(t, 2, 30, 1)

	if _, err := appendWait(t, l, batch); err != nil {
		t.Fatal(err)
	}
	waitIdle(l)
	if w.fail.Load() > 0 {
		t.Fatal("no zero-fill was submitted")
	}
	if base, err := appendWait(t, l, batch); err != nil || base != 2 {
		t.Fatalf("append after a failed zero-fill: %d %v", base, err)
	}

	waitIdle(l)
	fw.failWrite.Store(1)
	if _, err := appendWait(t, l, batch); err == nil {
		t.Fatal("append with a failed write succeeded")
	}
	waitIdle(l)
	if base, err := appendWait(t, l, batch); err != nil || base != 4 {
		t.Fatalf("append after repair: %d %v", base, err)
	}
	if got := readAll(t, l); got != 3 {
		t.Fatalf("%d batches readable, want 3", got)
	}
}
