package netpoll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// gnetEngine is one gnet engine serving one or more plain-TCP listeners.
type gnetEngine struct {
	gnet.BuiltinEventEngine
	srv       *Server
	listeners []*listenerState
	addrs     []string // host:port as given to gnet

	eng    gnet.Engine
	booted chan struct{}
	done   chan error

	mu     sync.RWMutex
	byPort map[int]*listenerState
	loops  map[gnet.EventLoop]*loopState
}

func newGnetEngine(s *Server, ls []*listenerState) *gnetEngine {
	return &gnetEngine{
		srv: s, listeners: ls,
		booted: make(chan struct{}), done: make(chan error, 1),
		byPort: make(map[int]*listenerState), loops: make(map[gnet.EventLoop]*loopState),
	}
}

type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(string, ...any)     {}
func (g gnetLogger) Infof(string, ...any)      {}
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }

// start runs the engine. gnet cannot tell two listeners on the same
// "host:0" apart, so for repeated ones the port is picked here; another
// process can take it before gnet binds it, hence the retries.
func (e *gnetEngine) start() error {
	for attempt := 0; ; attempt++ {
		picked, err := e.tryStart()
		if err == nil || !picked || attempt == 4 || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		<-e.done
		e.addrs = nil
		e.byPort = make(map[int]*listenerState)
	}
}

func (e *gnetEngine) tryStart() (picked bool, err error) {
	cfg := &e.srv.cfg
	var urls []string
	seen := map[string]bool{}
	for _, ls := range e.listeners {
		host, port, err := net.SplitHostPort(ls.Addr)
		if err != nil {
			return false, fmt.Errorf("netpoll: listener %q: %w", ls.Addr, err)
		}
		if host == "" {
			host = "0.0.0.0"
		}
		if port == "0" && seen[host] {
			picked = true
			l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				return false, fmt.Errorf("netpoll: listener %q: %w", ls.Addr, err)
			}
			port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
			_ = l.Close()
		}
		if port == "0" {
			seen[host] = true
		}
		a := net.JoinHostPort(host, port)
		e.addrs = append(e.addrs, a)
		urls = append(urls, "tcp://"+a)
		if p, _ := strconv.Atoi(port); p != 0 {
			e.byPort[p] = ls
		}
	}
	opts := []gnet.Option{
		gnet.WithNumEventLoop(cfg.Loops),
		gnet.WithMulticore(true),
		gnet.WithReusePort(false),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReadBufferCap(cfg.ReadBufferBytes),
		gnet.WithWriteBufferCap(64 << 10),
		gnet.WithLogger(gnetLogger{cfg.Logger}),
		gnet.WithLockOSThread(cfg.LockOSThread),
	}
	if cfg.SocketRecvBufferBytes > 0 {
		opts = append(opts, gnet.WithSocketRecvBuffer(cfg.SocketRecvBufferBytes))
	}
	if cfg.SocketSendBufferBytes > 0 {
		opts = append(opts, gnet.WithSocketSendBuffer(cfg.SocketSendBufferBytes))
	}
	go func() { e.done <- gnet.Rotate(e, urls, opts...) }()
	select {
	case <-e.booted:
	case err := <-e.done:
		e.done <- err
		return picked, fmt.Errorf("netpoll: gnet: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, ls := range e.listeners {
		fd, err := e.eng.DupListener("tcp", e.addrs[i])
		if err != nil {
			return picked, fmt.Errorf("netpoll: listener %q: %w", ls.Addr, err)
		}
		sa, err := unix.Getsockname(fd)
		_ = unix.Close(fd)
		if err != nil {
			return picked, fmt.Errorf("netpoll: listener %q: %w", ls.Addr, err)
		}
		ta := sockaddrToTCP(sa)
		ls.addr = ta
		e.byPort[ta.Port] = ls
	}
	return picked, nil
}

