package netpoll

import (
	"bufio"
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFlushReentryOnWriteError is the regression test for the crash found
// by the RocketMQ work: a response written to a connection whose socket
// can no longer be written makes gnet close the connection from inside the
// write, i.e. inside loopState.flushDirty; OnClose then calls flushDirty
// again (and here the protocol's OnClose writes to another connection on
// the same loop, as a fan-out or an MQTT will does). Without the
// lp.flushing guard the nested call dereferences the entry the outer walk
// has already taken and the loop goroutine panics. The server-side socket
// is shut down for writing just before the response, so the write fails
// with EPIPE deterministically. The "file" cases also cover a write error
// in front of a file range (the queue emptied under flush).
func TestFlushReentryOnWriteError(t *testing.T) {
	f := makeTestFile(t, 256<<10)
	for _, tc := range []struct {
		name  string
		fileN int64 // 0: the response is plain bytes; else a file range of this length
	}{
		{"write", 0},
		{"file-copy", 1000},          // under CopyThresholdBytes: copied
		{"file-sendfile", 200 << 10}, // sendfile
	} {
		t.Run(tc.name, func(t *testing.T) {
			var peer atomic.Pointer[conn] // the watcher connection
			fileDone := make(chan error, 1)
			h := &testHandler{closeCh: make(chan error, 4)}
			h.onFrame = func(c Conn, fr []byte) error {
				switch string(fr[4:]) {
				case "watch":
					peer.Store(c.(*conn))
					c.Write(fr)
				case "die":
					// Everything below runs on the loop before the flush.
					_ = unix.Shutdown(c.(*conn).tr.(*gnetTransport).fd, unix.SHUT_WR)
					c.Write(frame([]byte("first")...))
					if tc.fileN == 0 {
						c.Write(fr)
					} else {
						c.WriteFile(fr[:4], f, 0, tc.fileN, func(err error) { fileDone <- err })
					}
				default:
					c.Write(fr)
				}
				return nil
			}
			h.onClose = func(c Conn) {
				if p := peer.Load(); p != nil && p != c {
					p.Write(frame([]byte("gone")...)) // same loop
				}
			}
			// One loop, so both connections share lp.dirty.
			ts2 := startTest(t, kindGnet, Config{Loops: 1}, h)
			w := ts2.dial()
			defer w.Close()
			wr := bufio.NewReader(w)
			if got, err := roundTrip(w, wr, frame([]byte("watch")...)); err != nil || string(got[4:]) != "watch" {
				t.Fatalf("watch: %q %v", got, err)
			}
			d, err := net.Dial("tcp", ts2.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := d.Write(frame([]byte("die")...)); err != nil {
				t.Fatal(err)
			}
			expectWriteErrorClose(t, h)
			if tc.fileN > 0 {
				select {
				case err := <-fileDone:
					if err == nil {
						t.Fatal("file range of the closed connection reported success")
					}
				case <-time.After(5 * time.Second):
					t.Fatal("file range of the closed connection never completed")
				}
			}
			// The watcher gets what OnClose wrote to it, and the loop still serves.
			_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := readFrame(wr)
			if err != nil || string(got[4:]) != "gone" {
				t.Fatalf("watcher: %q %v", got, err)
			}
			e := frame([]byte("E still here")...)
			if got, err := roundTrip(w, wr, e); err != nil || !bytes.Equal(got, e) {
				t.Fatalf("after the close: %q %v", got, err)
			}
		})
	}
}
