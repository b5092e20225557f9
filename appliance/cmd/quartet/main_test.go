package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const testVersion = "v0.0.0-test"

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds the quartet command once per test run. QUARTET_BIN names a
// prebuilt binary to test instead (for example an installed one, or one
// built with other flags); TestVersion then expects its own version.
func binary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("QUARTET_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "quartet-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "quartet")
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", buildBin, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "quartet "+testVersion+" ") && os.Getenv("QUARTET_BIN") == "" {
		t.Fatalf("version output %q", out)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "quartet dev ") {
		t.Fatalf("run version: %d %q", code, stdout.String())
	}
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	if code := run([]string{"serve", "--flush", "maybe"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "flush") {
		t.Fatalf("bad flag: exit %d, %q", code, stderr.String())
	}
}

// daemon is a running `quartet serve` on ephemeral loopback ports.
type daemon struct {
	cmd   *exec.Cmd
	pid   int               // the daemon (differs from cmd's under a wrapper)
	addrs map[string]string // from the ready line
	log   *syncBuffer
	done  chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs the binary with every listener on 127.0.0.1:0 and waits
// for its `ready` log line.
// QUARTET_TEST_WRAPPER (space-separated) runs the daemon under a wrapper,
// for example "setpriv --reuid=65534 --regid=65534 --clear-groups
// --no-new-privs --inh-caps=-all --bounding-set=-all" to approximate the
// unit's unprivileged sandbox.
//
// QUARTET_TEST_ATTACH=name=addr,... (names as in the ready line: kafka,
// amqp, mqtt, rocketmq_namesrv, http, ...) makes the client tests run
// against an already running daemon, such as the service started by
// systemd/sandbox-check.sh, instead of starting one.
func startDaemon(t *testing.T, env []string, extra ...string) *daemon {
	t.Helper()
	if a := os.Getenv("QUARTET_TEST_ATTACH"); a != "" {
		d := &daemon{addrs: map[string]string{}}
		for _, kv := range strings.Split(a, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				d.addrs[k] = v
			}
		}
		return d
	}
	return startDaemonWrapped(t, env, strings.Fields(os.Getenv("QUARTET_TEST_WRAPPER")), extra...)
}

// startDaemonWrapped runs the daemon under wrapper (for example strace);
// signals then go to the wrapper's child.
func startDaemonWrapped(t *testing.T, env, wrapper []string, extra ...string) *daemon {
	t.Helper()
	dataDir := t.TempDir()
	if len(wrapper) > 0 {
		// The wrapper may drop to another user.
		os.Chmod(filepath.Dir(dataDir), 0o755)
		os.Chmod(dataDir, 0o777)
	}
	args := []string{binary(t), "serve", "--data-dir", dataDir,
		"--kafka", "127.0.0.1:0", "--amqp", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--mqtt-ws", "127.0.0.1:0",
		"--rocketmq-namesrv", "127.0.0.1:0", "--rocketmq-broker", "127.0.0.1:0", "--http", "127.0.0.1:0"}
	argv := append(append(wrapper, args...), extra...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	d := &daemon{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = io.MultiWriter(pw, d.log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, " msg=ready ") {
				ready <- parseKV(line)
				sent = true
			}
		}
		if !sent {
			close(ready)
		}
	}()
	select {
	case a, ok := <-ready:
		if !ok {
			t.Fatal("daemon exited before ready")
		}
		d.addrs = a
		d.pid = cmd.Process.Pid
		if len(wrapper) > 0 {
			// A wrapper that forks (strace) has the daemon as its child;
			// one that execs (setpriv) is the daemon.
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", d.pid, d.pid))
			if f := strings.Fields(string(b)); len(f) > 0 {
				d.pid, _ = strconv.Atoi(f[0])
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line within 30s")
	}
	return d
}

func parseKV(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd == nil {
		return // attached (QUARTET_TEST_ATTACH): not ours to stop
	}
	if err := syscall.Kill(d.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
}

// TestNotifySocket starts the daemon as systemd would for Type=notify and
// sees READY=1 (and a watchdog ping), then after SIGTERM STOPPING=1 and
// exit status 0.
func TestNotifySocket(t *testing.T) {
	if os.Getenv("QUARTET_TEST_ATTACH") != "" {
		t.Skip("QUARTET_TEST_ATTACH: no daemon of our own to start")
	}
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Like /run/systemd/notify, writable by the (possibly unprivileged) daemon.
	os.Chmod(filepath.Dir(filepath.Dir(sock)), 0o755)
	os.Chmod(filepath.Dir(sock), 0o755)
	os.Chmod(sock, 0o777)
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				msgs <- l
			}
		}
	}()
	await := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m := <-msgs:
				if m == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %s on NOTIFY_SOCKET", want)
			}
		}
	}
	d := startDaemon(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"})
	await("READY=1")
	await("WATCHDOG=1")
	for _, k := range []string{"kafka", "amqp", "mqtt", "mqtt_ws", "rocketmq_namesrv", "rocketmq_broker", "http"} {
		if d.addrs[k] == "" {
			t.Errorf("ready line lacks %s: %v", k, d.addrs)
		}
	}
	d.stop(t)
	await("STOPPING=1")
}

// scrape returns the samples of /metrics as "name{labels}" -> value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		m[line[:i]] = v
	}
	return m
}

// sum adds the samples of name whose labels contain every want pair.
func sum(m map[string]float64, name string, want ...string) float64 {
	total := 0.0
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if ok {
			total += v
		}
	}
	return total
}

func TestHealthAndReady(t *testing.T) {
	d := startDaemon(t, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + d.addrs["http"] + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}
	d.stop(t)
}