func (e *gnetEngine) stop(ctx context.Context) error {
	select {
	case <-e.booted:
	default:
		return nil
	}
	go func() { _ = e.eng.Stop(context.Background()) }()
	select {
	case err := <-e.done:
		e.done <- err
		e.mu.Lock()
		for _, lp := range e.loops {
			if lp.batch != nil {
				lp.batch.close()
				lp.batch = nil
			}
		}
		e.mu.Unlock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func sockaddrToTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	}
	return &net.TCPAddr{}
}

func (e *gnetEngine) OnBoot(eng gnet.Engine) gnet.Action {
	e.eng = eng
	close(e.booted)
	return gnet.None
}

// loopFor returns the loopState of gc's event loop, creating it on first use.
func (e *gnetEngine) loopFor(gc gnet.Conn) *loopState {
	el := gc.EventLoop()
	e.mu.RLock()
	lp := e.loops[el]
	e.mu.RUnlock()
	if lp != nil {
		return lp
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if lp = e.loops[el]; lp != nil {
		return lp
	}
	lp = &loopState{epfd: gnetPollFD(gc), noYield: e.srv.cfg.LockOSThread || e.srv.cfg.NoLoopYield}
	if lp.epfd < 0 {
		e.srv.cfg.Logger.Warn("netpoll: cannot find gnet's epoll fd; paused connections keep being read into memory")
	}
	if !e.srv.cfg.NoBatchedWrites {
		wb, err := newWriteBatch(lp, el, e.srv.cfg.Logger)
		if err != nil {
			e.srv.cfg.Logger.Info("netpoll: writes not batched", "err", err)
		} else {
			lp.batch = wb
		}
	}
	lp.wheel = newWheel(e.srv.cfg.TimerTick, func(batch []*wheelTimer) {
		_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			for _, t := range batch {
				t.run()
			}
			lp.flushDirty()
			for _, t := range batch {
				t.c.afterOutput()
			}
			return nil
		}))
	})
	e.loops[el] = lp
	e.srv.addWheel(lp.wheel)
	return lp
}

// gnetPollFD digs the epoll fd of gc's loop out of gnet (v2.9.7) so reads
// can be paused: gnet has no API to stop reading a connection.
func gnetPollFD(gc gnet.Conn) (fd int) {
	defer func() {
		if recover() != nil {
			fd = -1
		}
	}()
	v := reflect.ValueOf(gc).Elem().FieldByName("loop").Elem().FieldByName("poller").Elem().FieldByName("fd")
	return int(v.Int())
}

func (e *gnetEngine) listenerFor(gc gnet.Conn) (*listenerState, *net.TCPAddr) {
	sa, err := unix.Getsockname(gc.Fd())
	if err != nil {
		return nil, nil
	}
	la := sockaddrToTCP(sa)
	e.mu.RLock()
	ls := e.byPort[la.Port]
	e.mu.RUnlock()
	if ls == nil && len(e.listeners) == 1 {
		ls = e.listeners[0]
	}
	return ls, la
}

func (e *gnetEngine) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	ls, la := e.listenerFor(gc)
	if ls == nil || !e.srv.admit(ls) {
		return nil, gnet.Close
	}
	cfg := &e.srv.cfg
	if cfg.SocketSendBufferBytes > 0 {
		_ = gc.SetWriteBuffer(cfg.SocketSendBufferBytes)
	}
	if cfg.SocketRecvBufferBytes > 0 {
		_ = gc.SetReadBuffer(cfg.SocketRecvBufferBytes)
	}
	_ = setCongestionControl(gc.Fd(), cfg.TCPCongestionControl) // checked by NewServer
	lp := e.loopFor(gc)
	c := &conn{srv: e.srv, ls: ls, proto: ls.Protocol, lp: lp, local: la, remote: gc.RemoteAddr()}
	c.tr = &gnetTransport{gc: gc, c: c, fd: gc.Fd(), lp: lp}
	gc.SetContext(c)
	c.open()
	lp.flushDirty()
	c.afterOutput()
	return nil, gnet.None
}

