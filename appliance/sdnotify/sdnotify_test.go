package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func listen(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	addr := &net.UnixAddr{Name: name, Net: "unixgram"}
	c, err := net.ListenUnixgram("unixgram", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, name
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify.sock"), "@quartet-sdnotify-test-" + strconv.Itoa(os.Getpid())} {
		c, path := listen(t, name)
		t.Setenv("NOTIFY_SOCKET", path)
		if err := Ready(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "READY=1" {
			t.Fatalf("%s: got %q", name, got)
		}
		if err := Status("serving\nnow"); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "STATUS=serving now" {
			t.Fatalf("got %q", got)
		}
		if err := ExtendTimeout(90 * time.Second); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "EXTEND_TIMEOUT_USEC=90000000" {
			t.Fatalf("got %q", got)
		}
		if err := Stopping(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "STOPPING=1" {
			t.Fatalf("got %q", got)
		}
	}
}

func TestUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Fatal(sent, err)
	}
}

func TestMissingSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if err := Ready(); err == nil {
		t.Fatal("no error for a missing socket")
	}
}

func TestWatchdog(t *testing.T) {
	c, path := listen(t, filepath.Join(t.TempDir(), "wd.sock"))
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d, ok := WatchdogInterval(); !ok || d != 20*time.Millisecond {
		t.Fatal(d, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !StartWatchdog(ctx, func() bool { return true }) {
		t.Fatal("watchdog not started")
	}
	for range 2 {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	t.Setenv("WATCHDOG_PID", "1")
	if _, ok := WatchdogInterval(); ok {
		t.Fatal("watchdog for another pid")
	}
}
