package netpoll

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// A reserved slot filled later with FillFile (as a parked Kafka fetch
// does) keeps its place: responses written after it wait for it.
func TestSlotFillFile(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind) {
		const size = 256 << 10
		f := makeTestFile(t, size)
		content := make([]byte, size)
		if _, err := f.ReadAt(content, 0); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 16)
		h := &testHandler{file: f}
		h.onFrame = func(c Conn, fr []byte) error {
			if string(fr[4:]) != "fetch" {
				c.Write(fr)
				return nil
			}
			s := c.Reserve()
			go func() {
				time.Sleep(20 * time.Millisecond)
				_ = c.Execute(func(Conn) {
					var hdr [4]byte
					binary.BigEndian.PutUint32(hdr[:], size-10)
					s.FillFile(hdr[:], f, 10, size-10, func(err error) { done <- err })
				})
			}()
			return nil
		}
		ts := startTest(t, k, Config{CopyThresholdBytes: 1}, h)
		c := ts.dial()
		defer c.Close()
		var out []byte
		out = append(out, frame([]byte("E before")...)...)
		out = append(out, frame([]byte("fetch")...)...)
		for i := 0; i < 5; i++ {
			out = append(out, frame([]byte(fmt.Sprintf("E after %d", i))...)...)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		got, err := readFrame(r)
		if err != nil || string(got[4:]) != "E before" {
			t.Fatalf("%q %v", got, err)
		}
		got, err = readFrame(r)
		if err != nil || !bytes.Equal(got[4:], content[10:]) {
			t.Fatalf("file range: %d bytes, %v", len(got), err)
		}
		for i := 0; i < 5; i++ {
			got, err = readFrame(r)
			if err != nil || string(got[4:]) != fmt.Sprintf("E after %d", i) {
				t.Fatalf("%q %v", got, err)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("done not called")
		}
	})
}
