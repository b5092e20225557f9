package delay

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/segment"
)

// Header keys added to scheduled records.
const (
	HeaderTopic     = "dly@topic"
	HeaderPartition = "dly@part"
	HeaderDue       = "dly@due"

	metaNamespace = "delay"
	readBytes     = 256 << 10
	retryDelay    = time.Second
	idleWait      = time.Minute
)

// Errors of the package.
var (
	ErrLevel  = errors.New("delay: no such level")
	ErrClosed = errors.New("delay: closed")
)

// Config configures a Scheduler.
type Config struct {
	Topic  string          // the schedule topic (created with one partition per level)
	Levels []time.Duration // level 1 first
}

// Scheduler delivers scheduled records when due.
type Scheduler struct {
	e       *engine.Engine
	cfg     Config
	t       *engine.Topic
	log     *slog.Logger
	cursors []int64
	waiting []atomic.Bool
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool

	delivered atomic.Uint64
}

// Open opens (or creates) the schedule topic and starts delivery.
func Open(e *engine.Engine, cfg Config, log *slog.Logger) (*Scheduler, error) {
	if len(cfg.Levels) == 0 {
		return nil, fmt.Errorf("delay: no levels")
	}
	if log == nil {
		log = slog.Default()
	}
	t, ok := e.Topic(cfg.Topic)
	if !ok {
		var err error
		t, err = e.CreateTopic(cfg.Topic, len(cfg.Levels), engine.TopicConfig{})
		if err != nil && !errors.Is(err, engine.ErrTopicExists) {
			return nil, fmt.Errorf("delay: create %s: %w", cfg.Topic, err)
		}
		if t == nil {
			t, _ = e.Topic(cfg.Topic)
		}
	}
	if n := len(t.Partitions()); n < len(cfg.Levels) {
		if err := e.CreatePartitions(cfg.Topic, len(cfg.Levels)); err != nil {
			return nil, fmt.Errorf("delay: grow %s: %w", cfg.Topic, err)
		}
	}
	s := &Scheduler{e: e, cfg: cfg, t: t, log: log.With("component", "delay"),
		cursors: make([]int64, len(cfg.Levels)), waiting: make([]atomic.Bool, len(cfg.Levels)),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	parts := t.Partitions()
	for i := range cfg.Levels {
		s.cursors[i] = parts[i].StartOffset()
		if v, ok := e.Meta().Get(metaNamespace, s.key(i)); ok {
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n > s.cursors[i] {
				s.cursors[i] = n
			}
		}
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

func (s *Scheduler) key(level int) string { return s.cfg.Topic + "/" + strconv.Itoa(level) }

// Delay is the delay of level (1-based).
func (s *Scheduler) Delay(level int) time.Duration {
	if level < 1 || level > len(s.cfg.Levels) {
		return 0
	}
	return s.cfg.Levels[level-1]
}

// Levels is the number of levels.
func (s *Scheduler) Levels() int { return len(s.cfg.Levels) }

// Delivered counts records delivered since Open.
func (s *Scheduler) Delivered() uint64 { return s.delivered.Load() }

// Schedule stores one record for delivery to dest/partition after level's
// delay. c gets the record's offset in the level's schedule partition. The
// arguments are copied before Schedule returns; it never blocks.
func (s *Scheduler) Schedule(level int, dest string, partition int, key, value []byte, headers []segment.Header, c segment.Completer) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if level < 1 || level > len(s.cfg.Levels) {
		return fmt.Errorf("%w: %d", ErrLevel, level)
	}
	now := time.Now()
	due := now.Add(s.cfg.Levels[level-1]).UnixMilli()
	hs := make([]segment.Header, 0, len(headers)+3)
	hs = append(hs, headers...)
	hs = append(hs,
		segment.Header{Key: []byte(HeaderTopic), Value: []byte(dest)},
		segment.Header{Key: []byte(HeaderPartition), Value: strconv.AppendInt(nil, int64(partition), 10)},
		segment.Header{Key: []byte(HeaderDue), Value: strconv.AppendInt(nil, due, 10)})
	var bb segment.BatchBuilder
	bb.Reset()
	bb.Add(now.UnixMilli(), key, value, hs)
	return s.t.Partitions()[level-1].Append(bb.Bytes(), c)
}

// Close stops delivery (pending records stay scheduled).
func (s *Scheduler) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.wg.Wait()
	return nil
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) run() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 0, readBytes)
	for {
		next := idleWait
		for lvl := range s.cfg.Levels {
			if s.closed.Load() {
				return
			}
			var d time.Duration
			d, buf = s.deliverDue(lvl, buf)
			if d > 0 && d < next {
				next = d
			}
		}
		timer.Reset(next)
		select {
		case <-s.done:
			return
		case <-s.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

// deliverDue delivers level lvl's due records; it returns how long until the
// next one is due (0: none pending; a waiter is registered).
func (s *Scheduler) deliverDue(lvl int, buf []byte) (time.Duration, []byte) {
	p := s.t.Partitions()[lvl]
	cur := s.cursors[lvl]
	if start := p.StartOffset(); cur < start {
		cur = start
	}
	defer func() {
		if cur != s.cursors[lvl] {
			s.cursors[lvl] = cur
			s.e.Meta().Put(metaNamespace, s.key(lvl), strconv.AppendInt(nil, cur, 10), nil)
		}
	}()
	for cur < p.HighWatermark() {
		b, err := p.ReadBytes(buf[:0], cur, readBytes)
		if err != nil {
			s.log.Warn("read schedule", "level", lvl+1, "offset", cur, "err", err)
			return retryDelay, buf
		}
		buf = b[:0]
		var wait time.Duration
		progressed := false
		ferr := segment.WalkRecords(b, func(r *segment.Record) error {
			if r.Offset < cur {
				return nil
			}
			progressed = true
			due, dest, part, ok := target(r)
			if !ok {
				s.log.Warn("scheduled record without destination, dropped", "level", lvl+1, "offset", r.Offset)
				cur = r.Offset + 1
				return nil
			}
			if d := time.Until(time.UnixMilli(due)); d > 0 {
				wait = d
				return errStop
			}
			if err := s.deliver(r, dest, part); err != nil {
				s.log.Warn("deliver delayed record", "level", lvl+1, "offset", r.Offset, "topic", dest, "err", err)
				if errors.Is(err, engine.ErrUnknownTopic) {
					cur = r.Offset + 1
					return nil
				}
				wait = retryDelay
				return errStop
			}
			s.delivered.Add(1)
			cur = r.Offset + 1
			return nil
		})
		if ferr != nil && ferr != errStop {
			s.log.Warn("bad schedule batch, skipped", "level", lvl+1, "offset", cur, "err", ferr)
			cur++
			continue
		}
		if wait > 0 {
			return wait, buf
		}
		if !progressed {
			if h, err := segment.ParseBatchHeader(b); err == nil && h.LastOffset() >= cur {
				cur = h.LastOffset() + 1
			} else {
				return retryDelay, buf
			}
		}
	}
	if s.waiting[lvl].CompareAndSwap(false, true) {
		p.Wait(cur, func() {
			s.waiting[lvl].Store(false)
			s.poke()
		})
	}
	return 0, buf
}

var errStop = errors.New("delay: stop")

func target(r *segment.Record) (due int64, dest string, part int, ok bool) {
	var have int
	for _, h := range r.Headers {
		switch string(h.Key) {
		case HeaderTopic:
			dest = string(h.Value)
			have++
		case HeaderPartition:
			n, err := strconv.Atoi(string(h.Value))
			if err == nil {
				part = n
				have++
			}
		case HeaderDue:
			n, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err == nil {
				due = n
				have++
			}
		}
	}
	return due, dest, part, have == 3
}

// deliver appends r (without the scheduler's headers) to dest/part and waits.
func (s *Scheduler) deliver(r *segment.Record, dest string, part int) error {
	t, ok := s.e.Topic(dest)
	if !ok {
		return fmt.Errorf("%w: %s", engine.ErrUnknownTopic, dest)
	}
	parts := t.Partitions()
	if part < 0 || part >= len(parts) {
		part = 0
	}
	hs := make([]segment.Header, 0, len(r.Headers))
	for _, h := range r.Headers {
		switch string(h.Key) {
		case HeaderTopic, HeaderPartition, HeaderDue:
			continue
		}
		hs = append(hs, h)
	}
	var bb segment.BatchBuilder
	bb.Reset()
	bb.Add(time.Now().UnixMilli(), r.Key, r.Value, hs)
	ch := make(chan error, 1)
	if err := parts[part].Append(bb.Bytes(), doneChan(ch)); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-s.done:
		return ErrClosed
	}
}

type doneChan chan error

func (c doneChan) AppendDone(_ int64, err error) { c <- err }
