package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/netpoll"
)

// Config tunes the AMQP server. Zero values pick the defaults noted.
type Config struct {
	FrameMax   int           // largest frame offered in connection.tune (0: 131072)
	ChannelMax int           // channels per connection (0: 2047)
	Heartbeat  time.Duration // heartbeat offered in connection.tune (0: off, as the appliance's 0)
	// BodyBytesMax is the largest message body accepted (0: 128 MiB).
	BodyBytesMax int
	// AllowRemoteGuest lets guest/guest log in from non-loopback addresses.
	AllowRemoteGuest bool
	// Users are accepted credentials besides guest/guest (user -> password).
	Users map[string]string
	// HandshakeTimeout closes connections not open by then (0: 10 s).
	HandshakeTimeout time.Duration
	// DataDir and DiskFreeBytesMin: while the file system holding DataDir
	// has less free space, publishers are blocked (connection.blocked).
	// Either zero: no disk check.
	DataDir          string
	DiskFreeBytesMin int64
}

func (c *Config) setDefaults() {
	if c.FrameMax <= 0 {
		c.FrameMax = 131072
	}
	if c.FrameMax < FrameMinSize {
		c.FrameMax = FrameMinSize
	}
	if c.ChannelMax <= 0 {
		c.ChannelMax = 2047
	}
	if c.BodyBytesMax <= 0 {
		c.BodyBytesMax = 128 << 20
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
}

// Server is the AMQP 0-9-1 protocol: one virtual host "/" over the engine.
type Server struct {
	e      *engine.Engine
	cfg    Config
	log    *slog.Logger
	vh     *vhost
	proto  *netpoll.Protocol
	alarms alarms
	stop   chan struct{}
	once   sync.Once
	counts messageCounts
}

// messageCounts are the per-message counters behind MessageCounts, written
// by every event loop: each on its own cache line, so that publishers and
// consumers on different loops do not contend with each other or with the
// read-mostly fields of Server.
type messageCounts struct {
	_   [64]byte
	in  atomic.Uint64 // messages the broker accepted from publishers
	_   [56]byte
	out atomic.Uint64 // deliveries to consumers (basic.deliver, basic.get-ok)
	_   [56]byte
}

// MessageCounts reports the messages accepted from publishers (in) and
// delivered to consumers (out) since New.
//
// in counts each published message once, when the broker accepts it: when
// it is enqueued on every queue it routes to (on tx.commit for a
// transactional channel), or when it routes nowhere and is not mandatory
// (dropped and, under confirms, acked, as RabbitMQ counts it). Messages
// refused by a queue (reject-publish overflow: basic.nack), returned as
// unroutable (mandatory) or failing with a channel exception are not
// counted. A durable store failure after enqueue (a late basic.nack) is
// not subtracted.
//
// out counts every delivered copy: each basic.deliver (queue, stream and
// direct reply-to consumers) and each basic.get-ok; a redelivery counts
// again. basic.return is not a delivery.
func (s *Server) MessageCounts() (in, out uint64) {
	return s.counts.in.Load(), s.counts.out.Load()
}

// New returns the AMQP server over e, recovering durable exchanges, queues,
// bindings and messages.
func New(e *engine.Engine, cfg Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	cfg.setDefaults()
	s := &Server{e: e, cfg: cfg, log: logger.With("proto", "amqp"), vh: newVhost(logger), stop: make(chan struct{})}
	if e != nil {
		st, err := openStore(e, s.vh, s.log)
		if err != nil {
			return nil, fmt.Errorf("amqp: open store: %w", err)
		}
		s.vh.store = st
		if err := st.recover(); err != nil {
			return nil, fmt.Errorf("amqp: recover: %w", err)
		}
	}
	s.proto = &netpoll.Protocol{
		Name:          "amqp",
		Framer:        s.frameLen,
		FrameBytesMax: cfg.FrameMax + frameOverheadBytes,
		Handler:       s,
		PreambleBytes: len(protocolHeader),
		Publisher:     true,
	}
	if cfg.DataDir != "" && cfg.DiskFreeBytesMin > 0 {
		go s.watchDisk(cfg.DataDir, cfg.DiskFreeBytesMin, s.stop)
	}
	return s, nil
}

// Protocol is what the appliance hands to netpoll.
func (s *Server) Protocol() *netpoll.Protocol { return s.proto }

// Close stops background work and flushes the store.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.stop) })
	if s.vh.store != nil {
		return s.vh.store.close()
	}
	return nil
}

const protocolHeader = "AMQP\x00\x00\x09\x01"

// frameLen is the Framer. A frame announcing more than the server's
// frame-max is delivered as its 7-byte header alone, so that the handler
// answers with connection.close FRAME_ERROR instead of the transport
// dropping the connection.
func (s *Server) frameLen(buf []byte) (int, error) {
	if len(buf) >= 7 && int(binary.BigEndian.Uint32(buf[3:7])) > s.cfg.FrameMax {
		return 7, nil
	}
	return FrameLen(buf)
}

// OnOpen implements netpoll.Handler.
func (s *Server) OnOpen(c netpoll.Conn) any {
	return newConnection(s, c)
}

// OnFrame implements netpoll.Handler.
func (s *Server) OnFrame(c netpoll.Conn, frame []byte) error {
	conn, _ := c.Context().(*connection)
	if conn == nil {
		return errors.New("amqp: no connection state")
	}
	return conn.onFrame(frame)
}

// OnClose implements netpoll.Handler.
func (s *Server) OnClose(c netpoll.Conn, err error) {
	if conn, _ := c.Context().(*connection); conn != nil {
		conn.onClose(err)
	}
}

// amqpError is a channel or connection exception (by reply code class).
type amqpError struct {
	code uint16
	text string
}

func (e *amqpError) Error() string { return fmt.Sprintf("amqp: %d %s", e.code, e.text) }

func amqpErr(code uint16, format string, a ...any) *amqpError {
	return &amqpError{code: code, text: fmt.Sprintf(format, a...)}
}

func replyName(code uint16) string {
	switch code {
	case ContentTooLarge:
		return "CONTENT_TOO_LARGE"
	case NoRoute:
		return "NO_ROUTE"
	case NoConsumers:
		return "NO_CONSUMERS"
	case ConnectionForced:
		return "CONNECTION_FORCED"
	case InvalidPath:
		return "INVALID_PATH"
	case AccessRefused:
		return "ACCESS_REFUSED"
	case NotFound:
		return "NOT_FOUND"
	case ResourceLocked:
		return "RESOURCE_LOCKED"
	case PreconditionFailed:
		return "PRECONDITION_FAILED"
	case FrameError:
		return "FRAME_ERROR"
	case SyntaxError:
		return "SYNTAX_ERROR"
	case CommandInvalid:
		return "COMMAND_INVALID"
	case ChannelError:
		return "CHANNEL_ERROR"
	case UnexpectedFrame:
		return "UNEXPECTED_FRAME"
	case ResourceError:
		return "RESOURCE_ERROR"
	case NotAllowed:
		return "NOT_ALLOWED"
	case NotImplemented:
		return "NOT_IMPLEMENTED"
	case InternalError:
		return "INTERNAL_ERROR"
	}
	return "ERROR"
}
