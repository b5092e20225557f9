package session

import (
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one message waiting in a session's queue.
type Entry struct {
	Msg    *Message
	QoS    byte   // QoS granted for this delivery
	Retain bool   // retain flag to send
	SubID  uint32 // first subscription identifier (0: none)
	More   []uint32
	Seq    uint64 // sequence in the durable session log (0: not persisted)
	// Live: stored on arrival for a connected session. A live QoS 1
	// delivery's record is not rewritten with its packet identifier when
	// it is sent (one write fewer per message on the hot path): after a
	// crash it is resent as a new delivery (new identifier, no DUP), which
	// QoS 1 allows; a stop or disconnect still writes the identifier.
	Live bool
	// Share is the shared subscription ($share/group/filter) the entry
	// was routed through ("" for an ordinary one): a member that cannot
	// take it hands it to another member of the group.
	Share string
	// Batch, if set, is the durable record (shared with other entries)
	// holding this entry's message; the entry holds one reference.
	Batch *Batch
}

// Inflight is a QoS 1/2 message sent and not yet fully acknowledged.
type Inflight struct {
	Entry
	PacketID uint16
	Released bool // QoS 2: PUBREC received, PUBREL sent
	// Stored is the delivery state last written to durable storage
	// (StoredNone, StoredSent or StoredReleased), so a restart resends
	// with the same packet identifier.
	Stored byte
	done   bool
}

// Durable states of an inflight delivery (Inflight.Stored).
const (
	StoredNone     byte = iota // no durable record carries its packet identifier
	StoredSent                 // stored with its packet identifier, PUBLISH sent
	StoredReleased             // stored as PUBREC'd: PUBREL is resent, not the PUBLISH
)

// Subscription is a session's subscription as remembered across reconnects.
type Subscription struct {
	Filter string // as sent, including any $share/<group>/ prefix
	Opts   byte   // MQTT 5 subscription options byte
	ID     uint32 // subscription identifier, 0: none
}

// Notifier is the connection currently attached to a session; Notify asks it
// (from any goroutine) to drain the session's queue.
type Notifier interface{ Notify() }

// Waiter is a publisher paused because this session's queue is deep; Wake
// (any goroutine) lets it read again.
type Waiter interface{ Wake() }

// Session is one client's state. The embedded mutex guards every field
// except ID.
type Session struct {
	sync.Mutex
	ID string
	// Num orders sessions (route merges overlapping subscriptions by it).
	Num uint64
	// Online mirrors Owner != nil for lock-free readers (shared-subscription picking).
	Online atomic.Bool

	ExpiryTimer *time.Timer // pending expiry of a disconnected session
	Version     byte        // protocol level of the last connection
	Persistent  bool        // survives disconnect (clean session 0 / session expiry > 0)
	ExpirySec   uint32      // MQTT 5 session expiry; 0xFFFFFFFF: never
	Subs        map[string]Subscription
	Owner       Notifier // attached connection, nil when offline
	QueueMax    int      // bound on queued messages; beyond it new ones are dropped
	Dropped     uint64   // messages dropped by the queue bound
	Gen         uint64   // bumped on every attach (expiry timers check it)
	QoS2In      map[uint16]struct{}
	// Waiters are publishers paused until the queue drains below half its
	// high-water mark; Progress (unix nanos) is when the session's
	// connection last took messages or was caught up (its queue empty), so
	// a subscriber that has had messages waiting for a while without
	// taking any is stalled and stops pausing publishers.
	Waiters  []Waiter
	Progress int64

	q       []Entry
	qHead   int
	qLen    int
	inf     []Inflight
	infHead int
	infLen  int
	infLive int
	nextID  uint16
}

// New returns an empty session.
func New(id string, queueMax int) *Session {
	return &Session{ID: id, QueueMax: queueMax}
}

// Enqueue appends e (taking over its message reference) or, when the queue
// is full, counts a drop and releases the reference. Caller holds the lock.
func (s *Session) Enqueue(e Entry) bool {
	if s.qLen >= s.QueueMax {
		s.Dropped++
		e.Msg.Release()
		return false
	}
	if s.qLen == len(s.q) {
		s.growQ()
	}
	s.q[(s.qHead+s.qLen)%len(s.q)] = e
	s.qLen++
	return true
}

func (s *Session) growQ() {
	n := 2 * len(s.q)
	if n == 0 {
		n = 8
	}
	nq := make([]Entry, n)
	for i := 0; i < s.qLen; i++ {
		nq[i] = s.q[(s.qHead+i)%len(s.q)]
	}
	s.q, s.qHead = nq, 0
}

// DropQoS0 removes the queued QoS 0 entries (releasing their references) and
// returns how many: a session going offline keeps only QoS 1/2, as
// Mosquitto does by default. Caller holds the lock.
func (s *Session) DropQoS0() int {
	dropped := 0
	s.removeQueued(func(e Entry) bool {
		if e.QoS != 0 {
			return false
		}
		e.Msg.Release()
		dropped++
		return true
	})
	return dropped
}

// removeQueued removes the queued entries for which take returns true,
// keeping the others in order. Caller holds the lock.
func (s *Session) removeQueued(take func(e Entry) bool) {
	kept := 0
	for i := 0; i < s.qLen; i++ {
		e := s.q[(s.qHead+i)%len(s.q)]
		if take(e) {
			continue
		}
		s.q[(s.qHead+kept)%len(s.q)] = e
		kept++
	}
	for i := kept; i < s.qLen; i++ {
		s.q[(s.qHead+i)%len(s.q)] = Entry{}
	}
	s.qLen = kept
}

// QueueLen is the number of queued entries.
func (s *Session) QueueLen() int { return s.qLen }

// Front returns the first queued entry without removing it.
func (s *Session) Front() (*Entry, bool) {
	if s.qLen == 0 {
		return nil, false
	}
	return &s.q[s.qHead], true
}

// Pop removes the first queued entry (its reference passes to the caller).
func (s *Session) Pop() (Entry, bool) {
	if s.qLen == 0 {
		return Entry{}, false
	}
	e := s.q[s.qHead]
	s.q[s.qHead] = Entry{}
	s.qHead = (s.qHead + 1) % len(s.q)
	s.qLen--
	if s.qLen == 0 {
		s.qHead = 0
		if len(s.q) > 1024 { // give back memory of a drained burst
			s.q = nil
		}
	}
	return e, true
}

// InflightLen is the number of unacknowledged QoS 1/2 deliveries.
func (s *Session) InflightLen() int { return s.infLive }

// AddInflight records e as sent with a fresh packet identifier and returns it.
func (s *Session) AddInflight(e Entry) uint16 {
	s.nextID++
	if s.nextID == 0 {
		s.nextID = 1
	}
	s.addInflight(Inflight{Entry: e, PacketID: s.nextID})
	return s.nextID
}

// RestoreInflight records e as already sent with packet identifier id
// (released: a QoS 2 delivery whose PUBREC was received), as restored
// from durable storage after a restart; stored is its durable state. Fresh
// identifiers continue after the newest restored one (serial-number order).
// Caller holds the lock.
func (s *Session) RestoreInflight(e Entry, id uint16, released bool, stored byte) {
	if s.infLive == 0 || int16(id-s.nextID) > 0 {
		s.nextID = id
	}
	s.addInflight(Inflight{Entry: e, PacketID: id, Released: released, Stored: stored})
}

// NewestInflight returns the delivery added last (nil if none).
func (s *Session) NewestInflight() *Inflight {
	if s.infLen == 0 {
		return nil
	}
	return &s.inf[(s.infHead+s.infLen-1)%len(s.inf)]
}

// FindInflight returns the unacknowledged delivery id (nil if none).
func (s *Session) FindInflight(id uint16) *Inflight { return s.findInflight(id) }

func (s *Session) addInflight(f Inflight) {
	if s.infLen == len(s.inf) {
		n := 2 * len(s.inf)
		if n == 0 {
			n = 8
		}
		ni := make([]Inflight, n)
		for i := 0; i < s.infLen; i++ {
			ni[i] = s.inf[(s.infHead+i)%len(s.inf)]
		}
		s.inf, s.infHead = ni, 0
	}
	s.inf[(s.infHead+s.infLen)%len(s.inf)] = f
	s.infLen++
	s.infLive++
}

func (s *Session) findInflight(id uint16) *Inflight {
	for i := 0; i < s.infLen; i++ {
		f := &s.inf[(s.infHead+i)%len(s.inf)]
		if !f.done && f.PacketID == id {
			return f
		}
	}
	return nil
}

// Ack completes the inflight delivery id (PUBACK, or PUBCOMP for QoS 2) and
// returns it; its message reference passes to the caller.
func (s *Session) Ack(id uint16, qos byte) (Inflight, bool) {
	f := s.findInflight(id)
	if f == nil || f.QoS != qos {
		return Inflight{}, false
	}
	out := *f
	*f = Inflight{done: true}
	s.infLive--
	s.trimInflight()
	return out, true
}

// trimInflight drops the completed deliveries at the head of the window.
func (s *Session) trimInflight() {
	for s.infLen > 0 && s.inf[s.infHead].done {
		s.inf[s.infHead] = Inflight{}
		s.infHead = (s.infHead + 1) % len(s.inf)
		s.infLen--
	}
	if s.infLen == 0 {
		s.infHead = 0
	}
}

// Released marks QoS 2 delivery id as PUBREC'd (PUBREL sent next). It
// reports whether id was inflight; the message reference is dropped, since
// only the packet identifier is needed from now on.
func (s *Session) Released(id uint16) bool {
	f := s.findInflight(id)
	if f == nil || f.QoS != 2 {
		return false
	}
	f.Released = true
	return true
}

// TakeShared removes and appends to dst the entries routed through a
// shared subscription that another member of its group can take instead
// (want(share) reports that): queued QoS 1/2 messages and QoS 1 messages
// sent and not acknowledged. A QoS 2 message once sent stays: its delivery
// must be completed with this client (MQTT 5.0 §4.8.2). Message and batch
// references pass to the caller; Stored tells what is durable. Caller
// holds the lock.
func (s *Session) TakeShared(dst []Inflight, want func(share string) bool) []Inflight {
	s.removeQueued(func(e Entry) bool {
		if e.Share != "" && e.QoS > 0 && want(e.Share) {
			dst = append(dst, Inflight{Entry: e})
			return true
		}
		return false
	})
	for i := 0; i < s.infLen; i++ {
		f := &s.inf[(s.infHead+i)%len(s.inf)]
		if f.done || f.QoS != 1 || f.Share == "" || !want(f.Share) {
			continue
		}
		dst = append(dst, *f)
		*f = Inflight{done: true}
		s.infLive--
	}
	s.trimInflight()
	return dst
}

// EachEntry calls fn for every queued entry (f nil) and every
// unacknowledged delivery (e is &f.Entry). Caller holds the lock.
func (s *Session) EachEntry(fn func(e *Entry, f *Inflight)) {
	for i := 0; i < s.qLen; i++ {
		fn(&s.q[(s.qHead+i)%len(s.q)], nil)
	}
	s.EachInflight(func(f *Inflight) { fn(&f.Entry, f) })
}

// EachInflight calls fn for every unacknowledged delivery, oldest first.
func (s *Session) EachInflight(fn func(f *Inflight)) {
	for i := 0; i < s.infLen; i++ {
		f := &s.inf[(s.infHead+i)%len(s.inf)]
		if !f.done {
			fn(f)
		}
	}
}

// Clear releases every queued and inflight message (and their batch
// references) and forgets inbound QoS 2 identifiers (clean start, expiry).
func (s *Session) Clear() {
	for s.qLen > 0 {
		e, _ := s.Pop()
		e.Msg.Release()
		if e.Batch != nil {
			e.Batch.Release()
		}
	}
	s.q = nil
	for i := 0; i < s.infLen; i++ {
		f := &s.inf[(s.infHead+i)%len(s.inf)]
		if f.done {
			continue
		}
		if f.Msg != nil {
			f.Msg.Release()
		}
		if f.Batch != nil {
			f.Batch.Release()
		}
	}
	s.inf, s.infHead, s.infLen, s.infLive = nil, 0, 0, 0
	s.QoS2In = nil
}

// AddWaiter registers w unless it is already waiting. Caller holds the lock.
func (s *Session) AddWaiter(w Waiter) bool {
	for _, x := range s.Waiters {
		if x == w {
			return false
		}
	}
	s.Waiters = append(s.Waiters, w)
	return true
}

// TakeWaiters removes and returns the waiters (caller holds the lock, wakes
// them after unlocking).
func (s *Session) TakeWaiters(dst []Waiter) []Waiter {
	dst = append(dst, s.Waiters...)
	clear(s.Waiters)
	s.Waiters = s.Waiters[:0]
	return dst
}

// Store is the set of sessions by client identifier.
type Store struct {
	mu sync.Mutex
	m  map[string]*Session
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{m: make(map[string]*Session)} }

// Get returns the session of id.
func (st *Store) Get(id string) (*Session, bool) {
	st.mu.Lock()
	s, ok := st.m[id]
	st.mu.Unlock()
	return s, ok
}

// GetOrCreate returns the session of id, creating it when absent.
func (st *Store) GetOrCreate(id string, queueMax int) (s *Session, created bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.m[id]; ok {
		return s, false
	}
	s = New(id, queueMax)
	st.m[id] = s
	return s, true
}

// Put stores s under its ID (replacing any other).
func (st *Store) Put(s *Session) {
	st.mu.Lock()
	st.m[s.ID] = s
	st.mu.Unlock()
}

// Delete removes s if it is still the session stored under its ID.
func (st *Store) Delete(s *Session) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m[s.ID] == s {
		delete(st.m, s.ID)
		return true
	}
	return false
}

// Len is the number of sessions.
func (st *Store) Len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.m)
}

// Range calls fn for each session (snapshot; fn may lock the session).
func (st *Store) Range(fn func(s *Session) bool) {
	st.mu.Lock()
	all := make([]*Session, 0, len(st.m))
	for _, s := range st.m {
		all = append(all, s)
	}
	st.mu.Unlock()
	for _, s := range all {
		if !fn(s) {
			return
		}
	}
}

// At returns the i-th queued entry (0 is the front). Caller holds the lock.
func (s *Session) At(i int) *Entry { return &s.q[(s.qHead+i)%len(s.q)] }
