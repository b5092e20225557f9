package mqtt

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine/session"
	"quartet/engine/trie"
	"quartet/netpoll"
)

// Connection states.
const (
	stateNew = iota
	stateConnected
	stateClosed
)

var (
	errClientDisconnect = errors.New("mqtt: client disconnected")
	errKeepAlive        = errors.New("mqtt: keep alive timeout")
	errConnectTimeout   = errors.New("mqtt: no CONNECT in time")
)

// will is a pending will message.
type will struct {
	msg   *session.Message
	delay uint32
}

// conn is one MQTT connection. Fields are touched on the connection's loop
// only, except notified.
type conn struct {
	srv      *Server
	nc       netpoll.Conn
	sess     *session.Session
	clientID string
	will     *will

	state       uint8
	version     byte
	cleanClose  bool
	retryArmed  bool
	keepAlive   uint16
	recvWindow  uint16 // outbound QoS>0 window
	aliasOutMax uint16
	aliasOutN   uint16
	maxOut      uint32 // client's maximum packet size (0: unlimited)

	lastRx    int64 // coarse unix nanos of the last packet
	notified  atomic.Bool
	drainFn   func(netpoll.Conn)
	wakeFn    func(netpoll.Conn)
	da        *durableAck // acknowledgement of the publish being handled, if it waits for the disk
	*durState             // nil until the connection first publishes something stored (see useDur)
	paused    bool        // reads paused by flow control until a session wakes us
	credit    uint16      // publishes past a deep queue allowed before pausing again (see publishCredit)
	pauseGen  uint32      // identifies the pause a stall timer belongs to
	waiters   []session.Waiter
	timer     netpoll.Timer

	aliasIn  map[uint16]string
	aliasOut map[string]uint16
	buf      []byte // encoding scratch
	out      []byte // drain batch

	// counters folded into the server's every statsBatch packets
	bytesIn uint64
	frames  uint32
}

// writeBatchBytes is how much drain encodes before handing it to the transport.
const writeBatchBytes = 32 << 10

const statsBatch = 256

func (c *conn) foldStats() {
	st := &c.srv.stats
	if c.bytesIn > 0 {
		st.BytesIn.Add(c.bytesIn)
		c.bytesIn = 0
	}
}

