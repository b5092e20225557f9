package segment

import (
	"io"
	"log/slog"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// syncWriter is the pwritev + fdatasync writer: the same rounds as the
// io_uring writer, with one pwritev per coalesced run and one fdatasync per
// FD with Sync requests, issued sequentially from the writer's locked thread.
// It calls the pwritev syscall directly on the writer's own (pinned, reused)
// iovec array; unix.Pwritev would build a new iovec slice per call.
type syncWriter struct {
	*writerCore
}

func newSyncWriter(logger *slog.Logger, faults *FaultPlan) (*syncWriter, error) {
	w := &syncWriter{newWriterCore(IOSync, logger, faults)}
	ready := make(chan error, 1)
	go w.run(func() error { return nil }, w.exec, func() {}, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return w, nil
}

func (w *syncWriter) extStats() WriterExtStats {
	s := w.extStatsCore()
	s.Backend = "pwritev+fdatasync"
	return s
}

func (w *syncWriter) exec() {
	for ci := range w.chains {
		c := &w.chains[ci]
		for k := c.op0; k < c.op1 && c.err == nil && c.syncErr == nil; k++ {
			op := &w.ops[k]
			if op.fsync {
				w.fsync(c)
				continue
			}
			w.pwriteOp(op)
		}
	}
}

func (w *syncWriter) fsync(c *wchain) {
	if err := w.faultFsync(c.fd); err != nil {
		w.failSync(c, err)
		return
	}
	t0 := time.Now()
	err := fdatasync(c.fd)
	w.recordFsync(time.Since(t0))
	if err != nil {
		w.failSync(c, err)
	}
}

// pwriteOp writes op with pwritev from the calling (writer) thread, retrying
// short writes, EINTR and EAGAIN; on failure it marks the chain failed.
func (w *writerCore) pwriteOp(op *wop) {
	fd := w.chains[op.chain].fd
	retries := 0
	for op.left > 0 {
		lim, err := w.faultWrite(op)
		if err != nil {
			w.failWrite(op, err)
			return
		}
		cnt := w.limit(op, lim)
		n, errno := pwritev(fd, &w.iov[op.iov0], int(cnt), op.off)
		w.unlimit(op)
		w.rs.writes++
		switch {
		case errno == unix.EINTR || errno == unix.EAGAIN:
			if retries++; retries > writerRetryMax {
				w.failWrite(op, errno)
				return
			}
			continue
		case errno != 0:
			w.failWrite(op, errno)
			return
		case n == 0:
			w.failWrite(op, io.ErrShortWrite)
			return
		}
		if n < op.left {
			w.rs.shortWrites++
		}
		w.advance(op, n)
	}
}

func pwritev(fd int, iov *unix.Iovec, cnt int, off int64) (int, syscall.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_PWRITEV, uintptr(fd), uintptr(unsafe.Pointer(iov)), uintptr(cnt), uintptr(off), 0, 0)
	return int(n), errno
}
