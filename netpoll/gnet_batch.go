package netpoll

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"quartet/internal/uring"
)

// Batched writes (gnet transport). A loop under load is handed many ready
// connections per epoll_wait; answering each at the end of its own read
// costs one write(2) per connection. Instead the flush after a read is
// deferred to a task queued on the loop (gnet runs it after the callbacks
// of the next epoll_wait), and that flush hands the output of every dirty
// connection to the kernel with one io_uring_enter: a SEND (SENDMSG for
// several buffers) per connection, MSG_DONTWAIT, so every one completes
// during the call. What a socket does not take — a short send, EAGAIN, an
// error — goes to gnet's Write as before, which buffers it and arms
// EPOLLOUT, or closes the connection with the error. Each connection's
// bytes stay in order: a connection has at most one send in a batch, the
// batch is submitted before anything else writes to a socket of the loop
// (a file range, a second send of the same connection), and no send is in
// flight outside flushDirty.
//
// The deferral costs the loop an eventfd write and an io_uring_enter per
// batch, so it is used only while batches are large: when fewer than
// batchConnsMin connections were read while the last deferred flush
// waited, reads flush at once as before and only every batchProbeEvery-th
// read tries a deferral again. Config.NoBatchedWrites turns it off; without io_uring
// (kernel, seccomp) it is off.
const (
	batchConnsMin   = 4
	batchProbeEvery = 16
	batchSQEs       = 256
	// batchFlushConns bounds the deferral: with this many connections
	// dirty the flush happens at once (gnet hands a loop up to 1,024
	// ready connections per epoll_wait; waiting for all of them delays
	// the first answers by ~1,000 reads). 16, 64 and unbounded measured
	// alike at 1,000 connections (64 and unbounded, 16 ~5% slower).
	batchFlushConns = 64
)

type pendSend struct {
	t      *gnetTransport
	lo, hi int // its buffers in writeBatch.bufs
}

type writeBatch struct {
	lp    *loopState
	el    gnet.EventLoop
	log   *slog.Logger
	ring  *uring.Ring
	pend  []pendSend
	bufs  [][]byte
	msgs  []unix.Msghdr
	iovs  []unix.Iovec
	after []*conn // connections read by deferred entries: afterOutput once flushed
	res   []int32 // scratch: results by pend index

	// For tests and profiles: io_uring_enter calls, sends through them,
	// and sends whose rest (short, EAGAIN, error) went to gnet's Write.
	submits, sends, rests atomic.Int64

	broken    bool // io_uring_enter failed: no more batching (never entered again)
	scheduled bool // the flush task is queued on the loop
	last      int  // connections read while the last deferred flush waited
	skipped   int  // reads flushed at once since the last probe
}

func newWriteBatch(lp *loopState, el gnet.EventLoop, log *slog.Logger) (*writeBatch, error) {
	r, err := uring.NewShared(batchSQEs)
	if err != nil {
		return nil, err
	}
	return &writeBatch{lp: lp, el: el, log: log, ring: r, last: batchConnsMin}, nil
}

func (wb *writeBatch) close() { _ = wb.ring.Close() }

// deferFlush decides, at the end of a read of c, whether the flush waits for
// the batch task; it queues the task if needed.
func (wb *writeBatch) deferFlush(c *conn) bool {
	if !wb.scheduled {
		if wb.last < batchConnsMin {
			if wb.skipped++; wb.skipped < batchProbeEvery {
				return false
			}
		}
		wb.skipped = 0
		if wb.el.Execute(context.Background(), wb) != nil {
			return false
		}
		wb.scheduled = true
	}
	if !c.afterQueued {
		c.afterQueued = true
		wb.after = append(wb.after, c)
	}
	if len(wb.lp.dirty) >= batchFlushConns {
		wb.lp.flushDirty()
	}
	return true
}

// Run is the flush task (gnet.Runnable).
func (wb *writeBatch) Run(context.Context) error {
	wb.scheduled = false
	lp := wb.lp
	wb.last = len(wb.after) // connections read while the flush waited
	lp.flushDirty()
	for i, c := range wb.after {
		wb.after[i] = nil
		c.afterQueued = false
		c.afterOutput()
	}
	wb.after = wb.after[:0]
	lp.maybeYield()
	return nil
}