// scratch holds the decode structures (they are large with MQTT 5
// properties, so they are pooled rather than kept per connection).
type scratch struct {
	pub   Publish
	ack   Ack
	sub   Subscribe
	unsub Unsubscribe
	disc  Disconnect
	conn  Connect
	props Properties
	rets  []*session.Message
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Wake implements session.Waiter (any goroutine).
func (c *conn) Wake() { _ = c.nc.Execute(c.wakeFn) }

// Notify implements session.Notifier: drain the session's queue on the loop.
func (c *conn) Notify() {
	if !c.notified.Swap(true) {
		if c.nc.Execute(c.drainFn) != nil {
			c.notified.Store(false)
		}
	}
}

type handler Server

func (h *handler) OnOpen(nc netpoll.Conn) any {
	s := (*Server)(h)
	c := &conn{srv: s, nc: nc}
	c.drainFn = func(netpoll.Conn) {
		c.notified.Store(false)
		c.drain()
	}
	c.wakeFn = func(netpoll.Conn) {
		c.credit = c.srv.publishCredit()
		if c.paused {
			c.paused = false
			c.resumeReads()
		}
	}
	c.timer = nc.AfterFunc(s.cfg.ConnectTimeout, func(netpoll.Conn) {
		if c.state == stateNew {
			s.log.Info("closing connection", "remote", nc.RemoteAddr(), "err", errConnectTimeout)
			nc.Close(errConnectTimeout)
		}
	})
	return c
}

func (h *handler) OnClose(nc netpoll.Conn, err error) {
	c, _ := nc.Context().(*conn)
	if c == nil {
		return
	}
	s := (*Server)(h)
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.state != stateConnected {
		c.state = stateClosed
		return
	}
	c.state = stateClosed
	c.foldStats()
	s.stats.ConnsOpen.Add(-1)
	w := c.will
	c.will = nil
	if w != nil && c.cleanClose {
		w.msg.Release()
		w = nil
	}
	ss := c.sess
	s.detach(c)
	if w != nil {
		ss.Lock()
		persistent := ss.Persistent
		expiry := ss.ExpirySec
		gen := ss.Gen
		ss.Unlock()
		delay := w.delay
		if !persistent {
			delay = 0
		} else if expiry < delay {
			delay = expiry
		}
		if delay == 0 {
			s.publishWill(w.msg)
		} else {
			m := w.msg
			time.AfterFunc(time.Duration(delay)*time.Second, func() {
				ss.Lock()
				same := ss.Gen == gen && ss.Owner == nil
				ss.Unlock()
				if same || s.sessionGone(ss) {
					s.publishWill(m)
				} else {
					m.Release()
				}
			})
		}
	}
	if err != nil && !errors.Is(err, errClientDisconnect) {
		s.log.Debug("connection closed", "client", c.clientID, "err", err)
	}
}

func (s *Server) sessionGone(ss *session.Session) bool {
	cur, ok := s.sessions.Get(ss.ID)
	return !ok || cur != ss
}

// takeover closes c because another connection took its session (any goroutine).
func (c *conn) takeover() {
	_ = c.nc.Execute(func(nc netpoll.Conn) {
		if c.version == Version5 {
			nc.Write(AppendDisconnect(c.buf[:0], Version5, DISCONNECT, RCSessionTakenOver, nil))
		}
		nc.Close(errTakenOver)
	})
}

// fail answers a protocol violation: DISCONNECT with rc on MQTT 5 (plain
// close before), a log line, and an error that closes the connection.
func (c *conn) fail(rc byte, err error) error {
	c.srv.stats.ProtocolErrors.Add(1)
	if c.version == Version5 && c.state == stateConnected {
		c.write(AppendDisconnect(c.buf[:0], Version5, DISCONNECT, rc, nil))
	}
	c.srv.log.Info("protocol error, closing connection", "client", c.clientID, "remote", c.nc.RemoteAddr(),
		"reason", fmt.Sprintf("0x%02x", rc), "err", err)
	return err
}

func rcFor(err error) byte {
	if errors.Is(err, ErrProtocol) {
		return RCProtocolError
	}
	return RCMalformedPacket
}

func (h *handler) OnFrame(nc netpoll.Conn, frame []byte) error {
	c := nc.Context().(*conn)
	s := c.srv
	hdr, body, err := SplitFrame(frame)
	if err != nil {
		return c.fail(RCMalformedPacket, err)
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	if c.state == stateNew {
		if hdr.Type != CONNECT {
			return c.fail(RCProtocolError, fmt.Errorf("%w: %s before CONNECT", ErrProtocol, packetName(hdr.Type)))
		}
		return c.onConnect(sc, hdr, body)
	}
	c.bytesIn += uint64(len(frame))
	c.frames++
	if c.frames%statsBatch == 0 {
		c.foldStats()
	}
	c.lastRx = s.now.Load()
	v := c.version
	switch hdr.Type {
	case PUBLISH:
		return c.onPublish(sc, hdr, body)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		if err := DecodeAck(&sc.ack, v, hdr.Type, hdr.Flags, body); err != nil {
			return c.fail(rcFor(err), err)
		}
		return c.onAck(sc)
	case SUBSCRIBE:
		if err := DecodeSubscribe(&sc.sub, v, hdr.Flags, body); err != nil {
			return c.fail(rcFor(err), err)
		}
		return c.onSubscribe(sc)
	case UNSUBSCRIBE:
		if err := DecodeUnsubscribe(&sc.unsub, v, hdr.Flags, body); err != nil {
			return c.fail(rcFor(err), err)
		}
		return c.onUnsubscribe(sc)
	case PINGREQ:
		if hdr.Flags != 0 || len(body) != 0 {
			return c.fail(RCMalformedPacket, ErrMalformed)
		}
		nc.Write([]byte{PINGRESP << 4, 0})
		return nil
	case DISCONNECT:
		if err := DecodeDisconnect(&sc.disc, v, DISCONNECT, hdr.Flags, body); err != nil {
			return c.fail(rcFor(err), err)
		}
		return c.onDisconnect(sc)
	case AUTH:
		if v != Version5 {
			return c.fail(RCProtocolError, ErrProtocol)
		}
		return c.fail(RCBadAuthenticationMethod, fmt.Errorf("%w: AUTH without an authentication method", ErrProtocol))
	case CONNECT:
		return c.fail(RCProtocolError, fmt.Errorf("%w: second CONNECT", ErrProtocol))
	default:
		return c.fail(RCProtocolError, fmt.Errorf("%w: unexpected %s from client", ErrProtocol, packetName(hdr.Type)))
	}
}

// ---------------------------------------------------------------- CONNECT

func (c *conn) onConnect(sc *scratch, hdr Header, body []byte) error {
	s := c.srv
	p := &sc.conn
	err := DecodeConnect(p, hdr.Flags, body)
	if len(body) > 6 {
		// the protocol level is known even if decoding failed later
		c.version = p.Version
	}
	if errors.Is(err, ErrUnsupportedVersion) {
		rc := byte(0x01)
		if p.Version == Version5 {
			rc = RCUnsupportedProtocolVersion
		}
		c.nc.Write(AppendConnack(nil, min(p.Version, Version311), &Connack{Reason: rc}))
		return c.fail(rc, err)
	}
	if err != nil {
		if c.version != Version5 {
			c.version = Version311
		}
		return c.fail(rcFor(err), err)
	}
	v := p.Version
	ack := Connack{}
	reject := func(rc311, rc5 byte, why string) error {
		rc := rc311
		if v == Version5 {
			rc = rc5
		}
		ack.Reason = rc
		c.nc.Write(AppendConnack(nil, v, &ack))
		return c.fail(rc, fmt.Errorf("mqtt: CONNECT refused: %s", why))
	}
	if v == Version5 && p.Props.Has(propAuthMethod) {
		return reject(0x05, RCBadAuthenticationMethod, "enhanced authentication is not supported")
	}
	clientID := string(p.ClientID)
	assigned := false
	if clientID == "" {
		if v == Version31 || v == Version311 && !p.CleanStart {
			return reject(0x02, RCClientIDNotValid, "empty client identifier without clean session")
		}
		clientID = s.newClientID()
		assigned = true
	}
	c.clientID = clientID
	c.version = v

	persistent := !p.CleanStart
	expiry := uint32(0xFFFFFFFF)
	if v == Version5 {
		expiry = p.Props.SessionExpiry
		if s.cfg.SessionExpiryMax > 0 && expiry > s.cfg.SessionExpiryMax {
			expiry = s.cfg.SessionExpiryMax
			ack.Props.SessionExpiry = expiry
			ack.Props.Set(propSessionExpiry)
		}
		persistent = expiry > 0
		c.recvWindow = 65535
		if p.Props.Has(propReceiveMaximum) {
			c.recvWindow = p.Props.ReceiveMaximum
		}
		if p.Props.Has(propMaximumPacketSize) {
			c.maxOut = p.Props.MaximumPacketSize
		}
		c.aliasOutMax = p.Props.TopicAliasMaximum
	} else {
		c.recvWindow = 65535
	}
	if int(c.recvWindow) > s.cfg.InflightMessagesMax {
		c.recvWindow = uint16(s.cfg.InflightMessagesMax)
	}
	c.keepAlive = p.KeepAlive
	c.lastRx = s.now.Load()
	if c.keepAlive > s.cfg.KeepAliveMax {
		c.keepAlive = s.cfg.KeepAliveMax
		if v == Version5 {
			ack.Props.ServerKeepAlive = c.keepAlive
			ack.Props.Set(propServerKeepAlive)
		}
	}
	if p.WillFlag {
		m, err := c.buildMessage(sc, p.WillTopic, p.WillPayload, &p.WillProps)
		if err != nil {
			return reject(0x02, RCProtocolError, "bad will properties")
		}
		m.QoS = p.WillQoS
		m.Retain = p.WillRetain
		c.will = &will{msg: m, delay: p.WillProps.WillDelay}
	}

	ss, present := s.attach(c, p.CleanStart, persistent, expiry)
	c.sess = ss
	c.state = stateConnected
	s.stats.ConnsOpen.Add(1)
	s.stats.ConnsTotal.Add(1)
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}

	ack.SessionPresent = present
	if v == Version5 {
		if assigned {
			ack.Props.AssignedClientID = []byte(clientID)
			ack.Props.Set(propAssignedClientID)
		}
		ack.Props.ReceiveMaximum = s.cfg.ReceiveMaximum
		ack.Props.Set(propReceiveMaximum)
		ack.Props.MaximumPacketSize = uint32(s.cfg.PacketBytesMax)
		ack.Props.Set(propMaximumPacketSize)
		if s.cfg.TopicAliasMaximum > 0 {
			ack.Props.TopicAliasMaximum = uint16(s.cfg.TopicAliasMaximum)
			ack.Props.Set(propTopicAliasMaximum)
		}
	}
	c.write(AppendConnack(c.buf[:0], v, &ack))
	if c.keepAlive > 0 {
		c.armKeepAlive(time.Duration(c.keepAlive) * 1500 * time.Millisecond)
	}
	// resend what was inflight, then drain the queue
	c.redeliver()
	c.drain()
	return nil
}

func (c *conn) armKeepAlive(d time.Duration) {
	c.timer = c.nc.AfterFunc(d, c.keepAliveCheck)
}

func (c *conn) keepAliveCheck(nc netpoll.Conn) {
	if c.state != stateConnected {
		return
	}
	limit := int64(c.keepAlive) * 1500 * int64(time.Millisecond)
	idle := c.srv.now.Load() - c.lastRx
	if idle >= limit {
		_ = c.fail(RCKeepAliveTimeout, errKeepAlive)
		nc.Close(errKeepAlive)
		return
	}
	c.armKeepAlive(time.Duration(limit - idle))
}

// buildMessage copies a publish (or will) into a new message.
func (c *conn) buildMessage(sc *scratch, topic, payload []byte, pp *Properties) (*session.Message, error) {
	var props []byte
	if c.version == Version5 {
		fw := &sc.props
		fw.Reset()
		fw.present = pp.present & (bit(propPayloadFormat) | bit(propContentType) | bit(propResponseTopic) | bit(propCorrelationData) | bit(propUser))
		if fw.present != 0 {
			fw.PayloadFormat = pp.PayloadFormat
			fw.ContentType = pp.ContentType
			fw.ResponseTopic = pp.ResponseTopic
			fw.CorrelationData = pp.CorrelationData
			fw.User = append(fw.User, pp.User...)
			if fw.Has(propResponseTopic) && !ValidTopicName(fw.ResponseTopic) {
				return nil, fmt.Errorf("%w: invalid response topic", ErrProtocol)
			}
			props = appendProps(c.buf[:0], fw)
			c.buf = props[:0] // NewMessage copies props before c.buf is reused
			// strip the length prefix
			props = props[varintLen(propsLen(fw)):]
		}
	}
	m := session.NewMessage(topic, payload, props)
	if c.version == Version5 && pp.Has(propMessageExpiry) {
		m.ExpireAt = c.srv.now.Load() + int64(pp.MessageExpiry)*int64(time.Second)
	}
	return m, nil
}

// ---------------------------------------------------------------- PUBLISH in

func (c *conn) onPublish(sc *scratch, hdr Header, body []byte) error {
	s := c.srv
	p := &sc.pub
	if err := DecodePublish(p, c.version, hdr.Flags, body); err != nil {
		return c.fail(rcFor(err), err)
	}
	topic := p.Topic
	if c.version == Version5 {
		if len(p.Props.SubscriptionIDs) > 0 {
			return c.fail(RCProtocolError, fmt.Errorf("%w: subscription identifier in PUBLISH from client", ErrProtocol))
		}
		if a := p.Props.TopicAlias; p.Props.Has(propTopicAlias) {
			if int(a) > s.cfg.TopicAliasMaximum {
				return c.fail(RCTopicAliasInvalid, fmt.Errorf("%w: topic alias %d above maximum", ErrProtocol, a))
			}
			if len(topic) > 0 {
				if c.aliasIn == nil {
					c.aliasIn = make(map[uint16]string)
				}
				if old, ok := c.aliasIn[a]; !ok || old != string(topic) {
					c.aliasIn[a] = string(topic)
				}
			} else {
				t, ok := c.aliasIn[a]
				if !ok {
					return c.fail(RCProtocolError, fmt.Errorf("%w: unknown topic alias %d", ErrProtocol, a))
				}
				topic = []byte(t)
			}
		}
	}
	if !ValidTopicName(topic) {
		return c.fail(RCTopicNameInvalid, fmt.Errorf("%w: invalid topic name %q", ErrProtocol, topic))
	}
	ss := c.sess
	persistQoS2 := false // a new inbound QoS 2 id of a persistent session: stored before PUBREC
	if p.QoS == 2 {
		ss.Lock()
		_, dup := ss.QoS2In[p.PacketID]
		persistQoS2 = !dup && ss.Persistent && s.persist != nil
		if !dup {
			if len(ss.QoS2In) >= int(s.cfg.ReceiveMaximum) {
				ss.Unlock()
				return c.fail(RCReceiveMaximumExceeded, fmt.Errorf("%w: receive maximum exceeded", ErrProtocol))
			}
			if ss.QoS2In == nil {
				ss.QoS2In = make(map[uint16]struct{})
			}
			ss.QoS2In[p.PacketID] = struct{}{}
		}
		ss.Unlock()
		if dup {
			c.write(AppendAck(c.buf[:0], c.version, PUBREC, p.PacketID, RCSuccess, nil))
			return nil
		}
	}
	m, err := c.buildMessage(sc, topic, p.Payload, &p.Props)
	if err != nil {
		return c.fail(RCProtocolError, err)
	}
	if persistQoS2 {
		// after a restart a PUBLISH resent with DUP must still be known
		s.persist.putQoS2In(ss, p.PacketID, c.durableDone())
	}
	m.QoS = p.QoS
	m.Retain = p.Retain
	m.Origin = ss
	if p.Retain {
		var done func(error)
		if p.QoS > 0 && s.persist != nil {
			done = c.durableDone()
		}
		s.retained.Set(m, done)
	}
	n, blocked := s.routeFrom(m, ss, c)
	if c.durState != nil && c.lb != nil {
		c.lb.msg = nil // messages are pooled: the next one may reuse m's address
	}
	m.Release()
	s.stats.MsgsIn.Add(1)
	if blocked > 0 && c.credit > 0 {
		c.credit--
	} else if blocked > 0 && !c.paused {
		s.stats.PublisherPauses.Add(1)
		c.paused = true
		c.pauseGen++
		gen := c.pauseGen
		c.nc.PauseReads()
		// a subscriber that stops reading must not hold publishers:
		// give up waiting after the stall timeout
		c.nc.AfterFunc(s.cfg.StallTimeout, func(nc netpoll.Conn) {
			if c.paused && c.pauseGen == gen {
				c.paused = false
				c.resumeReads()
			}
		})
	}
	rc := byte(RCSuccess)
	if n == 0 && c.version == Version5 {
		rc = RCNoMatchingSubscribers
	}
	typ := byte(PUBACK)
	if p.QoS == 2 {
		typ = PUBREC
	}
	if da := c.da; da != nil {
		// acknowledge once the durable writes complete, in PUBLISH order
		c.da = nil
		c.ackWaiting(1)
		if p.QoS == 0 {
			da.slot = c.nc.Reserve()
			da.slot.Fill(nil)
		} else {
			da.slot = c.nc.Reserve()
			da.typ, da.id, da.rc = typ, p.PacketID, rc
		}
		da.release(true)
		return nil
	}
	if p.QoS > 0 {
		c.write(AppendAck(c.buf[:0], c.version, typ, p.PacketID, rc, nil))
	}
	return nil
}

// ---------------------------------------------------------------- acks

func (c *conn) onAck(sc *scratch) error {
	a := &sc.ack
	ss := c.sess
	switch a.Type {
	case PUBACK:
		ss.Lock()
		f, ok := ss.Ack(a.PacketID, 1)
		ss.Unlock()
		if ok {
			c.srv.acked(ss, f)
			c.drain()
		}
	case PUBREC:
		ss.Lock()
		var ok bool
		var f session.Inflight
		if a.Reason >= 0x80 {
			f, ok = ss.Ack(a.PacketID, 2) // the receiver refused: the flow ends
			ss.Unlock()
			if ok {
				c.srv.acked(ss, f)
				c.drain()
			}
			return nil
		}
		ok = ss.Released(a.PacketID)
		if ok && c.srv.persist != nil && ss.Persistent {
			// a stored delivery: after a restart PUBREL is resent, not the
			// PUBLISH (not waited for: if lost, the PUBLISH is resent with
			// DUP and the same id, which the receiver already holds)
			if f := ss.FindInflight(a.PacketID); f != nil && f.Stored != session.StoredNone {
				c.srv.persist.storeInflight(ss, f, nil)
			}
		}
		ss.Unlock()
		rc := byte(RCSuccess)
		if !ok {
			rc = RCPacketIDNotFound
		}
		c.write(AppendAck(c.buf[:0], c.version, PUBREL, a.PacketID, rc, nil))
	case PUBCOMP:
		ss.Lock()
		f, ok := ss.Ack(a.PacketID, 2)
		ss.Unlock()
		if ok {
			c.srv.acked(ss, f)
			c.drain()
		}
	case PUBREL:
		ss.Lock()
		_, ok := ss.QoS2In[a.PacketID]
		delete(ss.QoS2In, a.PacketID)
		persisted := ok && ss.Persistent && c.srv.persist != nil
		ss.Unlock()
		rc := byte(RCSuccess)
		if !ok {
			rc = RCPacketIDNotFound
		}
		if persisted {
			// PUBCOMP frees the id for a new message: the stored id must be
			// gone first, or after a restart that message would be taken
			// for a duplicate and lost
			c.srv.persist.deleteQoS2In(ss, a.PacketID, c.durableDone())
			c.ackWhenDurable(PUBCOMP, a.PacketID, rc)
			return nil
		}
		c.write(AppendAck(c.buf[:0], c.version, PUBCOMP, a.PacketID, rc, nil))
	}
	return nil
}

// acked finishes an acknowledged delivery.
func (s *Server) acked(ss *session.Session, f session.Inflight) {
	if s.persist != nil {
		s.persist.forget(ss, &f.Entry, f.Stored)
	}
	if f.Msg != nil {
		f.Msg.Release()
	}
}

// ---------------------------------------------------------------- SUBSCRIBE

func (c *conn) onSubscribe(sc *scratch) error {
	s := c.srv
	p := &sc.sub
	ss := c.sess
	var subID uint32
	if len(p.Props.SubscriptionIDs) == 1 {
		subID = p.Props.SubscriptionIDs[0]
	}
	reasons := make([]byte, 0, 8)
	rets := sc.rets[:0]
	for _, sub := range p.Subs {
		filter := string(sub.Filter)
		grp, f, shared, err := trie.SplitShared(filter)
		if err != nil || !ValidTopicFilter([]byte(f)) {
			if c.version < Version5 {
				reasons = append(reasons, 0x80)
			} else {
				reasons = append(reasons, RCTopicFilterInvalid)
			}
			continue
		}
		_ = grp
		if shared && sub.NoLocal && c.version == Version5 {
			return c.fail(RCProtocolError, fmt.Errorf("%w: no local on a shared subscription", ErrProtocol))
		}
		opts := sub.QoS
		if sub.NoLocal {
			opts |= 0x04
		}
		if sub.RetainAsPublished {
			opts |= 0x08
		}
		opts |= sub.RetainHandling << 4
		existed, _ := s.trie.Subscribe(filter, trie.Sub[*session.Session]{S: ss, Opts: opts, ID: subID})
		ss.Lock()
		if ss.Subs == nil {
			ss.Subs = make(map[string]session.Subscription)
		}
		ss.Subs[filter] = session.Subscription{Filter: filter, Opts: opts, ID: subID}
		ss.Unlock()
		reasons = append(reasons, sub.QoS)
		if !shared && (sub.RetainHandling == 0 || sub.RetainHandling == 1 && !existed) {
			n0 := len(rets)
			rets = s.retained.Match(f, rets)
			now := s.now.Load()
			for _, m := range rets[n0:] {
				if m.Expired(now) {
					m.Release()
					continue
				}
				ss.Lock()
				ok := ss.Enqueue(session.Entry{Msg: m, QoS: min(m.QoS, sub.QoS), Retain: true, SubID: subID})
				ss.Unlock()
				if !ok {
					s.stats.Dropped.Add(1)
				}
			}
		}
	}
	clear(rets)
	sc.rets = rets[:0]
	if s.persist != nil && ss.Persistent {
		s.persist.saveSession(ss)
	}
	c.write(AppendSubAck(c.buf[:0], c.version, &SubAck{Type: SUBACK, PacketID: p.PacketID, Reasons: reasons}))
	c.drain()
	return nil
}

func (c *conn) onUnsubscribe(sc *scratch) error {
	s := c.srv
	p := &sc.unsub
	ss := c.sess
	reasons := make([]byte, 0, 8)
	for _, f := range p.Filters {
		filter := string(f)
		ok := s.trie.Unsubscribe(filter, ss)
		ss.Lock()
		delete(ss.Subs, filter)
		ss.Unlock()
		if ok {
			reasons = append(reasons, RCSuccess)
		} else {
			reasons = append(reasons, RCNoSubscriptionExisted)
		}
	}
	if s.persist != nil && ss.Persistent {
		s.persist.saveSession(ss)
	}
	c.write(AppendSubAck(c.buf[:0], c.version, &SubAck{Type: UNSUBACK, PacketID: p.PacketID, Reasons: reasons}))
	return nil
}

// ---------------------------------------------------------------- DISCONNECT

func (c *conn) onDisconnect(sc *scratch) error {
	d := &sc.disc
	ss := c.sess
	if c.version == Version5 && d.Props.Has(propSessionExpiry) {
		ss.Lock()
		was := ss.ExpirySec
		if was == 0 && d.Props.SessionExpiry != 0 {
			ss.Unlock()
			return c.fail(RCProtocolError, fmt.Errorf("%w: session expiry set on DISCONNECT after 0 on CONNECT", ErrProtocol))
		}
		ss.ExpirySec = d.Props.SessionExpiry
		ss.Persistent = ss.ExpirySec > 0
		ss.Unlock()
	}
	c.cleanClose = d.Reason != RCDisconnectWithWill
	c.nc.Close(errClientDisconnect)
	return nil
}

// ---------------------------------------------------------------- outbound

// redeliver resends the session's inflight messages with DUP (PUBREL for
// those already PUBREC'd) after a reconnect.
func (c *conn) redeliver() {
	ss := c.sess
	sent := 0
	ss.Lock()
	ss.EachInflight(func(f *session.Inflight) {
		if f.Released {
			c.write(AppendAck(c.buf[:0], c.version, PUBREL, f.PacketID, RCSuccess, nil))
			return
		}
		if b, ok := c.appendPublish(c.buf[:0], &f.Entry, f.PacketID, true); ok {
			c.buf = b
			c.nc.Write(b)
			sent++
		}
	})
	ss.Unlock()
	if sent > 0 {
		c.srv.stats.MsgsOut.Add(uint64(sent))
	}
}

// drain writes queued messages up to the inflight window (loop only).
func (c *conn) drain() {
	if c.state != stateConnected {
		return
	}
	s := c.srv
	ss := c.sess
	nc := c.nc
	now := s.now.Load()
	sent, dropped, expired := 0, 0, 0
	full := netpoll.OutboundFull(nc)
	out := c.out[:0]
	ss.Lock()
	window := int(c.recvWindow)
	for {
		e, ok := ss.Front()
		if !ok {
			break
		}
		if e.QoS > 0 && (ss.InflightLen() >= window || full) {
			break
		}
		ent, _ := ss.Pop()
		if ent.Msg.Expired(now) {
			expired++
			s.dropped(ss, ent)
			continue
		}
		if ent.QoS == 0 {
			if full {
				dropped++
				ent.Msg.Release()
				continue
			}
			if b, ok := c.appendPublish(out, &ent, 0, false); ok {
				out = b
				sent++
			}
			ent.Msg.Release()
		} else {
			id := ss.AddInflight(ent)
			b, ok := c.appendPublish(out, &ent, id, false)
			if !ok { // larger than the client accepts: discarded as if delivered
				f, _ := ss.Ack(id, ent.QoS)
				s.acked(ss, f)
				continue
			}
			if ent.Seq != 0 && s.persist != nil {
				f := ss.NewestInflight()
				if ent.QoS == 2 {
					// the record must carry the packet id before the
					// subscriber can see the PUBLISH: resent after a
					// crash under a new id, it would be a second message
					// to the subscriber. Earlier output leaves now; this
					// PUBLISH waits in its slot for the write, and what
					// follows waits behind it.
					pkt := append([]byte(nil), b[len(out):]...)
					if len(out) > 0 {
						nc.Write(out)
					}
					out = out[:0]
					sent++
					slot := nc.Reserve()
					fill := func(nc netpoll.Conn) { slot.Fill(pkt) }
					if !s.persist.storeInflight(ss, f, func(err error) {
						if err != nil {
							s.log.Error("mqtt: storing a packet id", "client", ss.ID, "err", err)
						}
						_ = nc.Execute(fill)
					}) {
						fill(nc)
					}
					continue
				}
				if !ent.Live {
					// a message stored while the session was offline: its
					// record now carries the packet id, so a restart
					// resends it with DUP (not waited for: a rewrite lost
					// in a crash only means a new id for QoS 1)
					s.persist.storeInflight(ss, f, nil)
				}
			}
			out = b
			sent++
		}
		if len(out) >= writeBatchBytes {
			nc.Write(out)
			out = out[:0]
			full = netpoll.OutboundFull(nc)
		}
	}
	if len(out) > 0 {
		nc.Write(out)
	}
	if cap(out) <= 2*writeBatchBytes {
		c.out = out[:0]
	} else {
		c.out = nil
	}
	pending := ss.QueueLen() > 0 && full
	if sent > 0 || ss.QueueLen() == 0 {
		ss.Progress = now
	}
	waiters := c.waiters[:0]
	if len(ss.Waiters) > 0 && ss.QueueLen() <= s.cfg.QueueHighMessages/2 {
		waiters = ss.TakeWaiters(waiters)
	}
	ss.Unlock()
	for i, w := range waiters {
		w.Wake()
		waiters[i] = nil
	}
	c.waiters = waiters[:0]
	if sent > 0 {
		s.stats.MsgsOut.Add(uint64(sent))
	}
	if dropped > 0 {
		s.stats.Dropped.Add(uint64(dropped))
		netpoll.CountDrop(nc, dropped)
	}
	if expired > 0 {
		s.stats.ExpiredMessages.Add(uint64(expired))
	}
	if pending && !c.retryArmed {
		c.retryArmed = true
		nc.AfterFunc(s.cfg.RetryInterval, func(netpoll.Conn) {
			c.retryArmed = false
			c.drain()
		})
	}
}

func (s *Server) dropped(ss *session.Session, e session.Entry) {
	if s.persist != nil {
		s.persist.forget(ss, &e, session.StoredNone)
	}
	e.Msg.Release()
}

// appendPublish encodes one outgoing PUBLISH for this connection: the
// per-subscriber header (flags, topic or alias, packet id, expiry, sub ids)
// around the message's shared properties and payload. It reports false when
// the packet exceeds the client's maximum packet size.
func (c *conn) appendPublish(dst []byte, e *session.Entry, id uint16, dup bool) ([]byte, bool) {
	m := e.Msg
	v := c.version
	topic := m.Topic
	var alias uint16
	propsN := 0
	var expiry uint32
	if v == Version5 {
		if m.ExpireAt != 0 {
			rem := m.ExpireAt - c.srv.now.Load()
			expiry = uint32((rem + int64(time.Second) - 1) / int64(time.Second))
			if expiry == 0 {
				expiry = 1
			}
			propsN += 5
		}
		if c.aliasOutMax > 0 {
			if a, ok := c.aliasOut[string(topic)]; ok {
				alias = a
				topic = nil
			} else if c.aliasOutN < c.aliasOutMax {
				if c.aliasOut == nil {
					c.aliasOut = make(map[string]uint16)
				}
				c.aliasOutN++
				alias = c.aliasOutN
				c.aliasOut[string(topic)] = alias
			}
			if alias != 0 {
				propsN += 3
			}
		}
		if e.SubID != 0 {
			propsN += 1 + varintLen(int(e.SubID))
			for _, id := range e.More {
				propsN += 1 + varintLen(int(id))
			}
		}
		propsN += len(m.Props)
	}
	rl := 2 + len(topic) + len(m.Payload)
	if e.QoS > 0 {
		rl += 2
	}
	if v == Version5 {
		rl += varintLen(propsN) + propsN
	}
	if c.maxOut != 0 && uint32(1+varintLen(rl)+rl) > c.maxOut {
		if alias != 0 && topic != nil {
			// alias was just assigned for a packet never sent: forget it
			delete(c.aliasOut, string(topic))
			c.aliasOutN--
		}
		return dst, false
	}
	flags := e.QoS << 1
	if dup {
		flags |= 0x08
	}
	if e.Retain {
		flags |= 0x01
	}
	dst = appendVarint(append(dst, PUBLISH<<4|flags), rl)
	dst = appendBin(dst, topic)
	if e.QoS > 0 {
		dst = appendU16(dst, id)
	}
	if v == Version5 {
		dst = appendVarint(dst, propsN)
		if m.ExpireAt != 0 {
			dst = appendU32(append(dst, propMessageExpiry), expiry)
		}
		if alias != 0 {
			dst = appendU16(append(dst, propTopicAlias), alias)
		}
		if e.SubID != 0 {
			dst = appendVarint(append(dst, propSubscriptionID), int(e.SubID))
			for _, id := range e.More {
				dst = appendVarint(append(dst, propSubscriptionID), int(id))
			}
		}
		dst = append(dst, m.Props...)
	}
	return append(dst, m.Payload...), true
}

// write hands b (built in c.buf) to the transport and keeps the buffer.
func (c *conn) write(b []byte) {
	c.buf = b[:0]
	c.nc.Write(b)
}
