package netpoll

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCompare runs the cross-process comparisons reported in README.md:
// netpoll (gnet) vs a goroutine-per-connection server with the same echo
// handler — throughput and p99 at 64 and 1,000 connections, RSS per idle
// connection at 10,000 — and one gnet engine for several listeners vs one
// engine per listener. Servers and the load generator are separate
// processes (internal/npbench). It takes a few minutes:
//
//	NETPOLL_BENCH=1 flock /tmp/bench.lock go test -run TestCompare -v -timeout 30m ./netpoll/
//
// NETPOLL_BENCH_ONLY=rr|rss|engine picks one part, NETPOLL_BENCH_RUNS and
// NETPOLL_BENCH_DUR the runs per variant and their length, NETPOLL_BENCH_PIN=1
// adds the request/response rounds with server and load generator on
// separate cores, NETPOLL_BENCH_CLIENT=epoll|uring the load generator's
// client, NETPOLL_BENCH_AB=1 more netpoll variants.
func TestCompare(t *testing.T) {
	if os.Getenv("NETPOLL_BENCH") == "" {
		t.Skip("set NETPOLL_BENCH=1 (and run under flock /tmp/bench.lock)")
	}
	runs := 5
	if v, err := strconv.Atoi(os.Getenv("NETPOLL_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	dur := "3s"
	if v := os.Getenv("NETPOLL_BENCH_DUR"); v != "" {
		dur = v
	}
	bin := filepath.Join(t.TempDir(), "npbench")
	out, err := exec.Command("go", "build", "-o", bin, "./internal/npbench").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	only := os.Getenv("NETPOLL_BENCH_ONLY") // "rr", "rss", "engine" or empty for all

	if only == "" || only == "rr" {
		// netpoll with its defaults, netpoll without batched writes (the
		// previous write path), and the goroutine-per-connection server.
		type variant struct {
			name string
			args []string
		}
		variants := []variant{
			{"netpoll", []string{"-impl", "gnet"}},
			{"netpoll-nobatch", []string{"-impl", "gnet", "-nobatch"}},
			{"goroutine", []string{"-impl", "goroutine"}},
		}
		if os.Getenv("NETPOLL_BENCH_AB") != "" {
			// What the loop's scheduler yield, thread pinning and one loop
			// per core change.
			variants = append(variants[:2:2],
				variant{"netpoll-noyield", []string{"-impl", "gnet", "-noyield"}},
				variant{"netpoll-lockthread", []string{"-impl", "gnet", "-lock"}},
				variant{"netpoll-loops=ncpu", []string{"-impl", "gnet", "-loops", strconv.Itoa(runtime.NumCPU())}},
				variants[2])
		}
		// Placement: "shared" lets the scheduler put server and load
		// generator on any core (the figure the target is judged on);
		// with NETPOLL_BENCH_PIN=1 each round is repeated "pinned": the
		// server (either one) on the last CPU, the load generator on the
		// others, so the generator's CPU does not dilute the server's.
		placements := []string{"shared"}
		if os.Getenv("NETPOLL_BENCH_PIN") != "" && runtime.NumCPU() >= 2 {
			placements = append(placements, "pinned")
		}
		client := os.Getenv("NETPOLL_BENCH_CLIENT") // npbench -client; empty: its default
		for _, conns := range []int{64, 1000} {
			for _, place := range placements {
				pl := placement{client: client}
				if place == "pinned" {
					pl.server = []string{"taskset", "-c", strconv.Itoa(runtime.NumCPU() - 1)}
					pl.load = []string{"taskset", "-c", fmt.Sprintf("0-%d", runtime.NumCPU()-2)}
				}
				res := map[string][]loadRes{}
				for r := 0; r < runs; r++ {
					for _, v := range variants {
						lr := runLoadAt(t, bin, pl, v.args, conns, dur)
						t.Logf("run %d %-7s %-18s conns=%4d: %8.0f rt/s  p50 %6.0fµs  p99 %6.0fµs  server CPU %.2fs (%.1f µs/rt, %.0f%% of a core)  load generator CPU %.2fs (%.1f µs/rt)",
							r+1, place, v.name, conns, lr.PerSec, lr.P50Micros, lr.P99Micros, lr.cpu, 1e6/lr.eff, 100*lr.cpu/lr.wall, lr.LoadCPU, 1e6*lr.LoadCPU/float64(lr.RoundTrips))
						res[v.name] = append(res[v.name], lr)
					}
				}
				s := medians(res["goroutine"])
				for _, v := range variants[:len(variants)-1] {
					g := medians(res[v.name])
					t.Logf("RESULT %s conns=%d medians of %d: %s %.0f rt/s p99 %.0fµs %.1f µs server CPU/rt | goroutine %.0f rt/s p99 %.0fµs %.1f µs server CPU/rt | throughput %.2f× p99 %.2f× CPU efficiency %.2f× | ratio of medians of per-run ratios: throughput %.2f×",
						place, conns, runs, v.name, g.PerSec, g.P99Micros, 1e6/g.eff, s.PerSec, s.P99Micros, 1e6/s.eff, g.PerSec/s.PerSec, g.P99Micros/s.P99Micros, g.eff/s.eff, pairedRatio(res[v.name], res["goroutine"]))
				}
			}
		}
	}
	if only == "" || only == "rss" {
		const n = 10000
		per := map[string][]float64{}
		for r := 0; r < runs; r++ {
			for _, impl := range []string{"gnet", "goroutine"} {
				b := runIdle(t, bin, impl, n)
				t.Logf("run %d %-9s: %.0f bytes RSS per idle connection", r+1, impl, b)
				per[impl] = append(per[impl], b)
			}
		}
		t.Logf("RESULT RSS per idle conn at %d conns, medians of %d: netpoll %.0f B, goroutine %.0f B, ratio %.2f",
			n, runs, median(per["gnet"]), median(per["goroutine"]), median(per["gnet"])/median(per["goroutine"]))
	}
	if only == "" || only == "engine" {
		res := map[string][]loadRes{}
		for r := 0; r < runs; r++ {
			for _, mode := range []string{"one-engine", "engine-per-listener"} {
				args := []string{"-impl", "gnet", "-listeners", "4"}
				if mode == "engine-per-listener" {
					args = append(args, "-per-listener")
				}
				lr := runLoad(t, bin, args, 400, dur)
				t.Logf("run %d %-19s 4 listeners, 400 conns: %8.0f rt/s p99 %6.0fµs CPU %.2fs", r+1, mode, lr.PerSec, lr.P99Micros, lr.cpu)
				res[mode] = append(res[mode], lr)
			}
		}
		a, b := medians(res["one-engine"]), medians(res["engine-per-listener"])
		t.Logf("RESULT 4 listeners 400 conns medians of %d: one engine %.0f rt/s p99 %.0fµs | engine per listener %.0f rt/s p99 %.0fµs | ratio %.2f×",
			runs, a.PerSec, a.P99Micros, b.PerSec, b.P99Micros, a.PerSec/b.PerSec)
	}
}

type loadRes struct {
	Conns      int     `json:"conns"`
	RoundTrips int64   `json:"round_trips"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	Errors     int64   `json:"errors"`
	LoadCPU    float64 `json:"cpu_s"` // load generator CPU seconds
	cpu        float64
	eff        float64
	wall       float64 // seconds the server's CPU was counted over
}

// placement is how runLoadAt starts the processes: a command prefix
// (taskset) for the server and for the load generator, and the client.
type placement struct {
	server, load []string
	client       string
}

// pairedRatio is the median over runs of (a's rate / b's rate) within the
// same round, which cancels slow drifts in the machine's load.
func pairedRatio(a, b []loadRes) float64 {
	var r []float64
	for i := range a {
		if i < len(b) {
			r = append(r, a[i].PerSec/b[i].PerSec)
		}
	}
	return median(r)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medians(rs []loadRes) loadRes {
	var ps, p99, p50, eff []float64
	for _, r := range rs {
		ps = append(ps, r.PerSec)
		p99 = append(p99, r.P99Micros)
		p50 = append(p50, r.P50Micros)
		eff = append(eff, float64(r.RoundTrips)/r.cpu)
	}
	return loadRes{PerSec: median(ps), P99Micros: median(p99), P50Micros: median(p50), eff: median(eff)}
}

type serverProc struct {
	cmd   *exec.Cmd
	addrs string
	lines *bufio.Scanner
}

func startServerProc(t *testing.T, bin string, args []string, prefix ...string) *serverProc {
	t.Helper()
	argv := append(append(append([]string(nil), prefix...), bin, "-mode", "server"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	so, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(so)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "ADDRS ") {
		t.Fatalf("server: %q", sc.Text())
	}
	return &serverProc{cmd: cmd, addrs: strings.TrimPrefix(sc.Text(), "ADDRS "), lines: sc}
}

func (p *serverProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// cpuSeconds is utime+stime of pid from /proc.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func rssBytes(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func runLoad(t *testing.T, bin string, serverArgs []string, conns int, dur string) loadRes {
	return runLoadAt(t, bin, placement{}, serverArgs, conns, dur)
}

func runLoadAt(t *testing.T, bin string, pl placement, serverArgs []string, conns int, dur string) loadRes {
	t.Helper()
	sp := startServerProc(t, bin, serverArgs, pl.server...)
	defer sp.stop()
	pid := sp.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	cpu0 := cpuSeconds(t, pid)
	t0 := time.Now()
	argv := append(append([]string(nil), pl.load...), bin, "-mode", "load", "-addrs", sp.addrs, "-conns", strconv.Itoa(conns), "-dur", dur, "-warmup", "0s")
	if pl.client != "" {
		argv = append(argv, "-client", pl.client)
	}
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	cpu := cpuSeconds(t, pid) - cpu0
	wall := time.Since(t0).Seconds()
	var lr loadRes
	if err := json.Unmarshal(out, &lr); err != nil {
		t.Fatalf("load output %q: %v", out, err)
	}
	if lr.Errors > 0 {
		t.Fatalf("load errors: %+v", lr)
	}
	// (The epoll load generator connects, then measures from its first
	// request: the server's CPU covers the accepts and the measured window.)
	lr.cpu = cpu
	lr.wall = wall
	lr.eff = float64(lr.RoundTrips) / lr.cpu
	return lr
}

func runIdle(t *testing.T, bin, impl string, n int) float64 {
	t.Helper()
	sp := startServerProc(t, bin, []string{"-impl", impl})
	defer sp.stop()
	pid := sp.cmd.Process.Pid
	freed := func() {
		_ = sp.cmd.Process.Signal(syscall.SIGUSR1)
		if !sp.lines.Scan() || sp.lines.Text() != "FREED" {
			t.Fatalf("server: %q", sp.lines.Text())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	freed()
	before := rssBytes(t, pid)
	cmd := exec.Command(bin, "-mode", "idle", "-addrs", sp.addrs, "-conns", strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	so, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(so)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY ") {
		t.Fatalf("idle client: %q", sc.Text())
	}
	var ok, fails int
	fmt.Sscanf(sc.Text(), "READY %d %d", &ok, &fails)
	if ok != n {
		t.Fatalf("idle client: %d connected, %d failed", ok, fails)
	}
	time.Sleep(time.Second)
	freed()
	after := rssBytes(t, pid)
	stdin.Close()
	_ = cmd.Wait()
	t.Logf("%s: RSS %.1f MiB before, %.1f MiB with %d idle conns", impl, before/(1<<20), after/(1<<20), n)
	return (after - before) / float64(n)
}
