package queue

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Sentinel errors.
var (
	ErrExclusiveConsumer = errors.New("queue: queue has an exclusive consumer")
	ErrInUse             = errors.New("queue: in use")
	ErrNotEmpty          = errors.New("queue: not empty")
	ErrDeleted           = errors.New("queue: deleted")
)

// Overflow is the max-length behaviour.
type Overflow uint8

const (
	DropHead Overflow = iota
	RejectPublish
	RejectPublishDLX
)

// Reason is why a message was dead-lettered.
type Reason string

const (
	ReasonExpired       Reason = "expired"
	ReasonRejected      Reason = "rejected"
	ReasonMaxLen        Reason = "maxlen"
	ReasonDeliveryLimit Reason = "delivery_limit"
)

// Message is one message; it is shared by every queue it was routed to and
// immutable once published (except ID, set when persisted).
type Message struct {
	Exchange   string
	RoutingKey string
	Props      []byte // protocol-encoded properties (AMQP: flags + list)
	Body       []byte
	Priority   uint8
	TTL        int64 // per-message TTL in ms; -1: none
	Persistent bool
	ID         uint64 // store identifier when persisted; 0: not persisted
}

// Entry is a message's place in one queue.
type Entry struct {
	Msg         *Message
	ExpiresAt   int64 // unix ms; 0: never
	Redelivered bool
	Deliveries  uint32
}

// Config is a queue's declaration.
type Config struct {
	Name           string
	Durable        bool
	Exclusive      bool
	AutoDelete     bool
	MessageTTL     int64 // ms; -1: none
	MaxLength      int64 // ready messages; -1: none
	MaxLengthBytes int64 // ready body bytes; -1: none
	Overflow       Overflow
	MaxPriority    uint8
	SingleActive   bool
	DeliveryLimit  int64 // -1: none
	// DeadLetter, if set, receives dead-lettered entries (called without
	// the queue's lock). Unset: they are dropped.
	DeadLetter func(q *Queue, es []Entry, reason Reason)
	// Store, if set, records acks of persistent messages (durable queues).
	Store Store
}

// DefaultConfig is a plain queue with no limits.
func DefaultConfig(name string) Config {
	return Config{Name: name, MessageTTL: -1, MaxLength: -1, MaxLengthBytes: -1, DeliveryLimit: -1}
}

// Store records the removal of persistent messages from durable queues.
type Store interface {
	Remove(q *Queue, ids []uint64)
}

// Consumer is a subscription. Wake is called (without locks, from any
// goroutine) when the consumer should Pull; it must not block.
type Consumer struct {
	Wake     func()
	Cancel   func() // the queue was deleted under the consumer (may be nil)
	Priority int
	Tag      string
	hungry   bool // idle with credit: wants a wake-up
	woken    bool // woken, its pull pending
}

// Queue is one queue. Safe for concurrent use.
type Queue struct {
	cfg Config

	mu         sync.Mutex
	levels     []ring // index = priority
	ready      int
	readyBytes int64
	unacked    int
	expiring   int         // ready entries with an expiry
	consumers  []*Consumer // in subscription order
	exclusive  bool        // the one consumer is exclusive
	rr         int         // round-robin start for wakes
	deleted    bool
	timer      *time.Timer
	timerAt    int64
	lastUsed   time.Time

	now func() int64
}

// New returns an empty queue.
func New(cfg Config) *Queue {
	q := &Queue{cfg: cfg, levels: make([]ring, int(cfg.MaxPriority)+1), lastUsed: time.Now()}
	q.now = func() int64 { return time.Now().UnixMilli() }
	return q
}

func (q *Queue) Name() string            { return q.cfg.Name }
func (q *Queue) DestinationName() string { return q.cfg.Name }
func (q *Queue) Config() *Config         { return &q.cfg }

// Counts returns ready messages, unacked deliveries and consumers.
func (q *Queue) Counts() (ready, unacked, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready, q.unacked, len(q.consumers)
}

// LastUsed is when the queue last had a consumer, a get or a declare.
func (q *Queue) LastUsed() (time.Time, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lastUsed, len(q.consumers)
}

// Touch marks the queue used (x-expires).
func (q *Queue) Touch() {
	q.mu.Lock()
	q.lastUsed = time.Now()
	q.mu.Unlock()
}

