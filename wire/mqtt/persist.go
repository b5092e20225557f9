package mqtt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"quartet/netpoll"

	"quartet/engine/retained"
	"quartet/engine/session"
	"quartet/engine/trie"
)

// Durable persistent sessions in the metadata catalog:
//
//	ns "mqtt.session"  key clientID            value: version(1) expiry(4) {filterLen(2) filter opts(1) id(4)}*
//	ns "mqtt.queue"    key clientID "\x00" seq value: qos(1) retain(1) subID(4) message(session.AppendMessage)
//	                   or, once sent (inflight): qos|0x80 (|0x40 PUBREC'd) retain(1) subID(4) packetID(2) [message]
//	ns "mqtt.qos2in"   key clientID "\x00" packetID(4 hex) value: 1
//
// Queued QoS 1/2 messages are written when they are queued for a session that
// is offline, or when a persistent session disconnects with messages queued
// or inflight; they are deleted when acknowledged. An inflight message's
// record carries its packet identifier (and, for QoS 2, whether PUBREC was
// received; the message itself is then dropped from the record), so after a
// restart it is resent with the same identifier and DUP, or as PUBREL. The
// record is rewritten in place: when a stored message is sent, when a stored
// QoS 2 delivery is PUBREC'd, and at disconnect/shutdown for the rest.
var errServerClosed = errors.New("mqtt: server closed")

const (
	nsSession = "mqtt.session"
	nsQueue   = "mqtt.queue"
	nsQoS2In  = "mqtt.qos2in" // inbound QoS 2 ids received and not yet released (PUBREL)
)

// A live batch (a record of the engine internal log "mqtt-live", see
// liveLog) holds the QoS 1
// messages one read burst of a publisher routed to connected persistent
// sessions, each message once:
//
//	{msgLen(4) message(session.AppendMessage) pairs(2) {idLen(2) clientID qos(1) retain(1) subID(4) seq(8)}*}*
//
// It is written once per burst (the publishes' PUBACKs wait for it) and
// released once every (session, message) pair in it is acknowledged,
// dropped or moved to a per-message record; it is not written at all when
// that happens before the burst ends. An entry of a live batch is never
// rewritten with its packet id while connected (QoS 1 may be resent under a
// new id after a crash); at disconnect and shutdown its inflight state is
// written as a per-message record of ns "mqtt.queue" with the same
// sequence, which then wins over the batch's pair. Without an engine (no
// internal log) these messages are stored as per-message records instead.

type persister struct {
	be     retained.Backend
	log    *slog.Logger
	seq    atomic.Uint64
	closed atomic.Bool // after Server.Close: writes are skipped (at-least-once on restart)
}

func (p *persister) logErr(what string) func(error) {
	return func(err error) {
		if err != nil {
			p.log.Error("mqtt: persisting "+what, "err", err)
		}
	}
}

// saveSession writes the session record (caller must not hold ss's lock).
func (p *persister) saveSession(ss *session.Session) {
	if p.closed.Load() {
		return
	}
	ss.Lock()
	rec := []byte{ss.Version}
	rec = binary.BigEndian.AppendUint32(rec, ss.ExpirySec)
	for _, sub := range ss.Subs {
		rec = binary.BigEndian.AppendUint16(rec, uint16(len(sub.Filter)))
		rec = append(rec, sub.Filter...)
		rec = append(rec, sub.Opts)
		rec = binary.BigEndian.AppendUint32(rec, sub.ID)
	}
	// persist what is queued or inflight and not yet durable
	for i := 0; i < ss.QueueLen(); i++ {
		e := ss.At(i)
		if e.Seq == 0 && e.QoS > 0 {
			e.Seq = p.enqueue(ss, e.Msg, *e, nil)
		}
	}
	ss.EachInflight(func(f *session.Inflight) {
		p.storeInflight(ss, f, nil)
	})
	ss.Unlock()
	p.be.Put(nsSession, ss.ID, rec, p.logErr("session"))
}

func (p *persister) deleteSession(ss *session.Session) {
	if p.closed.Load() {
		return
	}
	p.be.Delete(nsSession, ss.ID, p.logErr("session"))
	prefix := ss.ID + "\x00"
	for _, ns := range []string{nsQueue, nsQoS2In} {
		var keys []string
		p.be.Range(ns, func(k string, _ []byte) bool {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
			return true
		})
		for _, k := range keys {
			p.be.Delete(ns, k, nil)
		}
	}
}

func qos2Key(id string, pid uint16) string {
	return id + "\x00" + fmt.Sprintf("%04x", pid)
}

