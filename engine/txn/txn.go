package txn

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/engine/commitlog"
	"quartet/segment"
)

// Header keys added to half records.
const (
	HeaderTopic     = "txn@topic"
	HeaderPartition = "txn@part"
	HeaderGroup     = "txn@group"

	metaNamespace = "txn.cl" // keys are commit-log offsets (the old "txn" ones were partition offsets)
	scanMax       = 4096
	tickMax       = time.Second
)

// Errors of the package.
var (
	ErrUnknown = errors.New("txn: no such pending half message")
	ErrFull    = errors.New("txn: too many pending half messages")
	ErrClosed  = errors.New("txn: closed")
)

// Config configures a Store.
type Config struct {
	Topic         string        // the half-message topic
	CheckInterval time.Duration // between checks of one half message (default 1 min)
	Timeout       time.Duration // age before the first check (default 6 s)
	CheckMax      int           // checks before discarding (default 15)
	PendingMax    int           // pending half messages held (default 100,000)
}

// Half is one pending half message. Its fields are owned by the store; Check
// functions must not keep references beyond the call.
type Half struct {
	Offset      int64 // commit-log offset (the half's identity)
	QueueOffset int64 // offset in the half topic's queue
	Group       string
	Topic       string
	Partition   int
	Timestamp   int64 // ms, when prepared
	Value       []byte
	Headers     []segment.Header // without the store's headers
	Checks      int

	lastCheck time.Time
	busy      bool // a commit is in flight
}

// CheckFunc asks a producer of h.Group about h; it reports whether a check
// was actually sent (a producer was connected). It must not block.
type CheckFunc func(h *Half) bool

