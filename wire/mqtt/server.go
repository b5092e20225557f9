package mqtt

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/engine/retained"
	"quartet/engine/session"
	"quartet/engine/trie"
	"quartet/netpoll"
)

// Config tunes the MQTT server. Zero values pick the defaults noted.
type Config struct {
	// PacketBytesMax is the largest packet accepted (and advertised as
	// Maximum Packet Size) (0: 1 MiB).
	PacketBytesMax int
	// ReceiveMaximum is the number of inbound QoS 2 publishes a client may
	// have unreleased (0: 1024).
	ReceiveMaximum uint16
	// InflightMessagesMax caps the outbound QoS 1/2 window per connection;
	// the client's Receive Maximum lowers it further (0: 256).
	InflightMessagesMax int
	// QueueMessagesMax bounds each session's queue; messages beyond it are
	// dropped and counted (0: 100,000).
	QueueMessagesMax int
	// TopicAliasMaximum advertised to MQTT 5 clients (0: 64; <0: none).
	TopicAliasMaximum int
	// KeepAliveMax caps the client keep alive, seconds (0: 65535).
	KeepAliveMax uint16
	// SessionExpiryMax caps MQTT 5 session expiry, seconds (0: no cap).
	SessionExpiryMax uint32
	// ConnectTimeout closes connections that send no CONNECT (0: 10 s).
	ConnectTimeout time.Duration
	// SysInterval is the $SYS/broker/... publishing period (0: 10 s; <0: off).
	SysInterval time.Duration
	// QueueHighMessages: a QoS 1/2 publisher whose message lands in an
	// online session queue this deep pauses reading until the queue is
	// drained to half (lossless flow control to a slow but live
	// subscriber). Messages waiting here add to publish-to-deliver latency
	// without adding throughput once the subscriber's window is full
	// (0: 32). It is kept at most half of QueueMessagesMax, so a publisher
	// pauses before a live subscriber's queue can overflow.
	QueueHighMessages int
	// StallTimeout: a session whose connection took nothing for this long
	// no longer pauses publishers; its queue fills to QueueMessagesMax and
	// then drops, counted (0: 1 s).
	StallTimeout time.Duration
	// RetryInterval re-drains a connection whose output is above the
	// high-water mark (0: 20 ms).
	RetryInterval time.Duration
	// Meta, if set, makes retained messages and persistent sessions durable
	// (engine.Meta satisfies it).
	Meta retained.Backend
	// LiveLogSegmentBytes is the segment size of the live log, which holds
	// QoS 1 messages for connected persistent sessions until acknowledged
	// (0: 16 MiB).
	LiveLogSegmentBytes int64
	// LiveLogPinnedBytesMax: when unacknowledged messages in its oldest
	// batches keep the live log above this size, they are moved to
	// per-message records so the log can be trimmed (0: 64 MiB).
	LiveLogPinnedBytesMax int64
}

func (c *Config) setDefaults() {
	if c.PacketBytesMax <= 0 {
		c.PacketBytesMax = 1 << 20
	}
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = 1024
	}
	if c.InflightMessagesMax <= 0 {
		c.InflightMessagesMax = 256
	}
	if c.QueueMessagesMax <= 0 {
		c.QueueMessagesMax = 100_000
	}
	if c.TopicAliasMaximum == 0 {
		c.TopicAliasMaximum = 64
	} else if c.TopicAliasMaximum < 0 {
		c.TopicAliasMaximum = 0
	}
	if c.TopicAliasMaximum > 65535 {
		c.TopicAliasMaximum = 65535
	}
	if c.KeepAliveMax == 0 {
		c.KeepAliveMax = 65535
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.SysInterval == 0 {
		c.SysInterval = 10 * time.Second
	}
	if c.QueueHighMessages <= 0 {
		c.QueueHighMessages = 32
	}
	c.QueueHighMessages = max(1, min(c.QueueHighMessages, c.QueueMessagesMax/2))
	if c.StallTimeout <= 0 {
		c.StallTimeout = time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 20 * time.Millisecond
	}
	if c.LiveLogSegmentBytes <= 0 {
		c.LiveLogSegmentBytes = 16 << 20
	}
	if c.LiveLogPinnedBytesMax <= 0 {
		c.LiveLogPinnedBytesMax = 64 << 20
	}
}