type pending struct {
	dead   []Entry
	reason Reason
	dead2  []Entry // second reason batch (expired while handling another)
	wake   []*Consumer
	remove []uint64
}

func (q *Queue) finish(p *pending) {
	if len(p.remove) > 0 && q.cfg.Store != nil {
		q.cfg.Store.Remove(q, p.remove)
	}
	if len(p.dead2) > 0 {
		q.deadLetter(p.dead2, ReasonExpired)
	}
	if len(p.dead) > 0 {
		q.deadLetter(p.dead, p.reason)
	}
	for _, c := range p.wake {
		c.Wake()
	}
}

func (q *Queue) deadLetter(es []Entry, reason Reason) {
	if q.cfg.DeadLetter != nil {
		q.cfg.DeadLetter(q, es, reason)
	}
}

func (q *Queue) expiry(m *Message, now int64) int64 {
	ttl := q.cfg.MessageTTL
	if m.TTL >= 0 && (ttl < 0 || m.TTL < ttl) {
		ttl = m.TTL
	}
	if ttl < 0 {
		return 0
	}
	return now + ttl
}

func (q *Queue) level(m *Message) int {
	return int(min(m.Priority, q.cfg.MaxPriority))
}

// Publish enqueues m. It reports false when the queue refused it
// (reject-publish overflow, or the queue was deleted).
func (q *Queue) Publish(m *Message) bool {
	ok, _ := q.PublishBacklog(m)
	return ok
}

// PublishBacklog is Publish that also returns the ready count when the
// queue has consumers (consumers falling behind), else 0: publishers use it
// for flow control.
func (q *Queue) PublishBacklog(m *Message) (bool, int) {
	var p pending
	q.mu.Lock()
	ok := q.publishLocked(m, &p)
	backlog := 0
	if len(q.consumers) > 0 {
		backlog = q.ready
	}
	q.mu.Unlock()
	q.finish(&p)
	return ok, backlog
}

func (q *Queue) publishLocked(m *Message, p *pending) bool {
	if q.deleted {
		if m.ID != 0 && q.cfg.Durable {
			p.remove = append(p.remove, m.ID)
		}
		return false
	}
	var now int64
	if q.expiring > 0 || q.cfg.MessageTTL >= 0 || m.TTL >= 0 {
		now = q.now()
		q.expireLocked(now, p)
	}
	if q.cfg.Overflow != DropHead && q.full(len(m.Body)) {
		if q.cfg.Overflow == RejectPublishDLX {
			p.dead = append(p.dead, Entry{Msg: m})
			p.reason = ReasonMaxLen
		}
		if m.ID != 0 && q.cfg.Durable {
			p.remove = append(p.remove, m.ID)
		}
		return false
	}
	e := Entry{Msg: m, ExpiresAt: q.expiry(m, now)}
	if e.ExpiresAt != 0 && e.ExpiresAt <= now && q.noHungry() {
		// TTL 0: deliver only to a waiting consumer, else expire now.
		p.dead2 = append(p.dead2, e)
		if m.ID != 0 && q.cfg.Durable {
			p.remove = append(p.remove, m.ID)
		}
		return true
	}
	q.levels[q.level(m)].pushBack(e)
	q.ready++
	q.readyBytes += int64(len(m.Body))
	if e.ExpiresAt != 0 {
		q.expiring++
	}
	if q.cfg.Overflow == DropHead {
		for q.ready > 0 && q.overLimit() {
			d := q.popLocked()
			p.dead = append(p.dead, d)
			p.reason = ReasonMaxLen
			if d.Msg.ID != 0 && q.cfg.Durable {
				p.remove = append(p.remove, d.Msg.ID)
			}
		}
	}
	if e.ExpiresAt != 0 {
		q.armLocked(e.ExpiresAt)
	}
	q.wakeLocked(p)
	return true
}

func (q *Queue) full(bodyBytes int) bool {
	return (q.cfg.MaxLength >= 0 && int64(q.ready) >= q.cfg.MaxLength) ||
		(q.cfg.MaxLengthBytes >= 0 && q.readyBytes+int64(bodyBytes) > q.cfg.MaxLengthBytes)
}

