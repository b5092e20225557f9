package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"quartet/appliance/metrics"
)

// ErrNotStarted is returned by Addr-dependent calls before Start.
var ErrNotStarted = errors.New("httpapi: not started")

// Config of the admin listener.
type Config struct {
	Addr    string // host:port; port 0 picks one
	TLSCert string // optional PEM files
	TLSKey  string
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	cfg   Config
	reg   *metrics.Registry
	log   *slog.Logger
	ready atomic.Bool

	mu     sync.Mutex
	checks map[string]func() error

	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

// New returns a Server for reg (which may be nil: /metrics then serves
// nothing). log may be nil.
func New(cfg Config, reg *metrics.Registry, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	s := &Server{cfg: cfg, reg: reg, log: log, checks: map[string]func() error{}}
	reg.Register(func(e *metrics.Emitter) {
		v := 0.0
		if s.ready.Load() {
			v = 1
		}
		e.Gauge(metrics.Ready, "1 once every listener accepts.", v)
	})
	return s
}

// SetReady marks the appliance ready (all listeners accept) or not
// (starting, stopping).
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// AddCheck adds a readiness check; /readyz fails while it returns an error.
// Checks run on the request goroutine and must be quick.
func (s *Server) AddCheck(name string, check func() error) {
	s.mu.Lock()
	s.checks[name] = check
	s.mu.Unlock()
}

// Handler returns the HTTP handler (usable without Start, e.g. in tests).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	return mux
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	if err := s.reg.WriteText(&b); err != nil {
		s.log.Error("metrics", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", metrics.ContentType)
	w.Write([]byte(b.String()))
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	var problems []string
	if !s.ready.Load() {
		problems = append(problems, "listeners: not ready")
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	checks := make([]func() error, len(names))
	for i, n := range names {
		checks[i] = s.checks[n]
	}
	s.mu.Unlock()
	for i, c := range checks {
		if err := c(); err != nil {
			problems = append(problems, names[i]+": "+err.Error())
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(strings.Join(problems, "\n") + "\n"))
		return
	}
	w.Write([]byte("ready\n"))
}

// Start binds the listener and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("httpapi: listen %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("httpapi: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http serve", "err", err)
		}
	}()
	return nil
}

// Addr returns the bound address (nil before Start).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops the listener and waits for in-flight requests until ctx
// is done.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return ErrNotStarted
	}
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return err
}