// Stats are cumulative counters.
type Stats struct {
	// MsgsIn and MsgsOut are written by every event loop for every
	// message: each on its own cache line (see MessageCounts).
	_               [64]byte
	MsgsIn          atomic.Uint64
	_               [56]byte
	MsgsOut         atomic.Uint64
	_               [56]byte
	ConnsOpen       atomic.Int64
	ConnsTotal      atomic.Uint64
	Dropped         atomic.Uint64 // QoS 0 to slow subscribers + session queue overflows
	BytesIn         atomic.Uint64
	ProtocolErrors  atomic.Uint64
	WillsPublished  atomic.Uint64
	ExpiredMessages atomic.Uint64
	PublisherPauses atomic.Uint64 // publishers paused by a deep session queue
	SharedHandovers atomic.Uint64 // shared-subscription messages a member could not take, given to another
	QueueDepthMax   atomic.Int64  // deepest online session queue seen by flow control
}

// Server is the MQTT protocol server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	proto    *netpoll.Protocol
	trie     trie.Trie[*session.Session]
	sessions *session.Store
	retained *retained.Store
	persist  *persister // nil without Meta
	live     *liveLog   // nil without an engine: live QoS 1 then stored per message in Meta

	sessMu   sync.Mutex // serialises CONNECT attach/takeover and close detach
	started  time.Time
	now      atomic.Int64 // coarse clock, unix nanos
	stats    Stats
	nextID   atomic.Uint64
	subsPool sync.Pool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New builds the server. e may be nil (memory-only); otherwise its metadata
// catalog keeps retained messages and persistent sessions across restarts.
func New(e *engine.Engine, cfg Config, logger *slog.Logger) (*Server, error) {
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Meta == nil && e != nil {
		cfg.Meta = e.Meta()
	}
	s := &Server{
		cfg:      cfg,
		log:      logger.With("proto", "mqtt"),
		sessions: session.NewStore(),
		retained: retained.New(cfg.Meta),
		started:  time.Now(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.trie.Online = func(ss *session.Session) bool { return ss.Online.Load() }
	s.subsPool.New = func() any { b := make([]trie.Sub[*session.Session], 0, 16); return &b }
	s.now.Store(time.Now().UnixNano())
	if err := s.retained.Load(); err != nil {
		return nil, fmt.Errorf("mqtt: loading retained messages: %w", err)
	}
	if cfg.Meta != nil {
		s.persist = &persister{be: cfg.Meta, log: s.log}
		if e != nil {
			l, err := e.OpenInternalLog("mqtt-live")
			if err != nil {
				return nil, fmt.Errorf("mqtt: opening the live log: %w", err)
			}
			s.live = newLiveLog(l, &s.cfg, s.log, &s.persist.closed, s.migrateLive)
		}
		if err := s.loadSessions(); err != nil {
			return nil, fmt.Errorf("mqtt: loading sessions: %w", err)
		}
	}
	s.proto = &netpoll.Protocol{
		Name:          "mqtt",
		Framer:        framerMax(cfg.PacketBytesMax),
		FrameBytesMax: cfg.PacketBytesMax,
		Handler:       (*handler)(s),
		Publisher:     true,
	}
	go s.clock()
	return s, nil
}

// Protocol returns the netpoll protocol (the same one serves TCP and WebSocket listeners).
func (s *Server) Protocol() *netpoll.Protocol { return s.proto }

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// MessageCounts reports the messages accepted from publishers (in) and
// delivered to subscribers (out) since New.
//
// in counts each PUBLISH the broker accepted from a client, once, when it
// has been routed (QoS 0, 1 and 2; a QoS 2 PUBLISH resent with a packet
// identifier still awaiting PUBREL is the same message and is not counted
// again). Wills and $SYS messages are the broker's own and are not counted;
// a PUBLISH refused as a protocol violation is not counted.
//
// out counts every PUBLISH sent to a subscriber: one per delivered copy
// (fan-out, overlapping subscriptions merged into one copy as sent),
// retained messages sent on subscribe, and resends with DUP after a
// reconnect. Messages dropped (QoS 0 above the outbound high-water mark,
// queue overflow, expiry, too large for the client) are not delivered.
func (s *Server) MessageCounts() (in, out uint64) {
	return s.stats.MsgsIn.Load(), s.stats.MsgsOut.Load()
}

// Close stops background work. Connections are closed by the netpoll server.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		if s.persist != nil {
			// make every persistent session durable now: connections the
			// transport closes after this must not write to a closed engine
			s.sessions.Range(func(ss *session.Session) bool {
				ss.Lock()
				p := ss.Persistent
				ss.Unlock()
				if p {
					s.persist.saveSession(ss)
				}
				return true
			})
			if s.live != nil && !s.persist.closed.Load() {
				s.live.close()
			}
			s.persist.closed.Store(true)
		}
	})
	return nil
}