func (q *Queue) overLimit() bool {
	return (q.cfg.MaxLength >= 0 && int64(q.ready) > q.cfg.MaxLength) ||
		(q.cfg.MaxLengthBytes >= 0 && q.readyBytes > q.cfg.MaxLengthBytes)
}

func (q *Queue) noHungry() bool {
	for _, c := range q.consumers {
		if c.hungry {
			return false
		}
	}
	return true
}

// popLocked removes the head of the highest non-empty level.
func (q *Queue) popLocked() Entry {
	for i := len(q.levels) - 1; i >= 0; i-- {
		if q.levels[i].len() > 0 {
			e := q.levels[i].popFront()
			q.ready--
			q.readyBytes -= int64(len(e.Msg.Body))
			if e.ExpiresAt != 0 {
				q.expiring--
			}
			return e
		}
	}
	panic("BUG: queue: pop of empty queue")
}

// expireLocked drops expired messages at the head of each level.
func (q *Queue) expireLocked(now int64, p *pending) {
	for i := range q.levels {
		l := &q.levels[i]
		for l.len() > 0 {
			h := l.front()
			if h.ExpiresAt == 0 || h.ExpiresAt > now {
				break
			}
			e := l.popFront()
			q.ready--
			q.readyBytes -= int64(len(e.Msg.Body))
			q.expiring--
			p.dead2 = append(p.dead2, e)
			if e.Msg.ID != 0 && q.cfg.Durable {
				p.remove = append(p.remove, e.Msg.ID)
			}
		}
	}
	if q.timer != nil && q.ready > 0 {
		q.rearmLocked()
	}
}

func (q *Queue) rearmLocked() {
	next := int64(0)
	for i := range q.levels {
		if q.levels[i].len() > 0 {
			if at := q.levels[i].front().ExpiresAt; at != 0 && (next == 0 || at < next) {
				next = at
			}
		}
	}
	if next != 0 {
		q.armLocked(next)
	}
}

func (q *Queue) armLocked(at int64) {
	if q.timer != nil && q.timerAt != 0 && q.timerAt <= at {
		return
	}
	d := time.Duration(at-q.now()) * time.Millisecond
	if d < 0 {
		d = 0
	}
	q.timerAt = at
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.onTimer)
	} else {
		q.timer.Reset(d)
	}
}

func (q *Queue) onTimer() {
	var p pending
	q.mu.Lock()
	q.timerAt = 0
	if !q.deleted {
		q.expireLocked(q.now(), &p)
	}
	q.mu.Unlock()
	q.finish(&p)
}

// wakeLocked picks one hungry, eligible consumer to wake, unless one of at
// least its priority is already woken (it pulls all it can, then passes on).
func (q *Queue) wakeLocked(p *pending) {
	if q.ready == 0 || len(q.consumers) == 0 {
		return
	}
	if q.cfg.SingleActive {
		if c := q.consumers[0]; c.hungry {
			c.hungry, c.woken = false, true
			p.wake = append(p.wake, c)
		}
		return
	}
	best := -1
	woken := false
	wokenPrio := 0
	n := len(q.consumers)
	for i := 0; i < n; i++ {
		j := (q.rr + i) % n
		c := q.consumers[j]
		if c.woken && (!woken || c.Priority > wokenPrio) {
			woken, wokenPrio = true, c.Priority
		}
		if c.hungry && (best < 0 || c.Priority > q.consumers[best].Priority) {
			best = j
		}
	}
	if best < 0 || (woken && wokenPrio >= q.consumers[best].Priority) {
		return
	}
	c := q.consumers[best]
	c.hungry, c.woken = false, true
	q.rr = best + 1
	p.wake = append(p.wake, c)
}

func (q *Queue) eligible(c *Consumer) bool {
	if q.cfg.SingleActive {
		return len(q.consumers) > 0 && q.consumers[0] == c
	}
	for _, o := range q.consumers {
		if o != c && (o.hungry || o.woken) && o.Priority > c.Priority {
			return false
		}
	}
	return true
}

// Skip tells the queue that c, woken, will not pull now (no credit): it
// stops counting as pending and another consumer may be woken.
func (q *Queue) Skip(c *Consumer) {
	var p pending
	q.mu.Lock()
	if c.woken || c.hungry {
		c.woken, c.hungry = false, false
		q.wakeLocked(&p)
	}
	q.mu.Unlock()
	q.finish(&p)
}

