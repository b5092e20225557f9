package segment

import (
	"errors"
	"time"
)

// This file is the contract between a Log (which decides what goes where) and
// the Writer (which owns the disk I/O: one OS thread, io_uring or
// pwritev+fdatasync, group commit).

// IOMode selects the writer implementation.
type IOMode string

const (
	IOUring IOMode = "uring" // io_uring ring on a locked OS thread
	IOSync  IOMode = "sync"  // pwritev + fdatasync on a locked OS thread
	IOAuto  IOMode = "auto"  // uring when the kernel allows it, else sync (logged)
)

// FlushMode selects when an append completes.
type FlushMode string

const (
	FlushSync  FlushMode = "sync"  // completion after fdatasync covering the bytes
	FlushAsync FlushMode = "async" // completion after write(2); background fdatasync
)

// ErrWriterClosed fails requests submitted after Close.
var ErrWriterClosed = errors.New("segment: writer closed")

// Request is one write of Data at Pos in the file FD, optionally followed by an
// fdatasync of FD. Requests are owned by the submitter (pool them); the writer
// links them through next and never retains one after calling Done.
//
// Failure contract: when a write or fsync fails, the writer fails that request
// and every later request of the same round on the same FD; it keeps no
// sticky per-FD state. The Log stops submitting for that file once it sees a
// failure, waits until its in-flight requests have all completed, truncates
// the file back to its last good position and only then submits again.
type Request struct {
	FD   int
	Pos  int64
	Data []byte // may be empty for a pure fdatasync
	Sync bool   // fdatasync FD after this (and every earlier) write to it
	// Done is called on the writer's goroutine once the write (and sync) have
	// completed or failed. It must not block: hand off and return.
	Done func(r *Request, err error)

	next *Request
}

// WriterStats are cumulative counters (read with Writer.Stats).
type WriterStats struct {
	Requests       uint64        // requests completed
	Bytes          uint64        // bytes written
	Writes         uint64        // write syscalls / WRITEV SQEs
	Fsyncs         uint64        // fdatasync calls / FSYNC SQEs
	SyncedReqs     uint64        // requests with Sync that completed; SyncedReqs/Fsyncs = appends per fsync
	Failures       uint64        // requests failed
	FsyncTimeTotal time.Duration // summed fdatasync latency
}

// Writer serialises writes to segment files. Submit never blocks on I/O:
// requests queued while a round is in flight form the next round, whose
// writes to one file share one fdatasync (group commit). Per file, requests
// complete in submission order.
type Writer interface {
	Submit(r *Request)
	Stats() WriterStats
	Mode() IOMode
	// Close completes every submitted request, then stops the thread.
	Close() error
}
