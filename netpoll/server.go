package netpoll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config tunes a Server. Zero values pick the defaults noted.
type Config struct {
	// Loops is the number of gnet event loops (0: one per core but one,
	// at least one). gnet loops block in epoll_wait as system calls; when
	// every P is held by a loop in a system call, the Go scheduler's sysmon
	// keeps retaking and handing off Ps, which measurably costs more CPU
	// than it saves (README.md). Leaving one core's P free avoids that.
	Loops int
	// EnginePerListener runs one gnet engine (with Loops loops) per plain
	// TCP listener instead of one engine serving every address.
	EnginePerListener bool
	// ConnsMax caps open connections over all listeners (0: no cap).
	ConnsMax int
	// OutboundHighWaterBytes: above it a connection's reads pause until its
	// queued output falls to half of it (0: 4 MiB; <0: off).
	OutboundHighWaterBytes int
	// MemoryHighWaterBytes: when bytes buffered by all connections exceed it,
	// publishing connections stop reading until the total falls below
	// MemoryLowWaterBytes (0: off; low default 3/4 of high).
	MemoryHighWaterBytes int64
	MemoryLowWaterBytes  int64
	// Socket buffer sizes set on each accepted socket (0: kernel default).
	SocketRecvBufferBytes int
	SocketSendBufferBytes int
	// TCPCongestionControl is set on each accepted socket (TCP_CONGESTION,
	// e.g. "cubic"; empty: the host's net.ipv4.tcp_congestion_control).
	// NewServer fails if the kernel refuses it. The loopback benchmarks use
	// it to compare the data paths under one named algorithm (README.md).
	TCPCongestionControl string
	// LockOSThread pins each gnet loop to an OS thread (such a loop does
	// not yield, see NoLoopYield).
	LockOSThread bool
	// NoLoopYield turns off the runtime.Gosched a busy gnet loop makes
	// every 2 ms so that the Go scheduler's sysmon does not keep preempting
	// it and taking its P (kept for measurement; README.md).
	NoLoopYield bool
	// NoBatchedWrites makes gnet loops write each connection's output at
	// the end of its own read (one write(2) each) instead of deferring the
	// flush and sending the output of all connections of a busy loop with
	// one io_uring_enter (gnet_batch.go; kept for measurement).
	NoBatchedWrites bool
	// ReadBufferBytes is gnet's per-loop read buffer (0: 64 KiB).
	ReadBufferBytes int
	// CopyThresholdBytes: WriteFile ranges shorter than this are copied
	// instead of sent with sendfile (0: DefaultCopyThresholdBytes; <0: always sendfile).
	CopyThresholdBytes int
	// TimerTick is the timing-wheel resolution (0: 10 ms).
	TimerTick time.Duration
	// CloseFlushTimeout bounds how long Close waits for queued output (0: 5 s).
	CloseFlushTimeout time.Duration
	Logger            *slog.Logger
}

// DefaultCopyThresholdBytes is where copying and sendfile cross on
// loopback: copy is as fast or faster up to 64 KiB, where the two tie;
// sendfile is ahead from 96 KiB and 2× at 1 MiB (README.md,
// BenchmarkWriteFile and npbench -mode fetch).
const DefaultCopyThresholdBytes = 64 << 10

