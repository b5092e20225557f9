package commitlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/segment"
)

// Errors of the package.
var (
	ErrInvalidTopic = errors.New("commitlog: invalid topic")
	ErrInvalidQueue = errors.New("commitlog: invalid queue")
	ErrUnknownTopic = errors.New("commitlog: unknown topic")
	ErrClosed       = errors.New("commitlog: closed")
	// ErrStop, returned by a Scan callback, ends the scan without error.
	ErrStop = errors.New("commitlog: stop")
)

const (
	metaNSTopic       = "rmq.topic"
	topicBytesMax     = 127
	queuesMax         = 1024
	readBytesMin      = 16 << 10
	readBytesMax      = 1 << 20
	retainEvery       = 12 // checkpoints between retention runs
	defaultName       = "rocketmq-commitlog"
	checkpointDefault = 5 * time.Second
)

// Config configures a Store.
type Config struct {
	// Name of the engine internal log (default "rocketmq-commitlog").
	Name string
	// CheckpointInterval between consume-queue checkpoints (default 5 s;
	// each costs an fdatasync per queue file written plus one, on the disk
	// the commit log's group commits use, and recovery rescans the commit
	// log written since the last one).
	CheckpointInterval time.Duration
	// RetentionAge and RetentionBytes bound the commit log (whole segments
	// are deleted, never the active one); 0 keeps everything. When either is
	// set, the log's segment size and age become SegmentBytes and SegmentAge
	// (0: the segment package defaults) instead of the engine's.
	RetentionAge   time.Duration
	RetentionBytes int64
	SegmentBytes   int64
	SegmentAge     time.Duration
}

// Message is one message to append.
type Message struct {
	Timestamp int64 // ms; 0: now
	Value     []byte
	Headers   []segment.Header
}

// Completer learns the outcome of an Append, on the writer's goroutine: the
// queue offset and commit-log offset of the first message (the others follow
// densely). It must not block.
type Completer interface {
	Done(queueOffset, commitOffset int64, err error)
}

// CompleterFunc adapts a function to Completer.
type CompleterFunc func(queueOffset, commitOffset int64, err error)

// Done calls f.
func (f CompleterFunc) Done(q, c int64, err error) { f(q, c, err) }

// Topic is a named set of queues.
type Topic struct {
	Name   string
	queues atomic.Int32
}

// Queues is the topic's queue count.
func (t *Topic) Queues() int { return int(t.queues.Load()) }

type qkey struct {
	topic string
	id    int
}

// Store is the commit log with its consume queues and topic catalog.
type Store struct {
	e   *engine.Engine
	cfg Config
	log *segment.Log
	dir string // consume-queue directory
	lg  *slog.Logger

	tmu    sync.RWMutex
	topics map[string]*Topic

	mu     sync.Mutex // held while indexing completions; a checkpoint's cut
	end    int64      // commit-log offsets below end are indexed
	qmu    sync.RWMutex
	queues map[qkey]*Queue

	ckMu   sync.Mutex // one checkpoint at a time
	ckEnd  int64
	ckSync atomic.Uint64 // fdatasyncs spent on checkpoints

	bytesIn atomic.Int64
	recsIn  atomic.Int64

	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup

	builders sync.Pool
}

