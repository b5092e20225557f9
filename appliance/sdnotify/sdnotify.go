package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrBadState is returned for a state that is empty.
var ErrBadState = errors.New("sdnotify: empty state")

// Notify sends state (for example "READY=1" or "STATUS=recovering\nREADY=1")
// to $NOTIFY_SOCKET. It reports whether a notification was sent; with the
// variable unset it returns (false, nil).
func Notify(state string) (bool, error) {
	return NotifySocket(os.Getenv("NOTIFY_SOCKET"), state)
}

// NotifySocket sends state to the socket at path (abstract if it starts
// with '@'). An empty path is a no-op.
func NotifySocket(path, state string) (bool, error) {
	if path == "" {
		return false, nil
	}
	if state == "" {
		return false, ErrBadState
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sdnotify: dial %s: %w", path, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sdnotify: write: %w", err)
	}
	return true, nil
}

// Ready tells the service manager that start-up is complete.
func Ready() error { _, err := Notify("READY=1"); return err }

// Stopping tells the service manager that shutdown has begun.
func Stopping() error { _, err := Notify("STOPPING=1"); return err }

// Reloading tells the service manager that a configuration reload began.
func Reloading() error { _, err := Notify("RELOADING=1"); return err }

// Status sets the one-line status shown by systemctl status.
func Status(s string) error {
	_, err := Notify("STATUS=" + strings.ReplaceAll(s, "\n", " "))
	return err
}

// ExtendTimeout asks for d more time to finish starting or stopping
// (EXTEND_TIMEOUT_USEC), for a long recovery or a long final flush.
func ExtendTimeout(d time.Duration) error {
	_, err := Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
	return err
}

// Watchdog sends one keep-alive ping.
func Watchdog() error { _, err := Notify("WATCHDOG=1"); return err }

// WatchdogInterval returns $WATCHDOG_USEC as a duration when the watchdog is
// enabled for this process ($WATCHDOG_PID unset or equal to our pid).
func WatchdogInterval() (time.Duration, bool) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Microsecond, true
}

// StartWatchdog pings the watchdog every WatchdogSec/2 until ctx is done,
// skipping a ping whenever healthy (if not nil) returns false, so a wedged
// daemon is restarted by systemd. It returns immediately; with no watchdog
// configured it does nothing and returns false.
func StartWatchdog(ctx context.Context, healthy func() bool) bool {
	d, ok := WatchdogInterval()
	if !ok {
		return false
	}
	path := os.Getenv("NOTIFY_SOCKET")
	go func() {
		t := time.NewTicker(d / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if healthy == nil || healthy() {
					NotifySocket(path, "WATCHDOG=1")
				}
			}
		}
	}()
	return true
}