// queue takes bufs (owned) to be sent to t's socket at the next submit.
// Only inside flushDirty, which submits before it returns.
func (wb *writeBatch) queue(t *gnetTransport, bufs [][]byte) {
	if t.queued {
		wb.submit() // the connection's earlier bytes go first
		if t.c.closed.Load() || t.gc.OutboundBuffered() > 0 {
			if !t.c.closed.Load() {
				t.write(bufs)
			}
			t.putBufs(bufs)
			return
		}
	}
	if len(wb.pend) == batchSQEs {
		wb.submit()
	}
	lo := len(wb.bufs)
	wb.bufs = append(wb.bufs, bufs...)
	wb.pend = append(wb.pend, pendSend{t: t, lo: lo, hi: len(wb.bufs)})
	t.queued = true
}

// submit sends everything queued: one io_uring_enter (a single queued
// connection is written directly).
func (wb *writeBatch) submit() {
	if len(wb.pend) == 0 {
		return
	}
	if len(wb.pend) == 1 {
		p := wb.pend[0]
		wb.pend = wb.pend[:0]
		p.t.queued = false
		if !p.t.c.closed.Load() {
			p.t.write(wb.bufs[p.lo:p.hi])
		}
		wb.release()
		return
	}
	// Size the msghdr and iovec arrays before taking pointers into them.
	nm, ni := 0, 0
	for _, p := range wb.pend {
		if p.hi-p.lo > 1 {
			nm++
			ni += p.hi - p.lo
		}
	}
	if cap(wb.msgs) < nm {
		wb.msgs = make([]unix.Msghdr, nm)
	}
	if cap(wb.iovs) < ni {
		wb.iovs = make([]unix.Iovec, ni)
	}
	msgs, iovs := wb.msgs[:nm], wb.iovs[:ni]
	const flags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
	for i, p := range wb.pend {
		sqe := wb.ring.GetSQE() // never nil: at most batchSQEs queued, all reaped
		if p.hi-p.lo == 1 {
			sqe.PrepSend(p.t.fd, wb.bufs[p.lo], flags, uint64(i))
			continue
		}
		m := &msgs[0]
		msgs = msgs[1:]
		*m = unix.Msghdr{Iov: &iovs[0]}
		m.SetIovlen(min(p.hi-p.lo, iovMax)) // the rest goes to write below
		for _, b := range wb.bufs[p.lo:p.hi] {
			iovs[0] = unix.Iovec{Base: &b[0]}
			iovs[0].SetLen(len(b))
			iovs = iovs[1:]
		}
		sqe.PrepSendmsg(p.t.fd, m, flags, uint64(i))
	}
	n := len(wb.pend)
	res := wb.results(n)
	wb.submits.Add(1)
	wb.sends.Add(int64(n))
	// Every send has completed: hand what a socket did not take to gnet.
	// (A write error there closes that connection, and its OnClose may
	// queue output of others: dirty again, flushed by the outer walk.)
	for i, p := range wb.pend {
		p.t.queued = false
		// EAGAIN (or an error, which gnet's write meets again and closes
		// on) as nothing sent
		if p.t.writeRest(wb.bufs[p.lo:p.hi], max(int(res[i]), 0)) {
			wb.rests.Add(1)
		}
	}
	for i := range wb.pend {
		wb.pend[i] = pendSend{}
	}
	wb.pend = wb.pend[:0]
	wb.release()
}

// results submits and reaps n CQEs, returning their results by index.
func (wb *writeBatch) results(n int) []int32 {
	res := wb.res[:0]
	for range n {
		res = append(res, -int32(unix.EAGAIN))
	}
	wb.res = res
	got := 0
	for got < n {
		_, err := wb.ring.Submit(uint32(n - got))
		for cqe := wb.ring.PeekCQE(); cqe != nil; cqe = wb.ring.PeekCQE() {
			if i := int(cqe.UserData); i < n {
				res[i] = cqe.Res
			}
			wb.ring.Advance(1)
			got++
		}
		if err != nil && err != unix.EAGAIN && err != unix.EBUSY {
			// Cannot happen with sends on non-blocking sockets; if it
			// does, stop batching on this loop. Sends without a CQE count
			// as EAGAIN: gnet writes them.
			wb.log.Error("netpoll: io_uring submit failed; batched writes off for this loop", "err", err)
			wb.broken = true
			break
		}
	}
	return res
}

func (wb *writeBatch) release() {
	for i, b := range wb.bufs {
		wb.lp.putBuf(b)
		wb.bufs[i] = nil
	}
	wb.bufs = wb.bufs[:0]
}
