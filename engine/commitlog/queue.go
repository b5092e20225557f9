package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"quartet/segment"
)

// Queue is one consume queue: queue offsets min, min+1, ... map to ascending
// commit-log offsets. The newest entries (at most memEntriesMax once
// persisted) are in memory from memBase on; older ones are read from the
// queue's file.
type Queue struct {
	s     *Store
	Topic string
	ID    int

	mu        sync.Mutex
	min       int64    // first readable queue offset
	memBase   int64    // queue offset of ents[0]; [min, memBase) only in the file
	ents      []int64  // commit-log offsets
	persisted int64    // queue offsets below this are in the file
	file      *os.File // written by the checkpointer, read by anyone
	waiters   []*waiter
}

// memEntriesMax bounds the persisted entries a queue keeps in memory.
var memEntriesMax = 1 << 16

type waiter struct {
	after int64
	fn    func()
	fired bool
}

func (q *Queue) maxLocked() int64 { return q.memBase + int64(len(q.ents)) }

// Min is the first queue offset still readable.
func (q *Queue) Min() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.min
}

// Max is the queue offset after the last message.
func (q *Queue) Max() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.maxLocked()
}

// Offsets returns Min and Max together.
func (q *Queue) Offsets() (min, max int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.min, q.maxLocked()
}

// fileEntries reads n entries from queue offset from out of the queue file.
func fileEntries(f *os.File, from, n int64) ([]int64, error) {
	if f == nil {
		return nil, os.ErrClosed
	}
	b := make([]byte, n*entryBytes)
	if _, err := f.ReadAt(b, from*entryBytes); err != nil {
		return nil, fmt.Errorf("commitlog: read consume queue: %w", err)
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(binary.BigEndian.Uint64(b[i*entryBytes:]))
	}
	return out, nil
}

// CommitOffset is the commit-log offset of queue offset off.
func (q *Queue) CommitOffset(off int64) (int64, bool) {
	q.mu.Lock()
	if off < q.min || off >= q.maxLocked() {
		q.mu.Unlock()
		return 0, false
	}
	if off >= q.memBase {
		c := q.ents[off-q.memBase]
		q.mu.Unlock()
		return c, true
	}
	f := q.file
	q.mu.Unlock()
	e, err := fileEntries(f, off, 1)
	if err != nil {
		return 0, false
	}
	return e[0], true
}

// QueueOffset is the queue offset of commit-log offset c.
func (q *Queue) QueueOffset(c int64) (int64, bool) {
	off := q.SearchCommit(c)
	if got, ok := q.CommitOffset(off); ok && got == c {
		return off, true
	}
	return 0, false
}

