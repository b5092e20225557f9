package segment

import (
	"fmt"
	"log/slog"

	"quartet/segment/internal/uring"
)

// NewWriter starts a writer goroutine (on its own locked OS thread) for mode:
// IOUring (error if the kernel refuses io_uring), IOSync (pwritev+fdatasync),
// or IOAuto: io_uring when available, else pwritev+fdatasync, logging why.
// A nil logger discards.
func NewWriter(mode IOMode, logger *slog.Logger) (Writer, error) {
	return newWriter(mode, logger, nil)
}

// UringAvailable reports whether io_uring can be used here and, if not, why
// (kernel.io_uring_disabled, seccomp, ENOSYS, ...). For `quartet doctor`.
func UringAvailable() error { return uringAvailable() }

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
		if err == nil {
			var w *uringWriter
			if w, err = newUringWriter(logger, faults, false); err == nil {
				logger.Info("segment writer", "io", "uring", "ring", w.flags)
				return w, nil
			}
		}
		logger.Warn("segment writer: io_uring unavailable, using pwritev+fdatasync", "io", "sync", "reason", err.Error())
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
