package netpoll

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var allKinds = []kind{kindGnet, kindTLS, kindWS}

func forKinds(t *testing.T, fn func(t *testing.T, k kind)) {
	for _, k := range allKinds {
		t.Run(string(k), func(t *testing.T) { fn(t, k) })
	}
}

func TestEcho(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		ts := startTest(t, k, Config{}, nil)
		c := ts.dial()
		defer c.Close()
		r := bufio.NewReader(c)
		for i := 0; i < 10; i++ {
			f := frame([]byte(fmt.Sprintf("E hello %d", i))...)
			got, err := roundTrip(c, r, f)
			if err != nil || !bytes.Equal(got, f) {
				t.Fatalf("round trip %d: %q %v", i, got, err)
			}
		}
		st := ts.srv.Stats()[0]
		if st.FramesIn != 10 || st.FramesOut != 10 || st.ConnsOpen != 1 || st.BytesIn == 0 || st.BytesOut == 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// Frames split at every byte boundary, and coalesced many per read, decode
// identically.
func TestSplitAndCoalesced(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		ts := startTest(t, k, Config{}, nil)
		var stream []byte
		for i := 0; i < 3; i++ {
			stream = append(stream, frame([]byte(fmt.Sprintf("E frame-%d", i))...)...)
		}
		c := ts.dial()
		defer c.Close()
		r := bufio.NewReader(c)
		check := func() {
			got := make([]byte, len(stream))
			if _, err := io.ReadFull(r, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, stream) {
				t.Fatalf("got %q want %q", got, stream)
			}
		}
		for i := 1; i < len(stream); i++ {
			if _, err := c.Write(stream[:i]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Microsecond) // let the server see the first part alone
			if _, err := c.Write(stream[i:]); err != nil {
				t.Fatal(err)
			}
			check()
		}
		// Byte by byte.
		for i := range stream {
			if _, err := c.Write(stream[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		check()
		// Many frames in one write.
		var big []byte
		for i := 0; i < 500; i++ {
			big = append(big, frame([]byte(fmt.Sprintf("E coalesced-%d", i))...)...)
		}
		if _, err := c.Write(big); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(big))
		if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("coalesced: %v", err)
		}
	})
}

func TestManyConns(t *testing.T) {
	n := 5000
	forKinds(t, func(t *testing.T, k kind) {
		if k != kindGnet && testing.Short() {
			t.Skip("std-net transports with 5,000 conns skipped in -short")
		}
		ts := startTest(t, k, Config{}, nil)
		conns := make([]net.Conn, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 200)
		for i := range conns {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				sem <- struct{}{}
				c, err := ts.dialErr()
				<-sem
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		errs = make(chan error, n)
		for i, c := range conns {
			wg.Add(1)
			go func(i int, c net.Conn) {
				defer wg.Done()
				r := bufio.NewReader(c)
				for j := 0; j < 3; j++ {
					f := frame([]byte(fmt.Sprintf("E conn %d msg %d", i, j))...)
					got, err := roundTrip(c, r, f)
					if err != nil || !bytes.Equal(got, f) {
						errs <- fmt.Errorf("conn %d: %q %v", i, got, err)
						return
					}
				}
			}(i, c)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := ts.srv.Stats()[0].ConnsOpen; got != int64(n) {
			t.Fatalf("ConnsOpen %d", got)
		}
	})
}

// A connection that stops reading does not delay the others, and what the
// server buffers for it stays near the high-water mark.
func TestStalledReader(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		const hwm = 256 << 10
		ts := startTest(t, k, Config{OutboundHighWaterBytes: hwm, SocketSendBufferBytes: 64 << 10, SocketRecvBufferBytes: 64 << 10}, nil)
		stalled := ts.dial()
		defer stalled.Close()
		// Ask for 64 MiB of responses and never read them.
		go func() {
			var req [5]byte
			req[0] = 'B'
			binary.BigEndian.PutUint32(req[1:], 256<<10)
			f := frame(req[:]...)
			for i := 0; i < 256; i++ {
				if _, err := stalled.Write(f); err != nil {
					return
				}
			}
		}()
		time.Sleep(200 * time.Millisecond)
		var maxRTT time.Duration
		others := 8
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < others; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := ts.dial()
				defer c.Close()
				r := bufio.NewReader(c)
				for j := 0; j < 50; j++ {
					f := frame([]byte("E ping")...)
					start := time.Now()
					if _, err := roundTrip(c, r, f); err != nil {
						t.Error(err)
						return
					}
					d := time.Since(start)
					mu.Lock()
					maxRTT = max(maxRTT, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		bound := 250 * time.Millisecond
		if raceEnabled {
			bound = time.Second
		}
		if maxRTT > bound {
			t.Fatalf("max round trip of other connections %v while one was stalled", maxRTT)
		}
		mem := ts.srv.MemoryBytes()
		// The stalled conn may hold up to the mark plus one read's worth of
		// responses (64 KiB read buffer / 9-byte requests, each 256 KiB).
		limit := int64(hwm + 300<<10)
		if k == kindGnet {
			limit = hwm + 64<<10/9*(256<<10+4) // upper bound of one read's output
		}
		st := ts.srv.Stats()[0]
		t.Logf("max RTT of others %v; server buffers %d bytes; pauses %d", maxRTT, mem, st.Pauses)
		if mem > limit {
			t.Fatalf("server buffers %d bytes for a stalled reader (limit %d)", mem, limit)
		}
		if st.Pauses == 0 {
			t.Fatalf("no pause counted")
		}
	})
}

// Out-of-order completions leave in request order.
func TestOrderedCompletions(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		ts := startTest(t, k, Config{}, nil)
		c := ts.dial()
		defer c.Close()
		r := bufio.NewReader(c)
		const n = 300
		var out []byte
		var want [][]byte
		for i := 0; i < n; i++ {
			op := byte('A')
			if i%3 == 0 {
				op = 'E' // synchronous responses interleaved with async ones
			}
			f := frame(append([]byte{op}, fmt.Sprintf(" req %d", i)...)...)
			want = append(want, f)
			out = append(out, f...)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			got, err := readFrame(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[i]) {
				t.Fatalf("response %d: got %q want %q", i, got[4:], want[i][4:])
			}
		}
	})
}