// SearchCommit is the first queue offset whose commit-log offset is >= c
// (Max when none).
func (q *Queue) SearchCommit(c int64) int64 {
	q.mu.Lock()
	if len(q.ents) > 0 && (c > q.ents[0] || q.memBase <= q.min) {
		lo := q.memBase
		if lo < q.min {
			lo = q.min
		}
		i := sort.Search(int(q.maxLocked()-lo), func(i int) bool { return q.ents[lo-q.memBase+int64(i)] >= c })
		q.mu.Unlock()
		return lo + int64(i)
	}
	lo, hi := q.min, q.memBase
	if hi > q.maxLocked() {
		hi = q.maxLocked()
	}
	f := q.file
	q.mu.Unlock()
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := fileEntries(f, mid, 1)
		if err != nil || e[0] >= c {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// OffsetForTime is the first queue offset whose store time is >= ms (Max
// when every message is older), by binary search over the store times.
func (q *Queue) OffsetForTime(ms int64) (int64, error) {
	lo, hi := q.Offsets()
	var ferr error
	for lo < hi {
		mid := lo + (hi-lo)/2
		c, ok := q.CommitOffset(mid)
		if !ok {
			return hi, nil
		}
		var ts int64
		found, err := q.s.ReadAt(c, func(_ string, _ int, r *segment.Record) { ts = r.Timestamp })
		if err != nil || !found {
			ferr = err
			lo = mid + 1
			continue
		}
		if ts >= ms {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if ferr != nil && lo == q.Max() {
		return lo, ferr
	}
	return lo, nil
}

// Wait calls fn once, from any goroutine, when the queue grows past after
// (Max > after); if it already has, fn runs before Wait returns. cancel
// reports whether it removed a waiter that had not fired.
func (q *Queue) Wait(after int64, fn func()) (cancel func() bool) {
	q.mu.Lock()
	if q.maxLocked() > after {
		q.mu.Unlock()
		fn()
		return func() bool { return false }
	}
	w := &waiter{after: after, fn: fn}
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()
	return func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		if w.fired {
			return false
		}
		w.fired = true
		for i, x := range q.waiters {
			if x == w {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
		return true
	}
}

// readyLocked removes and returns the waiters satisfied by max.
func (q *Queue) readyLocked(max int64) []*waiter {
	if len(q.waiters) == 0 {
		return nil
	}
	var ready []*waiter
	keep := q.waiters[:0]
	for _, w := range q.waiters {
		if max > w.after {
			w.fired = true
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	for i := len(keep); i < len(q.waiters); i++ {
		q.waiters[i] = nil
	}
	q.waiters = keep
	return ready
}

// trimLocked moves min to the first entry whose commit-log offset is >= start
// (the log's start after retention) and drops persisted entries below it
// from memory.
func (q *Queue) trimLocked(start int64) {
	var first int64
	if len(q.ents) > 0 && q.ents[0] < start || q.memBase <= q.min {
		first = q.memBase + int64(sort.Search(len(q.ents), func(i int) bool { return q.ents[i] >= start }))
	} else {
		lo, hi := q.min, q.memBase
		for lo < hi {
			mid := lo + (hi-lo)/2
			e, err := fileEntries(q.file, mid, 1)
			if err != nil || e[0] >= start {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		first = lo
	}
	if first > q.min {
		q.min = first
	}
	q.dropMemLocked(q.min - q.memBase)
}

// dropMemLocked drops up to k of the oldest in-memory entries, persisted ones
// only.
func (q *Queue) dropMemLocked(k int64) {
	if lim := q.persisted - q.memBase; k > lim {
		k = lim
	}
	if k <= 0 {
		return
	}
	q.ents = append([]int64(nil), q.ents[k:]...)
	q.memBase += k
}

// Scan calls fn for each message of the queue from queue offset from, in
// order, at most max of them, with its queue and commit-log offsets; the
// record aliases buf and is valid during the call. fn returning ErrStop ends
// the scan at that message. Scan returns the queue offset after the last
// message fn accepted. buf is reused across calls.
func (q *Queue) Scan(from int64, max int, buf *[]byte, fn func(qoff, coff int64, r *segment.Record) error) (int64, error) {
	q.mu.Lock()
	if from < q.min {
		from = q.min
	}
	n := q.maxLocked() - from
	if n > int64(max) {
		n = int64(max)
	}
	if n <= 0 {
		q.mu.Unlock()
		return from, nil
	}
	var fileN int64 // entries before memBase, read from the file
	if from < q.memBase {
		fileN = min(q.memBase-from, n)
	}
	ents := make([]int64, fileN, n)
	if memN := n - fileN; memN > 0 {
		i0 := from + fileN - q.memBase
		ents = append(ents, q.ents[i0:i0+memN]...)
	}
	f := q.file
	q.mu.Unlock()
	if fileN > 0 {
		fe, err := fileEntries(f, from, fileN)
		if err != nil {
			return from, err
		}
		copy(ents, fe)
	}

	s := q.s
	j := 0
	for j < len(ents) {
		b, err := s.log.ReadBytes((*buf)[:0], ents[j], s.readSize(ents[j], ents[len(ents)-1]))
		if err != nil {
			if errors.Is(err, segment.ErrOffsetOutOfRange) {
				q.mu.Lock()
				q.trimLocked(s.log.StartOffset())
				q.mu.Unlock()
			}
			return from + int64(j), err
		}
		*buf = b[:0]
		j0 := j
		// Only batches holding a wanted offset are decoded (and their CRC
		// checked): the rest of the read belongs to other queues.
		visit := func(r *segment.Record) error {
			for j < len(ents) && ents[j] < r.Offset {
				j++ // not in the log (cannot happen short of corruption): skip
			}
			if j >= len(ents) {
				return ErrStop
			}
			if ents[j] != r.Offset {
				return nil // another queue's record
			}
			if err := fn(from+int64(j), ents[j], r); err != nil {
				return err
			}
			j++
			return nil
		}
		var werr error
		for rest := b; len(rest) >= segment.BatchHeaderBytes && werr == nil; {
			h, err := segment.ParseBatchHeader(rest)
			if err != nil {
				werr = err
				break
			}
			size := h.Size()
			if size > len(rest) || size < segment.BatchHeaderBytes {
				break
			}
			batch := rest[:size]
			rest = rest[size:]
			for j < len(ents) && ents[j] < h.BaseOffset {
				j++ // not in the log (cannot happen short of corruption): skip
			}
			if j >= len(ents) {
				werr = ErrStop
				break
			}
			if ents[j] > h.LastOffset() || h.Attributes&segment.AttrControl != 0 {
				continue
			}
			werr = segment.ForEachRecord(batch, visit)
		}
		if werr == ErrStop {
			if j < len(ents) {
				return from + int64(j), nil // fn stopped
			}
			break
		}
		if werr != nil {
			return from + int64(j), werr
		}
		if j == j0 {
			j++ // nothing readable at ents[j]: skip it
		}
	}
	return from + int64(j), nil
}
