package segment

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Writer internals shared by the io_uring writer (writer_uring.go) and the
// pwritev+fdatasync writer (writer_sync.go).
//
// Queue: Submit appends the request to an intrusive FIFO (Request.next) under a
// mutex held for a few instructions and, only if the writer goroutine is
// asleep, wakes it through a 1-slot channel. Submit never does I/O.
//
// Round: the writer goroutine (runtime.LockOSThread) takes the whole queue as
// one round. Per FD, in submission order, requests whose bytes are contiguous
// (Pos == end of the previous one) are coalesced into one vectored write of at
// most iovMax iovecs; an FD with any Sync request gets one fdatasync after its
// last write of the round. The FD's writes and fdatasync form a chain
// (IOSQE_IO_LINK under io_uring, sequential syscalls otherwise); chains of
// different FDs are independent. Then every request of the round completes
// (Done), in submission order. Requests submitted meanwhile wait in the queue
// and form the next round: that is the group commit.
//
// Failures, exactly:
//   - A short write is resubmitted from the first unwritten byte (counted in
//     ShortWrites); the caller never sees it unless the retry fails. A write
//     that returns 0 bytes for a non-empty range fails with io.ErrShortWrite.
//   - A failed write fails the first request it did not fully write and every
//     later request of the round on that FD; requests before it that asked for
//     Sync fail too (the fdatasync never ran); requests before it without Sync
//     whose bytes were written succeed.
//   - A failed fdatasync fails every Sync request of that FD in the round
//     (non-Sync requests, whose writes succeeded, succeed).
//   - EINTR/EAGAIN are retried. No per-FD state outlives the round: the next
//     round's requests for that FD are written normally, so the Log must stop
//     submitting for a file after a failure, wait for its in-flight requests,
//     and truncate back (the contract in writer.go).
//   - A request submitted after Close gets Done(r, ErrWriterClosed) on the
//     submitting goroutine.
type writerCore struct {
	mode   IOMode
	logger *slog.Logger
	faults *FaultPlan

	mu         sync.Mutex
	head, tail *Request
	sleeping   bool
	queued     atomic.Int32 // requests in the queue (read without the lock while gathering)
	closed     bool
	wake       chan struct{}
	done       chan struct{}

	// Owned by the writer goroutine.
	lastRound  time.Duration
	lastReqs   int
	lastSynced bool
	round      []*Request
	errs       []error
	chainOf    map[int]int32
	reqCh      []int32
	order      []int32 // round indexes grouped by chain, each chain in submission order
	chains     []wchain
	ops        []wop
	iov        []unix.Iovec
	iovPin     runtime.Pinner
	pinned     *unix.Iovec

	// Counters of the round in progress (flushed atomically once per round).
	rs roundStats

	st writerCounters
}

const (
	iovMax         = 1024 // IOV_MAX on Linux
	opBytesMax     = 1 << 30
	writerRetryMax = 1000 // EINTR/EAGAIN/ECANCELED retries of one op before giving up
)

type wchain struct {
	fd         int
	req0, nreq int32 // positions in order
	fill       int32
	op0, op1   int32
	cur        int32 // next op to run
	sync       bool
	failPos    int32 // first failed position (valid if err != nil)
	err        error // write failure
	syncErr    error // fdatasync failure
	inflight0  int32 // [inflight0, inflight1) ops submitted in this batch (uring)
	inflight1  int32
	retries    int32
	hasFsyncOp bool
}

type wop struct {
	fsync   bool
	chain   int32
	off     int64 // file offset of the first unwritten byte
	left    int   // bytes still to write
	written int   // bytes written so far
	iov0    int32 // first unwritten iovec
	iov1    int32
	req0    int32 // position (in order) of the op's first request
	// Set while an op is submitted with an injected short limit.
	limIdx int32
	limLen uint64
	res    int32 // uring: CQE result
}

type roundStats struct {
	requests, bytes, writes, fsyncs, synced, failures, shortWrites uint64
	fsyncNanos                                                     int64
}

type writerCounters struct {
	requests, bytes, writes, fsyncs, synced, failures atomic.Uint64
	fsyncNanos                                        atomic.Int64
	rounds, shortWrites                               atomic.Uint64
	fsyncHist                                         [FsyncBuckets]atomic.Uint64
}