func (s *Server) clock() {
	defer close(s.done)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var lastSys time.Time
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.now.Store(now.UnixNano())
			if s.live != nil {
				s.live.tick(now)
			}
			if s.cfg.SysInterval > 0 && now.Sub(lastSys) >= s.cfg.SysInterval {
				lastSys = now
				s.publishSys()
			}
		}
	}
}

// publishSys publishes broker statistics as retained messages under $SYS/broker/.
func (s *Server) publishSys() {
	st := &s.stats
	vals := [...]struct {
		topic string
		v     uint64
	}{
		{"$SYS/broker/uptime", uint64(time.Since(s.started).Seconds())},
		{"$SYS/broker/clients/connected", uint64(st.ConnsOpen.Load())},
		{"$SYS/broker/clients/total", uint64(s.sessions.Len())},
		{"$SYS/broker/messages/received", st.MsgsIn.Load()},
		{"$SYS/broker/messages/sent", st.MsgsOut.Load()},
		{"$SYS/broker/publish/messages/dropped", st.Dropped.Load()},
		{"$SYS/broker/subscriptions/count", uint64(s.trie.Count())},
		{"$SYS/broker/retained messages/count", uint64(s.retained.Len())},
		{"$SYS/broker/load/bytes/received", st.BytesIn.Load()},
	}
	var buf [24]byte
	for _, v := range vals {
		m := session.NewMessage([]byte(v.topic), strconv.AppendUint(buf[:0], v.v, 10), nil)
		m.Retain = true
		s.retained.SetVolatile(m)
		s.route(m, nil)
		m.Release()
	}
	m := session.NewMessage([]byte("$SYS/broker/version"), []byte("quartet"), nil)
	m.Retain = true
	s.retained.SetVolatile(m)
	m.Release()
}

// route delivers m to every matching subscription; it returns the number of
// sessions it was delivered or queued to. Any goroutine.
func (s *Server) route(m *session.Message, origin *session.Session) int {
	n, _ := s.routeFrom(m, origin, nil)
	return n
}

