package netpoll

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCongestionControl: Config.TCPCongestionControl is what the accepted
// socket runs, on gnet and on the std-net transport; an unknown algorithm
// fails NewServer.
func TestCongestionControl(t *testing.T) {
	host := readProcWords(t, "/proc/sys/net/ipv4/tcp_congestion_control")
	want := ""
	for _, cc := range readProcWords(t, "/proc/sys/net/ipv4/tcp_allowed_congestion_control") {
		if len(host) > 0 && cc != host[0] {
			want = cc
		}
	}
	if want == "" {
		t.Skip("only the host default is allowed")
	}
	for _, k := range []kind{kindGnet, kindTLS} {
		t.Run(string(k), func(t *testing.T) {
			ts := startTest(t, k, Config{TCPCongestionControl: want}, nil)
			c := ts.dial()
			defer c.Close()
			req := frame([]byte("cc")...)
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, len(req))); err != nil {
				t.Fatal(err)
			}
			if got := serverSocketCC(t, ts.srv); got != want {
				t.Fatalf("accepted socket runs %q, want %q (host default %q)", got, want, host[0])
			}
		})
	}
	_, err := NewServer(Config{TCPCongestionControl: "no-such-algorithm"}, []Listener{{Addr: "127.0.0.1:0", Protocol: &Protocol{Name: "test", Framer: LengthPrefixed32(1 << 10), Handler: &testHandler{}}}})
	if err == nil || !strings.Contains(err.Error(), "no-such-algorithm") {
		t.Fatalf("NewServer with an unknown algorithm: %v", err)
	}
}

func readProcWords(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skip(err)
	}
	return strings.Fields(string(b))
}

// serverSocketCC reads TCP_CONGESTION from the server side of its one
// connection.
func serverSocketCC(t *testing.T, s *Server) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(s.conns))
	}
	var cc string
	var err error
	for c := range s.conns {
		switch tr := c.tr.(type) {
		case *gnetTransport:
			cc, err = unix.GetsockoptString(tr.fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
		case *stdTransport:
			nc := tr.nc
			if tc, ok := nc.(*tls.Conn); ok {
				nc = tc.NetConn()
			}
			rc, rerr := nc.(*net.TCPConn).SyscallConn()
			if rerr != nil {
				t.Fatal(rerr)
			}
			_ = rc.Control(func(fd uintptr) { cc, err = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION) })
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(cc, "\x00")
}
