// Package sdnotify implements the systemd service notification protocol
// (sd_notify(3)) without cgo: datagrams of newline-separated KEY=VALUE
// assignments sent to the AF_UNIX SOCK_DGRAM socket named by $NOTIFY_SOCKET
// (a path, or "@name" for the abstract namespace).
//
// The appliance uses it for Type=notify:
//
//	READY=1      once every listener accepts          (Ready)
//	STATUS=...   one line shown by systemctl status  (Status)
//	STOPPING=1   when graceful shutdown begins        (Stopping)
//	WATCHDOG=1   every WatchdogSec/2 while healthy    (StartWatchdog)
//	EXTEND_TIMEOUT_USEC=...  more time for a long recovery (ExtendTimeout)
//
// With NOTIFY_SOCKET unset every call is a no-op returning (false, nil), so
// the daemon behaves the same outside systemd.
package sdnotify