// routeFrom is route for a publishing connection pub, which it registers as
// a waiter on every online session whose queue is past the high-water mark;
// it returns how many registrations were made.
func (s *Server) routeFrom(m *session.Message, origin *session.Session, pub session.Waiter) (int, int) {
	blocked := 0
	sp := s.subsPool.Get().(*[]trie.Sub[*session.Session])
	subs := s.trie.Match(m.Topic, (*sp)[:0])
	if len(subs) > 1 {
		slices.SortFunc(subs, func(a, b trie.Sub[*session.Session]) int {
			if a.S.Num != b.S.Num {
				if a.S.Num < b.S.Num {
					return -1
				}
				return 1
			}
			if a.Share != b.Share {
				if a.Share {
					return 1
				}
				return -1
			}
			return 0
		})
	}
	n := 0
	for i := 0; i < len(subs); {
		sub := subs[i]
		j := i + 1
		ss := sub.S
		// merge overlapping subscriptions of one session (not shared ones)
		var e session.Entry
		skip := true
		for k := i; k < len(subs) && subs[k].S == ss && subs[k].Share == sub.Share; k++ {
			j = k + 1
			o := subs[k]
			if o.Opts&0x04 != 0 && ss == origin && !o.Share { // no local
				continue
			}
			mergeSub(&e, o, m, skip)
			skip = false
		}
		i = j
		if skip {
			continue
		}
		ok, b, full := s.deliver(ss, m, e, pub)
		if full {
			// a shared-subscription member whose queue is full: another
			// member of the group takes the message if one can
			if ok, b = s.handOver(ss, m, e, pub); ok {
				s.stats.SharedHandovers.Add(1)
			} else {
				s.stats.Dropped.Add(1)
			}
		}
		if ok {
			n++
		}
		if b {
			blocked++
		}
	}
	clear(subs)
	*sp = subs[:0]
	s.subsPool.Put(sp)
	return n, blocked
}

// mergeSub adds what subscription o asks of m's delivery to e (first: e
// is empty): the highest granted QoS, retain as published, the shared
// subscription, the subscription identifiers.
func mergeSub(e *session.Entry, o trie.Sub[*session.Session], m *session.Message, first bool) {
	q := min(o.QoS(), m.QoS)
	if first || q > e.QoS {
		e.QoS = q
	}
	if o.Opts&0x08 != 0 && m.Retain {
		e.Retain = true
	}
	if o.Share && e.Share == "" {
		e.Share = o.Filter
	}
	if o.ID != 0 {
		if e.SubID == 0 {
			e.SubID = o.ID
		} else {
			e.More = append(e.More, o.ID)
		}
	}
}

// handOver delivers m, which shared-subscription member from could not
// take (entry e), to another member of the group e.Share: online members
// only, starting at a random one. It reports whether one took it.
func (s *Server) handOver(from *session.Session, m *session.Message, e session.Entry, pub session.Waiter) (ok, blocked bool) {
	members := s.trie.Members(e.Share, nil)
	if len(members) < 2 {
		return false, false
	}
	start := rand.IntN(len(members))
	for i := range members {
		sub := members[(start+i)%len(members)]
		if sub.S == from || !sub.S.Online.Load() {
			continue
		}
		var e2 session.Entry
		mergeSub(&e2, sub, m, true)
		if ok, blocked, _ := s.deliver(sub.S, m, e2, pub); ok {
			return true, blocked
		}
	}
	return false, false
}