// putQoS2In stores an inbound QoS 2 packet id awaiting PUBREL; done is
// called once it is durable (or with an error).
func (p *persister) putQoS2In(ss *session.Session, pid uint16, done func(error)) {
	if p.closed.Load() {
		done(errServerClosed)
		return
	}
	p.be.Put(nsQoS2In, qos2Key(ss.ID, pid), []byte{1}, done)
}

// deleteQoS2In forgets a released inbound QoS 2 packet id.
func (p *persister) deleteQoS2In(ss *session.Session, pid uint16, done func(error)) {
	if p.closed.Load() {
		done(errServerClosed)
		return
	}
	p.be.Delete(nsQoS2In, qos2Key(ss.ID, pid), done)
}

func queueKey(id string, seq uint64) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(id)+17)
	b = append(b, id...)
	b = append(b, 0)
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[seq>>uint(i)&15])
	}
	return string(b)
}

// Flags in the first byte of a queue record (below them: the QoS).
const (
	recInflight = 0x80 // sent: a packet identifier follows the subscription id
	recReleased = 0x40 // QoS 2 PUBREC received: no message follows
)

// entryHeadBytes is the length of appendEntryHead's encoding, which starts
// a queue record and ends a live batch's pair.
const entryHeadBytes = 6

// appendEntryHead appends first (e's QoS, with a queue record's flags),
// e's retain flag and its subscription identifier.
func appendEntryHead(v []byte, first byte, e *session.Entry) []byte {
	r := byte(0)
	if e.Retain {
		r = 1
	}
	v = append(v, first, r)
	return binary.BigEndian.AppendUint32(v, e.SubID)
}

// entryHead decodes appendEntryHead's encoding at the start of b (at least
// entryHeadBytes); QoS is the first byte as written, flags included.
func entryHead(b []byte) session.Entry {
	return session.Entry{QoS: b[0], Retain: b[1] == 1, SubID: binary.BigEndian.Uint32(b[2:])}
}

// newRecord encodes a queue record; pid and state only for inflight
// (state session.StoredSent or StoredReleased).
func newRecord(e *session.Entry, pid uint16, state byte) []byte {
	n := entryHeadBytes + 2
	if state != session.StoredReleased {
		n += session.MessageBytes(e.Msg)
	}
	f := e.QoS
	switch state {
	case session.StoredSent:
		f |= recInflight
	case session.StoredReleased:
		f |= recInflight | recReleased
	}
	v := appendEntryHead(make([]byte, 0, n), f, e)
	if state != session.StoredNone {
		v = binary.BigEndian.AppendUint16(v, pid)
	}
	if state == session.StoredReleased {
		return v
	}
	return session.AppendMessage(v, e.Msg)
}

// storeInflight writes f's record with its packet identifier and state
// unless that is already stored (caller holds ss's lock); done (may be
// nil) is called once it is durable. It reports whether it wrote (done is
// not called otherwise).
func (p *persister) storeInflight(ss *session.Session, f *session.Inflight, done func(error)) bool {
	want := session.StoredSent
	if f.Released {
		want = session.StoredReleased
	}
	if f.Stored == want || (want == session.StoredSent && f.Msg == nil) || p.closed.Load() {
		return false
	}
	if f.Seq == 0 {
		f.Seq = p.seq.Add(1)
	}
	v := newRecord(&f.Entry, f.PacketID, want)
	if done == nil {
		done = p.logErr("inflight message")
	}
	f.Stored = want
	p.be.Put(nsQueue, queueKey(ss.ID, f.Seq), v, done)
	return true
}

// enqueue writes one queued message and returns its sequence.
func (p *persister) enqueue(ss *session.Session, m *session.Message, e session.Entry, done func(error)) uint64 {
	seq := p.seq.Add(1)
	e.Msg = m
	v := newRecord(&e, 0, session.StoredNone)
	if p.closed.Load() {
		if done != nil {
			done(errServerClosed) // not stored: not acknowledged as success
		}
		return seq
	}
	if done == nil {
		done = p.logErr("queued message")
	}
	p.be.Put(nsQueue, queueKey(ss.ID, seq), v, done)
	return seq
}

func (p *persister) ack(ss *session.Session, seq uint64) {
	if p.closed.Load() {
		return
	}
	p.be.Delete(nsQueue, queueKey(ss.ID, seq), p.logErr("ack"))
}

