package segment

import (
	"fmt"
	"log/slog"

	"quartet/internal/uring"
)

// NewWriter starts a writer goroutine (on its own locked OS thread) for mode:
// IOUring (error if the kernel refuses io_uring), IOSync (pwritev+fdatasync),
// or IOAuto: the faster of the two where io_uring is available (see
// autoPrefersUring), else pwritev+fdatasync; it logs its choice and why.
// A nil logger discards.
func NewWriter(mode IOMode, logger *slog.Logger) (Writer, error) {
	return newWriter(mode, logger, nil)
}

// UringAvailable reports whether io_uring can be used here and, if not, why
// (kernel.io_uring_disabled, seccomp, ENOSYS, ...). For `quartet doctor`.
func UringAvailable() error { return uringAvailable() }

// autoPrefersUring makes io=auto pick io_uring when the kernel allows it.
// Off, because benchmarks decide (segment/PERF.md, 2026-11-25, Linux 6.18,
// ext4): medians of 5 interleaved runs put the io_uring writer at 0.61–1.12×
// the pwritev writer's Log append throughput (1.00–1.03× at 16 producers
// under flush=sync, 0.64× for a single producer), never clearly ahead, and
// buffered WRITEV SQEs on ext4 run on an io-wq worker thread (a hand-off per
// round that pwritev does not pay). Flip it where io_uring measures faster.
var autoPrefersUring = false

// uringAvailable is replaced by tests of the fallback.
var uringAvailable = uring.Available

func newWriter(mode IOMode, logger *slog.Logger, faults *FaultPlan) (Writer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch mode {
	case IOSync:
		return newSyncWriter(logger, faults)
	case IOUring:
		if err := uringAvailable(); err != nil {
			return nil, fmt.Errorf("segment: io=uring: %w", err)
		}
		w, err := newUringWriter(logger, faults, false)
		if err != nil {
			return nil, fmt.Errorf("segment: io=uring: %w", err)
		}
		return w, nil
	case IOAuto, "":
		err := uringAvailable()
		if err == nil && autoPrefersUring {
			var w *uringWriter
			if w, err = newUringWriter(logger, faults, false); err == nil {
				logger.Info("segment writer", "io", "uring", "ring", w.flags)
				return w, nil
			}
		}
		if err != nil {
			logger.Warn("segment writer: io_uring unavailable, using pwritev+fdatasync", "io", "sync", "reason", err.Error())
		} else {
			logger.Info("segment writer: io=auto uses pwritev+fdatasync; io_uring is available but measured no faster for buffered appends (segment/PERF.md); io=uring forces it", "io", "sync")
		}
		return newSyncWriter(logger, faults)
	case ioUringInline:
		if err := uringAvailable(); err != nil {
			return nil, fmt.Errorf("segment: io=uring: %w", err)
		}
		w, err := newUringWriter(logger, faults, true)
		if err != nil {
			return nil, fmt.Errorf("segment: io=uring: %w", err)
		}
		return w, nil
	default:
		return nil, fmt.Errorf("segment: unknown io mode %q (want uring, sync or auto)", mode)
	}
}
