package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"quartet/systemd"
)

// TestUnitSyscallFilter runs the daemon under strace while every protocol
// publishes (and Kafka fetches, the sendfile path), then checks that each
// system call the daemon made is allowed by the unit's SystemCallFilter=
// lines, expanded with `systemd-analyze syscall-filter`. This is the part
// of the unit's sandbox that can break a working daemon silently (EPERM);
// the rest (ProtectSystem, PrivateUsers, ...) needs a running systemd.
func TestUnitSyscallFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("traces the daemon under strace")
	}
	if os.Getenv("QUARTET_TEST_ATTACH") != "" {
		t.Skip("QUARTET_TEST_ATTACH: no daemon of our own to trace")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	allowed := unitAllowedSyscalls(t)
	trace := filepath.Join(t.TempDir(), "trace")
	d := startDaemonWrapped(t, nil, []string{strace, "-f", "-qq", "-o", trace})
	if _, err := os.Stat(trace); err != nil {
		t.Skipf("strace cannot trace here: %v", err)
	}
	exercise(t, d.addrs)
	d.stop(t)

	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)\(`)
	used := map[string]int{}
	for _, m := range re.FindAllSubmatch(b, -1) {
		used[string(m[1])]++
	}
	if used["io_uring_setup"] == 0 && used["pwritev"] == 0 && used["pwritev2"] == 0 && used["write"] == 0 {
		t.Fatalf("trace looks empty: %d syscalls", len(used))
	}
	var denied, all []string
	for s := range used {
		all = append(all, s)
		if !allowed[s] {
			denied = append(denied, s)
		}
	}
	sort.Strings(all)
	sort.Strings(denied)
	t.Logf("daemon system calls: %s", strings.Join(all, " "))
	// Calls of paths this run may not take: the pwritev writer (io=sync
	// fallback), sendfile for large fetches, registered io_uring buffers.
	for _, s := range []string{"pwritev", "pwritev2", "fdatasync", "sendfile", "io_uring_setup", "io_uring_enter", "io_uring_register", "epoll_pwait", "accept4"} {
		if !allowed[s] && used[s] == 0 {
			denied = append(denied, s+"(not called in this run)")
		}
	}
	if len(denied) > 0 {
		t.Errorf("system calls the unit's SystemCallFilter denies (EPERM): %s", strings.Join(denied, " "))
	}
}

// unitAllowedSyscalls evaluates the unit's SystemCallFilter= lines: the
// first is an allow list, later "~" lines remove from it.
func unitAllowedSyscalls(t *testing.T) map[string]bool {
	t.Helper()
	allowed := map[string]bool{}
	first := true
	for _, line := range strings.Split(systemd.Unit, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "SystemCallFilter=")
		if !ok {
			continue
		}
		deny := strings.HasPrefix(v, "~")
		if first && deny {
			t.Fatal("unit's first SystemCallFilter= is a deny list; this test expects an allow list")
		}
		first = false
		for _, tok := range strings.Fields(strings.TrimPrefix(v, "~")) {
			for _, s := range expandSyscalls(t, tok, map[string]bool{}) {
				if deny {
					delete(allowed, s)
				} else {
					allowed[s] = true
				}
			}
		}
	}
	if len(allowed) < 100 {
		t.Fatalf("allow list has only %d system calls", len(allowed))
	}
	return allowed
}

func expandSyscalls(t *testing.T, tok string, seen map[string]bool) []string {
	if !strings.HasPrefix(tok, "@") {
		return []string{tok}
	}
	if seen[tok] {
		return nil
	}
	seen[tok] = true
	out, err := exec.Command("systemd-analyze", "syscall-filter", tok).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", tok, err)
	}
	var res []string
	for _, l := range strings.Split(string(out), "\n")[1:] {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		res = append(res, expandSyscalls(t, l, seen)...)
	}
	return res
}
