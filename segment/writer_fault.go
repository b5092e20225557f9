package segment

import "log/slog"

// FaultPlan injects storage faults into a writer, for tests (the Log's fault
// injection tests use it too). Hooks run on the writer goroutine, before each
// write or fdatasync attempt, and must not block. A nil hook lets everything
// through. While a hook is set the io_uring writer submits that kind of op
// one at a time (unlinked), so the hook sees exactly the op that runs next.
type FaultPlan struct {
	// Write is asked before writing n bytes at pos to fd (n may be the
	// remainder of an earlier short write). Return n to let it through, 0 < m
	// < n to make it short (only m bytes are written; the writer then retries
	// the rest, asking again), or an error to fail it with nothing written.
	// Returning 0 with a nil error fails it with io.ErrShortWrite.
	Write func(fd int, pos int64, n int) (int, error)
	// Fsync is asked before each fdatasync of fd; an error fails it without
	// calling fdatasync.
	Fsync func(fd int) error
}

// NewFaultWriter is NewWriter with plan's hooks installed. Faults are
// injected below the round logic, so coalescing, retries of short writes,
// and the failure rules (see writerCore) behave exactly as for real errors.
func NewFaultWriter(mode IOMode, logger *slog.Logger, plan *FaultPlan) (Writer, error) {
	return newWriter(mode, logger, plan)
}
