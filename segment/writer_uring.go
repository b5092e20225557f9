package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"quartet/internal/uring"
)

// uringWriter runs rounds through an io_uring ring owned by its locked OS
// thread: per FD a chain WRITEV → … → WRITEV → FSYNC(DATASYNC) linked with
// IOSQE_IO_LINK, all chains of the round submitted with one io_uring_enter
// that also waits for every CQE. A chain longer than the free SQ space is cut
// at the boundary and continued in the next batch, after the first part has
// completed (so per-FD order and "fsync after the last write" still hold).
// A short write breaks the link (the kernel cancels the rest of the chain):
// the remainder and the cancelled ops are resubmitted in the next batch.
type uringWriter struct {
	*writerCore
	ring    *uring.Ring
	entries uint32
	flags   string
	// inline: writes are done with pwritev on the writer thread and only the
	// FSYNCs go through the ring (see ioUringInline).
	inline bool
}

// ioUringInline is an io_uring writer that issues its writes with pwritev on
// its own thread and only the fdatasyncs (all FDs of a round at once) through
// the ring. Buffered WRITEV SQEs on ext4 are executed by an io-wq worker
// (measured: an iou-wrk thread appears), so each costs a thread hand-off that
// pwritev does not pay; fsyncs of several files still run concurrently.
const ioUringInline IOMode = "uring-inline"

// uringEntries is the SQ size of a writer's ring: rounds with more ops than
// this run in several batches.
const uringEntries = 256

func newUringWriter(logger *slog.Logger, faults *FaultPlan, inline bool) (*uringWriter, error) {
	w := &uringWriter{writerCore: newWriterCore(IOUring, logger, faults), entries: uringEntries, inline: inline}
	ready := make(chan error, 1)
	go w.run(w.init, w.exec, w.fini, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return w, nil
}

func (w *uringWriter) init() error {
	r, err := uring.New(w.entries)
	if err != nil {
		return err
	}
	w.ring = r
	w.flags = r.SetupFlags()
	return nil
}

func (w *uringWriter) fini() {
	if w.ring != nil {
		w.ring.Close()
	}
}

func (w *uringWriter) extStats() WriterExtStats {
	s := w.extStatsCore()
	s.Backend = "io_uring " + w.flags
	if w.inline {
		s.Backend = "pwritev + io_uring fsync " + w.flags
	}
	return s
}

func (w *uringWriter) exec() {
	for {
		// Fill the SQ with the pending part of every unfinished chain.
		var submitted uint32
		nfsync := 0
		for ci := range w.chains {
			c := &w.chains[ci]
			c.inflight0, c.inflight1 = c.cur, c.cur
			if c.cur >= c.op1 || c.err != nil || c.syncErr != nil {
				continue
			}
			var prev *uring.SQE
			for k := c.cur; k < c.op1; k++ {
				if w.ring.Free() == 0 {
					break
				}
				op := &w.ops[k]
				if w.inline && !op.fsync {
					if prev != nil {
						break // let the ring ops before it complete first
					}
					w.pwriteOp(op)
					if c.err != nil {
						break
					}
					c.cur = k + 1
					c.inflight0, c.inflight1 = c.cur, c.cur
					continue
				}
				var sqe *uring.SQE
				// An injected fault applies once the ops before it in the
				// chain have completed (k == c.inflight0): until then the
				// chain is cut before it and the hook is asked again later.
				if op.fsync {
					if w.faults != nil && w.faults.Fsync != nil {
						if k != c.inflight0 {
							break
						}
						if err := w.faultFsync(c.fd); err != nil {
							w.failSync(c, err)
							break
						}
					}
					sqe = w.ring.GetSQE()
					sqe.PrepFdatasync(c.fd, uint64(k))
					nfsync++
				} else {
					lim := op.left
					if w.faults != nil && w.faults.Write != nil {
						if k != c.inflight0 {
							break
						}
						var err error
						if lim, err = w.faultWrite(op); err != nil {
							w.failWrite(op, err)
							break
						}
					}
					cnt := w.limit(op, lim)
					sqe = w.ring.GetSQE()
					sqe.PrepWritev(c.fd, &w.iov[op.iov0], int(cnt), op.off, uint64(k))
					w.rs.writes++
				}
				if prev != nil {
					prev.Link(true)
				}
				prev = sqe
				c.inflight1 = k + 1
				submitted++
			}
		}
		if submitted == 0 {
			return
		}
		t0 := time.Now()
		_, err := w.ring.Submit(submitted)
		// Reap exactly the CQEs of this batch.
		for got := uint32(0); got < submitted; {
			cqe := w.ring.PeekCQE()
			if cqe == nil {
				if _, err2 := w.ring.Submit(submitted - got); err2 != nil && !errors.Is(err2, unix.EAGAIN) && !errors.Is(err2, unix.EBUSY) {
					err = err2
					break
				}
				continue
			}
			w.ops[cqe.UserData].res = cqe.Res
			w.ring.Advance(1)
			got++
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EBUSY) {
			// The ring itself failed: fail everything unfinished.
			w.failAll(fmt.Errorf("io_uring: %w", err))
			return
		}
		var batch time.Duration
		if nfsync > 0 {
			batch = time.Since(t0)
		}
		// Process results chain by chain, in op order.
		for ci := range w.chains {
			c := &w.chains[ci]
			for k := c.inflight0; k < c.inflight1; k++ {
				w.unlimit(&w.ops[k])
			}
			for k := c.inflight0; k < c.inflight1; k++ {
				op := &w.ops[k]
				res := op.res
				if op.fsync {
					if res != -int32(unix.ECANCELED) {
						w.recordFsync(batch)
					}
					if res < 0 {
						if e := unix.Errno(-res); e == unix.EINTR || e == unix.EAGAIN || e == unix.ECANCELED {
							if w.retry(c, op) {
								break
							}
						} else {
							w.failSync(c, e)
						}
					}
					c.cur = k + 1
					continue
				}
				if res < 0 {
					if e := unix.Errno(-res); e == unix.EINTR || e == unix.EAGAIN || e == unix.ECANCELED {
						w.retry(c, op)
					} else {
						w.failWrite(op, e)
					}
					break
				}
				if res == 0 {
					w.failWrite(op, errShortWriteZero)
					break
				}
				if int(res) < op.left {
					w.rs.shortWrites++
					w.advance(op, int(res))
					c.cur = k // resubmit the rest; later ops were cancelled
					break
				}
				w.advance(op, int(res))
				c.cur = k + 1
			}
		}
	}
}

var errShortWriteZero = errors.New("segment: write made no progress (short write)")

// retry leaves c.cur at op (so it is resubmitted) unless op has been retried
// too often, in which case it fails the chain. It reports whether op will be
// retried.
func (w *uringWriter) retry(c *wchain, op *wop) bool {
	c.retries++
	if c.retries <= writerRetryMax {
		return true
	}
	err := fmt.Errorf("segment: gave up after %d retries", writerRetryMax)
	if op.fsync {
		w.failSync(c, err)
	} else {
		w.failWrite(op, err)
	}
	return false
}

func (w *uringWriter) failAll(err error) {
	for ci := range w.chains {
		c := &w.chains[ci]
		if c.cur >= c.op1 || c.err != nil || c.syncErr != nil {
			continue
		}
		op := &w.ops[c.cur]
		if op.fsync {
			w.failSync(c, err)
		} else {
			w.failWrite(op, err)
		}
	}
}