// FsyncBuckets is the number of buckets of the fsync latency histogram.
const FsyncBuckets = 14

// FsyncBucketUpper are the inclusive upper bounds of the fsync latency
// histogram buckets (WriterExtStats.FsyncLatency); the last is unbounded.
var FsyncBucketUpper = [FsyncBuckets]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 200 * time.Microsecond, 300 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	time.Second, 1<<63 - 1,
}

// WriterExtStats are counters beyond WriterStats, for metrics and benchmarks.
type WriterExtStats struct {
	Rounds      uint64 // group-commit rounds (queue drains)
	ShortWrites uint64 // short writes whose remainder was resubmitted
	// FsyncLatency[i] counts fdatasyncs with latency <= FsyncBucketUpper[i]
	// (and above the previous bound). Under io_uring the latency is the
	// wall time of the submit-and-wait batch that held the linked FSYNC, i.e.
	// it includes the writes of that batch.
	FsyncLatency [FsyncBuckets]uint64
	Backend      string // e.g. "io_uring SINGLE_ISSUER|DEFER_TASKRUN" or "pwritev+fdatasync"
}

// ExtStats returns the extended counters of a Writer made by NewWriter (or
// NewFaultWriter); ok is false for other implementations.
func ExtStats(w Writer) (s WriterExtStats, ok bool) {
	e, ok := w.(interface{ extStats() WriterExtStats })
	if !ok {
		return s, false
	}
	return e.extStats(), true
}

func newWriterCore(mode IOMode, logger *slog.Logger, faults *FaultPlan) *writerCore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &writerCore{
		mode:    mode,
		logger:  logger,
		faults:  faults,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		chainOf: make(map[int]int32),
	}
}

// Submit queues r. It never blocks on I/O.
func (w *writerCore) Submit(r *Request) {
	r.next = nil
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		r.Done(r, ErrWriterClosed)
		return
	}
	if w.tail == nil {
		w.head = r
	} else {
		w.tail.next = r
	}
	w.tail = r
	w.queued.Add(1)
	wake := w.sleeping
	w.sleeping = false
	w.mu.Unlock()
	if wake {
		w.wake <- struct{}{}
	}
}

// Mode is the I/O mode in effect (never IOAuto).
func (w *writerCore) Mode() IOMode { return w.mode }

// Stats returns the cumulative counters.
func (w *writerCore) Stats() WriterStats {
	return WriterStats{
		Requests:       w.st.requests.Load(),
		Bytes:          w.st.bytes.Load(),
		Writes:         w.st.writes.Load(),
		Fsyncs:         w.st.fsyncs.Load(),
		SyncedReqs:     w.st.synced.Load(),
		Failures:       w.st.failures.Load(),
		FsyncTimeTotal: time.Duration(w.st.fsyncNanos.Load()),
	}
}

func (w *writerCore) extStatsCore() WriterExtStats {
	s := WriterExtStats{Rounds: w.st.rounds.Load(), ShortWrites: w.st.shortWrites.Load()}
	for i := range s.FsyncLatency {
		s.FsyncLatency[i] = w.st.fsyncHist[i].Load()
	}
	return s
}

// Close stops accepting requests, completes every queued one, and waits for
// the writer goroutine to exit.
func (w *writerCore) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	wake := w.sleeping
	w.sleeping = false
	w.mu.Unlock()
	if wake {
		w.wake <- struct{}{}
	}
	<-w.done
	return nil
}

