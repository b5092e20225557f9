package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"quartet/segment"
)

// Errors of the engine.
var (
	ErrTopicExists       = errors.New("engine: topic already exists")
	ErrUnknownTopic      = errors.New("engine: unknown topic")
	ErrInvalidTopic      = errors.New("engine: invalid topic name")
	ErrInvalidPartitions = errors.New("engine: invalid partition count")
	ErrClosed            = errors.New("engine: closed")
)

const internalPreallocBytesDefault = 4 << 20

// Config is the engine's settings.
type Config struct {
	DataDir       string
	Flush         segment.FlushMode // sync (default) or async
	FlushInterval time.Duration     // async: background fdatasync interval (default 1 s)
	IO            segment.IOMode    // uring, sync or auto (default)
	// Defaults for topics that do not override them.
	SegmentBytes   int64
	SegmentAge     time.Duration
	RetentionBytes int64         // <= 0: no limit
	RetentionAge   time.Duration // <= 0: no limit
	// RetentionCheckInterval is how often retention runs (default 1 min).
	RetentionCheckInterval time.Duration
	// InternalPreallocBytes is segment.Config.PreallocBytes of the internal
	// logs (OpenInternalLog) and of the metadata catalog: logs shared by many
	// small, latency-bound appends (the RocketMQ commit log, AMQP queues,
	// group offsets and MQTT session state in Meta), where it halves a
	// small fdatasync on ext4. Topic partitions, bulk appends, do not use it.
	// Default 4 MiB; negative: off.
	InternalPreallocBytes int64
	// Writer, if set, is used instead of opening one (tests, fault injection).
	Writer segment.Writer
}

// Engine is the protocol-neutral broker core shared by every protocol.
type Engine struct {
	cfg      Config
	logger   *slog.Logger
	w        segment.Writer
	ownsW    bool
	meta     *Meta
	mu       sync.RWMutex
	topics   map[string]*Topic
	internal map[string]*segment.Log
	closed   bool
	stop     chan struct{}
	bg       sync.WaitGroup
}

// Open opens the engine over cfg.DataDir: the writer, the metadata catalog,
// and every topic the catalog lists (recovering their logs).
func Open(cfg Config, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("engine: no data directory")
	}
	if cfg.Flush == "" {
		cfg.Flush = segment.FlushSync
	}
	if cfg.IO == "" {
		cfg.IO = segment.IOAuto
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.RetentionCheckInterval <= 0 {
		cfg.RetentionCheckInterval = time.Minute
	}
	if cfg.InternalPreallocBytes == 0 {
		cfg.InternalPreallocBytes = internalPreallocBytesDefault
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e := &Engine{cfg: cfg, logger: logger, topics: map[string]*Topic{}, internal: map[string]*segment.Log{}, stop: make(chan struct{})}
	e.w = cfg.Writer
	if e.w == nil {
		w, err := segment.NewWriter(cfg.IO, logger)
		if err != nil {
			return nil, err
		}
		e.w, e.ownsW = w, true
	}
	var err error
	if e.meta, err = openMeta(metaDir(cfg.DataDir), e.w, segment.Config{SegmentBytes: metaSegmentBytes, Flush: cfg.Flush,
		PreallocBytes: max(cfg.InternalPreallocBytes, 0)}, logger); err != nil {
		e.closeWriter()
		return nil, err
	}
	if err := e.loadTopics(); err != nil {
		e.Close()
		return nil, err
	}
	e.bg.Add(1)
	go e.background()
	logger.Info("engine open", "data_dir", cfg.DataDir, "flush", cfg.Flush, "io", e.w.Mode(), "topics", len(e.topics))
	return e, nil
}

// Meta is the metadata catalog.
func (e *Engine) Meta() *Meta { return e.meta }

// Writer is the segment writer (for its statistics).
func (e *Engine) Writer() segment.Writer { return e.w }

// FlushMode is the engine's durability policy.
func (e *Engine) FlushMode() segment.FlushMode { return e.cfg.Flush }

// Logger is the engine's logger.
func (e *Engine) Logger() *slog.Logger { return e.logger }

func (e *Engine) segmentConfig(tc TopicConfig) segment.Config {
	c := segment.Config{
		SegmentBytes:   e.cfg.SegmentBytes,
		SegmentAge:     e.cfg.SegmentAge,
		RetentionBytes: e.cfg.RetentionBytes,
		RetentionAge:   e.cfg.RetentionAge,
		Flush:          e.cfg.Flush,
	}
	if tc.SegmentBytes > 0 {
		c.SegmentBytes = tc.SegmentBytes
	}
	switch {
	case tc.RetentionMs > 0:
		c.RetentionAge = time.Duration(tc.RetentionMs) * time.Millisecond
	case tc.RetentionMs < 0:
		c.RetentionAge = 0
	}
	switch {
	case tc.RetentionBytes > 0:
		c.RetentionBytes = tc.RetentionBytes
	case tc.RetentionBytes < 0:
		c.RetentionBytes = 0
	}
	return c
}

var internalNameRE = regexp.MustCompile(`^[A-Za-z0-9._%-]{1,200}$`)

// OpenInternalLog opens (creating) a log of the engine's own under
// data/internal/<name>, sharing the writer and flush policy, with no
// retention. The engine closes it on Close; opening the same name twice
// returns the same log.
func (e *Engine) OpenInternalLog(name string) (*segment.Log, error) {
	if !internalNameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: internal log %q", ErrInvalidTopic, name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if l := e.internal[name]; l != nil {
		return l, nil
	}
	cfg := segment.Config{SegmentBytes: e.cfg.SegmentBytes, SegmentAge: e.cfg.SegmentAge, Flush: e.cfg.Flush,
		PreallocBytes: max(e.cfg.InternalPreallocBytes, 0)}
	l, err := segment.Open(filepath.Join(e.cfg.DataDir, "internal", name), cfg, e.w, e.logger)
	if err != nil {
		return nil, err
	}
	e.internal[name] = l
	return l, nil
}