func makeTestFile(t testing.TB, size int) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "seg")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sendfile with a tiny SO_SNDBUF delivers every byte of several large ranges
// in order, interleaved with small responses.
func TestSendfileTinySndbuf(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		const size = 4 << 20
		f := makeTestFile(t, size)
		content := make([]byte, size)
		if _, err := f.ReadAt(content, 0); err != nil {
			t.Fatal(err)
		}
		h := &testHandler{file: f}
		// (On loopback the MSS is 64 KiB, so with a 4 KiB SO_SNDBUF one segment
		// is in flight and the reader's delayed ACK paces gnet's sendfile to
		// ~40 ms per 64 KiB: this test takes a few seconds on gnet.)
		ts := startTest(t, k, Config{SocketSendBufferBytes: 4096, CopyThresholdBytes: 1}, h)
		c := ts.dial()
		defer c.Close()
		type req struct {
			off, n int64
			echo   []byte
		}
		var reqs []req
		var out []byte
		ranges := [][2]int64{{0, 1 << 20}, {12345, 3 << 20}, {size - 100, 100}, {7, 1 << 20}, {0, size}}
		for i, rg := range ranges {
			p := make([]byte, 17)
			p[0] = 'F'
			binary.BigEndian.PutUint64(p[1:], uint64(rg[0]))
			binary.BigEndian.PutUint64(p[9:], uint64(rg[1]))
			out = append(out, frame(p...)...)
			reqs = append(reqs, req{off: rg[0], n: rg[1]})
			e := frame([]byte(fmt.Sprintf("E small %d", i))...)
			if i == 2 {
				// A large response just before a range: the socket takes
				// part of it with the range's header and the rest waits.
				e = frame(append([]byte("E large"), bytes.Repeat([]byte{'e'}, 200<<10)...)...)
			}
			out = append(out, e...)
			reqs = append(reqs, req{echo: e})
		}
		go func() { _, _ = c.Write(out) }()
		r := bufio.NewReaderSize(c, 1024)
		for i, rq := range reqs {
			got, err := readFrame(r)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if rq.echo != nil {
				if !bytes.Equal(got, rq.echo) {
					t.Fatalf("response %d: got %q", i, got[:min(len(got), 40)])
				}
				continue
			}
			if !bytes.Equal(got[4:], content[rq.off:rq.off+rq.n]) {
				t.Fatalf("response %d: file range %d+%d differs (got %d bytes)", i, rq.off, rq.n, len(got)-4)
			}
		}
		st := ts.srv.Stats()[0]
		t.Logf("sendfile bytes %d, copied bytes %d", st.SendfileBytes, st.CopiedBytes)
		if k == kindGnet && st.SendfileBytes == 0 {
			t.Fatal("no byte went through sendfile")
		}
	})
}