// run is the writer goroutine: init (on the locked thread), then rounds until
// closed and drained, then fini.
func (w *writerCore) run(init func() error, exec func(), fini func(), ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
	if err := init(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for {
		w.gather()
		w.mu.Lock()
		for w.head == nil && !w.closed {
			w.sleeping = true
			w.mu.Unlock()
			<-w.wake
			w.mu.Lock()
		}
		list := w.head
		w.head, w.tail = nil, nil
		w.queued.Store(0)
		w.mu.Unlock()
		if list == nil {
			break
		}
		t0 := time.Now()
		w.prepare(list)
		exec()
		w.complete()
		w.lastRound = time.Since(t0)
	}
	fini()
	w.iovPin.Unpin()
	close(w.done)
}

// gather delays taking the next round briefly after a round that ran an
// fdatasync, so that producers woken by that round's completions can queue
// their next requests and share the next fdatasync instead of splitting into
// alternating half-rounds. It waits (yielding the CPU) until as many requests
// are queued as the last round completed, or gatherFraction of the last
// round's duration (at most gatherMax) has passed. Rounds without fsync do
// not gather.
func (w *writerCore) gather() {
	want := w.lastReqs
	if !w.lastSynced || want <= 1 {
		return
	}
	if int(w.queued.Load()) >= want {
		return
	}
	budget := min(w.lastRound/gatherFraction, gatherMax)
	deadline := time.Now().Add(budget)
	for int(w.queued.Load()) < want && time.Now().Before(deadline) {
		runtime.Gosched()
	}
}

const (
	gatherFraction = 4
	gatherMax      = 500 * time.Microsecond
)

// prepare turns the queued list into chains of ops.
func (w *writerCore) prepare(list *Request) {
	w.round = w.round[:0]
	for r := list; r != nil; r = r.next {
		w.round = append(w.round, r)
	}
	n := len(w.round)
	w.errs = grow(w.errs, n)
	w.reqCh = grow(w.reqCh, n)
	w.order = grow(w.order, n)
	clear(w.chainOf)
	w.chains = w.chains[:0]
	for i, r := range w.round {
		ci, ok := w.chainOf[r.FD]
		if !ok {
			ci = int32(len(w.chains))
			w.chains = append(w.chains, wchain{fd: r.FD})
			w.chainOf[r.FD] = ci
		}
		w.chains[ci].nreq++
		w.reqCh[i] = ci
	}
	var pos int32
	for i := range w.chains {
		c := &w.chains[i]
		c.req0, c.fill = pos, pos
		pos += c.nreq
	}
	for i := range w.round {
		c := &w.chains[w.reqCh[i]]
		w.order[c.fill] = int32(i)
		c.fill++
	}

	w.ops = w.ops[:0]
	w.iov = w.iov[:0]
	for ci := range w.chains {
		c := &w.chains[ci]
		c.op0 = int32(len(w.ops))
		cur := -1
		for p := c.req0; p < c.req0+c.nreq; p++ {
			r := w.round[w.order[p]]
			if r.Sync {
				c.sync = true
			}
			if len(r.Data) == 0 {
				continue
			}
			if cur >= 0 {
				op := &w.ops[cur]
				if r.Pos == op.off+int64(op.left) && op.iov1-op.iov0 < iovMax && op.left+len(r.Data) <= opBytesMax {
					w.iov = append(w.iov, iovec(r.Data))
					op.iov1++
					op.left += len(r.Data)
					continue
				}
			}
			cur = len(w.ops)
			w.ops = append(w.ops, wop{
				chain: int32(ci), off: r.Pos, left: len(r.Data),
				iov0: int32(len(w.iov)), iov1: int32(len(w.iov) + 1), req0: p, limIdx: -1,
			})
			w.iov = append(w.iov, iovec(r.Data))
		}
		if c.sync {
			w.ops = append(w.ops, wop{fsync: true, chain: int32(ci), limIdx: -1})
			c.hasFsyncOp = true
		}
		c.op1 = int32(len(w.ops))
		c.cur = c.op0
	}
	// The kernel reads the iovec array: keep it pinned (re-pin on growth).
	if len(w.iov) > 0 && &w.iov[:1][0] != w.pinned {
		w.iovPin.Unpin()
		w.pinned = &w.iov[:1][0]
		w.iovPin.Pin(w.pinned)
	}
	w.rs = roundStats{}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/2)
	}
	s = s[:n]
	clear(s)
	return s
}

func iovec(b []byte) unix.Iovec {
	return unix.Iovec{Base: &b[0], Len: uint64(len(b))}
}

// advance consumes n written bytes of op.
func (w *writerCore) advance(op *wop, n int) {
	op.written += n
	op.left -= n
	op.off += int64(n)
	for n > 0 {
		v := &w.iov[op.iov0]
		if uint64(n) >= v.Len {
			n -= int(v.Len)
			op.iov0++
			continue
		}
		v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), n))
		v.Len -= uint64(n)
		n = 0
	}
}

