package netpoll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The std-net transport: a reader goroutine and a writer goroutine per
// connection, used for TLS and WebSocket listeners. The connection's mutex
// plays the part of the event loop: every Handler callback, Execute function
// and timer runs with it held, so protocol code sees the same one-at-a-time
// guarantee as on gnet.

// LoadTLS loads a certificate and key (PEM files) into a server tls.Config.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("netpoll: load TLS key pair: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

type stdListener struct {
	ln   net.Listener
	http *http.Server
	once sync.Once
}

func (l *stdListener) close() {
	l.once.Do(func() {
		if l.http != nil {
			_ = l.http.Close()
		}
		_ = l.ln.Close()
	})
}

func (s *Server) startStd(ls *listenerState) error {
	ln, err := net.Listen("tcp", ls.Addr)
	if err != nil {
		return fmt.Errorf("netpoll: listen %s: %w", ls.Addr, err)
	}
	ls.addr = ln.Addr()
	if ls.TLS != nil {
		ln = tls.NewListener(ln, ls.TLS)
	}
	sl := &stdListener{ln: ln}
	ls.std = sl
	if ls.WebSocket == nil {
		go func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					return
				}
				go s.serveStd(ls, nc)
			}
		}()
		return nil
	}
	ws := ls.WebSocket
	mux := http.NewServeMux()
	path := ws.Path
	if path == "" {
		path = "/"
	}
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		wc, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       ws.Subprotocols,
			InsecureSkipVerify: true, // brokers accept any origin
		})
		if err != nil {
			return
		}
		wc.SetReadLimit(-1) // the Framer and FrameBytesMax bound frames
		nc := websocket.NetConn(context.Background(), wc, websocket.MessageBinary)
		s.serveStd(ls, &wsConn{Conn: nc, local: ls.addr, remote: remoteAddr(r)})
	})
	sl.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sl.http.Serve(ln) }()
	return nil
}

func remoteAddr(r *http.Request) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		return a
	}
	return &net.TCPAddr{}
}

// wsConn reports the TCP addresses instead of websocket's placeholders.
type wsConn struct {
	net.Conn
	local, remote net.Addr
}

func (w *wsConn) LocalAddr() net.Addr  { return w.local }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }

// serveStd runs one std-net connection; it returns when the connection is
// closed (WebSocket handlers must not return before that).
func (s *Server) serveStd(ls *listenerState, nc net.Conn) {
	if !s.admit(ls) {
		_ = nc.Close()
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		s.tuneTCP(tc)
	} else if tl, ok := nc.(*tls.Conn); ok {
		if tc, ok := tl.NetConn().(*net.TCPConn); ok {
			s.tuneTCP(tc)
		}
	}
	t := &stdTransport{nc: nc, kick: make(chan struct{}, 1), readsOn: true, shut: make(chan struct{}), deadCh: make(chan struct{})}
	t.cond = sync.NewCond(&t.mu)
	lp := &loopState{wheel: s.stdWheel, epfd: -1}
	c := &conn{srv: s, ls: ls, proto: ls.Protocol, lp: lp, tr: t, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	t.c = c
	_, t.isTCP = nc.(*net.TCPConn)
	t.mu.Lock()
	c.open()
	lp.flushDirty()
	c.afterOutput()
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.writer(); close(done) }()
	t.reader()
	<-done
}

func (s *Server) tuneTCP(tc *net.TCPConn) {
	_ = tc.SetNoDelay(true)
	if b := s.cfg.SocketSendBufferBytes; b > 0 {
		_ = tc.SetWriteBuffer(b)
	}
	if b := s.cfg.SocketRecvBufferBytes; b > 0 {
		_ = tc.SetReadBuffer(b)
	}
	if cc := s.cfg.TCPCongestionControl; cc != "" {
		if rc, err := tc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = setCongestionControl(int(fd), cc) }) // checked by NewServer
		}
	}
}

type outChunk struct {
	b []byte
	s *Slot // file range (b == nil)
}