func (cfg *Config) setDefaults() {
	if cfg.Loops <= 0 {
		cfg.Loops = max(1, runtime.NumCPU()-1)
	}
	if cfg.OutboundHighWaterBytes == 0 {
		cfg.OutboundHighWaterBytes = 4 << 20
	} else if cfg.OutboundHighWaterBytes < 0 {
		cfg.OutboundHighWaterBytes = 0
	}
	if cfg.MemoryHighWaterBytes > 0 && cfg.MemoryLowWaterBytes <= 0 {
		cfg.MemoryLowWaterBytes = cfg.MemoryHighWaterBytes * 3 / 4
	}
	if cfg.ReadBufferBytes <= 0 {
		cfg.ReadBufferBytes = 64 << 10
	}
	if cfg.CopyThresholdBytes == 0 {
		cfg.CopyThresholdBytes = DefaultCopyThresholdBytes
	} else if cfg.CopyThresholdBytes < 0 {
		cfg.CopyThresholdBytes = 0
	}
	if cfg.TimerTick <= 0 {
		cfg.TimerTick = 10 * time.Millisecond
	}
	if cfg.CloseFlushTimeout <= 0 {
		cfg.CloseFlushTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

// WebSocketConfig makes a listener accept WebSocket connections (binary
// messages; their bytes form the stream given to the Framer).
type WebSocketConfig struct {
	Path         string   // e.g. "/mqtt"
	Subprotocols []string // e.g. {"mqtt"}
}

// Listener is one address served with one protocol. TLS or WebSocket put it
// on the std-net transport; otherwise it runs on gnet loops.
type Listener struct {
	Addr      string // host:port; port 0 picks a free one (see Server.Addrs)
	Protocol  *Protocol
	TLS       *tls.Config
	WebSocket *WebSocketConfig
	ConnsMax  int // per-listener cap (0: none)
}

// ListenerStats are one listener's counters. Server.Stats returns snapshots.
type ListenerStats struct {
	Addr      string
	Protocol  string
	Transport string // "gnet", "tls", "ws", "wss"

	ConnsOpen     atomic.Int64
	ConnsAccepted atomic.Int64
	ConnsClosed   atomic.Int64
	ConnsRejected atomic.Int64 // over ConnsMax
	BytesIn       atomic.Int64
	BytesOut      atomic.Int64
	FramesIn      atomic.Int64
	FramesOut     atomic.Int64 // Write, Slot fills, WriteFile calls
	Pauses        atomic.Int64 // reads paused: outbound high-water mark or PauseReads
	MemoryPauses  atomic.Int64 // reads paused by the global memory high-water mark
	Drops         atomic.Int64 // counted by protocols through CountDrop
	SendfileBytes atomic.Int64 // bytes the kernel took by sendfile
	CopiedBytes   atomic.Int64 // WriteFile bytes sent by copying
}

// ListenerStatsSnapshot is a plain copy of ListenerStats.
type ListenerStatsSnapshot struct {
	Addr, Protocol, Transport              string
	ConnsOpen, ConnsAccepted, ConnsClosed  int64
	ConnsRejected                          int64
	BytesIn, BytesOut, FramesIn, FramesOut int64
	Pauses, MemoryPauses, Drops            int64
	SendfileBytes, CopiedBytes             int64
}

type listenerState struct {
	Listener
	idx   int
	stats ListenerStats
	open  atomic.Int64
	addr  net.Addr
	std   *stdListener
}

// Server runs listeners on gnet loops and the std-net transport.
type Server struct {
	cfg       Config
	listeners []*listenerState
	engines   []*gnetEngine
	stdWheel  *wheel

	now       atomic.Int64
	open      atomic.Int64
	stopping  atomic.Bool
	memBytes  atomic.Int64
	memPaused atomic.Bool

	mu       sync.Mutex
	conns    map[*conn]struct{}
	wheels   []*wheel
	memList  []*conn
	started  bool
	tickStop chan struct{}
	tickDone chan struct{}
}

// NewServer validates the configuration; nothing listens before Start.
func NewServer(cfg Config, listeners []Listener) (*Server, error) {
	cfg.setDefaults()
	if len(listeners) == 0 {
		return nil, errors.New("netpoll: no listeners")
	}
	if cc := cfg.TCPCongestionControl; cc != "" {
		if err := checkCongestionControl(cc); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, conns: make(map[*conn]struct{})}
	for i, l := range listeners {
		p := l.Protocol
		if p == nil || p.Handler == nil || p.Framer == nil {
			return nil, fmt.Errorf("netpoll: listener %s: protocol, handler and framer are required", l.Addr)
		}
		ls := &listenerState{Listener: l, idx: i}
		ls.stats.Addr = l.Addr
		ls.stats.Protocol = p.Name
		switch {
		case l.WebSocket != nil && l.TLS != nil:
			ls.stats.Transport = "wss"
		case l.WebSocket != nil:
			ls.stats.Transport = "ws"
		case l.TLS != nil:
			ls.stats.Transport = "tls"
		default:
			ls.stats.Transport = "gnet"
		}
		s.listeners = append(s.listeners, ls)
	}
	s.now.Store(monoNow())
	s.stdWheel = newWheel(cfg.TimerTick, func(batch []*wheelTimer) {
		for _, t := range batch {
			t := t
			_ = t.c.tr.execute(func() {
				t.run()
				t.c.lp.flushDirty()
				t.c.afterOutput()
			})
		}
	})
	s.wheels = append(s.wheels, s.stdWheel)
	return s, nil
}

// Start binds every listener and returns once all of them accept.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("netpoll: server already started")
	}
	s.started = true
	s.tickStop = make(chan struct{})
	s.tickDone = make(chan struct{})
	s.mu.Unlock()
	go s.ticker()

	var gl []*listenerState
	for _, ls := range s.listeners {
		if ls.TLS == nil && ls.WebSocket == nil {
			gl = append(gl, ls)
			continue
		}
		if err := s.startStd(ls); err != nil {
			_ = s.Stop(context.Background())
			return err
		}
	}
	if len(gl) > 0 {
		groups := [][]*listenerState{gl}
		if s.cfg.EnginePerListener {
			groups = groups[:0]
			for _, ls := range gl {
				groups = append(groups, []*listenerState{ls})
			}
		}
		for _, g := range groups {
			e := newGnetEngine(s, g)
			s.engines = append(s.engines, e)
			if err := e.start(); err != nil {
				_ = s.Stop(context.Background())
				return err
			}
		}
	}
	return nil
}