// Store holds the half messages.
type Store struct {
	e     *engine.Engine
	cl    *commitlog.Store
	q     *commitlog.Queue
	cfg   Config
	check CheckFunc
	log   *slog.Logger

	mu       sync.Mutex
	pending  map[int64]*Half // by commit-log offset
	low      int64           // queue offset: every half below is decided
	inflight int             // prepares appended but not yet pending

	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// Open opens (or creates) the half topic in the commit log, reloads
// undecided half messages and starts the check-back loop.
func Open(e *engine.Engine, cl *commitlog.Store, cfg Config, check CheckFunc, log *slog.Logger) (*Store, error) {
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 6 * time.Second
	}
	if cfg.CheckMax <= 0 {
		cfg.CheckMax = 15
	}
	if cfg.PendingMax <= 0 {
		cfg.PendingMax = 100_000
	}
	if log == nil {
		log = slog.Default()
	}
	if _, err := cl.CreateTopic(cfg.Topic, 1); err != nil {
		return nil, fmt.Errorf("txn: create %s: %w", cfg.Topic, err)
	}
	s := &Store{e: e, cl: cl, q: cl.Queue(cfg.Topic, 0), cfg: cfg, check: check, log: log.With("component", "txn"),
		pending: map[int64]*Half{}, done: make(chan struct{})}
	if err := s.reload(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

func opKey(off int64) string  { return "op/" + strconv.FormatInt(off, 10) }
func chkKey(off int64) string { return "chk/" + strconv.FormatInt(off, 10) }

func (s *Store) reload() error {
	m := s.e.Meta()
	low := s.q.Min()
	if v, ok := m.Get(metaNamespace, "low"); ok {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n > low {
			low = n
		}
	}
	decided := map[int64]bool{}
	checks := map[int64]int{}
	m.Range(metaNamespace, func(k string, v []byte) bool {
		switch {
		case strings.HasPrefix(k, "op/"):
			if n, err := strconv.ParseInt(k[3:], 10, 64); err == nil {
				decided[n] = true
			}
		case strings.HasPrefix(k, "chk/"):
			if n, err := strconv.ParseInt(k[4:], 10, 64); err == nil {
				c, _ := strconv.Atoi(string(v))
				checks[n] = c
			}
		}
		return true
	})
	s.low = low
	var buf []byte
	for cur := low; cur < s.q.Max(); {
		next, err := s.q.Scan(cur, scanMax, &buf, func(qoff, coff int64, r *segment.Record) error {
			if decided[coff] {
				return nil
			}
			h := halfFrom(r)
			if h == nil {
				return nil
			}
			h.Offset, h.QueueOffset = coff, qoff
			h.Checks = checks[coff]
			s.pending[coff] = h
			return nil
		})
		if err != nil {
			return fmt.Errorf("txn: reload at %d: %w", cur, err)
		}
		if next == cur {
			break
		}
		cur = next
	}
	if len(s.pending) > 0 {
		s.log.Info("pending half messages reloaded", "count", len(s.pending))
	}
	return nil
}

// halfFrom copies a half record.
func halfFrom(r *segment.Record) *Half {
	h := &Half{Timestamp: r.Timestamp, Partition: -1, Value: clone(r.Value)}
	for _, x := range r.Headers {
		switch string(x.Key) {
		case HeaderTopic:
			h.Topic = string(x.Value)
		case HeaderPartition:
			if n, err := strconv.Atoi(string(x.Value)); err == nil {
				h.Partition = n
			}
		case HeaderGroup:
			h.Group = string(x.Value)
		default:
			h.Headers = append(h.Headers, segment.Header{Key: clone(x.Key), Value: clone(x.Value)})
		}
	}
	if h.Topic == "" || h.Partition < 0 {
		return nil
	}
	return h
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Prepare stores a half message for dest/partition on behalf of group. c
// gets the half's queue and commit-log offsets once it is durable. Arguments
// are copied; it never blocks.
func (s *Store) Prepare(group, dest string, partition int, value []byte, headers []segment.Header, c commitlog.Completer) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	if len(s.pending)+s.inflight >= s.cfg.PendingMax {
		s.mu.Unlock()
		return ErrFull
	}
	s.inflight++
	s.mu.Unlock()
	hs := make([]segment.Header, 0, len(headers)+3)
	hs = append(hs, headers...)
	hs = append(hs,
		segment.Header{Key: []byte(HeaderTopic), Value: []byte(dest)},
		segment.Header{Key: []byte(HeaderPartition), Value: strconv.AppendInt(nil, int64(partition), 10)},
		segment.Header{Key: []byte(HeaderGroup), Value: []byte(group)})
	now := time.Now().UnixMilli()
	h := &Half{Group: group, Topic: dest, Partition: partition, Timestamp: now, Value: clone(value)}
	for _, x := range headers {
		h.Headers = append(h.Headers, segment.Header{Key: clone(x.Key), Value: clone(x.Value)})
	}
	err := s.cl.Append(s.cfg.Topic, 0, []commitlog.Message{{Timestamp: now, Value: value, Headers: hs}}, &prepared{s: s, h: h, c: c})
	if err != nil {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}
	return err
}

type prepared struct {
	s *Store
	h *Half
	c commitlog.Completer
}

func (p *prepared) Done(qoff, coff int64, err error) {
	p.s.mu.Lock()
	if err == nil {
		p.h.Offset, p.h.QueueOffset = coff, qoff
		p.s.pending[coff] = p.h
	}
	p.s.inflight--
	p.s.mu.Unlock()
	if p.c != nil {
		p.c.Done(qoff, coff, err)
	}
}

// Get returns a copy of the pending half at offset.
func (s *Store) Get(offset int64) (Half, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.pending[offset]
	if !ok {
		return Half{}, false
	}
	return *h, true
}

// Pending is the number of undecided half messages.
func (s *Store) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Commit appends the half with commit-log offset offset to its destination,
// with extra headers added, and records the decision. done gets the
// destination queue and the message's queue offset (from the writer's
// goroutine).
func (s *Store) Commit(offset int64, extra []segment.Header, done func(queue int, off int64, err error)) error {
	s.mu.Lock()
	h, ok := s.pending[offset]
	if !ok || h.busy {
		s.mu.Unlock()
		return ErrUnknown
	}
	h.busy = true
	s.mu.Unlock()
	fail := func(err error) error {
		s.mu.Lock()
		h.busy = false
		s.mu.Unlock()
		return err
	}
	t, ok := s.cl.Topic(h.Topic)
	if !ok {
		return fail(fmt.Errorf("%w: %s", commitlog.ErrUnknownTopic, h.Topic))
	}
	part := h.Partition
	if part < 0 || part >= t.Queues() {
		part = 0
	}
	hs := append(append([]segment.Header{}, h.Headers...), extra...)
	c := commitlog.CompleterFunc(func(qoff, _ int64, err error) {
		if err != nil {
			s.mu.Lock()
			h.busy = false
			s.mu.Unlock()
			done(part, qoff, err)
			return
		}
		s.decide(offset, "c")
		done(part, qoff, nil)
	})
	if err := s.cl.Append(h.Topic, part, []commitlog.Message{{Timestamp: time.Now().UnixMilli(), Value: h.Value, Headers: hs}}, c); err != nil {
		return fail(err)
	}
	return nil
}

// Rollback drops the half at offset.
func (s *Store) Rollback(offset int64) error {
	s.mu.Lock()
	h, ok := s.pending[offset]
	if !ok || h.busy {
		s.mu.Unlock()
		return ErrUnknown
	}
	s.mu.Unlock()
	s.decide(offset, "r")
	return nil
}

func (s *Store) decide(offset int64, op string) {
	s.mu.Lock()
	delete(s.pending, offset)
	s.mu.Unlock()
	m := s.e.Meta()
	m.Put(metaNamespace, opKey(offset), []byte(op), nil)
	m.Delete(metaNamespace, chkKey(offset), nil)
}

// Close stops the check loop.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.wg.Wait()
	return nil
}

func (s *Store) run() {
	defer s.wg.Done()
	tick := s.cfg.CheckInterval
	if s.cfg.Timeout < tick {
		tick = s.cfg.Timeout
	}
	if tick > tickMax {
		tick = tickMax
	}
	t := time.NewTicker(tick / 2)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.checkRound(now)
			s.advanceLow()
		}
	}
}

