package netpoll

import (
	"math/bits"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// transport is what the connection core needs from gnet or std-net. Every
// method except execute runs on the connection's loop.
type transport interface {
	// send hands bytes to the socket in order and takes ownership of the
	// buffers (they go back to the pool once written or copied).
	send(bufs [][]byte)
	// sendFile sends head (owned as by send), then s's file range, after
	// everything sent before them. It returns true once s is consumed
	// (s.done called); false means the socket is full: s stays at the head
	// of the queue and the transport calls flush again when the socket can
	// take more. Taking head with the range lets a transport hand both to
	// the kernel as one stream of segments.
	sendFile(head [][]byte, s *Slot) bool
	// release frees transport resources once the connection is closed.
	release()
	// pending is what the transport holds that the socket has not taken.
	pending() int
	// inbound is what the transport holds that OnFrame has not consumed.
	inbound() int
	// execute runs fn on the loop (any goroutine).
	execute(fn func()) error
	// setReads turns reading from the socket on or off.
	setReads(on bool)
	// wake makes the loop look at already buffered input again.
	wake()
	// shutdown closes the socket now; OnClose follows on the loop.
	shutdown()
	// polled reports whether output draining must be polled by timer
	// (gnet gives no callback when its outbound buffer drains).
	polled() bool
}

// loopState is per gnet event loop (per connection on std-net): the list of
// connections with output to flush at the end of the current loop entry, the
// timing wheel and scratch space.
type loopState struct {
	dirty    []*conn
	flushing bool // flushDirty is running: a nested call (a write error closing a conn) returns at once
	iov      [][]byte
	rest     [][]byte // gnetTransport.writeRest's scratch (flush may be using iov)
	wheel    *wheel
	batch    *writeBatch // gnet: batched writes through io_uring (nil: off)
	epfd     int         // gnet loop's epoll fd, -1 if unknown

	entries   uint32 // loop entries since the last yield check
	lastYield int64  // monoNow of the last runtime.Gosched
	noYield   bool   // Config.NoLoopYield, or loops locked to OS threads

	// free caches small output buffers the socket has taken, by size
	// class, so the request/response path reuses them without sync.Pool
	// (and its allocation per Put). Only the gnet transport fills it.
	free [loopFreeClassMax - bufClassMin + 1][][]byte
}

const (
	loopFreeClassMax = 12 // 4 KiB
	loopFreeMax      = 64 // buffers per class
)

// getBuf is getBuf served from the loop's cache first (loop only).
func (lp *loopState) getBuf(n int) []byte {
	if c := bufClass(n); c <= loopFreeClassMax {
		if f := lp.free[c-bufClassMin]; len(f) > 0 {
			b := f[len(f)-1]
			lp.free[c-bufClassMin] = f[:len(f)-1]
			return b[:0]
		}
	}
	return getBuf(n)
}

// putBuf keeps b in the loop's cache, or returns it to the pools (loop only).
func (lp *loopState) putBuf(b []byte) {
	c := cap(b)
	if c >= 1<<bufClassMin && c <= 1<<loopFreeClassMax && c&(c-1) == 0 {
		i := bits.Len(uint(c)) - 1 - bufClassMin
		if len(lp.free[i]) < loopFreeMax {
			lp.free[i] = append(lp.free[i], b[:0])
			return
		}
	}
	putBuf(b)
}

// flushDirty flushes every connection marked dirty in this loop entry.
// It can be re-entered: a write error inside c.flush makes gnet close the
// connection synchronously, and OnClose (ours, then the protocol's) ends
// with flushDirty. The guard makes the nested call return at once — the
// outer walk reaches whatever was added meanwhile. Without it the nested
// walk would start again at entries the outer one has already taken (nil)
// and then cut lp.dirty short under it (TestFlushReentryOnWriteError).
func (lp *loopState) flushDirty() {
	if lp.flushing {
		return
	}
	lp.flushing = true
	for {
		for i := 0; i < len(lp.dirty); i++ { // flush may add more
			c := lp.dirty[i]
			lp.dirty[i] = nil
			c.flush()
		}
		lp.dirty = lp.dirty[:0]
		if lp.batch == nil || len(lp.batch.pend) == 0 {
			break
		}
		// Batched sends go now; a write error among them may close a
		// connection whose OnClose writes to others: walk again.
		lp.batch.submit()
		if len(lp.dirty) == 0 {
			break
		}
	}
	lp.flushing = false
}

// Slot is a place in a connection's output order, obtained from
// Conn.Reserve. Output written after the slot waits until the slot is filled.
// Fill and FillFile are loop only: from another goroutine use
// c.Execute(func(c netpoll.Conn) { slot.Fill(b) }). A slot is filled once;
// further fills are ignored.
type Slot struct {
	c       *conn
	b       []byte
	f       *os.File
	off     int64
	n       int64
	done    func(error)
	ready   bool
	started bool // a file range partly sent by sendfile
	tail    bool // created by Write behind a pending slot; Write may append to it
}

// Fill puts b (copied) in the slot's place in the output.
func (s *Slot) Fill(b []byte) {
	if s.ready {
		return
	}
	c := s.c
	s.ready = true
	if c.closed.Load() {
		return
	}
	s.b = appendBuf(getBuf(len(b)), b)
	c.qBytes += len(b)
	c.ls.stats.FramesOut.Add(1)
	c.markDirty()
}

// FillFile puts header followed by n bytes of f from off in the slot's
// place, sent as Conn.WriteFile would. done is called (on the loop) when f
// is no longer needed.
func (s *Slot) FillFile(header []byte, f *os.File, off, n int64, done func(error)) {
	if s.ready {
		return
	}
	c := s.c
	s.ready = true
	if c.closed.Load() {
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	if len(header) > 0 {
		s.b = appendBuf(getBuf(len(header)), header)
		c.qBytes += len(header)
	}
	s.f, s.off, s.n, s.done = f, off, n, done
	c.ls.stats.FramesOut.Add(1)
	c.markDirty()
}

func (s *Slot) finish(err error) {
	if s.done != nil {
		d := s.done
		s.done = nil
		d(err)
	}
	s.f = nil
}

// conn is the transport-independent half of a connection: framing, ordered
// output, limits. Its fields are touched only on the connection's loop,
// except closed.
type conn struct {
	srv   *Server
	ls    *listenerState
	proto *Protocol
	tr    transport
	lp    *loopState
	ctx   any

	local, remote net.Addr

	closed   atomic.Bool
	closeReq atomic.Bool // Close was called: deliver no more frames
	closing  bool
	closeErr error

	wbuf   []byte
	q      []*Slot
	qBytes int // bytes in wbuf and q
	dirty  bool
	// afterQueued: in writeBatch.after (gnet batched writes)
	afterQueued bool

	userPaused, hwmPaused, memPaused bool
	readsOff                         bool
	preambleDone                     bool
	inFrames                         bool

	lastRead   int64 // coarse monoNow
	memContrib int64
	idleTimer  *wheelTimer
	pollTimer  *wheelTimer
	openDone   bool
}

var _ Conn = (*conn)(nil)

func (c *conn) markDirty() {
	if !c.dirty {
		c.dirty = true
		c.lp.dirty = append(c.lp.dirty, c)
	}
}

// Write implements Conn.
func (c *conn) Write(b []byte) {
	if c.closed.Load() || len(b) == 0 {
		return
	}
	c.ls.stats.FramesOut.Add(1)
	c.qBytes += len(b)
	if len(c.q) == 0 {
		if c.wbuf == nil {
			c.wbuf = c.lp.getBuf(len(b))
		}
		c.wbuf = appendBuf(c.wbuf, b)
	} else if last := c.q[len(c.q)-1]; last.tail {
		last.b = appendBuf(last.b, b)
	} else {
		c.q = append(c.q, &Slot{c: c, b: appendBuf(getBuf(len(b)), b), ready: true, tail: true})
	}
	c.markDirty()
}

// WriteFile implements Conn.
func (c *conn) WriteFile(header []byte, f *os.File, off, n int64, done func(error)) {
	if c.closed.Load() {
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	s := &Slot{c: c}
	c.q = append(c.q, s)
	s.FillFile(header, f, off, n, done)
}

// Reserve implements Conn.
func (c *conn) Reserve() *Slot {
	s := &Slot{c: c}
	if c.closed.Load() {
		s.ready = true
		return s
	}
	c.q = append(c.q, s)
	return s
}

// Execute implements Conn.
func (c *conn) Execute(fn func(c Conn)) error {
	if c.closed.Load() {
		return ErrClosed
	}
	err := c.tr.execute(func() {
		if c.closed.Load() {
			return
		}
		fn(c)
		c.lp.flushDirty()
		c.afterOutput()
	})
	if err != nil {
		return ErrClosed
	}
	return nil
}

// Close implements Conn.
func (c *conn) Close(err error) {
	if c.closed.Load() {
		return
	}
	c.closeReq.Store(true)
	_ = c.tr.execute(func() {
		c.beginClose(err)
		c.lp.flushDirty()
		c.afterOutput()
	})
}

// PauseReads implements Conn.
func (c *conn) PauseReads() {
	if !c.userPaused {
		c.userPaused = true
		c.ls.stats.Pauses.Add(1)
		c.applyReads()
	}
}

// ResumeReads implements Conn.
func (c *conn) ResumeReads() {
	if c.userPaused {
		c.userPaused = false
		c.applyReads()
	}
}

// OutboundBytes implements Conn.
func (c *conn) OutboundBytes() int { return c.qBytes + c.tr.pending() }

func (c *conn) Context() any         { return c.ctx }
func (c *conn) SetContext(ctx any)   { c.ctx = ctx }
func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }
func (c *conn) readsPaused() bool    { return c.userPaused || c.hwmPaused || c.memPaused }
func (c *conn) String() string       { return c.proto.Name + " " + c.remote.String() }
func (c *conn) hwm() int             { return c.srv.cfg.OutboundHighWaterBytes }
func (c *conn) now() int64           { return c.srv.now.Load() }

// AfterFunc implements Conn.
func (c *conn) AfterFunc(d time.Duration, fn func(c Conn)) Timer {
	return c.lp.wheel.add(c, d, fn)
}

func (c *conn) applyReads() {
	off := c.readsPaused() || c.closing
	if off == c.readsOff {
		return
	}
	c.readsOff = off
	c.tr.setReads(!off)
	if !off {
		c.tr.wake()
	}
}

// open runs the protocol's OnOpen; on the loop.
func (c *conn) open() {
	c.lastRead = c.now()
	c.ls.stats.ConnsAccepted.Add(1)
	c.ls.stats.ConnsOpen.Add(1)
	c.srv.register(c)
	c.ctx = c.proto.Handler.OnOpen(c)
	c.openDone = true
	if it := c.proto.IdleTimeout; it > 0 {
		c.armIdle(it)
	}
}

func (c *conn) armIdle(d time.Duration) {
	c.idleTimer = c.lp.wheel.add(c, d, func(Conn) {
		it := c.proto.IdleTimeout
		idle := time.Duration(c.now() - c.lastRead)
		if idle >= it {
			c.beginClose(ErrIdleTimeout)
			return
		}
		c.armIdle(it - idle)
	})
}

// processFrames delivers the whole frames at the start of buf and returns
// how many bytes they took.
func (c *conn) processFrames(buf []byte) (int, error) {
	if c.proto.Publisher && !c.memPaused && c.srv.memPaused.Load() {
		c.memPaused = true
		c.ls.stats.MemoryPauses.Add(1)
		c.srv.addMemPaused(c)
		c.applyReads()
	}
	off := 0
	p := c.proto
	c.inFrames = true
	defer func() { c.inFrames = false }()
	for !c.readsPaused() && !c.closing && !c.closeReq.Load() {
		rest := buf[off:]
		if len(rest) == 0 {
			break
		}
		var n int
		if !c.preambleDone && p.PreambleBytes > 0 {
			if len(rest) < p.PreambleBytes {
				break
			}
			n = p.PreambleBytes
			c.preambleDone = true
		} else {
			var err error
			n, err = p.Framer(rest)
			if err != nil {
				return off, err
			}
			if n == 0 {
				if p.FrameBytesMax > 0 && len(rest) > p.FrameBytesMax {
					return off, ErrFrameTooLarge
				}
				break
			}
			if n < 0 || n > len(rest) {
				return off, ErrMalformedFrame
			}
			if p.FrameBytesMax > 0 && n > p.FrameBytesMax {
				return off, ErrFrameTooLarge
			}
		}
		c.ls.stats.FramesIn.Add(1)
		err := p.Handler.OnFrame(c, rest[:n:n])
		off += n
		if err != nil {
			return off, err
		}
		// Stop reading as soon as the output is over the mark, not at the
		// end of what one read delivered.
		if hwm := c.hwm(); hwm > 0 && !c.hwmPaused && c.qBytes+c.tr.pending() > hwm {
			c.hwmPaused = true
			c.ls.stats.Pauses.Add(1)
			c.applyReads()
		}
	}
	return off, nil
}

// flush hands everything ready, in order, to the transport.
func (c *conn) flush() {
	c.dirty = false
	if c.closed.Load() {
		return
	}
	bufs := c.lp.iov[:0]
	if len(c.wbuf) > 0 {
		bufs = append(bufs, c.wbuf)
		c.qBytes -= len(c.wbuf)
	} else if c.wbuf != nil {
		putBuf(c.wbuf)
	}
	c.wbuf = nil
	for len(c.q) > 0 && c.q[0].ready && !c.closed.Load() {
		s := c.q[0]
		if len(s.b) > 0 {
			bufs = append(bufs, s.b)
			c.qBytes -= len(s.b)
		}
		s.b = nil
		if s.f != nil {
			c.countOut(bufs)
			// A write error closes the connection synchronously (gnet
			// calls OnClose from inside the write), which empties c.q.
			sent := c.tr.sendFile(bufs, s)
			clear(bufs)
			bufs = bufs[:0]
			if !sent || c.closed.Load() {
				break // closed, or socket full: the transport flushes again later
			}
		}
		c.q[0] = nil
		c.q = c.q[1:]
	}
	if len(c.q) == 0 {
		c.q = nil
	}
	if len(bufs) > 0 {
		if c.closed.Load() {
			for _, b := range bufs {
				putBuf(b)
			}
		} else {
			c.send(bufs)
		}
	}
	for i := range bufs {
		bufs[i] = nil
	}
	c.lp.iov = bufs[:0]
}

func (c *conn) send(bufs [][]byte) {
	c.countOut(bufs)
	c.tr.send(bufs)
}

func (c *conn) countOut(bufs [][]byte) {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	c.ls.stats.BytesOut.Add(int64(n))
}

// afterOutput applies the outbound high-water mark, memory accounting and a
// pending graceful close; on the loop at the end of every entry.
func (c *conn) afterOutput() {
	if c.closed.Load() {
		return
	}
	ob := c.OutboundBytes()
	if hwm := c.hwm(); hwm > 0 {
		if !c.hwmPaused && ob > hwm {
			c.hwmPaused = true
			c.ls.stats.Pauses.Add(1)
			c.applyReads()
		} else if c.hwmPaused && ob <= hwm/2 {
			c.hwmPaused = false
			c.applyReads()
		}
	}
	mem := int64(c.qBytes + c.tr.pending() + c.tr.inbound())
	if d := mem - c.memContrib; d != 0 {
		c.memContrib = mem
		c.srv.memAdd(d)
	}
	if c.closing && ob == 0 && len(c.q) == 0 {
		c.tr.shutdown()
		return
	}
	// gnet says nothing when its outbound buffer drains: poll while there
	// is something to learn from it.
	if c.tr.polled() && c.pollTimer == nil && (c.hwmPaused || c.closing || c.tr.pending() > 0) {
		c.pollTimer = c.lp.wheel.add(c, c.srv.cfg.TimerTick, func(Conn) {
			c.pollTimer = nil
			c.afterOutput()
		})
	}
}

// beginClose starts a graceful close: no more frames are read, queued
// output is flushed, then the socket is closed (at the latest after
// Config.CloseFlushTimeout).
func (c *conn) beginClose(err error) {
	if c.closing || c.closed.Load() {
		return
	}
	c.closing = true
	c.closeErr = err
	c.applyReads()
	c.markDirty()
	c.lp.wheel.add(c, c.srv.cfg.CloseFlushTimeout, func(Conn) { c.tr.shutdown() })
}

// onClosed runs once, on the loop, when the socket is gone.
func (c *conn) onClosed(err error) {
	if c.closed.Swap(true) {
		return
	}
	if c.closeErr != nil {
		err = c.closeErr
	}
	if c.wbuf != nil {
		putBuf(c.wbuf)
		c.wbuf = nil
	}
	for _, s := range c.q {
		if s.b != nil {
			putBuf(s.b)
			s.b = nil
		}
		s.finish(ErrClosed)
	}
	c.q = nil
	c.qBytes = 0
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.pollTimer != nil {
		c.pollTimer.Stop()
	}
	if c.memContrib != 0 {
		c.srv.memAdd(-c.memContrib)
		c.memContrib = 0
	}
	c.tr.release()
	c.ls.stats.ConnsOpen.Add(-1)
	c.ls.stats.ConnsClosed.Add(1)
	c.ls.open.Add(-1)
	c.srv.unregister(c)
	if c.openDone {
		c.proto.Handler.OnClose(c, err)
	}
}

// CountDrop records n messages a protocol dropped for c instead of queueing
// them (e.g. MQTT QoS 0 to a slow subscriber). Any goroutine.
func CountDrop(c Conn, n int) {
	if cc, ok := c.(*conn); ok {
		cc.ls.stats.Drops.Add(int64(n))
	}
}

// OutboundFull reports whether c's queued output is above the outbound
// high-water mark (loop only); protocols that drop instead of pausing test it.
func OutboundFull(c Conn) bool {
	cc, ok := c.(*conn)
	if !ok {
		return false
	}
	hwm := cc.hwm()
	return hwm > 0 && cc.OutboundBytes() > hwm
}
