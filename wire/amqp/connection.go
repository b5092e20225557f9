package amqp

// Connection class (10): protocol header, start/start-ok (PLAIN, AMQPLAIN),
// tune/tune-ok, open, close, heartbeats, update-secret. Differences from
// RabbitMQ: one virtual host "/"; users are guest/guest (loopback only unless
// configured) and Config.Users.

import (
	"bytes"
	"errors"
	"net"
	"time"

	"quartet/netpoll"
)

type connState uint8

const (
	stateHeader connState = iota
	stateStartOk
	stateTuneOk
	stateOpen
	stateOpened
	stateClosing // we sent connection.close
	stateClosed
)

type connection struct {
	s          *Server
	nc         netpoll.Conn
	state      connState
	frameMax   int
	channelMax int
	heartbeat  time.Duration
	lastRecv   time.Time // updated by the heartbeat timer from frames
	frames     uint64
	framesSeen uint64
	channels   map[uint16]*channel
	exclusive  []*vqueue
	out        []byte
	user       string
	caps       Table
	cancelNote bool // client understands basic.cancel from the server
	hbTimer    netpoll.Timer
	hsTimer    netpoll.Timer
	r          Reader

	blockReason string // resource alarm on
	published   bool
	paused      bool // by a resource alarm
	flowPaused  bool // by a queue's backlog (flow control)
	flowPauses  int
	flowTimer   netpoll.Timer
}

func newConnection(s *Server, nc netpoll.Conn) *connection {
	c := &connection{s: s, nc: nc, frameMax: FrameMinSize, channelMax: s.cfg.ChannelMax,
		channels: map[uint16]*channel{}, lastRecv: time.Now()}
	s.alarms.add(c)
	c.hsTimer = nc.AfterFunc(s.cfg.HandshakeTimeout, func(netpoll.Conn) {
		if c.state < stateOpened {
			s.log.Info("handshake timeout", "remote", nc.RemoteAddr())
			c.nc.Close(errors.New("amqp: handshake timeout"))
		}
	})
	return c
}

// send writes one method frame.
func (c *connection) send(ch uint16, m Method) {
	c.out = AppendMethodFrame(c.out[:0], ch, m)
	c.nc.Write(c.out)
}