func (e *gnetEngine) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return gnet.Close
	}
	if c.closed.Load() {
		return gnet.None
	}
	t := c.tr.(*gnetTransport)
	in := gc.InboundBuffered()
	if d := in - t.inPrev; d > 0 {
		c.ls.stats.BytesIn.Add(int64(d))
		c.lastRead = c.now()
	}
	switch {
	case c.closing:
		_, _ = gc.Discard(in)
	case c.readsPaused():
		t.setReads(false) // gnet re-arms EPOLLIN when its outbound buffer drains
	case in > 0 && in < t.need:
		// The frame started earlier is still incomplete: wait for it whole
		// rather than copying the partial frame out of gnet again.
	case in > 0:
		t.need = 0
		buf, _ := gc.Peek(-1)
		n, err := c.processFrames(buf)
		if err == nil && n < len(buf) && c.proto.FrameBytesNeeded != nil {
			t.need = c.proto.FrameBytesNeeded(buf[n:])
		}
		if n > 0 {
			_, _ = gc.Discard(n)
		}
		if err != nil {
			c.beginClose(err)
		}
	}
	t.inPrev = gc.InboundBuffered()
	if wb := c.lp.batch; wb == nil || wb.broken || !wb.deferFlush(c) {
		c.lp.flushDirty()
		c.afterOutput()
	}
	c.lp.maybeYield()
	return gnet.None
}

func (e *gnetEngine) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return gnet.None
	}
	gc.SetContext(nil)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if c.dirty && !c.closed.Load() {
		// Output of a deferred flush (gnet_batch.go) still goes out: gnet
		// closes the socket only after OnClose (a peer that half-closed
		// still reads it).
		c.lp.flushDirty()
	}
	c.onClosed(err)
	c.lp.flushDirty()
	return gnet.None
}

type gnetTransport struct {
	gc      gnet.Conn
	c       *conn
	fd      int
	lp      *loopState
	inPrev  int
	need    int  // bytes the incomplete frame at the head of the input needs (0: unknown)
	waiting bool // a goroutine waits for the socket to be writable
	queued  bool // has a send in lp.batch
	wfile   *os.File
	wrc     syscall.RawConn
}

func (t *gnetTransport) send(bufs [][]byte) {
	if wb := t.lp.batch; wb != nil && !wb.broken && t.lp.flushing && t.gc.OutboundBuffered() == 0 {
		wb.queue(t, bufs)
		return
	}
	t.write(bufs)
	t.putBufs(bufs)
}

// iovMax is IOV_MAX: writev(2) and sendmsg(2) refuse more buffers (EINVAL,
// EMSGSIZE), and gnet would close the connection with that error.
const iovMax = 1024

// write hands bufs to gnet (which copies what the socket does not take), at
// most iovMax per call. Once one call leaves bytes buffered, gnet appends
// the following calls' behind them, so the order holds.
func (t *gnetTransport) write(bufs [][]byte) {
	if len(bufs) == 1 {
		_, _ = t.gc.Write(bufs[0])
		return
	}
	for len(bufs) > 0 {
		n := min(len(bufs), iovMax)
		if _, err := t.gc.Writev(bufs[:n]); err != nil {
			return // gnet closes the connection
		}
		bufs = bufs[n:]
	}
}

func (t *gnetTransport) pending() int { return t.gc.OutboundBuffered() }
func (t *gnetTransport) inbound() int { return t.gc.InboundBuffered() }
func (t *gnetTransport) polled() bool { return true }

func (t *gnetTransport) execute(fn func()) error {
	return t.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		fn()
		t.lp.maybeYield() // a loop kept busy by completions alone must yield too
		return nil
	}))
}

func (t *gnetTransport) wake() { _ = t.gc.Wake(nil) }

func (t *gnetTransport) shutdown() { _ = t.gc.Close() }