// forget removes the durable trace of an entry that was acknowledged or
// dropped: its per-message record (if it has one) and its reference on a
// live batch.
func (p *persister) forget(ss *session.Session, e *session.Entry, stored byte) {
	if e.Batch != nil {
		if stored != session.StoredNone {
			p.ack(ss, e.Seq)
		}
		e.Batch.Release()
		e.Batch = nil
		return
	}
	if e.Seq != 0 {
		p.ack(ss, e.Seq)
	}
}

// liveBatch is the live batch a publishing connection is filling during
// one read burst (loop only); it is written by flushLive, run by Execute
// after the burst.
type liveBatch struct {
	b     *session.Batch
	buf   []byte
	dones []func(error)
	msg   *session.Message // message whose pairs are being appended
	pairs int              // offset of its pair count in buf
}

// addLive adds m for ss to c's live batch, setting e's sequence and
// batch; the publish's acknowledgement waits for the batch (loop only, ss
// locked).
func (c *conn) addLive(ss *session.Session, m *session.Message, e *session.Entry) {
	p := c.srv.persist
	c.useDur()
	lb := c.lb
	if lb != nil && len(lb.buf)+len(m.Topic)+len(m.Payload)+len(m.Props)+64 > c.srv.liveBatchBytesMax() {
		c.flushLive(c.nc) // a record stays well inside a segment
		lb = nil
	}
	if lb == nil {
		lb = &liveBatch{b: &session.Batch{Empty: c.srv.live.empty}}
		c.lb = lb
		_ = c.nc.Execute(c.flushLiveFn)
	}
	if lb.msg != m || binary.BigEndian.Uint16(lb.buf[lb.pairs:]) == 0xFFFF {
		lb.msg = m
		at := len(lb.buf)
		lb.buf = append(lb.buf, 0, 0, 0, 0)
		lb.buf = session.AppendMessage(lb.buf, m)
		binary.BigEndian.PutUint32(lb.buf[at:], uint32(len(lb.buf)-at-4))
		lb.pairs = len(lb.buf)
		lb.buf = append(lb.buf, 0, 0)
		lb.dones = append(lb.dones, c.durableDone())
	}
	binary.BigEndian.PutUint16(lb.buf[lb.pairs:], binary.BigEndian.Uint16(lb.buf[lb.pairs:])+1)
	e.Seq = p.seq.Add(1)
	lb.buf = binary.BigEndian.AppendUint16(lb.buf, uint16(len(ss.ID)))
	lb.buf = append(lb.buf, ss.ID...)
	lb.buf = appendEntryHead(lb.buf, e.QoS, e)
	lb.buf = binary.BigEndian.AppendUint64(lb.buf, e.Seq)
	lb.b.Ref()
	e.Batch = lb.b
	if h := lb.b.Holders; len(h) == 0 || h[len(h)-1] != ss {
		lb.b.Holders = append(h, ss)
	}
}

// liveBatchBytesMax bounds a live batch record; a message larger than it
// is stored on its own (per-message record).
func (s *Server) liveBatchBytesMax() int { return int(min(s.cfg.LiveLogSegmentBytes/4, 4<<20)) }

// migrateLive moves the entries of live batches b to per-message records
// (ns "mqtt.queue", same sequence), releasing each batch's reference once
// its record is durable (liveLog.tick, off the loops).
func (s *Server) migrateLive(batches []*session.Batch) {
	p := s.persist
	moved := 0
	for _, b := range batches {
		seen := map[*session.Session]bool{}
		for _, ss := range b.Holders {
			if seen[ss] {
				continue
			}
			seen[ss] = true
			ss.Lock()
			ss.EachEntry(func(e *session.Entry, f *session.Inflight) {
				if e.Batch != b || p.closed.Load() {
					return
				}
				release := func(err error) {
					if err != nil {
						p.log.Error("mqtt: moving a live message", "client", ss.ID, "err", err)
						return // the batch keeps it
					}
					b.Release()
				}
				wrote := false
				if f != nil {
					wrote = p.storeInflight(ss, f, release)
				} else {
					p.be.Put(nsQueue, queueKey(ss.ID, e.Seq), newRecord(e, 0, session.StoredNone), release)
					wrote = true
				}
				if !wrote {
					b.Release() // its per-message record exists already
				}
				e.Batch, e.Live = nil, false
				moved++
			})
			ss.Unlock()
		}
	}
	if moved > 0 {
		s.log.Info("mqtt: messages held long moved out of the live log", "batches", len(batches), "messages", moved)
	}
}