func (c *connection) onFrame(b []byte) error {
	c.frames++
	if c.state == stateHeader {
		if string(b) != protocolHeader {
			// Spec 4.2.2: reply with the header we support and close.
			c.nc.Write([]byte(protocolHeader))
			return errors.New("amqp: bad protocol header")
		}
		c.state = stateStartOk
		c.send(0, &ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: c.serverProperties(),
			Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"})
		return nil
	}
	if c.state == stateClosed {
		return nil
	}
	if len(b) == 7 {
		return c.hardError(amqpErr(FrameError, "frame size %d exceeds frame max %d",
			int(b[3])<<24|int(b[4])<<16|int(b[5])<<8|int(b[6]), c.frameMax), 0)
	}
	f, err := ParseFrame(b, c.frameMax)
	if err != nil {
		switch {
		case errors.Is(err, ErrFrameTooLarge):
			return c.hardError(amqpErr(FrameError, "frame size %d exceeds frame max %d", len(b), c.frameMax), 0)
		default:
			return c.hardError(amqpErr(FrameError, "%v", err), 0)
		}
	}
	switch f.Type {
	case FrameHeartbeat:
		if f.Channel != 0 {
			return c.hardError(amqpErr(FrameError, "heartbeat frame on channel %d", f.Channel), 0)
		}
		return nil
	case FrameMethod:
		return c.onMethod(f)
	case FrameHeader, FrameBody:
		if c.state != stateOpened {
			if c.state == stateClosing {
				return nil
			}
			return c.hardError(amqpErr(UnexpectedFrame, "content frame before connection open"), 0)
		}
		ch := c.channels[f.Channel]
		if ch == nil {
			return c.hardError(amqpErr(ChannelError, "content frame on unopened channel %d", f.Channel), 0)
		}
		if ch.closing {
			return nil
		}
		var err error
		if f.Type == FrameHeader {
			err = ch.onHeader(f.Payload)
		} else {
			err = ch.onBody(f.Payload)
		}
		return c.exception(ch, err, IDBasicPublish)
	}
	return c.hardError(amqpErr(FrameError, "unknown frame type %d", f.Type), 0)
}

func (c *connection) onMethod(f Frame) error {
	c.r.Reset(f.Payload)
	id := c.r.Long()
	if c.r.Err() != nil {
		return c.hardError(amqpErr(FrameError, "short method frame"), 0)
	}
	if f.Channel == 0 {
		return c.onConnectionMethod(id)
	}
	if c.state == stateClosing {
		return nil // only close/close-ok matter now
	}
	if c.state != stateOpened {
		return c.hardError(amqpErr(ChannelError, "channel %d used before connection.open-ok", f.Channel), id)
	}
	ch := c.channels[f.Channel]
	if id == IDChannelOpen {
		var m ChannelOpen
		m.Decode(&c.r)
		if ch != nil {
			return c.hardError(amqpErr(ChannelError, "second 'channel.open' seen"), id)
		}
		if int(f.Channel) > c.channelMax {
			return c.hardError(amqpErr(NotAllowed, "channel %d above channel_max %d", f.Channel, c.channelMax), id)
		}
		ch = newChannel(c, f.Channel)
		c.channels[f.Channel] = ch
		c.send(f.Channel, &ChannelOpenOk{})
		return nil
	}
	if ch == nil {
		return c.hardError(amqpErr(ChannelError, "expected 'channel.open' on channel %d", f.Channel), id)
	}
	if ch.closing {
		switch id {
		case IDChannelCloseOk:
			ch.release()
			delete(c.channels, ch.id)
		case IDChannelClose:
			c.send(ch.id, &ChannelCloseOk{})
		}
		return nil
	}
	return c.exception(ch, ch.onMethod(id, &c.r), id)
}

// exception turns a handler error into a channel or connection close.
func (c *connection) exception(ch *channel, err error, id uint32) error {
	if err == nil {
		return nil
	}
	var ae *amqpError
	if !errors.As(err, &ae) {
		if errors.Is(err, ErrShort) || errors.Is(err, ErrSyntax) {
			ae = amqpErr(SyntaxError, "%v", err)
		} else {
			ae = amqpErr(InternalError, "%v", err)
		}
	}
	if isHardError(ae.code) || ch == nil {
		return c.hardError(ae, id)
	}
	c.s.log.Debug("channel exception", "remote", c.nc.RemoteAddr(), "channel", ch.id, "code", ae.code, "text", ae.text)
	ch.release()
	ch.closing = true
	c.send(ch.id, &ChannelClose{ReplyCode: ae.code, ReplyText: replyName(ae.code) + " - " + ae.text,
		ClassId: uint16(id >> 16), MethodId: uint16(id)})
	return nil
}

// hardError sends connection.close and waits (briefly) for close-ok.
func (c *connection) hardError(ae *amqpError, id uint32) error {
	if c.state == stateClosing || c.state == stateClosed {
		return nil
	}
	c.s.log.Info("connection exception", "remote", c.nc.RemoteAddr(), "code", ae.code, "text", ae.text)
	if c.state < stateTuneOk && ae.code != AccessRefused {
		// Before tune the client cannot take a close; just drop it.
		c.state = stateClosed
		return ae
	}
	c.send(0, &ConnectionClose{ReplyCode: ae.code, ReplyText: replyName(ae.code) + " - " + ae.text,
		ClassId: uint16(id >> 16), MethodId: uint16(id)})
	c.releaseAll()
	c.state = stateClosing
	c.nc.AfterFunc(time.Second, func(nc netpoll.Conn) { nc.Close(ae) })
	return nil
}

func (c *connection) onConnectionMethod(id uint32) error {
	m := NewMethod(id)
	if m == nil {
		return c.hardError(amqpErr(CommandInvalid, "unknown method %d.%d", id>>16, id&0xffff), id)
	}
	m.Decode(&c.r)
	if err := c.r.Err(); err != nil {
		return c.hardError(amqpErr(SyntaxError, "%s: %v", m.Name(), err), id)
	}
	switch m := m.(type) {
	case *ConnectionStartOk:
		if c.state != stateStartOk {
			break
		}
		return c.onStartOk(m)
	case *ConnectionTuneOk:
		if c.state != stateTuneOk {
			break
		}
		if m.FrameMax != 0 && m.FrameMax < FrameMinSize {
			return c.hardError(amqpErr(NotAllowed, "frame_max=%d < %d min size", m.FrameMax, FrameMinSize), id)
		}
		c.frameMax = c.s.cfg.FrameMax
		if m.FrameMax != 0 && int(m.FrameMax) < c.frameMax {
			c.frameMax = int(m.FrameMax)
		}
		if m.ChannelMax != 0 && int(m.ChannelMax) < c.channelMax {
			c.channelMax = int(m.ChannelMax)
		}
		if m.Heartbeat > 0 {
			c.heartbeat = time.Duration(m.Heartbeat) * time.Second
			c.startHeartbeat()
		}
		c.state = stateOpen
		return nil
	case *ConnectionOpen:
		if c.state != stateOpen {
			break
		}
		if m.VirtualHost != "/" && m.VirtualHost != "" {
			return c.hardError(amqpErr(NotAllowed, "vhost %s not found", m.VirtualHost), id)
		}
		c.state = stateOpened
		if c.hsTimer != nil {
			c.hsTimer.Stop()
			c.hsTimer = nil
		}
		c.send(0, &ConnectionOpenOk{})
		c.out = nil // idle connections keep no write buffer
		return nil
	case *ConnectionClose:
		c.releaseAll()
		c.send(0, &ConnectionCloseOk{})
		c.state = stateClosed
		c.nc.Close(nil)
		return nil
	case *ConnectionCloseOk:
		if c.state == stateClosing {
			c.state = stateClosed
			c.nc.Close(nil)
			return nil
		}
	case *ConnectionUpdateSecret:
		if c.state == stateOpened {
			c.send(0, &ConnectionUpdateSecretOk{})
			return nil
		}
	case *ConnectionBlocked, *ConnectionUnblocked:
		return nil
	}
	if c.state == stateClosing {
		return nil
	}
	return c.hardError(amqpErr(CommandInvalid, "unexpected %s in connection state %d", m.Name(), c.state), id)
}

func (c *connection) onStartOk(m *ConnectionStartOk) error {
	c.caps, _ = m.ClientProperties["capabilities"].(Table)
	if v, ok := c.caps["consumer_cancel_notify"].(bool); ok && v {
		c.cancelNote = true
	}
	var user, pass string
	switch m.Mechanism {
	case "PLAIN":
		parts := bytes.Split([]byte(m.Response), []byte{0})
		if len(parts) != 3 {
			return c.authFail("PLAIN response malformed")
		}
		user, pass = string(parts[1]), string(parts[2])
	case "AMQPLAIN":
		r := NewReader(append(appendLong(nil, uint32(len(m.Response))), m.Response...))
		t := r.Table()
		user, _ = t["LOGIN"].(string)
		pass, _ = t["PASSWORD"].(string)
	default:
		return c.authFail("unsupported mechanism " + m.Mechanism)
	}
	if !c.authenticate(user, pass) {
		return c.authFail("ACCESS_REFUSED - Login was refused using authentication mechanism " + m.Mechanism + ". For details see the broker logfile.")
	}
	c.user = user
	c.state = stateTuneOk
	hb := uint16(0)
	if c.s.cfg.Heartbeat > 0 {
		hb = uint16(c.s.cfg.Heartbeat / time.Second)
	}
	c.send(0, &ConnectionTune{ChannelMax: uint16(c.s.cfg.ChannelMax), FrameMax: uint32(c.s.cfg.FrameMax), Heartbeat: hb})
	return nil
}

func (c *connection) authenticate(user, pass string) bool {
	if p, ok := c.s.cfg.Users[user]; ok {
		return p == pass
	}
	if user == "guest" && pass == "guest" {
		if c.s.cfg.AllowRemoteGuest {
			return true
		}
		if ta, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
			return ta.IP.IsLoopback()
		}
		return false
	}
	return false
}