// Open opens the commit log (an engine internal log), loads the topic
// catalog, recovers the consume queues and starts checkpointing.
func Open(e *engine.Engine, cfg Config, logger *slog.Logger) (*Store, error) {
	if cfg.Name == "" {
		cfg.Name = defaultName
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = checkpointDefault
	}
	if logger == nil {
		logger = slog.Default()
	}
	l, err := e.OpenInternalLog(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	if cfg.RetentionAge > 0 || cfg.RetentionBytes > 0 {
		l.SetConfig(segment.Config{RetentionAge: cfg.RetentionAge, RetentionBytes: cfg.RetentionBytes,
			SegmentBytes: cfg.SegmentBytes, SegmentAge: cfg.SegmentAge})
	}
	s := &Store{e: e, cfg: cfg, log: l, dir: filepath.Join(filepath.Dir(l.Dir()), cfg.Name+".cq"),
		lg: logger.With("component", "commitlog"), topics: map[string]*Topic{}, queues: map[qkey]*Queue{},
		done: make(chan struct{})}
	s.builders.New = func() any { return new(segment.BatchBuilder) }
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	e.Meta().Range(metaNSTopic, func(k string, v []byte) bool {
		if n, err := strconv.Atoi(string(v)); err == nil && n > 0 {
			t := &Topic{Name: k}
			t.queues.Store(int32(n))
			s.topics[k] = t
		}
		return true
	})
	start := time.Now()
	scanned, err := s.recover()
	if err != nil {
		return nil, err
	}
	s.lg.Info("commit log open", "start", l.StartOffset(), "end", s.end, "queues", len(s.queues),
		"rescanned", scanned, "took", time.Since(start).Round(time.Millisecond))
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Log is the commit log.
func (s *Store) Log() *segment.Log { return s.log }

// Close writes a final checkpoint and stops. The engine closes the log.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.wg.Wait()
	err := s.checkpoint()
	st := s.Stats()
	s.lg.Info("commit log closed", "end", st.End, "queues", st.Queues, "checkpoint_fsyncs", st.CheckpointFsyncs)
	s.qmu.RLock()
	for _, q := range s.queues {
		q.mu.Lock()
		if q.file != nil {
			q.file.Close()
			q.file = nil
		}
		q.mu.Unlock()
	}
	s.qmu.RUnlock()
	return err
}

// ValidTopic reports whether name can be a topic here (it names files).
func ValidTopic(name string) bool {
	if name == "" || len(name) > topicBytesMax || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '%' || c == '|' || c == '_' || c == '-' || c == '.':
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		default:
			return false
		}
	}
	return true
}