// Addrs maps each listener's configured Addr to the address it is bound to.
func (s *Server) Addrs() map[string]net.Addr {
	m := make(map[string]net.Addr, len(s.listeners))
	for _, ls := range s.listeners {
		m[ls.Addr] = ls.addr
	}
	return m
}

// ListenerAddrs returns the bound addresses in the order of the listeners.
func (s *Server) ListenerAddrs() []net.Addr {
	a := make([]net.Addr, len(s.listeners))
	for i, ls := range s.listeners {
		a[i] = ls.addr
	}
	return a
}

// Stats returns a snapshot of every listener's counters, in listener order.
func (s *Server) Stats() []ListenerStatsSnapshot {
	out := make([]ListenerStatsSnapshot, len(s.listeners))
	for i, ls := range s.listeners {
		st := &ls.stats
		out[i] = ListenerStatsSnapshot{
			Addr: st.Addr, Protocol: st.Protocol, Transport: st.Transport,
			ConnsOpen: st.ConnsOpen.Load(), ConnsAccepted: st.ConnsAccepted.Load(),
			ConnsClosed: st.ConnsClosed.Load(), ConnsRejected: st.ConnsRejected.Load(),
			BytesIn: st.BytesIn.Load(), BytesOut: st.BytesOut.Load(),
			FramesIn: st.FramesIn.Load(), FramesOut: st.FramesOut.Load(),
			Pauses: st.Pauses.Load(), MemoryPauses: st.MemoryPauses.Load(), Drops: st.Drops.Load(),
			SendfileBytes: st.SendfileBytes.Load(), CopiedBytes: st.CopiedBytes.Load(),
		}
		if ls.addr != nil {
			out[i].Addr = ls.addr.String()
		}
	}
	return out
}

// MemoryBytes is what all connections currently buffer (inbound and outbound).
func (s *Server) MemoryBytes() int64 { return s.memBytes.Load() }

