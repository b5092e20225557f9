package netpoll

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestMain(m *testing.M) {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	os.Exit(m.Run())
}

// The test protocol: 4-byte big-endian length + payload; payload[0] is an op.
//
//	'E' echo the frame
//	'A' reserve a slot, fill it from another goroutine after a random delay
//	'B' + u32 n: respond with a frame of n bytes
//	'F' + u64 off + u64 n: respond with a 4-byte header (n) + the file range
//	'X' return an error (close)
type testHandler struct {
	file    *os.File
	opened  atomic.Int64
	closed  atomic.Int64
	closeCh chan error
	onFrame func(c Conn, frame []byte) error
	onClose func(c Conn) // runs first in OnClose
}

func (h *testHandler) OnOpen(c Conn) any { h.opened.Add(1); return nil }
func (h *testHandler) OnClose(c Conn, err error) {
	if h.onClose != nil {
		h.onClose(c)
	}
	h.closed.Add(1)
	if h.closeCh != nil {
		select {
		case h.closeCh <- err:
		default:
		}
	}
}

func (h *testHandler) OnFrame(c Conn, frame []byte) error {
	if h.onFrame != nil {
		return h.onFrame(c, frame)
	}
	p := frame[4:]
	if len(p) == 0 {
		c.Write(frame)
		return nil
	}
	switch p[0] {
	case 'A':
		s := c.Reserve()
		b := append([]byte(nil), frame...)
		d := time.Duration(rand.IntN(2000)) * time.Microsecond
		go func() {
			time.Sleep(d)
			_ = c.Execute(func(Conn) { s.Fill(b) })
		}()
	case 'B':
		n := binary.BigEndian.Uint32(p[1:])
		out := make([]byte, 4+n)
		binary.BigEndian.PutUint32(out, n)
		for i := range out[4:] {
			out[4+i] = byte(i)
		}
		c.Write(out)
	case 'F':
		off := int64(binary.BigEndian.Uint64(p[1:]))
		n := int64(binary.BigEndian.Uint64(p[9:]))
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(n))
		c.WriteFile(hdr[:], h.file, off, n, nil)
	case 'X':
		c.Write(frame)
		return io.ErrUnexpectedEOF
	default:
		c.Write(frame)
	}
	return nil
}

func frame(payload ...byte) []byte {
	b := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	copy(b[4:], payload)
	return b
}

func readFrame(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	b := make([]byte, 4+binary.BigEndian.Uint32(h[:]))
	copy(b, h[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

// kind selects the transport under test.
type kind string

const (
	kindGnet kind = "gnet"
	kindTLS  kind = "tls"
	kindWS   kind = "ws"
)

var testTLS = sync.OnceValues(func() (*tls.Config, error) {
	dir, err := os.MkdirTemp("", "netpoll-tls")
	if err != nil {
		return nil, err
	}
	cert, key, err := writeSelfSigned(dir)
	if err != nil {
		return nil, err
	}
	return LoadTLS(cert, key)
})

type testServer struct {
	t    testing.TB
	srv  *Server
	h    *testHandler
	kind kind
	addr string
}

func startTest(t testing.TB, k kind, cfg Config, h *testHandler) *testServer {
	t.Helper()
	if h == nil {
		h = &testHandler{}
	}
	p := &Protocol{Name: "test", Framer: LengthPrefixed32(16 << 20), FrameBytesNeeded: LengthPrefixed32Needed, FrameBytesMax: 16 << 20, Handler: h, Publisher: true}
	l := Listener{Addr: "127.0.0.1:0", Protocol: p}
	switch k {
	case kindTLS:
		tc, err := testTLS()
		if err != nil {
			t.Fatal(err)
		}
		l.TLS = tc
	case kindWS:
		l.WebSocket = &WebSocketConfig{Path: "/mqtt", Subprotocols: []string{"mqtt"}}
	}
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	srv, err := NewServer(cfg, []Listener{l})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv, h: h, kind: k, addr: srv.Addrs()["127.0.0.1:0"].String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return ts
}

func (ts *testServer) dial() net.Conn {
	ts.t.Helper()
	c, err := ts.dialErr()
	if err != nil {
		ts.t.Fatal(err)
	}
	return c
}

func (ts *testServer) dialErr() (net.Conn, error) {
	switch ts.kind {
	case kindTLS:
		return tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true})
	case kindWS:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wc, resp, err := websocket.Dial(ctx, "ws://"+ts.addr+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return nil, err
		}
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
			return nil, fmt.Errorf("subprotocol %q", got)
		}
		wc.SetReadLimit(-1)
		return websocket.NetConn(context.Background(), wc, websocket.MessageBinary), nil
	}
	return net.Dial("tcp", ts.addr)
}

// roundTrip sends one frame and reads one response.
func roundTrip(c net.Conn, r *bufio.Reader, f []byte) ([]byte, error) {
	if _, err := c.Write(f); err != nil {
		return nil, err
	}
	return readFrame(r)
}

// expectWriteErrorClose waits for h's next OnClose, which must come with
// the error of a write that failed.
func expectWriteErrorClose(t testing.TB, h *testHandler) {
	t.Helper()
	select {
	case err := <-h.closeCh:
		if err == nil {
			t.Fatal("OnClose without the write error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnClose for the connection that could not be written")
	}
}
