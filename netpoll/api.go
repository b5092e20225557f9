package netpoll

import (
	"errors"
	"net"
	"os"
	"time"
)

// This file is the contract between the transports (gnet loops, std-net/TLS,
// WebSocket) and the protocol packages in wire/. Protocol code sees only these
// types; it never learns which transport it runs on.

// Framer reports the length in bytes of the first whole frame at the start of
// buf. It returns (0, nil) when buf does not yet hold a whole frame, and an
// error wrapping ErrFrameTooLarge or ErrMalformedFrame when the frame can never
// be valid. A Framer never retains buf and never allocates.
type Framer func(buf []byte) (frameBytes int, err error)

// Sentinel errors of the transport.
var (
	ErrFrameTooLarge  = errors.New("netpoll: frame too large")
	ErrMalformedFrame = errors.New("netpoll: malformed frame")
	ErrClosed         = errors.New("netpoll: connection closed")
	ErrTooManyConns   = errors.New("netpoll: too many connections")
	// ErrIdleTimeout is passed to OnClose when Protocol.IdleTimeout expired.
	ErrIdleTimeout = errors.New("netpoll: idle timeout")
	// ErrServerStopped is passed to OnClose for connections closed by Server.Stop.
	ErrServerStopped = errors.New("netpoll: server stopped")
)

// Handler is implemented by each protocol. All three methods run on the
// connection's event loop (or its goroutine on the std-net transport), one at a
// time per connection; they must never block.
type Handler interface {
	// OnOpen is called once when a connection is accepted. Whatever it returns
	// is stored as the connection's context (Conn.Context).
	OnOpen(c Conn) any
	// OnFrame is called with one whole frame as delimited by the protocol's
	// Framer. frame aliases the transport's read buffer and is valid only
	// during the call: anything kept must be copied. A non-nil error closes
	// the connection after already queued output is flushed.
	OnFrame(c Conn, frame []byte) error
	// OnClose is called once when the connection is gone; err is nil on a
	// clean close by the peer.
	OnClose(c Conn, err error)
}

// Protocol describes one listener's protocol.
type Protocol struct {
	Name          string // "kafka", "amqp", "mqtt", "rocketmq" — used in logs and counters
	Framer        Framer
	FrameBytesMax int // frames longer than this close the connection
	Handler       Handler
	// Preamble, if > 0, is the number of bytes the protocol sends before its
	// first frame that are not framed (AMQP's 8-byte protocol header). They
	// are delivered to OnFrame as one frame of exactly this length.
	PreambleBytes int
	// IdleTimeout closes connections that send nothing for this long (0: never).
	IdleTimeout time.Duration
	// Publisher marks connections of this protocol as publishers that the
	// global memory high-water mark may pause. (All four protocols publish.)
	Publisher bool
	// FrameBytesNeeded, if set, returns the whole length of the frame that
	// starts with prefix (0 while prefix is too short to tell). With it the
	// gnet transport waits until the whole frame is buffered instead of
	// re-reading the partial frame on every read, which keeps the copying
	// of large frames (1 MiB Kafka produce requests) linear, not quadratic.
	FrameBytesNeeded func(prefix []byte) int
}

// Conn is one client connection. Methods marked "loop only" may be called only
// from a Handler callback or from a function run by Execute; the others are
// safe from any goroutine.
type Conn interface {
	// Write queues b for sending (loop only). b is copied; the caller may
	// reuse it on return.
	Write(b []byte)
	// WriteFile queues header followed by n bytes of f starting at off,
	// sent zero-copy where the transport can (loop only). f must stay open
	// until done is called (from the loop) with the outcome; done may be nil.
	WriteFile(header []byte, f *os.File, off, n int64, done func(error))
	// Reserve returns a slot in this connection's output order (loop only).
	// Output written to the connection after the slot waits until the slot is
	// filled, so responses leave in request order even when a later request
	// completes first.
	Reserve() *Slot
	// Execute runs fn on the connection's loop (any goroutine). If the
	// connection is already closed, fn is not run and Execute returns ErrClosed.
	Execute(fn func(c Conn)) error
	// Close closes the connection after queued output is flushed (any goroutine).
	Close(err error)
	// PauseReads stops delivering frames until ResumeReads (loop only).
	PauseReads()
	ResumeReads()
	// OutboundBytes is what is queued and not yet taken by the socket (loop only).
	OutboundBytes() int
	Context() any
	SetContext(ctx any)
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// Timer schedules fn on this connection's loop after d without a
	// goroutine or time.Timer per call; Stop cancels it.
	AfterFunc(d time.Duration, fn func(c Conn)) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	Stop() bool
}
