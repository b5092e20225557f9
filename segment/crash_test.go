package segment

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "QUARTET_SEGMENT_CRASH_CHILD"

// crashAck prints one acknowledged append: its offset and its payload.
type crashAck struct {
	mu    *sync.Mutex
	out   *bufio.Writer
	value string
}

func (a *crashAck) AppendDone(base int64, err error) {
	if err != nil {
		return
	}
	a.mu.Lock()
	fmt.Fprintf(a.out, "ack %d %s\n", base, a.value)
	a.out.Flush()
	a.mu.Unlock()
}

const crashPreallocEnv = "QUARTET_CRASH_PREALLOC"

// TestMain lets the test binary act as the crash child.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends from 8 goroutines with flush=sync until killed,
// printing every acknowledgement.
func crashChild(dir string) {
	w, err := NewWriter(IOAuto, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg := Config{Flush: FlushSync, SegmentBytes: 256 << 10}
	if os.Getenv(crashPreallocEnv) != "" {
		cfg.PreallocBytes = 64 << 10 // a zero tail the kill leaves behind
	}
	l, err := Open(dir, cfg, w, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for g := 0; g < 8; g++ {
		go func() {
			var b BatchBuilder
			for i := 0; ; i++ {
				value := fmt.Sprintf("g%d-m%d-%s", g, i, strings.Repeat("x", 200+i%300))
				b.Reset()
				b.Add(0, nil, []byte(value), nil)
				if err := l.Append(b.Bytes(), &crashAck{mu: &mu, out: out, value: value}); err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	select {}
}

// TestCrashKeepsAcknowledged kills a child appending with flush=sync
// mid-stream (SIGKILL) and checks every acknowledged offset reads back
// byte-identical after recovery.
func TestCrashKeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		if round > 0 { // rounds 1 and 2 preallocate (Config.PreallocBytes)
			cmd.Env = append(cmd.Env, crashPreallocEnv+"=1")
		}
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[int64]string{}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() && len(acked) < 2000+round*500 {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "ack" {
				off, _ := strconv.ParseInt(f[1], 10, 64)
				acked[off] = f[2]
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// Acks printed between the last Scan and the kill are durable too.
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "ack" {
				off, _ := strconv.ParseInt(f[1], 10, 64)
				acked[off] = f[2]
			}
		}
		cmd.Wait()

		w := newFaultWriter()
		l, err := Open(dir, Config{SegmentBytes: 256 << 10}, w, nil)
		if err != nil {
			t.Fatal(err)
		}
		for off, want := range acked {
			b, err := l.ReadBytes(nil, off, 1)
			if err != nil {
				t.Fatalf("round %d: acknowledged offset %d: %v", round, off, err)
			}
			var got string
			ForEachRecord(b, func(r *Record) error {
				if r.Offset == off {
					got = string(r.Value)
				}
				return nil
			})
			if got != want {
				t.Fatalf("round %d: offset %d reads %q, acknowledged %q", round, off, got, want)
			}
		}
		l.Close()
		w.Close()
		t.Logf("round %d: %d acknowledged appends survived SIGKILL", round, len(acked))
	}
}
