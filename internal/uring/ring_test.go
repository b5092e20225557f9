//go:build linux

package uring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func testRing(t *testing.T) *Ring {
	t.Helper()
	if err := Available(); err != nil {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Available error does not wrap ErrUnavailable: %v", err)
		}
		t.Skip(err)
	}
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := New(8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestWritevLinkedFsync(t *testing.T) {
	r := testRing(t)
	t.Logf("setup flags: %s, entries %d", r.SetupFlags(), r.Entries())
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, b := []byte("hello, "), []byte("world")
	var pin runtime.Pinner
	defer pin.Unpin()
	iov := make([]unix.Iovec, 2)
	pin.Pin(&iov[0])
	iov[0] = unix.Iovec{Base: &a[0], Len: uint64(len(a))}
	iov[1] = unix.Iovec{Base: &b[0], Len: uint64(len(b))}
	sqe := r.GetSQE()
	sqe.PrepWritev(int(f.Fd()), &iov[0], 2, 3, 1)
	sqe.Link(true)
	r.GetSQE().PrepFdatasync(int(f.Fd()), 2)
	n, err := r.Submit(2)
	if err != nil || n != 2 {
		t.Fatalf("Submit = %d, %v", n, err)
	}
	got := map[uint64]int32{}
	for c := r.PeekCQE(); c != nil; c = r.PeekCQE() {
		got[c.UserData] = c.Res
		r.Advance(1)
	}
	if got[1] != 12 || got[2] != 0 || len(got) != 2 {
		t.Fatalf("CQEs %v", got)
	}
	data, _ := os.ReadFile(f.Name())
	if !bytes.Equal(data, []byte("\x00\x00\x00hello, world")) {
		t.Fatalf("file = %q", data)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}

func TestLinkBrokenByError(t *testing.T) {
	r := testRing(t)
	// A write to a read-only fd fails with EBADF; the linked NOP is cancelled.
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	ro, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	buf := []byte("x")
	iov := []unix.Iovec{{Base: &buf[0], Len: 1}}
	sqe := r.GetSQE()
	sqe.PrepWritev(int(ro.Fd()), &iov[0], 1, 0, 1)
	sqe.Link(true)
	r.GetSQE().PrepNop(2)
	if _, err := r.Submit(2); err != nil {
		t.Fatal(err)
	}
	res := map[uint64]int32{}
	for c := r.PeekCQE(); c != nil; c = r.PeekCQE() {
		res[c.UserData] = c.Res
		r.Advance(1)
	}
	if res[1] != -int32(unix.EBADF) || res[2] != -int32(unix.ECANCELED) {
		t.Fatalf("res %v", res)
	}
}

func TestFullSQ(t *testing.T) {
	r := testRing(t)
	for i := uint32(0); i < r.Entries(); i++ {
		if r.GetSQE() == nil {
			t.Fatalf("SQE %d nil", i)
		}
	}
	if r.GetSQE() != nil {
		t.Fatal("GetSQE on full ring")
	}
	// Turn them into NOPs and drain.
	for i := uint32(0); i < r.Entries(); i++ {
		(*SQE)(unsafe.Add(r.sqes, uintptr(i)*sqeBytes)).PrepNop(uint64(i))
	}
	if n, err := r.Submit(r.Entries()); err != nil || n != int(r.Entries()) {
		t.Fatalf("Submit = %d, %v", n, err)
	}
	if r.Ready() != r.Entries() {
		t.Fatalf("ready %d", r.Ready())
	}
	r.Advance(r.Ready())
	if r.Free() != r.Entries() {
		t.Fatalf("free %d", r.Free())
	}
}

func TestParamsSize(t *testing.T) {
	if unsafe.Sizeof(params{}) != 120 || unsafe.Sizeof(SQE{}) != 64 || unsafe.Sizeof(CQE{}) != 16 {
		t.Fatal("struct sizes")
	}
}