// flushLive writes the connection's live batch (loop only).
func (c *conn) flushLive(netpoll.Conn) {
	lb := c.lb
	if lb == nil {
		return
	}
	c.lb = nil
	p := c.srv.persist
	dones := lb.dones
	done := func(err error) {
		if err != nil {
			p.log.Error("mqtt: persisting live batch", "err", err)
		}
		for _, d := range dones {
			d(err)
		}
	}
	if p.closed.Load() {
		done(errServerClosed)
		return
	}
	now := c.srv.now.Load()
	if !lb.b.Write(func() { c.srv.live.write(lb.b, lb.buf, now, done) }) {
		done(nil) // every pair was acknowledged before the burst ended
	}
}

// item is a queued or inflight entry read back on start.
type item struct {
	seq   uint64
	e     session.Entry
	pid   uint16
	state byte // session.StoredNone: queued, not sent yet
}

// loadLive restores the live batches without a release record into
// queues (a pair whose sequence has a per-message record, written at
// disconnect or shutdown, is that record's).
func (s *Server) loadLive(queues map[string][]item, have map[uint64]bool, maxSeq *uint64) error {
	released := map[int64]bool{}
	err := s.live.scan(func(_ int64, key, value []byte) error {
		if len(key) == 1 && key[0] == 'r' {
			if len(value) != 8 {
				return session.ErrCorrupt
			}
			released[int64(binary.BigEndian.Uint64(value))] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the live log: %w", err)
	}
	var restored, dropped int
	err = s.live.scan(func(off int64, key, v []byte) error {
		if len(key) != 0 || released[off] {
			return nil
		}
		b := &session.Batch{Off: off, Empty: s.live.empty}
		var refs int32
		for len(v) > 0 {
			if len(v) < 4 || int(binary.BigEndian.Uint32(v)) > len(v)-4 {
				return session.ErrCorrupt
			}
			n := int(binary.BigEndian.Uint32(v))
			body := v[4 : 4+n]
			v = v[4+n:]
			if len(v) < 2 {
				return session.ErrCorrupt
			}
			np := int(binary.BigEndian.Uint16(v))
			v = v[2:]
			var m *session.Message
			for range np {
				if len(v) < 2 || len(v) < 2+int(binary.BigEndian.Uint16(v))+entryHeadBytes+8 {
					return session.ErrCorrupt
				}
				il := int(binary.BigEndian.Uint16(v))
				id := string(v[2 : 2+il])
				f := v[2+il:]
				v = f[entryHeadBytes+8:]
				seq := binary.BigEndian.Uint64(f[entryHeadBytes:])
				*maxSeq = max(*maxSeq, seq)
				if _, ok := s.sessions.Get(id); !ok || have[seq] {
					continue
				}
				if m == nil {
					var e error
					if m, e = session.DecodeMessage(body); e != nil {
						return e
					}
				} else {
					m.Ref()
				}
				refs++
				if ss, _ := s.sessions.Get(id); len(b.Holders) == 0 || b.Holders[len(b.Holders)-1] != ss {
					b.Holders = append(b.Holders, ss)
				}
				e := entryHead(f)
				e.Msg, e.Seq, e.Batch = m, seq, b
				queues[id] = append(queues[id], item{seq: seq, e: e})
			}
		}
		s.live.restored(b)
		if refs == 0 {
			dropped++
			b.Restored(1)
			b.Release() // nothing left in it: released on the first tick
			return nil
		}
		restored++
		b.Restored(refs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the live log: %w", err)
	}
	if restored > 0 {
		s.log.Info("mqtt: live batches restored", "batches", restored, "empty", dropped)
	}
	return nil
}

// loadSessions restores persistent sessions, their subscriptions and queues.
func (s *Server) loadSessions() error {
	p := s.persist
	var err error
	p.be.Range(nsSession, func(id string, rec []byte) bool {
		if len(rec) < 5 {
			err = session.ErrCorrupt
			return false
		}
		ss := session.New(id, s.cfg.QueueMessagesMax)
		ss.Num = s.nextID.Add(1)
		ss.Version = rec[0]
		ss.ExpirySec = binary.BigEndian.Uint32(rec[1:])
		ss.Persistent = true
		ss.Subs = make(map[string]session.Subscription)
		b := rec[5:]
		for len(b) > 0 {
			if len(b) < 2 {
				err = session.ErrCorrupt
				return false
			}
			n := int(binary.BigEndian.Uint16(b))
			if len(b) < 2+n+5 {
				err = session.ErrCorrupt
				return false
			}
			f := string(b[2 : 2+n])
			sub := session.Subscription{Filter: f, Opts: b[2+n], ID: binary.BigEndian.Uint32(b[3+n:])}
			b = b[7+n:]
			ss.Subs[f] = sub
			if _, e := s.trie.Subscribe(f, trie.Sub[*session.Session]{S: ss, Opts: sub.Opts, ID: sub.ID}); e != nil {
				err = e
				return false
			}
		}
		s.sessions.Put(ss)
		if ss.ExpirySec != 0xFFFFFFFF {
			gen := ss.Gen
			ss.ExpiryTimer = time.AfterFunc(time.Duration(ss.ExpirySec)*time.Second, func() { s.expire(ss, gen) })
		}
		return true
	})
	if err != nil {
		return err
	}
	queues := map[string][]item{}
	var maxSeq uint64
	var stale []string
	p.be.Range(nsQueue, func(k string, v []byte) bool {
		i := strings.LastIndexByte(k, 0)
		if i < 0 || len(v) < entryHeadBytes {
			err = session.ErrCorrupt
			return false
		}
		seq, e := strconv.ParseUint(k[i+1:], 16, 64)
		if e != nil {
			err = session.ErrCorrupt
			return false
		}
		maxSeq = max(maxSeq, seq)
		id := k[:i]
		if _, ok := s.sessions.Get(id); !ok {
			stale = append(stale, k)
			return true
		}
		it := item{seq: seq, e: entryHead(v)}
		it.e.QoS &= 3
		it.e.Seq = seq
		body := v[entryHeadBytes:]
		if v[0]&recInflight != 0 {
			if len(body) < 2 {
				err = session.ErrCorrupt
				return false
			}
			it.pid = binary.BigEndian.Uint16(body)
			body = body[2:]
			it.state = session.StoredSent
			if v[0]&recReleased != 0 {
				it.state = session.StoredReleased
				queues[id] = append(queues[id], it)
				return true
			}
		}
		m, e := session.DecodeMessage(body)
		if e != nil {
			err = e
			return false
		}
		it.e.Msg = m
		queues[id] = append(queues[id], it)
		return true
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		p.be.Delete(nsQueue, k, nil)
	}
	stale = stale[:0]
	// live batches: a pair whose sequence has a per-message record is
	// that record's (written at disconnect or shutdown)
	have := map[uint64]bool{}
	for _, items := range queues {
		for _, it := range items {
			have[it.seq] = true
		}
	}
	if s.live != nil {
		if err := s.loadLive(queues, have, &maxSeq); err != nil {
			return err
		}
	}
	p.be.Range(nsQoS2In, func(k string, _ []byte) bool {
		i := strings.LastIndexByte(k, 0)
		pid, e := strconv.ParseUint(k[i+1:], 16, 16)
		if i < 0 || e != nil {
			err = session.ErrCorrupt
			return false
		}
		ss, ok := s.sessions.Get(k[:i])
		if !ok {
			stale = append(stale, k)
			return true
		}
		if ss.QoS2In == nil {
			ss.QoS2In = make(map[uint16]struct{})
		}
		ss.QoS2In[uint16(pid)] = struct{}{}
		return true
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		p.be.Delete(nsQoS2In, k, nil)
	}
	p.seq.Store(maxSeq)
	for id, items := range queues {
		ss, _ := s.sessions.Get(id)
		slices.SortFunc(items, func(a, b item) int {
			if a.seq < b.seq {
				return -1
			}
			return 1
		})
		ss.Lock()
		for _, it := range items {
			if it.state != session.StoredNone {
				// sent before the restart: resent on reconnect with the
				// same packet identifier (DUP), or PUBREL once PUBREC'd
				ss.RestoreInflight(it.e, it.pid, it.state == session.StoredReleased, it.state)
				continue
			}
			ss.Enqueue(it.e)
		}
		ss.Unlock()
	}
	return nil
}

// durableAck holds a QoS 1/2 acknowledgement until every durable write the
// publish caused (queued for an offline persistent session, retained) has
// completed; its slot keeps acknowledgements in PUBLISH order.
type durableAck struct {
	c    *conn
	n    atomic.Int32
	err  atomic.Pointer[error]
	slot *netpoll.Slot
	typ  byte
	id   uint16
	rc   byte
}

// durState is a connection's state for acknowledgements that wait for
// the disk and for its live batch. Most connections never need it (an idle
// connection stays small), so it is allocated on first use.
type durState struct {
	// acknowledgements whose durable writes completed, filled on the loop
	// by one Execute (see ackReady)
	acksMu        sync.Mutex
	acks          []*durableAck
	acksSpare     []*durableAck
	acksScheduled bool
	acksWaiting   int  // acknowledgements waiting for durable writes (loop only)
	acksPaused    bool // reads paused until fewer wait (see acksWaitingMax)
	acksFn        func(netpoll.Conn)
	lb            *liveBatch // QoS 1 for connected persistent sessions, written after this read burst
	flushLiveFn   func(netpoll.Conn)
}

// useDur allocates c's durState (loop only, before anything another
// goroutine could reach it through is created).
func (c *conn) useDur() {
	if c.durState == nil {
		c.durState = &durState{}
		c.acksFn = c.fillAcks
		c.flushLiveFn = c.flushLive
	}
}

// durableDone returns a completion to pass to one durable write of the
// publish being handled (loop only).
func (c *conn) durableDone() func(error) {
	c.useDur()
	if c.da == nil {
		c.da = &durableAck{c: c}
		c.da.n.Store(1)
	}
	da := c.da
	da.n.Add(1)
	return func(err error) {
		if err != nil {
			da.err.Store(&err)
			c.srv.log.Error("mqtt: durable write failed", "client", c.clientID, "err", err)
		}
		da.release(false)
	}
}

// ackWhenDurable writes acknowledgement typ for id once the durable writes
// begun with durableDone for the packet being handled complete, in order
// with everything written after it (loop only).
func (c *conn) ackWhenDurable(typ byte, id uint16, rc byte) {
	da := c.da
	c.da = nil
	c.ackWaiting(1)
	da.slot = c.nc.Reserve()
	da.typ, da.id, da.rc = typ, id, rc
	da.release(true)
}

func (da *durableAck) release(onLoop bool) {
	if da.n.Add(-1) != 0 {
		return
	}
	if onLoop {
		da.fill(da.c.nc)
		return
	}
	da.c.ackReady(da)
}

// ackReady queues a completed acknowledgement for the loop (any
// goroutine). A writer round completes many publishes of one connection
// at once: they are filled by one Execute, so they leave in one write
// rather than a write (and a loop wakeup) each.
func (c *conn) ackReady(da *durableAck) {
	c.acksMu.Lock()
	c.acks = append(c.acks, da)
	sched := !c.acksScheduled
	c.acksScheduled = true
	c.acksMu.Unlock()
	if sched {
		_ = c.nc.Execute(c.acksFn)
	}
}

// fillAcks fills every acknowledgement queued by ackReady (loop only).
func (c *conn) fillAcks(nc netpoll.Conn) {
	c.acksMu.Lock()
	acks := c.acks
	c.acks = c.acksSpare[:0]
	c.acksScheduled = false
	c.acksMu.Unlock()
	for i, da := range acks {
		da.fill(nc)
		acks[i] = nil
	}
	c.acksSpare = acks[:0]
}

// acksWaitingMax bounds the acknowledgements of one connection waiting for
// durable writes: past it the connection is not read until half of them
// are sent. Each waits in its own output slot, and a client pipelining
// thousands of publishes would otherwise have them all outstanding.
const acksWaitingMax = 512

// ackWaiting counts n more (or, negative, fewer) acknowledgements waiting
// for the disk and pauses or resumes reading (loop only).
func (c *conn) ackWaiting(n int) {
	c.acksWaiting += n
	switch {
	case !c.acksPaused && c.acksWaiting >= acksWaitingMax:
		c.acksPaused = true
		c.nc.PauseReads()
	case c.acksPaused && c.acksWaiting <= acksWaitingMax/2:
		c.acksPaused = false
		c.resumeReads()
	}
}

// resumeReads resumes reading the connection unless it is still paused for
// the other reason: flow control (paused) or acknowledgements waiting for
// the disk (acksPaused) (loop only).
func (c *conn) resumeReads() {
	if !c.paused && (c.durState == nil || !c.acksPaused) {
		c.nc.ResumeReads()
	}
}

func (da *durableAck) fill(nc netpoll.Conn) {
	c := da.c
	c.ackWaiting(-1)
	rc := da.rc
	if da.err.Load() != nil {
		if c.version < Version5 || da.typ == PUBCOMP { // PUBCOMP has no error reason but 0x92
			da.slot.Fill(nil)
			nc.Close(fmt.Errorf("mqtt: publish not stored"))
			return
		}
		rc = RCUnspecifiedError
	}
	da.slot.Fill(AppendAck(nil, c.version, da.typ, da.id, rc, nil))
}