// limit makes op's iovecs cover at most lim bytes (for injected short
// writes); it returns the iovec count to submit. unlimit undoes it.
func (w *writerCore) limit(op *wop, lim int) int32 {
	if lim >= op.left {
		return op.iov1 - op.iov0
	}
	acc := 0
	for i := op.iov0; i < op.iov1; i++ {
		l := int(w.iov[i].Len)
		if acc+l >= lim {
			op.limIdx, op.limLen = i, w.iov[i].Len
			w.iov[i].Len = uint64(lim - acc)
			return i - op.iov0 + 1
		}
		acc += l
	}
	return op.iov1 - op.iov0
}

func (w *writerCore) unlimit(op *wop) {
	if op.limIdx >= 0 {
		w.iov[op.limIdx].Len = op.limLen
		op.limIdx = -1
	}
}

// failWrite records that op failed with err.
func (w *writerCore) failWrite(op *wop, err error) {
	c := &w.chains[op.chain]
	if c.err != nil {
		return
	}
	// First request of the op not fully written.
	p, acc := op.req0, op.written
	for ; p < c.req0+c.nreq; p++ {
		l := len(w.round[w.order[p]].Data)
		if l > 0 && acc < l {
			break
		}
		acc -= l
	}
	c.failPos = p
	c.err = fmt.Errorf("segment: write fd %d at %d: %w", c.fd, op.off, err)
}

func (w *writerCore) failSync(c *wchain, err error) {
	c.syncErr = fmt.Errorf("segment: fdatasync fd %d: %w", c.fd, err)
}

// faultWrite consults the fault plan before a write of op; it returns the
// byte limit for this attempt and an injected error.
func (w *writerCore) faultWrite(op *wop) (int, error) {
	if w.faults == nil || w.faults.Write == nil {
		return op.left, nil
	}
	n, err := w.faults.Write(w.chains[op.chain].fd, op.off, op.left)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, io.ErrShortWrite
	}
	return min(n, op.left), nil
}

func (w *writerCore) faultFsync(fd int) error {
	if w.faults == nil || w.faults.Fsync == nil {
		return nil
	}
	return w.faults.Fsync(fd)
}

func (w *writerCore) recordFsync(d time.Duration) {
	w.rs.fsyncs++
	w.rs.fsyncNanos += int64(d)
	i := 0
	for i < FsyncBuckets-1 && d > FsyncBucketUpper[i] {
		i++
	}
	w.st.fsyncHist[i].Add(1)
}

// complete assigns errors per the failure rules and calls Done in submission
// order.
func (w *writerCore) complete() {
	for ci := range w.chains {
		c := &w.chains[ci]
		if c.err == nil && c.syncErr == nil {
			continue
		}
		for p := c.req0; p < c.req0+c.nreq; p++ {
			i := w.order[p]
			r := w.round[i]
			switch {
			case c.err != nil && p >= c.failPos:
				w.errs[i] = c.err
			case c.err != nil && r.Sync:
				w.errs[i] = c.err
			case c.syncErr != nil && r.Sync:
				w.errs[i] = c.syncErr
			}
		}
	}
	rs := &w.rs
	for i, r := range w.round {
		rs.requests++
		if w.errs[i] != nil {
			rs.failures++
		} else {
			rs.bytes += uint64(len(r.Data))
			if r.Sync {
				rs.synced++
			}
		}
	}
	// Counters first, so a caller woken by Done sees them.
	st := &w.st
	st.rounds.Add(1)
	st.requests.Add(rs.requests)
	st.bytes.Add(rs.bytes)
	st.writes.Add(rs.writes)
	if rs.fsyncs > 0 {
		st.fsyncs.Add(rs.fsyncs)
		st.fsyncNanos.Add(rs.fsyncNanos)
	}
	if rs.synced > 0 {
		st.synced.Add(rs.synced)
	}
	if rs.failures > 0 {
		st.failures.Add(rs.failures)
	}
	if rs.shortWrites > 0 {
		st.shortWrites.Add(rs.shortWrites)
	}
	w.lastReqs, w.lastSynced = int(rs.requests), rs.fsyncs > 0
	clear(w.iov) // drop references to request buffers
	for i, r := range w.round {
		w.round[i] = nil
		r.next = nil
		r.Done(r, w.errs[i])
	}
	w.round = w.round[:0]
}