// Stop stops accepting, closes every connection after flushing its queued
// output, and stops the loops. It returns ctx.Err() if ctx ends first (the
// loops are stopped regardless).
func (s *Server) Stop(ctx context.Context) error {
	if s.stopping.Swap(true) {
		return nil
	}
	for _, ls := range s.listeners {
		if ls.std != nil {
			ls.std.close()
		}
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close(ErrServerStopped)
	}
	var err error
	for s.open.Load() > 0 {
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, e := range s.engines {
		if e2 := e.stop(ctx); e2 != nil && err == nil {
			err = e2
		}
	}
	if err != nil {
		// Connections that did not flush in time: close them hard.
		s.mu.Lock()
		for c := range s.conns {
			if st, ok := c.tr.(*stdTransport); ok {
				st.shutdown()
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if s.tickStop != nil {
		close(s.tickStop)
		s.mu.Unlock()
		<-s.tickDone
	} else {
		s.mu.Unlock()
	}
	return err
}

func (s *Server) register(c *conn) {
	s.open.Add(1)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.open.Add(-1)
}

// admit reserves a connection against the global and listener caps.
func (s *Server) admit(ls *listenerState) bool {
	if s.stopping.Load() {
		return false
	}
	if m := s.cfg.ConnsMax; m > 0 && s.open.Load() >= int64(m) {
		ls.stats.ConnsRejected.Add(1)
		return false
	}
	if m := ls.ConnsMax; m > 0 && ls.open.Add(1) > int64(m) {
		ls.open.Add(-1)
		ls.stats.ConnsRejected.Add(1)
		return false
	} else if m <= 0 {
		ls.open.Add(1)
	}
	return true
}

func (s *Server) addWheel(w *wheel) {
	s.mu.Lock()
	s.wheels = append(s.wheels, w)
	s.mu.Unlock()
}

func (s *Server) memAdd(d int64) {
	v := s.memBytes.Add(d)
	if hw := s.cfg.MemoryHighWaterBytes; hw > 0 && v > hw && !s.memPaused.Load() {
		s.memPaused.Store(true)
	}
}

func (s *Server) addMemPaused(c *conn) {
	s.mu.Lock()
	s.memList = append(s.memList, c)
	s.mu.Unlock()
}

func (s *Server) ticker() {
	defer close(s.tickDone)
	t := time.NewTicker(s.cfg.TimerTick)
	defer t.Stop()
	var wheels []*wheel
	for {
		select {
		case <-s.tickStop:
			return
		case <-t.C:
			s.now.Store(monoNow())
		}
		s.mu.Lock()
		wheels = append(wheels[:0], s.wheels...)
		s.mu.Unlock()
		now := s.now.Load()
		for _, w := range wheels {
			w.advance(now)
		}
		if s.memPaused.Load() && s.memBytes.Load() < s.cfg.MemoryLowWaterBytes {
			s.memPaused.Store(false)
			s.mu.Lock()
			list := s.memList
			s.memList = nil
			s.mu.Unlock()
			for _, c := range list {
				c := c
				_ = c.tr.execute(func() {
					if c.memPaused && !c.closed.Load() {
						c.memPaused = false
						c.applyReads()
					}
				})
			}
		}
	}
}

// setCongestionControl sets cc (when not empty) on a TCP socket.
func setCongestionControl(fd int, cc string) error {
	if cc == "" {
		return nil
	}
	return unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
}

// checkCongestionControl tries cc on a fresh socket, so that an unknown or
// disallowed algorithm fails at start and not silently per connection.
func checkCongestionControl(cc string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netpoll: TCP congestion control %q: %w", cc, err)
	}
	defer unix.Close(fd)
	if err := setCongestionControl(fd, cc); err != nil {
		return fmt.Errorf("netpoll: TCP congestion control %q (net.ipv4.tcp_available_congestion_control, tcp_allowed_congestion_control): %w", cc, err)
	}
	return nil
}