// Subscribe adds a consumer; it is woken at once if messages are ready.
func (q *Queue) Subscribe(c *Consumer, exclusive bool) error {
	var p pending
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return ErrDeleted
	}
	if q.exclusive || (exclusive && len(q.consumers) > 0) {
		q.mu.Unlock()
		return fmt.Errorf("%w: '%s'", ErrExclusiveConsumer, q.cfg.Name)
	}
	q.exclusive = exclusive
	c.hungry, c.woken = true, false
	q.consumers = append(q.consumers, c)
	q.lastUsed = time.Now()
	q.wakeLocked(&p)
	q.mu.Unlock()
	q.finish(&p)
	return nil
}

// Unsubscribe removes a consumer. It reports whether the queue is now
// without consumers (auto-delete).
func (q *Queue) Unsubscribe(c *Consumer) (last bool) {
	var p pending
	q.mu.Lock()
	i := slices.Index(q.consumers, c)
	if i >= 0 {
		q.consumers = slices.Delete(q.consumers, i, i+1)
		q.exclusive = false
		last = len(q.consumers) == 0
		if q.rr > i {
			q.rr--
		}
		q.lastUsed = time.Now()
		if len(q.consumers) > 0 {
			q.wakeLocked(&p)
		}
	}
	q.mu.Unlock()
	q.finish(&p)
	return last
}

// Pull moves up to max ready entries (and at most maxBytes of bodies after
// the first, 0: no byte limit) to the caller as unacked deliveries (or
// removes them outright with noAck), appending them to dst.
func (q *Queue) Pull(c *Consumer, max int, maxBytes int64, noAck bool, dst []Entry) []Entry {
	var p pending
	q.mu.Lock()
	if c != nil {
		c.woken = false
	}
	if q.deleted || (c != nil && !q.eligible(c)) {
		if c != nil {
			c.hungry = true
		}
		q.mu.Unlock()
		return dst
	}
	start := len(dst)
	dst = q.pullLocked(max, maxBytes, noAck, dst, &p)
	if c != nil {
		// Hungry: it asked for more than there was, so it has credit left.
		c.hungry = len(dst)-start < max && q.ready == 0
		if !c.hungry && q.ready > 0 {
			q.wakeLocked(&p) // someone else may take the rest
		}
	} else {
		q.lastUsed = time.Now()
	}
	q.mu.Unlock()
	q.finish(&p)
	return dst
}

func (q *Queue) pullLocked(max int, maxBytes int64, noAck bool, dst []Entry, p *pending) []Entry {
	var now int64
	if q.expiring > 0 {
		now = q.now()
	}
	var bytes int64
	for n := 0; n < max && q.ready > 0; {
		e := q.popLocked()
		if e.ExpiresAt != 0 && e.ExpiresAt <= now {
			p.dead2 = append(p.dead2, e)
			if e.Msg.ID != 0 && q.cfg.Durable {
				p.remove = append(p.remove, e.Msg.ID)
			}
			continue
		}
		if maxBytes > 0 && n > 0 && bytes+int64(len(e.Msg.Body)) > maxBytes {
			q.pushFront(e)
			break
		}
		bytes += int64(len(e.Msg.Body))
		e.Deliveries++
		if noAck {
			if e.Msg.ID != 0 && q.cfg.Durable {
				p.remove = append(p.remove, e.Msg.ID)
			}
		} else {
			q.unacked++
		}
		dst = append(dst, e)
		n++
	}
	return dst
}

func (q *Queue) pushFront(e Entry) {
	q.levels[q.level(e.Msg)].pushFront(e)
	q.ready++
	q.readyBytes += int64(len(e.Msg.Body))
	if e.ExpiresAt != 0 {
		q.expiring++
	}
}

// Ack settles deliveries: they leave the queue for good.
func (q *Queue) Ack(es []Entry) {
	var p pending
	q.mu.Lock()
	q.unacked -= len(es)
	if q.cfg.Durable {
		for _, e := range es {
			if e.Msg.ID != 0 {
				p.remove = append(p.remove, e.Msg.ID)
			}
		}
	}
	q.mu.Unlock()
	q.finish(&p)
}