// checkRound sends due check-backs and discards halves checked too often.
func (s *Store) checkRound(now time.Time) {
	var due []*Half
	var discard []int64
	s.mu.Lock()
	for off, h := range s.pending {
		if h.busy || now.Sub(time.UnixMilli(h.Timestamp)) < s.cfg.Timeout || now.Sub(h.lastCheck) < s.cfg.CheckInterval {
			continue
		}
		if h.Checks >= s.cfg.CheckMax {
			discard = append(discard, off)
			continue
		}
		due = append(due, h)
	}
	s.mu.Unlock()
	for _, off := range discard {
		s.log.Warn("half message discarded after too many checks", "offset", off, "checks", s.cfg.CheckMax)
		s.decide(off, "x")
	}
	sort.Slice(due, func(i, j int) bool { return due[i].Offset < due[j].Offset })
	for _, h := range due {
		s.mu.Lock()
		cp := *h
		s.mu.Unlock()
		if !s.check(&cp) {
			continue
		}
		s.mu.Lock()
		h.Checks++
		h.lastCheck = now
		n := h.Checks
		s.mu.Unlock()
		s.e.Meta().Put(metaNamespace, chkKey(h.Offset), strconv.AppendInt(nil, int64(n), 10), nil)
	}
}

// advanceLow moves the decided watermark (a queue offset) and forgets
// decisions below it.
func (s *Store) advanceLow() {
	s.mu.Lock()
	if s.inflight > 0 {
		s.mu.Unlock()
		return // a prepare between index and pending: look again later
	}
	low := s.q.Max()
	lowCommit := int64(math.MaxInt64)
	for off, h := range s.pending {
		if h.QueueOffset < low {
			low = h.QueueOffset
		}
		if off < lowCommit {
			lowCommit = off
		}
	}
	old := s.low
	if low <= old {
		s.mu.Unlock()
		return
	}
	s.low = low
	s.mu.Unlock()
	m := s.e.Meta()
	m.Put(metaNamespace, "low", strconv.AppendInt(nil, low, 10), nil)
	var stale []string
	m.Range(metaNamespace, func(k string, _ []byte) bool {
		var n int64
		var err error
		switch {
		case strings.HasPrefix(k, "op/"):
			n, err = strconv.ParseInt(k[3:], 10, 64)
		case strings.HasPrefix(k, "chk/"):
			n, err = strconv.ParseInt(k[4:], 10, 64)
		default:
			return true
		}
		if err == nil && n < lowCommit {
			stale = append(stale, k)
		}
		return true
	})
	for _, k := range stale {
		m.Delete(metaNamespace, k, nil)
	}
}
