package netpoll

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// batchStats sums the batched-write counters of every gnet loop.
func batchStats(t *testing.T, s *Server) (submits, sends, rests int64) {
	t.Helper()
	for _, e := range s.engines {
		e.mu.RLock()
		for _, lp := range e.loops {
			if lp.batch != nil {
				submits += lp.batch.submits.Load()
				sends += lp.batch.sends.Load()
				rests += lp.batch.rests.Load()
			}
		}
		e.mu.RUnlock()
	}
	return
}

// TestBatchedWrites: many connections on one loop, half sending one
// request at a time, half all at once, responses from a few bytes to
// 128 KiB, a 32 KiB SO_SNDBUF and readers that pause, so sends through io_uring come back
// short or EAGAIN and their rest goes through gnet's buffer. Every
// response arrives whole and in order, and the io_uring path was taken
// (batches of several connections, and rests handed on).
func TestBatchedWrites(t *testing.T) {
	ts := startTest(t, kindGnet, Config{Loops: 1, SocketSendBufferBytes: 32 << 10}, nil)
	if ts.srv.engines[0].loops == nil {
		t.Fatal("no gnet engine")
	}
	const conns, reqs = 64, 40
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			var want [][]byte
			var out []byte
			for j := 0; j < reqs; j++ {
				if rng.IntN(3) == 0 {
					n := uint32(rng.IntN(128 << 10))
					p := make([]byte, 5)
					p[0] = 'B'
					binary.BigEndian.PutUint32(p[1:], n)
					out = append(out, frame(p...)...)
					w := make([]byte, 4+n)
					binary.BigEndian.PutUint32(w, n)
					for k := range w[4:] {
						w[4+k] = byte(k)
					}
					want = append(want, w)
				} else {
					f := frame([]byte(fmt.Sprintf("E conn %d req %d", i, j))...)
					out = append(out, f...)
					want = append(want, f)
				}
			}
			r := bufio.NewReaderSize(c, 512)
			lockstep := i%2 == 0 // else every request at once
			if !lockstep {
				go func() { _, _ = c.Write(out) }()
			}
			for j, w := range want {
				if lockstep {
					n := 4 + int(binary.BigEndian.Uint32(out))
					if _, err := c.Write(out[:n]); err != nil {
						errs <- err
						return
					}
					out = out[n:]
				}
				if rng.IntN(8) == 0 {
					time.Sleep(time.Millisecond) // let the socket fill
				}
				got, err := readFrame(r)
				if err != nil || !bytes.Equal(got, w) {
					errs <- fmt.Errorf("conn %d response %d: %d bytes, want %d: %v", i, j, len(got), len(w), err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	submits, sends, rests := batchStats(t, ts.srv)
	t.Logf("io_uring_enter %d, sends %d, rests to gnet %d", submits, sends, rests)
	if submits == 0 || sends < 2*submits {
		t.Skipf("writes were not batched (io_uring unavailable?): %d submits, %d sends", submits, sends)
	}
	if rests == 0 {
		t.Fatal("no batched send came back short: the rest path was not exercised")
	}
}

// TestBatchedWriteError: a connection whose socket fails the write (shut
// down for writing) is in the same io_uring batch as another connection;
// gnet closes it from the rest path inside flushDirty, its OnClose writes
// to the other connection, and both that and the batched response arrive.
func TestBatchedWriteError(t *testing.T) {
	var peer atomic.Pointer[conn]
	h := &testHandler{closeCh: make(chan error, 4)}
	h.onFrame = func(c Conn, fr []byte) error {
		switch string(fr[4:]) {
		case "watch":
			peer.Store(c.(*conn))
			c.Write(fr)
		case "die":
			_ = unix.Shutdown(c.(*conn).tr.(*gnetTransport).fd, unix.SHUT_WR)
			c.Write(fr)                                    // fails with EPIPE
			peer.Load().Write(frame([]byte("batched")...)) // same flush: two sends in one batch
		default:
			c.Write(fr)
		}
		return nil
	}
	h.onClose = func(c Conn) {
		if p := peer.Load(); p != nil && p != c {
			p.Write(frame([]byte("gone")...))
		}
	}
	ts := startTest(t, kindGnet, Config{Loops: 1}, h)
	w := ts.dial()
	defer w.Close()
	wr := bufio.NewReader(w)
	if got, err := roundTrip(w, wr, frame([]byte("watch")...)); err != nil || string(got[4:]) != "watch" {
		t.Fatalf("watch: %q %v", got, err)
	}
	d := ts.dial()
	defer d.Close()
	if _, err := d.Write(frame([]byte("die")...)); err != nil {
		t.Fatal(err)
	}
	expectWriteErrorClose(t, h)
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"batched", "gone"} {
		got, err := readFrame(wr)
		if err != nil || string(got[4:]) != want {
			t.Fatalf("watcher: %q %v, want %q", got, err, want)
		}
	}
	submits, sends, rests := batchStats(t, ts.srv)
	if submits == 0 {
		t.Skip("writes were not batched (io_uring unavailable?)")
	}
	t.Logf("io_uring_enter %d, sends %d, rests %d", submits, sends, rests)
	if rests == 0 {
		t.Fatal("the failed send was not handed to gnet")
	}
}

// TestHalfCloseGetsResponse: a client that sends its requests and shuts
// down its side at once (TLS: close_notify) still gets every response. On
// gnet: output whose flush was
// deferred (batched writes) is written from OnClose before gnet closes the
// socket; on std-net the reader answers what it read before the EOF and
// closes once the output is written.
func TestHalfCloseGetsResponse(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		if k == kindWS {
			t.Skip("a WebSocket client cannot half-close")
		}
		testHalfClose(t, k)
	})
}

func testHalfClose(t *testing.T, k kind) {
	ts := startTest(t, k, Config{Loops: 1}, nil)
	const conns = 32
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := ts.dialErr()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var out []byte
			var want [][]byte
			for j := 0; j < 3; j++ {
				f := frame([]byte(fmt.Sprintf("E conn %d req %d", i, j))...)
				out = append(out, f...)
				want = append(want, f)
			}
			if _, err := c.Write(out); err != nil {
				errs <- err
				return
			}
			type closeWriter interface{ CloseWrite() error }
			if cw, ok := c.(closeWriter); ok {
				_ = cw.CloseWrite()
			}
			r := bufio.NewReader(c)
			for j, w := range want {
				got, err := readFrame(r)
				if err != nil || !bytes.Equal(got, w) {
					errs <- fmt.Errorf("conn %d response %d: %q %v", i, j, got, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
