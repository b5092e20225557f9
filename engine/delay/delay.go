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
	"quartet/engine/commitlog"
	"quartet/segment"
)

// Header keys added to scheduled records.
const (
	HeaderTopic     = "dly@topic"
	HeaderPartition = "dly@part"
	HeaderDue       = "dly@due"

	metaNamespace = "delay.cq" // cursors are consume-queue offsets (the old "delay" ones were partition offsets)
	scanMax       = 256
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
	Topic  string          // the schedule topic (one queue per level)
	Levels []time.Duration // level 1 first
}

// Scheduler delivers scheduled records when due.
type Scheduler struct {
	e       *engine.Engine
	cl      *commitlog.Store
	cfg     Config
	log     *slog.Logger
	cursors []int64
	waiting []atomic.Bool
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool

	delivered atomic.Uint64
}

// Open opens (or creates) the schedule topic in the commit log and starts
// delivery.
func Open(e *engine.Engine, cl *commitlog.Store, cfg Config, log *slog.Logger) (*Scheduler, error) {
	if len(cfg.Levels) == 0 {
		return nil, fmt.Errorf("delay: no levels")
	}
	if log == nil {
		log = slog.Default()
	}
	if _, err := cl.CreateTopic(cfg.Topic, len(cfg.Levels)); err != nil {
		return nil, fmt.Errorf("delay: create %s: %w", cfg.Topic, err)
	}
	s := &Scheduler{e: e, cl: cl, cfg: cfg, log: log.With("component", "delay"),
		cursors: make([]int64, len(cfg.Levels)), waiting: make([]atomic.Bool, len(cfg.Levels)),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	for i := range cfg.Levels {
		s.cursors[i] = cl.Queue(cfg.Topic, i).Min()
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

// Schedule stores one message for delivery to dest/partition after level's
// delay, in the schedule topic's queue level-1. c gets its queue and
// commit-log offsets. The arguments are copied before Schedule returns; it
// never blocks.
func (s *Scheduler) Schedule(level int, dest string, partition int, value []byte, headers []segment.Header, c commitlog.Completer) error {
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
	return s.cl.Append(s.cfg.Topic, level-1, []commitlog.Message{{Timestamp: now.UnixMilli(), Value: value, Headers: hs}}, c)
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
	buf := make([]byte, 0, 64<<10)
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
	q := s.cl.Queue(s.cfg.Topic, lvl)
	cur := s.cursors[lvl]
	if min := q.Min(); cur < min {
		cur = min
	}
	defer func() {
		if cur != s.cursors[lvl] {
			s.cursors[lvl] = cur
			s.e.Meta().Put(metaNamespace, s.key(lvl), strconv.AppendInt(nil, cur, 10), nil)
		}
	}()
	for cur < q.Max() {
		var wait time.Duration
		next, err := q.Scan(cur, scanMax, &buf, func(qoff, _ int64, r *segment.Record) error {
			due, dest, part, ok := target(r)
			if !ok {
				s.log.Warn("scheduled record without destination, dropped", "level", lvl+1, "offset", qoff)
				return nil
			}
			if d := time.Until(time.UnixMilli(due)); d > 0 {
				wait = d
				return commitlog.ErrStop
			}
			if err := s.deliver(r, dest, part); err != nil {
				s.log.Warn("deliver delayed record", "level", lvl+1, "offset", qoff, "topic", dest, "err", err)
				if errors.Is(err, commitlog.ErrUnknownTopic) {
					return nil
				}
				wait = retryDelay
				return commitlog.ErrStop
			}
			s.delivered.Add(1)
			return nil
		})
		if err != nil {
			s.log.Warn("read schedule", "level", lvl+1, "offset", cur, "err", err)
			if next == cur {
				next++ // skip what cannot be read
			}
		}
		cur = next
		if wait > 0 {
			return wait, buf
		}
	}
	if s.waiting[lvl].CompareAndSwap(false, true) {
		q.Wait(cur, func() {
			s.waiting[lvl].Store(false)
			s.poke()
		})
	}
	return 0, buf
}

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
	t, ok := s.cl.Topic(dest)
	if !ok {
		return fmt.Errorf("%w: %s", commitlog.ErrUnknownTopic, dest)
	}
	if part < 0 || part >= t.Queues() {
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
	ch := make(chan error, 1)
	m := []commitlog.Message{{Timestamp: time.Now().UnixMilli(), Value: r.Value, Headers: hs}}
	if err := s.cl.Append(dest, part, m, commitlog.CompleterFunc(func(_, _ int64, err error) { ch <- err })); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-s.done:
		return ErrClosed
	}
}