// setReads adds or removes EPOLLIN for the socket in the loop's epoll set,
// keeping EPOLLOUT while gnet has output queued. gnet re-adds EPOLLIN when
// its outbound buffer drains; OnTraffic then takes it off again.
func (t *gnetTransport) setReads(on bool) {
	if t.lp.epfd < 0 || t.c.closed.Load() {
		return
	}
	var ev uint32
	if on {
		ev = unix.EPOLLIN | unix.EPOLLPRI
	}
	if t.gc.OutboundBuffered() > 0 {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(t.lp.epfd, unix.EPOLL_CTL_MOD, t.fd, &unix.EpollEvent{Fd: int32(t.fd), Events: ev})
}

// sendFile: below the copy threshold the range is read (page cache) and
// written like any output, head and first chunk in one write. Otherwise,
// once gnet's outbound buffer is empty, head goes to the socket with
// MSG_MORE, so the kernel holds it and the range's first segment carries it
// (one segment and one wakeup of the reader fewer per response), then
// sendfile(2) with an explicit offset until the range is sent or the socket
// is full (EAGAIN). Then the slot stays at the head of the connection's
// queue, so later output waits behind it, and a goroutine parks on the
// socket's writability in the Go runtime poller (through a dup of the fd)
// and brings the loop back to continue. Memory stays bounded whatever the
// range length and however slow the reader.
func (t *gnetTransport) sendFile(head [][]byte, s *Slot) bool {
	c := t.c
	defer t.putBufs(head)
	if c.closed.Load() {
		s.finish(ErrClosed)
		return true
	}
	if wb := t.lp.batch; wb != nil {
		wb.submit() // bytes queued before the range go first
		if c.closed.Load() {
			s.finish(ErrClosed)
			return true
		}
	}
	var err error
	if !s.started && s.n < int64(c.srv.cfg.CopyThresholdBytes) {
		var copied int64
		copied, err = t.copyRange(head, s, s.off, s.n)
		c.ls.stats.CopiedBytes.Add(copied)
		c.ls.stats.BytesOut.Add(copied)
		s.n -= copied
	} else {
		s.started = true
		if len(head) > 0 {
			t.sendHead(head, s.n > 0)
		}
		if t.gc.OutboundBuffered() > 0 {
			_ = t.gc.Flush()
			if c.closed.Load() {
				s.finish(ErrClosed)
				return true
			}
			if t.gc.OutboundBuffered() > 0 {
				t.waitWritable()
				return false
			}
		}
		var sent int64
		sent, err = sendfileRange(t.fd, s, &s.off, s.n)
		s.n -= sent
		c.ls.stats.SendfileBytes.Add(sent)
		c.ls.stats.BytesOut.Add(sent)
		if err == nil && s.n > 0 {
			t.waitWritable()
			return false
		}
	}
	s.finish(err)
	if err != nil {
		c.closeErr = err
		t.shutdown()
	}
	return true
}

func (t *gnetTransport) putBufs(bufs [][]byte) {
	for _, b := range bufs {
		t.lp.putBuf(b)
	}
}

// sendHead writes the bytes before a file range. With more (the range
// follows at once) and nothing buffered in gnet, they go straight to the
// socket with MSG_MORE; what it does not take, and everything otherwise,
// goes through gnet behind what it holds.
func (t *gnetTransport) sendHead(head [][]byte, more bool) {
	if !more || t.gc.OutboundBuffered() > 0 || len(head) > iovMax {
		t.write(head)
		return
	}
	n, err := unix.SendmsgBuffers(t.fd, head, nil, nil, unix.MSG_MORE|unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	if err != nil {
		n = 0 // EAGAIN, or an error gnet's write reports and closes on
	}
	t.writeRest(head, n)
}

// writeRest hands gnet what a send of bufs that took sent bytes left over
// (a short send, EAGAIN as 0); it reports whether anything was left. bufs
// (the caller's, maybe lp.iov) is not changed.
func (t *gnetTransport) writeRest(bufs [][]byte, sent int) bool {
	for len(bufs) > 0 && sent >= len(bufs[0]) {
		sent -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) == 0 || t.c.closed.Load() {
		return false
	}
	rest := append(t.lp.rest[:0], bufs...)
	rest[0] = rest[0][sent:]
	t.write(rest)
	clear(rest)
	t.lp.rest = rest[:0]
	return true
}

// waitWritable parks a goroutine until the socket is writable, then runs
// flush on the loop. gnet offers no writable callback, so the wait goes
// through the Go runtime poller on a dup of the socket.
func (t *gnetTransport) waitWritable() {
	if t.waiting {
		return
	}
	if t.wfile == nil {
		fd, err := unix.Dup(t.fd)
		if err != nil {
			t.c.closeErr = err
			t.shutdown()
			return
		}
		t.wfile = os.NewFile(uintptr(fd), "netpoll-sendfile")
		rc, err := t.wfile.SyscallConn()
		if err != nil {
			t.c.closeErr = err
			t.shutdown()
			return
		}
		t.wrc = rc
	}
	t.waiting = true
	rc, c := t.wrc, t.c
	go func() {
		_ = rc.Write(func(fd uintptr) bool {
			// Ready now? (A readiness edge that came before the wait was
			// armed is not replayed, so look for ourselves.)
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			n, _ := unix.Poll(pfd, 0)
			return n > 0 && pfd[0].Revents != 0
		})
		_ = t.execute(func() {
			t.waiting = false
			if c.closed.Load() {
				return
			}
			c.markDirty()
			c.lp.flushDirty()
			c.afterOutput()
		})
	}()
}

func (t *gnetTransport) release() {
	if t.wfile != nil {
		_ = t.wfile.Close()
	}
}

// sendfileRange sends until done or EAGAIN.
func sendfileRange(sock int, s *Slot, off *int64, n int64) (sent int64, err error) {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	cerr := rc.Control(func(ffd uintptr) {
		for n > 0 {
			chunk := n
			if chunk > 1<<30 {
				chunk = 1 << 30
			}
			w, e := unix.Sendfile(sock, int(ffd), off, int(chunk))
			if w > 0 {
				sent += int64(w)
				n -= int64(w)
			}
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return
			case e != nil:
				err = e
				return
			case w == 0:
				err = io.ErrUnexpectedEOF
				return
			}
		}
	})
	if err == nil {
		err = cerr
	}
	return sent, err
}

const copyChunkBytes = 64 << 10

// copyRange writes head, then n bytes of s's file from off, through gnet
// in chunks of copyChunkBytes; head goes out with the first chunk.
func (t *gnetTransport) copyRange(head [][]byte, s *Slot, off, n int64) (int64, error) {
	if len(head) > 0 && (n == 0 || len(head) >= iovMax) {
		t.write(head)
		head = nil
	}
	buf := getBuf(copyChunkBytes)
	defer putBuf(buf)
	var done int64
	for n > 0 && !t.c.closed.Load() {
		k := int64(cap(buf))
		if k > n {
			k = n
		}
		r, err := s.f.ReadAt(buf[:k], off)
		if r > 0 {
			if len(head) > 0 {
				bufs := append(head, buf[:r])
				_, werr := t.gc.Writev(bufs)
				bufs[len(head)] = nil
				head = nil
				if werr != nil {
					return done, werr
				}
			} else if _, werr := t.gc.Write(buf[:r]); werr != nil {
				return done, werr
			}
			off += int64(r)
			n -= int64(r)
			done += int64(r)
		}
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
	}
	if n > 0 {
		return done, ErrClosed
	}
	return done, nil
}

// maybeYield lets the loop goroutine pass through the scheduler every
// couple of milliseconds. A gnet loop under load never parks, so the Go
// runtime sees it run on one schedtick forever: every 10 ms sysmon then
// preempts it (a signal) or, when it is in a system call, takes its P away
// and hands it to another thread — and each time it does, sysmon drops back
// to waking every 20 µs (profile at 1,000 connections: sysmon 9.3% of the
// server's CPU before, 0.3% with the yield; README.md).
func (lp *loopState) maybeYield() {
	if lp.noYield {
		return
	}
	lp.entries++
	if lp.entries&127 != 0 {
		return
	}
	now := monoNow()
	if now-lp.lastYield >= int64(2*time.Millisecond) {
		lp.lastYield = now
		runtime.Gosched()
	}
}