// authFail closes with 403 (RabbitMQ's authentication_failure_close).
func (c *connection) authFail(text string) error {
	c.s.log.Info("login refused", "remote", c.nc.RemoteAddr(), "reason", text)
	c.send(0, &ConnectionClose{ReplyCode: AccessRefused, ReplyText: text, ClassId: ClassConnection, MethodId: 11})
	c.state = stateClosed
	c.nc.AfterFunc(100*time.Millisecond, func(nc netpoll.Conn) { nc.Close(errors.New("amqp: login refused")) })
	return nil
}

func (c *connection) startHeartbeat() {
	interval := c.heartbeat / 2
	c.lastRecv = time.Now()
	var tick func(netpoll.Conn)
	tick = func(nc netpoll.Conn) {
		if c.state == stateClosed {
			return
		}
		if c.frames != c.framesSeen {
			c.framesSeen = c.frames
			c.lastRecv = time.Now()
		}
		if time.Since(c.lastRecv) > 2*c.heartbeat {
			c.s.log.Info("missed heartbeats from client, timeout", "remote", nc.RemoteAddr(), "heartbeat", c.heartbeat)
			c.releaseAll()
			c.state = stateClosed
			nc.Close(errors.New("amqp: missed heartbeats"))
			return
		}
		c.nc.Write(AppendHeartbeat(c.out[:0]))
		c.hbTimer = nc.AfterFunc(interval, tick)
	}
	c.hbTimer = c.nc.AfterFunc(interval, tick)
}

func (c *connection) serverProperties() Table {
	return Table{
		"product":      "Quartet",
		"version":      "0.1.0",
		"platform":     "Go",
		"copyright":    "Quartet authors",
		"information":  "AMQP 0-9-1 on the Quartet storage engine",
		"cluster_name": "quartet",
		"capabilities": Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"authentication_failure_close": true,
			"connection.blocked":           true,
			"per_consumer_qos":             true,
			"consumer_priorities":          true,
			"direct_reply_to":              true,
		},
	}
}

// releaseAll frees every channel and the exclusive queues.
func (c *connection) releaseAll() {
	for id, ch := range c.channels {
		ch.release()
		delete(c.channels, id)
	}
	for _, q := range c.exclusive {
		c.s.vh.deleteQueue(q, false, false)
	}
	c.exclusive = nil
}

func (c *connection) onClose(err error) {
	c.s.alarms.remove(c)
	if c.hbTimer != nil {
		c.hbTimer.Stop()
	}
	if c.hsTimer != nil {
		c.hsTimer.Stop()
	}
	c.releaseAll()
	c.state = stateClosed
}
