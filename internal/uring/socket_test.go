//go:build linux

package uring

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func sharedRing(t *testing.T, n uint32) *Ring {
	t.Helper()
	r, err := NewShared(n)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Sends (one buffer and several), a receive, a short send on a full
// socket and EAGAIN on an empty one, all completing within Submit.
func TestSendRecv(t *testing.T) {
	r := sharedRing(t, 8)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	a, b := []byte("hello "), []byte("world")
	r.GetSQE().PrepSend(fds[0], a, unix.MSG_DONTWAIT, 1)
	iov := []unix.Iovec{{Base: &b[0]}, {Base: &a[0]}}
	iov[0].SetLen(len(b))
	iov[1].SetLen(1)
	msg := &unix.Msghdr{Iov: &iov[0]}
	msg.SetIovlen(2)
	r.GetSQE().PrepSendmsg(fds[0], msg, unix.MSG_DONTWAIT, 2)
	if r.Queued() != 2 {
		t.Fatalf("queued %d", r.Queued())
	}
	if _, err := r.Submit(2); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	for c := r.PeekCQE(); c != nil; c = r.PeekCQE() {
		got[c.UserData] = c.Res
		r.Advance(1)
	}
	if got[1] != 6 || got[2] != 6 {
		t.Fatalf("results %v", got)
	}
	buf := make([]byte, 64)
	r.GetSQE().PrepRecv(fds[1], buf, unix.MSG_DONTWAIT, 3)
	r.GetSQE().PrepRecv(fds[0], buf[32:], unix.MSG_DONTWAIT, 4) // nothing to read
	if _, err := r.Submit(2); err != nil {
		t.Fatal(err)
	}
	got = map[uint64]int32{}
	for c := r.PeekCQE(); c != nil; c = r.PeekCQE() {
		got[c.UserData] = c.Res
		r.Advance(1)
	}
	if got[3] != 12 || !bytes.Equal(buf[:12], []byte("hello worldh")) {
		t.Fatalf("recv %d %q", got[3], buf[:12])
	}
	if got[4] != -int32(unix.EAGAIN) {
		t.Fatalf("recv on an empty socket: %d, want -EAGAIN", got[4])
	}
	// Fill the socket: the send comes back short or EAGAIN, never waits.
	big := make([]byte, 8<<20)
	r.GetSQE().PrepSend(fds[0], big, unix.MSG_DONTWAIT, 5)
	if _, err := r.Submit(1); err != nil {
		t.Fatal(err)
	}
	c := r.PeekCQE()
	if c == nil || c.UserData != 5 || (c.Res <= 0 && c.Res != -int32(unix.EAGAIN)) || c.Res >= int32(len(big)) {
		t.Fatalf("send to a full socket: %+v", c)
	}
	r.Advance(1)
}