// deliver queues m for ss (taking a new reference) and wakes its
// connection. full: ss could not take it because its queue is full and it
// came through a shared subscription (not counted as dropped: the caller
// offers it to another member first).
func (s *Server) deliver(ss *session.Session, m *session.Message, e session.Entry, pub session.Waiter) (ok, blocked, full bool) {
	ss.Lock()
	owner := ss.Owner
	if owner == nil && (e.QoS == 0 || !ss.Persistent) {
		ss.Unlock()
		return false, false, false
	}
	if e.Share != "" && ss.QueueLen() >= ss.QueueMax {
		ss.Unlock()
		return false, false, true
	}
	m.Ref()
	e.Msg = m
	if s.persist != nil && e.QoS > 0 && ss.Persistent && ss.QueueLen() < ss.QueueMax {
		// QoS 1/2 for a persistent session is stored on arrival, whether
		// the session is connected or not: the publisher's PUBACK/PUBREC
		// waits for this write (group-committed with every other write
		// of the round), so a broker crash loses nothing acknowledged.
		// The record is deleted when the subscriber acknowledges.
		pc, isConn := pub.(*conn)
		if isConn && pc != nil && owner != nil && e.QoS == 1 && s.live != nil && !s.persist.closed.Load() &&
			len(m.Topic)+len(m.Payload)+len(m.Props)+64 <= s.liveBatchBytesMax() {
			// one record per read burst of the publisher, each
			// message once (see liveBatch)
			pc.addLive(ss, m, &e)
		} else {
			var done func(error)
			if isConn && pc != nil {
				done = pc.durableDone()
			}
			e.Seq = s.persist.enqueue(ss, m, e, done)
		}
		e.Live = owner != nil
	}
	if ss.QueueLen() == 0 {
		// An empty queue means the subscriber has taken everything so
		// far: the stall clock starts now, not at its last delivery (an
		// idle subscriber is not a stalled one).
		ss.Progress = s.now.Load()
	}
	ok = ss.Enqueue(e)
	if q := int64(ss.QueueLen()); q > s.stats.QueueDepthMax.Load() && q&127 == 0 {
		s.stats.QueueDepthMax.Store(q)
	}
	if ok && pub != nil && owner != nil && e.QoS > 0 && ss.QueueLen() >= s.cfg.QueueHighMessages &&
		s.now.Load()-ss.Progress < int64(s.cfg.StallTimeout) {
		ss.AddWaiter(pub)
		blocked = true
	}
	ss.Unlock()
	if !ok {
		s.stats.Dropped.Add(1)
		return false, false, false
	}
	if owner != nil {
		owner.Notify()
	}
	return true, blocked, false
}

// publishCredit is how many publishes a publisher woken by a drained
// session may route into a queue still past its high-water mark before it
// pauses again. Without it, once the first woken publisher had refilled the
// queue the others paused after one message each (60% of all pauses with 4
// publishers into one subscriber), a pause and a resume per message. The
// queue overshoots its high-water mark by at most this much per waiting
// publisher.
func (s *Server) publishCredit() uint16 {
	return uint16(max(1, min(s.cfg.QueueHighMessages/4, 1024)))
}

// newClientID returns a server-assigned client identifier.
func (s *Server) newClientID() string {
	return fmt.Sprintf("quartet-%x-%x", s.nextID.Add(1), rand.Uint32())
}

// attach binds c to the session of c.clientID per the clean-start rules and
// returns whether a session was present.
func (s *Server) attach(c *conn, cleanStart bool, persistent bool, expiry uint32) (*session.Session, bool) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	ss, ok := s.sessions.Get(c.clientID)
	present := false
	if ok {
		ss.Lock()
		old := ss.Owner
		ss.Owner = nil
		ss.Online.Store(false)
		ss.Gen++
		ss.Unlock()
		if oc, isConn := old.(*conn); isConn && oc != nil {
			oc.takeover()
		}
		if cleanStart {
			s.dropSession(ss)
			ok = false
		} else {
			present = true
		}
	}
	if !ok {
		ss = session.New(c.clientID, s.cfg.QueueMessagesMax)
		ss.Num = s.nextID.Add(1)
		s.sessions.Put(ss)
	}
	ss.Lock()
	ss.Owner = c
	ss.Online.Store(true)
	ss.Progress = s.now.Load()
	ss.Gen++
	ss.Version = c.version
	ss.Persistent = persistent
	ss.ExpirySec = expiry
	if ss.ExpiryTimer != nil {
		ss.ExpiryTimer.Stop()
		ss.ExpiryTimer = nil
	}
	ss.Unlock()
	if s.persist != nil {
		if persistent {
			s.persist.saveSession(ss)
		} else if present {
			s.persist.deleteSession(ss)
		}
	}
	return ss, present
}