type stdTransport struct {
	c     *conn
	nc    net.Conn
	isTCP bool

	mu      sync.Mutex // the connection's "loop"
	cond    *sync.Cond // reader waits here while reads are paused
	readsOn bool
	out     []outChunk
	outB    int  // bytes in out and being written
	busy    bool // writer is writing
	dead    bool
	deadErr error
	deadCh  chan struct{} // closed by markDead

	shut     chan struct{} // closed by shutdown
	shutOnce sync.Once

	tmu   sync.Mutex
	tasks []func()
	tdead bool
	kick  chan struct{}

	rbuf []byte
	r, w int
}

func (t *stdTransport) signal() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

func (t *stdTransport) send(bufs [][]byte) {
	t.queue(bufs)
	t.signal()
}

func (t *stdTransport) sendFile(head [][]byte, s *Slot) bool {
	t.queue(head)
	t.out = append(t.out, outChunk{s: s})
	t.signal()
	return true
}

// queue puts bufs on the writer's list.
func (t *stdTransport) queue(bufs [][]byte) {
	for _, b := range bufs {
		t.out = append(t.out, outChunk{b: b})
		t.outB += len(b)
	}
}

func (t *stdTransport) release() {}

func (t *stdTransport) pending() int {
	n := t.outB
	if t.busy && n == 0 {
		n = 1 // a file range is being copied
	}
	return n
}

func (t *stdTransport) inbound() int { return t.w - t.r }
func (t *stdTransport) polled() bool { return false }

func (t *stdTransport) execute(fn func()) error {
	t.tmu.Lock()
	if t.tdead {
		t.tmu.Unlock()
		return ErrClosed
	}
	t.tasks = append(t.tasks, fn)
	t.tmu.Unlock()
	t.signal()
	return nil
}

func (t *stdTransport) setReads(on bool) {
	t.readsOn = on
	if on {
		t.cond.Broadcast()
	}
}

func (t *stdTransport) wake() { t.cond.Broadcast() }

func (t *stdTransport) shutdown() {
	_ = t.nc.Close()
	t.shutOnce.Do(func() { close(t.shut) })
}

// markDead is called with mu held when the socket failed or was closed.
func (t *stdTransport) markDead(err error) {
	if t.dead {
		return
	}
	t.dead = true
	t.deadErr = err
	close(t.deadCh)
	t.cond.Broadcast()
	t.signal()
}

const stdReadBufferBytes = 4 << 10