// CreateTopic creates name with queues queues, or grows an existing topic to
// that many; it returns once the catalog entry is durable.
func (s *Store) CreateTopic(name string, queues int) (*Topic, error) {
	if !ValidTopic(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	if queues <= 0 || queues > queuesMax {
		return nil, fmt.Errorf("%w: %d queues", ErrInvalidQueue, queues)
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	s.tmu.Lock()
	t, ok := s.topics[name]
	if ok && t.Queues() >= queues {
		s.tmu.Unlock()
		return t, nil
	}
	if !ok {
		t = &Topic{Name: name}
		s.topics[name] = t
	}
	done := make(chan error, 1)
	s.e.Meta().Put(metaNSTopic, name, []byte(strconv.Itoa(queues)), func(err error) { done <- err })
	err := <-done
	if err == nil {
		t.queues.Store(int32(queues))
	} else if !ok {
		delete(s.topics, name)
	}
	s.tmu.Unlock()
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Topic returns the named topic.
func (s *Store) Topic(name string) (*Topic, bool) {
	s.tmu.RLock()
	defer s.tmu.RUnlock()
	t, ok := s.topics[name]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (s *Store) Topics() []*Topic {
	s.tmu.RLock()
	ts := make([]*Topic, 0, len(s.topics))
	for _, t := range s.topics {
		ts = append(ts, t)
	}
	s.tmu.RUnlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// Queue returns the consume queue of topic/id (an empty one if nothing was
// ever stored there).
func (s *Store) Queue(topic string, id int) *Queue {
	k := qkey{topic, id}
	s.qmu.RLock()
	q := s.queues[k]
	s.qmu.RUnlock()
	if q != nil {
		return q
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if q = s.queues[k]; q == nil {
		q = &Queue{s: s, Topic: topic, ID: id}
		s.queues[k] = q
	}
	return q
}

// appendKey tags a record with its destination.
func appendKey(dst []byte, topic string, id int) []byte {
	dst = append(dst, topic...)
	dst = append(dst, 0)
	return strconv.AppendInt(dst, int64(id), 10)
}

// parseKey splits a record key into topic and queue.
func parseKey(k []byte) (string, int, bool) {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == 0 {
			id, err := strconv.Atoi(string(k[i+1:]))
			if err != nil || id < 0 || i == 0 {
				return "", 0, false
			}
			return string(k[:i]), id, true
		}
	}
	return "", 0, false
}

type appendOp struct {
	q *Queue
	n int
	c Completer
}

// Append stores msgs (one RecordBatch v2) for topic/queue. The queue need not
// be declared by a topic (callers check); c learns the offsets once the batch
// is durable per the flush policy. Arguments are copied; it never blocks.
func (s *Store) Append(topic string, queue int, msgs []Message, c Completer) error {
	if len(msgs) == 0 {
		return fmt.Errorf("%w: empty append", ErrInvalidQueue)
	}
	if queue < 0 || queue >= queuesMax {
		return fmt.Errorf("%w: %d", ErrInvalidQueue, queue)
	}
	if s.closed.Load() {
		return ErrClosed
	}
	q := s.Queue(topic, queue)
	bb := s.builders.Get().(*segment.BatchBuilder)
	bb.Reset()
	var kb [160]byte
	key := appendKey(kb[:0], topic, queue)
	for i := range msgs {
		bb.Add(msgs[i].Timestamp, key, msgs[i].Value, msgs[i].Headers)
	}
	b := bb.Bytes()
	s.bytesIn.Add(int64(len(b)))
	s.recsIn.Add(int64(len(msgs)))
	err := s.log.Append(b, &appendOp{q: q, n: len(msgs), c: c})
	if cap(b) <= 1<<20 {
		s.builders.Put(bb)
	}
	return err
}

func (op *appendOp) AppendDone(base int64, err error) {
	if err != nil {
		if op.c != nil {
			op.c.Done(-1, -1, err)
		}
		return
	}
	q := op.q
	q.s.mu.Lock()
	q.mu.Lock()
	qoff := q.maxLocked()
	for i := 0; i < op.n; i++ {
		q.ents = append(q.ents, base+int64(i))
	}
	ready := q.readyLocked(qoff + int64(op.n))
	q.mu.Unlock()
	if e := base + int64(op.n); e > q.s.end {
		q.s.end = e
	}
	q.s.mu.Unlock()
	if op.c != nil {
		op.c.Done(qoff, base, nil)
	}
	for _, w := range ready {
		w.fn()
	}
}

// readSize estimates the bytes holding commit-log offsets first..last.
func (s *Store) readSize(first, last int64) int {
	per := int64(1024)
	if n := s.recsIn.Load(); n > 64 {
		per = s.bytesIn.Load()/n + 16
	}
	sz := (last-first+1)*per + 4096
	if sz < readBytesMin {
		sz = readBytesMin
	}
	if sz > readBytesMax {
		sz = readBytesMax
	}
	return int(sz)
}

// ReadAt calls fn with the record at commit-log offset off; found is false
// when no such record is readable.
func (s *Store) ReadAt(off int64, fn func(topic string, queue int, r *segment.Record)) (found bool, err error) {
	b, err := s.log.ReadBytes(nil, off, 64<<10)
	if err != nil {
		return false, err
	}
	err = segment.WalkRecords(b, func(r *segment.Record) error {
		if r.Offset != off {
			return nil
		}
		t, id, ok := parseKey(r.Key)
		if !ok {
			return ErrStop
		}
		found = true
		fn(t, id, r)
		return ErrStop
	})
	if err == ErrStop {
		err = nil
	}
	return found, err
}

// Stats is a snapshot for metrics and tests.
type Stats struct {
	Queues           int
	Entries          int64 // consume-queue entries held in memory
	End              int64 // commit-log offsets below End are indexed
	CheckpointEnd    int64
	CheckpointFsyncs uint64
}

// Stats returns counts over every queue.
func (s *Store) Stats() Stats {
	var st Stats
	s.qmu.RLock()
	st.Queues = len(s.queues)
	for _, q := range s.queues {
		q.mu.Lock()
		st.Entries += int64(len(q.ents))
		q.mu.Unlock()
	}
	s.qmu.RUnlock()
	s.mu.Lock()
	st.End = s.end
	s.mu.Unlock()
	s.ckMu.Lock()
	st.CheckpointEnd = s.ckEnd
	s.ckMu.Unlock()
	st.CheckpointFsyncs = s.ckSync.Load()
	return st
}

func (s *Store) run() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.CheckpointInterval)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			if err := s.checkpoint(); err != nil {
				s.lg.Warn("consume queue checkpoint failed", "err", err)
			}
			if n++; n%retainEvery == 0 && (s.cfg.RetentionAge > 0 || s.cfg.RetentionBytes > 0) {
				if k := s.log.Retain(now); k > 0 {
					s.lg.Info("retention deleted commit log segments", "segments", k)
				}
				s.trim()
			}
		}
	}
}

// trim moves every queue's start to the log's start.
func (s *Store) trim() {
	start := s.log.StartOffset()
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	for _, q := range s.queues {
		q.mu.Lock()
		q.trimLocked(start)
		q.mu.Unlock()
	}
}