func TestCloseOnHandlerError(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		h := &testHandler{closeCh: make(chan error, 1)}
		ts := startTest(t, k, Config{}, h)
		c := ts.dial()
		defer c.Close()
		f := frame([]byte("X bye")...)
		// The response queued before the error is flushed before the close.
		got, err := roundTrip(c, bufio.NewReader(c), f)
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("%q %v", got, err)
		}
		select {
		case err := <-h.closeCh:
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("OnClose err %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no OnClose")
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection still open")
		}
	})
}

func TestFrameTooLarge(t *testing.T) {
	h := &testHandler{closeCh: make(chan error, 1)}
	ts := startTest(t, kindGnet, Config{}, h)
	c := ts.dial()
	defer c.Close()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 100<<20)
	_, _ = c.Write(hdr[:])
	select {
	case err := <-h.closeCh:
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("OnClose err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no close")
	}
}

func TestPreamble(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		var frames [][]byte
		var mu sync.Mutex
		h := &testHandler{onFrame: func(c Conn, f []byte) error {
			mu.Lock()
			frames = append(frames, append([]byte(nil), f...))
			mu.Unlock()
			c.Write(f)
			return nil
		}}
		p := &Protocol{Name: "amqpish", Framer: LengthPrefixed32(1 << 20), Handler: h, PreambleBytes: 8}
		srv, err := NewServer(Config{Loops: 1}, []Listener{{Addr: "127.0.0.1:0", Protocol: p}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer srv.Stop(context.Background())
		c, err := net.Dial("tcp", srv.ListenerAddrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := append([]byte("AMQP\x00\x00\x09\x01"), frame([]byte("after")...)...)
		for i := range msg { // byte by byte
			_, _ = c.Write(msg[i : i+1])
			time.Sleep(100 * time.Microsecond)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%q %v", got, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(frames) != 2 || string(frames[0]) != "AMQP\x00\x00\x09\x01" {
			t.Fatalf("frames %q", frames)
		}
	})
}

func TestTimers(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		fired := make(chan time.Duration, 4)
		var stopped atomic.Bool
		h := &testHandler{onFrame: func(c Conn, f []byte) error {
			start := time.Now()
			c.AfterFunc(30*time.Millisecond, func(c Conn) {
				fired <- time.Since(start)
				c.Write(frame([]byte("timer")...))
			})
			tm := c.AfterFunc(20*time.Millisecond, func(Conn) { stopped.Store(true) })
			if !tm.Stop() {
				t.Error("Stop of a pending timer returned false")
			}
			return nil
		}}
		ts := startTest(t, k, Config{}, h)
		c := ts.dial()
		defer c.Close()
		_, _ = c.Write(frame('E'))
		got, err := readFrame(c)
		if err != nil || string(got[4:]) != "timer" {
			t.Fatalf("%q %v", got, err)
		}
		d := <-fired
		if d < 30*time.Millisecond || d > 500*time.Millisecond {
			t.Fatalf("timer fired after %v", d)
		}
		time.Sleep(50 * time.Millisecond)
		if stopped.Load() {
			t.Fatal("stopped timer fired")
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	h := &testHandler{closeCh: make(chan error, 1)}
	p := &Protocol{Name: "t", Framer: LengthPrefixed32(1 << 20), Handler: h, IdleTimeout: 100 * time.Millisecond}
	srv, err := NewServer(Config{Loops: 1}, []Listener{{Addr: "127.0.0.1:0", Protocol: p}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	c, err := net.Dial("tcp", srv.ListenerAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for i := 0; i < 4; i++ { // activity keeps it open
		time.Sleep(50 * time.Millisecond)
		_, _ = c.Write(frame('E'))
		if _, err := readFrame(c); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-h.closeCh:
		if !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("err %v", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("closed after %v despite activity", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("not closed")
	}
}

func TestConnsMax(t *testing.T) {
	h := &testHandler{}
	p := &Protocol{Name: "t", Framer: LengthPrefixed32(1 << 20), Handler: h}
	srv, err := NewServer(Config{Loops: 1, ConnsMax: 100}, []Listener{
		{Addr: "127.0.0.1:0", Protocol: p, ConnsMax: 2},
		{Addr: "127.0.0.1:0", Protocol: p},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	addrs := srv.ListenerAddrs()
	if addrs[0].String() == addrs[1].String() {
		t.Fatalf("addrs %v", addrs)
	}
	var open []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addrs[0].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	// The third one is closed by the server.
	_ = open[2].SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := open[2].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third conn not rejected: %v", err)
	}
	for _, c := range open[:2] {
		_, _ = c.Write(frame('E'))
		if _, err := readFrame(c); err != nil {
			t.Fatal(err)
		}
	}
	// The other listener still accepts.
	c, err := net.Dial("tcp", addrs[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(frame('E'))
	if _, err := readFrame(c); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	if st[0].ConnsRejected != 1 || st[0].ConnsOpen != 2 || st[1].ConnsOpen != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPauseResume(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		var target atomic.Value
		h := &testHandler{onFrame: func(c Conn, f []byte) error {
			if string(f[4:]) == "pause" {
				c.PauseReads()
				target.Store(c)
				go func() {
					time.Sleep(100 * time.Millisecond)
					_ = c.Execute(func(c Conn) { c.ResumeReads() })
				}()
			}
			c.Write(f)
			return nil
		}}
		ts := startTest(t, k, Config{}, h)
		c := ts.dial()
		defer c.Close()
		start := time.Now()
		_, _ = c.Write(append(frame([]byte("pause")...), frame([]byte("next")...)...))
		r := bufio.NewReader(c)
		if _, err := readFrame(r); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame(r)
		if err != nil || string(got[4:]) != "next" {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 90*time.Millisecond {
			t.Fatalf("frame after pause handled after %v", d)
		}
	})
}

func TestExecuteAfterClose(t *testing.T) {
	h := &testHandler{closeCh: make(chan error, 1)}
	var cc atomic.Value
	h.onFrame = func(c Conn, f []byte) error { cc.Store(c); c.Write(f); return nil }
	ts := startTest(t, kindGnet, Config{}, h)
	c := ts.dial()
	_, _ = c.Write(frame('E'))
	if _, err := readFrame(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-h.closeCh
	if err := cc.Load().(Conn).Execute(func(Conn) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Execute after close: %v", err)
	}
}

func TestMemoryHighWater(t *testing.T) {
	// One connection's buffered output above the global mark pauses reads of
	// a publishing connection until it drains below the low mark.
	ts := startTest(t, kindGnet, Config{MemoryHighWaterBytes: 1 << 20, OutboundHighWaterBytes: 64 << 20, SocketSendBufferBytes: 4096}, nil)
	hog := ts.dial()
	defer hog.Close()
	var req [5]byte
	req[0] = 'B'
	binary.BigEndian.PutUint32(req[1:], 4<<20)
	_, _ = hog.Write(frame(req[:]...))
	deadline := time.Now().Add(3 * time.Second)
	for ts.srv.MemoryBytes() < 1<<20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	pub := ts.dial()
	defer pub.Close()
	_, _ = pub.Write(frame('E'))
	_ = pub.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := readFrame(pub); err == nil {
		t.Fatal("publisher served above the memory high-water mark")
	}
	// Drain the hog; the publisher resumes.
	go func() { _, _ = io.Copy(io.Discard, hog) }()
	_ = pub.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readFrame(pub); err != nil {
		t.Fatalf("publisher not resumed: %v", err)
	}
	if st := ts.srv.Stats()[0]; st.MemoryPauses == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStopFlushes(t *testing.T) {
	h := &testHandler{}
	ts := startTest(t, kindGnet, Config{}, h)
	c := ts.dial()
	defer c.Close()
	_, _ = c.Write(frame('E'))
	if _, err := readFrame(c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(start))
	if h.closed.Load() != 1 {
		t.Fatalf("closed %d", h.closed.Load())
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Fatal("still accepting")
	}
}

func TestMultipleListeners(t *testing.T) {
	var names sync.Map
	mk := func(name string) *Protocol {
		return &Protocol{Name: name, Framer: LengthPrefixed32(1 << 20), Handler: &testHandler{onFrame: func(c Conn, f []byte) error {
			names.Store(name, true)
			c.Write(frame([]byte(name)...))
			return nil
		}}}
	}
	for _, per := range []bool{false, true} {
		srv, err := NewServer(Config{Loops: 2, EnginePerListener: per}, []Listener{
			{Addr: "127.0.0.1:0", Protocol: mk("kafka")},
			{Addr: "127.0.0.1:0", Protocol: mk("amqp")},
			{Addr: "127.0.0.1:0", Protocol: mk("mqtt")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		for i, a := range srv.ListenerAddrs() {
			c, err := net.Dial("tcp", a.String())
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(frame('E'))
			got, err := readFrame(c)
			c.Close()
			want := []string{"kafka", "amqp", "mqtt"}[i]
			if err != nil || string(got[4:]) != want {
				t.Fatalf("listener %d: %q %v", i, got, err)
			}
		}
		if err := srv.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

var _ = sort.Ints