func (t *stdTransport) reader() {
	c := t.c
	maxBuf := c.proto.FrameBytesMax + 64<<10
	if c.proto.FrameBytesMax <= 0 {
		maxBuf = 64 << 20
	}
	for {
		t.mu.Lock()
		for !t.dead && (!t.readsOn || c.readsPaused()) && !c.closing {
			t.cond.Wait()
		}
		if t.dead {
			t.mu.Unlock()
			return
		}
		if t.w > t.r && !c.closing {
			n, err := c.processFrames(t.rbuf[t.r:t.w])
			t.r += n
			if err != nil {
				c.beginClose(err)
			}
			c.lp.flushDirty()
			c.afterOutput()
			if !c.closing && c.readsPaused() {
				t.mu.Unlock()
				continue
			}
		}
		if t.r == t.w {
			t.r, t.w = 0, 0
		}
		if t.rbuf == nil {
			t.rbuf = make([]byte, stdReadBufferBytes)
		}
		if t.w == len(t.rbuf) {
			if t.r > 0 {
				t.w = copy(t.rbuf, t.rbuf[t.r:t.w])
				t.r = 0
			} else if len(t.rbuf) < maxBuf {
				nb := make([]byte, min(2*len(t.rbuf), maxBuf))
				t.w = copy(nb, t.rbuf[t.r:t.w])
				t.r = 0
				t.rbuf = nb
			} else {
				c.beginClose(ErrFrameTooLarge)
			}
		}
		closing := c.closing
		buf := t.rbuf[t.w:]
		t.mu.Unlock()
		if closing {
			buf = t.rbuf[:cap(t.rbuf)] // drain and ignore until the writer closes the socket
		}
		n, err := t.nc.Read(buf)
		t.mu.Lock()
		if n > 0 {
			c.ls.stats.BytesIn.Add(int64(n))
			c.lastRead = c.now()
			if closing {
				t.r, t.w = 0, 0
			} else {
				t.w += n
			}
		}
		if err != nil && errors.Is(err, io.EOF) && !closing && !t.dead {
			// The peer has finished sending but may still read (a
			// half-close): answer what it sent, then close once the
			// output is written (or CloseFlushTimeout passed).
			if t.w > t.r {
				n, perr := c.processFrames(t.rbuf[t.r:t.w])
				t.r += n
				if perr != nil {
					c.beginClose(perr)
				}
			}
			c.beginClose(nil)
			c.lp.flushDirty()
			c.afterOutput()
			t.mu.Unlock()
			select {
			case <-t.shut:
			case <-t.deadCh:
			}
			t.mu.Lock()
			t.markDead(nil)
			t.mu.Unlock()
			return
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = nil
			}
			t.markDead(err)
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

func (t *stdTransport) writer() {
	c := t.c
	var iov net.Buffers
	for {
		<-t.kick
		t.mu.Lock()
		t.tmu.Lock()
		tasks := t.tasks
		t.tasks = nil
		t.tmu.Unlock()
		for _, fn := range tasks {
			if !c.closed.Load() && !t.dead {
				fn()
			}
		}
		if t.dead {
			t.finish()
			t.mu.Unlock()
			return
		}
		chunks := t.out
		t.out = nil
		t.busy = len(chunks) > 0
		t.mu.Unlock()
		if len(chunks) == 0 {
			continue
		}
		var werr error
		written := 0
		var doneSlots []*Slot
		for i := 0; i < len(chunks) && werr == nil; {
			if s := chunks[i].s; s != nil {
				i++
				_, werr = io.Copy(t.nc, io.NewSectionReader(s.f, s.off, s.n))
				if werr == nil {
					c.ls.stats.BytesOut.Add(s.n)
					c.ls.stats.CopiedBytes.Add(s.n)
				}
				doneSlots = append(doneSlots, s)
				continue
			}
			iov = iov[:0]
			j := i
			for ; j < len(chunks) && chunks[j].s == nil; j++ {
				iov = append(iov, chunks[j].b)
			}
			n := 0
			for _, b := range chunks[i:j] {
				n += len(b.b)
			}
			if t.isTCP || len(iov) == 1 {
				_, werr = iov.WriteTo(t.nc)
			} else {
				// TLS/WebSocket: one record/message rather than one per chunk.
				one := getBuf(n)
				for _, b := range iov {
					one = append(one, b...)
				}
				_, werr = t.nc.Write(one)
				putBuf(one)
			}
			written += n
			for _, b := range chunks[i:j] {
				putBuf(b.b)
			}
			i = j
		}
		t.mu.Lock()
		t.busy = false
		t.outB -= written
		for _, s := range doneSlots {
			s.finish(werr)
		}
		for _, ch := range chunks { // not written because of an error
			if ch.s != nil && ch.s.f != nil {
				ch.s.finish(ErrClosed)
			}
		}
		if werr != nil {
			c.closeErr = werr
			t.markDead(werr)
			_ = t.nc.Close()
			t.finish()
			t.mu.Unlock()
			return
		}
		c.lp.flushDirty()
		c.afterOutput()
		if len(t.out) > 0 {
			t.signal()
		}
		t.mu.Unlock()
	}
}

// finish runs with mu held once the socket is dead.
func (t *stdTransport) finish() {
	_ = t.nc.Close()
	t.tmu.Lock()
	t.tdead = true
	t.tasks = nil
	t.tmu.Unlock()
	for _, ch := range t.out {
		if ch.s != nil {
			ch.s.finish(ErrClosed)
		} else {
			putBuf(ch.b)
		}
	}
	t.out = nil
	t.outB = 0
	t.c.onClosed(t.deadErr)
	t.c.lp.flushDirty()
}