// Requeue puts deliveries back at the head, marked redelivered; entries over
// the delivery limit are dead-lettered instead.
func (q *Queue) Requeue(es []Entry) {
	var p pending
	q.mu.Lock()
	q.unacked -= len(es)
	if q.deleted {
		q.mu.Unlock()
		return
	}
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if q.cfg.DeliveryLimit >= 0 && int64(e.Deliveries) > q.cfg.DeliveryLimit {
			p.dead = append(p.dead, e)
			p.reason = ReasonDeliveryLimit
			if e.Msg.ID != 0 && q.cfg.Durable {
				p.remove = append(p.remove, e.Msg.ID)
			}
			continue
		}
		e.Redelivered = true
		q.pushFront(e)
	}
	q.rearmLocked()
	q.wakeLocked(&p)
	q.mu.Unlock()
	q.finish(&p)
}

// Reject settles deliveries negatively without requeue: dead-lettered if
// the queue has a dead-letter exchange, else dropped.
func (q *Queue) Reject(es []Entry) {
	var p pending
	q.mu.Lock()
	q.unacked -= len(es)
	if q.cfg.Durable {
		for _, e := range es {
			if e.Msg.ID != 0 {
				p.remove = append(p.remove, e.Msg.ID)
			}
		}
	}
	p.dead, p.reason = es, ReasonRejected
	q.mu.Unlock()
	q.finish(&p)
}

// Purge drops every ready message and returns how many.
func (q *Queue) Purge() int {
	var p pending
	q.mu.Lock()
	n := q.ready
	for q.ready > 0 {
		e := q.popLocked()
		if e.Msg.ID != 0 && q.cfg.Durable {
			p.remove = append(p.remove, e.Msg.ID)
		}
	}
	q.mu.Unlock()
	q.finish(&p)
	return n
}

// Delete marks the queue deleted and returns its ready count. With ifUnused
// or ifEmpty, a queue with consumers or messages gives an error.
func (q *Queue) Delete(ifUnused, ifEmpty bool) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ifUnused && len(q.consumers) > 0 {
		return 0, fmt.Errorf("%w: queue '%s' has consumers", ErrInUse, q.cfg.Name)
	}
	if ifEmpty && q.ready > 0 {
		return 0, fmt.Errorf("%w: queue '%s'", ErrNotEmpty, q.cfg.Name)
	}
	n := q.ready
	q.deleted = true
	if q.timer != nil {
		q.timer.Stop()
	}
	var ids []uint64
	for q.ready > 0 {
		if e := q.popLocked(); e.Msg.ID != 0 && q.cfg.Durable {
			ids = append(ids, e.Msg.ID)
		}
	}
	cs := q.consumers
	q.consumers = nil
	q.mu.Unlock()
	if len(ids) > 0 && q.cfg.Store != nil {
		q.cfg.Store.Remove(q, ids)
	}
	for _, c := range cs {
		if c.Cancel != nil {
			c.Cancel()
		}
	}
	q.mu.Lock()
	return n, nil
}

// Deleted reports whether Delete was called.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// ExpiryFor is when m, enqueued at unix ms at, expires here (0: never).
func (q *Queue) ExpiryFor(m *Message, at int64) int64 { return q.expiry(m, at) }

// Restore enqueues recovered entries (start-up), without limits or wakes.
func (q *Queue) Restore(es []Entry) {
	q.mu.Lock()
	for _, e := range es {
		q.levels[q.level(e.Msg)].pushBack(e)
		q.ready++
		q.readyBytes += int64(len(e.Msg.Body))
		if e.ExpiresAt != 0 {
			q.expiring++
		}
	}
	q.rearmLocked()
	q.mu.Unlock()
}

// ring is a FIFO deque of entries.
type ring struct {
	buf  []Entry
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) grow() {
	nb := make([]Entry, max(8, 2*len(r.buf)))
	for i := 0; i < r.n; i++ {
		nb[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = nb, 0
}

func (r *ring) pushBack(e Entry) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

func (r *ring) pushFront(e Entry) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
	r.buf[r.head] = e
	r.n++
}

func (r *ring) front() *Entry { return &r.buf[r.head] }

func (r *ring) popFront() Entry {
	e := r.buf[r.head]
	r.buf[r.head] = Entry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 && len(r.buf) > 1024 {
		*r = ring{} // release a large idle buffer
	}
	return e
}
