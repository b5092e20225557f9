package commitlog

import (
	"errors"
	"os"
	"sort"
	"sync"

	"quartet/segment"
)

// Queue is one consume queue: queue offsets base, base+1, ... map to the
// commit-log offsets in ents (ascending).
type Queue struct {
	s     *Store
	Topic string
	ID    int

	mu        sync.Mutex
	base      int64   // queue offset of ents[0]
	ents      []int64 // commit-log offsets
	persisted int64   // queue offsets below this are in the file
	waiters   []*waiter
	file      *os.File // checkpointer only
}

type waiter struct {
	after int64
	fn    func()
	fired bool
}

// Min is the first queue offset still readable.
func (q *Queue) Min() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.base
}

// Max is the queue offset after the last message.
func (q *Queue) Max() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.base + int64(len(q.ents))
}

// Offsets returns Min and Max together.
func (q *Queue) Offsets() (min, max int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.base, q.base + int64(len(q.ents))
}

// CommitOffset is the commit-log offset of queue offset off.
func (q *Queue) CommitOffset(off int64) (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := off - q.base
	if i < 0 || i >= int64(len(q.ents)) {
		return 0, false
	}
	return q.ents[i], true
}

// QueueOffset is the queue offset of commit-log offset c.
func (q *Queue) QueueOffset(c int64) (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := sort.Search(len(q.ents), func(i int) bool { return q.ents[i] >= c })
	if i < len(q.ents) && q.ents[i] == c {
		return q.base + int64(i), true
	}
	return 0, false
}

// SearchCommit is the first queue offset whose commit-log offset is >= c
// (Max when none).
func (q *Queue) SearchCommit(c int64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.base + int64(sort.Search(len(q.ents), func(i int) bool { return q.ents[i] >= c }))
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
	if q.base+int64(len(q.ents)) > after {
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

// trimLocked drops entries below commit-log offset start that are persisted.
func (q *Queue) trimLocked(start int64) {
	k := sort.Search(len(q.ents), func(i int) bool { return q.ents[i] >= start })
	if lim := q.persisted - q.base; int64(k) > lim {
		k = int(max(lim, 0))
	}
	if k == 0 {
		return
	}
	q.ents = append([]int64(nil), q.ents[k:]...)
	q.base += int64(k)
}

// Scan calls fn for each message of the queue from queue offset from, in
// order, at most max of them, with its queue and commit-log offsets; the
// record aliases buf and is valid during the call. fn returning ErrStop ends
// the scan at that message. Scan returns the queue offset after the last
// message fn accepted. buf is reused across calls.
func (q *Queue) Scan(from int64, max int, buf *[]byte, fn func(qoff, coff int64, r *segment.Record) error) (int64, error) {
	q.mu.Lock()
	if from < q.base {
		from = q.base
	}
	end := q.base + int64(len(q.ents))
	n := end - from
	if n > int64(max) {
		n = int64(max)
	}
	if n <= 0 {
		q.mu.Unlock()
		return from, nil
	}
	i0 := from - q.base
	ents := make([]int64, n)
	copy(ents, q.ents[i0:i0+n])
	q.mu.Unlock()

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
		werr := segment.WalkRecords(b, func(r *segment.Record) error {
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
		})
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
