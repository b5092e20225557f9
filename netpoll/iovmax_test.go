package netpoll

import (
	"bufio"
	"fmt"
	"testing"
)

// More ready slots than writev(2) takes buffers (IOV_MAX, 1024) leave in one
// flush: every response arrives, in order, and the connection stays open.
// (Before the fix gnet's Writev failed with EINVAL and closed it.)
func TestFlushMoreBuffersThanIOVMax(t *testing.T) {
	const n = 3*iovMax + 7
	forKinds(t, func(t *testing.T, k kind) {
		h := &testHandler{}
		h.onFrame = func(c Conn, fr []byte) error {
			if string(fr[4:]) != "go" {
				c.Write(fr)
				return nil
			}
			slots := make([]*Slot, n)
			for i := range slots {
				slots[i] = c.Reserve()
			}
			// Fill the head last, so that all n become ready at once.
			for i := n - 1; i >= 0; i-- {
				slots[i].Fill(frame(fmt.Appendf(nil, "r%d", i)...))
			}
			return nil
		}
		ts := startTest(t, k, Config{}, h)
		c := ts.dial()
		defer c.Close()
		if _, err := c.Write(frame([]byte("go")...)); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for i := 0; i < n; i++ {
			got, err := readFrame(r)
			if err != nil || string(got[4:]) != fmt.Sprintf("r%d", i) {
				t.Fatalf("response %d: %q %v", i, got, err)
			}
		}
		got, err := roundTrip(c, r, frame([]byte("E still open")...))
		if err != nil || string(got[4:]) != "E still open" {
			t.Fatalf("after the burst: %q %v", got, err)
		}
	})
}