// background runs retention and, under flush=async, the periodic fdatasync.
func (e *Engine) background() {
	defer e.bg.Done()
	flush := time.NewTicker(e.cfg.FlushInterval)
	defer flush.Stop()
	retain := time.NewTicker(e.cfg.RetentionCheckInterval)
	defer retain.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-flush.C:
			if e.cfg.Flush == segment.FlushAsync {
				e.forEachLog(func(l *segment.Log) { l.Flush() })
			}
			if err := e.meta.compactOnline(); err != nil {
				e.logger.Error("metadata compaction failed", "err", err)
			}
		case now := <-retain.C:
			e.mu.RLock()
			var parts []*Partition
			for _, t := range e.topics {
				parts = append(parts, t.partitions...)
			}
			e.mu.RUnlock()
			for _, p := range parts {
				if n := p.log.Retain(now); n > 0 {
					e.logger.Info("retention deleted segments", "topic", p.topic.Name, "partition", p.Index, "segments", n)
				}
			}
		}
	}
}

func (e *Engine) forEachLog(fn func(l *segment.Log)) {
	e.mu.RLock()
	logs := []*segment.Log{e.meta.log}
	for _, t := range e.topics {
		for _, p := range t.partitions {
			logs = append(logs, p.log)
		}
	}
	for _, l := range e.internal {
		logs = append(logs, l)
	}
	e.mu.RUnlock()
	for _, l := range logs {
		fn(l)
	}
}

// Close finishes in-flight appends, syncs and closes every log, then the writer.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.stop)
	e.mu.Unlock()
	e.bg.Wait()
	var firstErr error
	e.forEachLog(func(l *segment.Log) {
		if err := l.Close(); err != nil && firstErr == nil {
			firstErr = err
		}
	})
	if err := e.closeWriter(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

func (e *Engine) closeWriter() error {
	if e.ownsW {
		return e.w.Close()
	}
	return nil
}

// Stats is a snapshot for metrics.
type Stats struct {
	Topics     int
	Partitions int
	Segments   int
	Bytes      int64
	Writer     segment.WriterStats
}

// Stats returns counts over every log.
func (e *Engine) Stats() Stats {
	var st Stats
	e.mu.RLock()
	st.Topics = len(e.topics)
	for _, t := range e.topics {
		st.Partitions += len(t.partitions)
	}
	e.mu.RUnlock()
	e.forEachLog(func(l *segment.Log) {
		ls := l.Stats()
		st.Segments += ls.Segments
		st.Bytes += ls.Bytes
	})
	st.Writer = e.w.Stats()
	return st
}
