package appliance

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the appliance's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs Serve on ephemeral loopback ports and waits for `ready`.
func startServe(t *testing.T, cfg Config) (stop func() error, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, logger) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "msg=ready") {
		select {
		case err := <-done:
			t.Fatalf("Serve returned before ready: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready line:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() error { cancel(); return <-done }, logs
}

func ephemeralConfig(dir string) Config {
	cfg := Default()
	cfg.DataDir = dir
	for _, l := range cfg.Listeners.ptrs() {
		if l.Addr != "" {
			l.Addr = "127.0.0.1:0"
		}
	}
	return cfg
}

func TestServeReadyAndCleanStop(t *testing.T) {
	dir := t.TempDir()
	stop, logs := startServe(t, ephemeralConfig(dir))
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Fatalf("no stopped line:\n%s", logs)
	}
	// A second start on the same data directory recovers and serves.
	stop, _ = startServe(t, ephemeralConfig(dir))
	if err := stop(); err != nil {
		t.Fatalf("second Serve: %v", err)
	}
}