// dropSession removes ss's subscriptions and messages and forgets it.
func (s *Server) dropSession(ss *session.Session) {
	ss.Lock()
	subs := ss.Subs
	ss.Subs = nil
	ss.Clear()
	ss.Unlock()
	for f := range subs {
		s.trie.Unsubscribe(f, ss)
	}
	s.sessions.Delete(ss)
	if s.persist != nil {
		s.persist.deleteSession(ss)
	}
}

// detach runs when c's connection is gone.
func (s *Server) detach(c *conn) {
	ss := c.sess
	s.sessMu.Lock()
	ss.Lock()
	mine := ss.Owner == c
	var waiters []session.Waiter
	var shared []session.Inflight
	if mine {
		ss.Owner = nil
		ss.Online.Store(false)
		waiters = ss.TakeWaiters(nil)
		// QoS 0 routed here before the disconnect was seen is not kept
		// for an offline session, as QoS 0 routed after it is not.
		if n := ss.DropQoS0(); n > 0 {
			s.stats.Dropped.Add(uint64(n))
		}
		shared = ss.TakeShared(nil, s.otherMemberOnline(ss))
	}
	persistent := ss.Persistent
	expiry := ss.ExpirySec
	gen := ss.Gen
	ss.Unlock()
	for _, w := range waiters {
		w.Wake()
	}
	s.handOverAll(ss, shared, persistent)
	if mine {
		if !persistent {
			s.dropSession(ss)
		} else {
			if expiry != 0xFFFFFFFF {
				d := time.Duration(expiry) * time.Second
				ss.Lock()
				ss.ExpiryTimer = time.AfterFunc(d, func() { s.expire(ss, gen) })
				ss.Unlock()
			}
			if s.persist != nil {
				s.persist.saveSession(ss)
			}
		}
	}
	s.sessMu.Unlock()
}

// otherMemberOnline returns a test (run under ss's lock) of whether a
// shared subscription has an online member other than ss.
func (s *Server) otherMemberOnline(ss *session.Session) func(share string) bool {
	var known map[string]bool
	return func(share string) bool {
		if v, ok := known[share]; ok {
			return v
		}
		v := false
		for _, sub := range s.trie.Members(share, nil) {
			if sub.S != ss && sub.S.Online.Load() {
				v = true
				break
			}
		}
		if known == nil {
			known = make(map[string]bool)
		}
		known[share] = v
		return v
	}
}

// handOverAll gives the shared-subscription messages a disconnected
// member had queued or unacknowledged (taken by TakeShared) to other
// members of their groups. One nobody takes goes back to ss's queue if ss
// is persistent, and is dropped (counted) otherwise.
func (s *Server) handOverAll(ss *session.Session, taken []session.Inflight, persistent bool) {
	for i := range taken {
		f := &taken[i]
		e := f.Entry
		handed, _ := s.handOver(ss, e.Msg, e, nil)
		if handed {
			s.stats.SharedHandovers.Add(1)
		}
		if !handed && persistent {
			e.Live = false
			ss.Lock()
			ok := ss.Enqueue(e)
			ss.Unlock()
			if ok {
				continue
			}
			s.stats.Dropped.Add(1) // Enqueue released the message
			if s.persist != nil {
				s.persist.forget(ss, &e, f.Stored)
			}
			continue
		}
		if !handed {
			s.stats.Dropped.Add(1)
		}
		if s.persist != nil {
			// the new member's copy is written first (same catalog log)
			s.persist.forget(ss, &e, f.Stored)
		}
		e.Msg.Release()
	}
}

// expire ends a disconnected session whose expiry interval has passed.
func (s *Server) expire(ss *session.Session, gen uint64) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	ss.Lock()
	same := ss.Gen == gen && ss.Owner == nil
	ss.Unlock()
	if same {
		s.dropSession(ss)
	}
}

// publishWill publishes a will message now.
func (s *Server) publishWill(m *session.Message) {
	s.stats.WillsPublished.Add(1)
	if m.Retain {
		s.retained.Set(m, nil)
	}
	s.route(m, nil)
	m.Release()
}

var errTakenOver = errors.New("mqtt: session taken over")
