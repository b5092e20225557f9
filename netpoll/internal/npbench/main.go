// Command npbench is the load generator and the two servers behind
// netpoll's comparison benchmarks (see netpoll/README.md):
//
//	npbench -mode server -impl gnet|goroutine [-listeners N] [-per-listener] [-loops N]
//	npbench -mode load -addrs a,b -conns N -dur 5s [-size 64]
//	npbench -mode idle -addrs a -conns N
//	npbench -mode server -impl gnet -file N [-copy-threshold T]; npbench -mode fetch -addrs a -size N -dur 2s
//
// The server prints "ADDRS a,b,..." and serves until SIGTERM; on SIGUSR1 it
// returns freed memory to the OS (so /proc/PID/status VmRSS shows what it
// holds) and prints "FREED". Both servers run the same echo handler over the
// same length-prefixed framing.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"quartet/netpoll"
)

func main() {
	mode := flag.String("mode", "server", "server|load|idle")
	impl := flag.String("impl", "gnet", "gnet|goroutine")
	listeners := flag.Int("listeners", 1, "listeners (server)")
	perListener := flag.Bool("per-listener", false, "one gnet engine per listener")
	loops := flag.Int("loops", 0, "gnet loops (0: one per core)")
	lock := flag.Bool("lock", false, "gnet loops locked to OS threads")
	addrs := flag.String("addrs", "", "comma-separated addresses (load, idle)")
	conns := flag.Int("conns", 64, "connections")
	dur := flag.Duration("dur", 5*time.Second, "measured duration (load)")
	warm := flag.Duration("warmup", time.Second, "warm-up (load)")
	size := flag.Int("size", 64, "request payload bytes (load)")
	client := flag.String("client", "uring", "load generator: uring (epoll + io_uring batches; epoll if io_uring is unavailable), epoll (one read and one write system call per round trip) or goroutine (one per connection)")
	threads := flag.Int("threads", 1, "epoll load generator threads")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile (server) to this file")
	tick := flag.Duration("tick", 0, "netpoll timer tick (server, gnet; 0: default)")
	noYield := flag.Bool("noyield", false, "gnet loops do not yield to the scheduler (Config.NoLoopYield)")
	fileBytes := flag.Int("file", 0, "server: serve 'F' requests (u64 offset, u64 length) from a temporary file of this many bytes with WriteFile")
	copyThreshold := flag.Int("copy-threshold", 0, "server: Config.CopyThresholdBytes (0: default; -1: always sendfile)")
	cc := flag.String("cc", "", "server -impl gnet: TCP congestion control of accepted sockets (Config.TCPCongestionControl; empty: host default)")
	noBatch := flag.Bool("nobatch", false, "gnet loops write each connection at the end of its read (Config.NoBatchedWrites)")
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	raiseNofile()
	switch *mode {
	case "server":
		fileSrv = *fileBytes
		server(*impl, *listeners, *perListener, *loops, *lock, *tick, *noYield, *noBatch, *copyThreshold, *cc)
	case "load":
		switch *client {
		case "uring":
			if !loadUring(strings.Split(*addrs, ","), *conns, *threads, *dur, *warm, *size) {
				fmt.Fprintln(os.Stderr, "npbench: io_uring unavailable, using the epoll client")
				loadEpoll(strings.Split(*addrs, ","), *conns, *threads, *dur, *warm, *size)
			}
		case "epoll":
			loadEpoll(strings.Split(*addrs, ","), *conns, *threads, *dur, *warm, *size)
		default:
			load(strings.Split(*addrs, ","), *conns, *dur, *warm, *size)
		}
	case "idle":
		idle(strings.Split(*addrs, ","), *conns)
	case "fetch":
		fetch(*addrs, *size, *dur)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode")
		os.Exit(2)
	}
}

func raiseNofile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// echo is the handler both servers run: answer each frame with itself.
func echo(frame []byte, w func([]byte)) { w(frame) }

type handler struct{}

func (handler) OnOpen(c netpoll.Conn) any { return nil }
func (handler) OnFrame(c netpoll.Conn, f []byte) error {
	if p := f[4:]; fileF != nil && len(p) == 17 && p[0] == 'F' {
		off := int64(binary.BigEndian.Uint64(p[1:]))
		n := int64(binary.BigEndian.Uint64(p[9:]))
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(n))
		c.WriteFile(hdr[:], fileF, off, n, nil)
		return nil
	}
	echo(f, c.Write)
	return nil
}

// fileSrv (-file) is the size of the file 'F' requests are served from.
var (
	fileSrv int
	fileF   *os.File
)

// fetch: one connection asks for the first size bytes of the server's
// file, reads the whole response, repeats; prints MB/s as JSON.
func fetch(addr string, size int, dur time.Duration) {
	c, err := net.Dial("tcp", addr)
	check(err)
	defer c.Close()
	p := make([]byte, 17)
	p[0] = 'F'
	binary.BigEndian.PutUint64(p[9:], uint64(size))
	req := make([]byte, 4+len(p))
	binary.BigEndian.PutUint32(req, uint32(len(p)))
	copy(req[4:], p)
	resp := make([]byte, 4+size)
	rc := &countingReader{r: c}
	cpu0 := cpuSeconds()
	var n int64
	t0 := time.Now()
	for time.Since(t0) < dur {
		if _, err := c.Write(req); err != nil {
			check(err)
		}
		if _, err := io.ReadFull(rc, resp); err != nil {
			check(err)
		}
		n++
	}
	el := time.Since(t0).Seconds()
	cpu := cpuSeconds() - cpu0
	mb := float64(n) * float64(size) / 1e6
	check(json.NewEncoder(os.Stdout).Encode(map[string]float64{"fetches": float64(n), "mb_per_s": mb / el,
		"reads_per_fetch": float64(rc.reads) / float64(n), "cpu_us_per_mb": cpu * 1e6 / mb}))
}
func (handler) OnClose(netpoll.Conn, error) {}

// countingReader counts the reads a response takes: how often the client
// found the socket drained and waited for more.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

func server(impl string, n int, per bool, loops int, lock bool, tick time.Duration, noYield, noBatch bool, copyThreshold int, cc string) {
	var addrs []string
	var stop func()
	switch impl {
	case "gnet":
		if fileSrv > 0 {
			f, err := os.CreateTemp("", "npbench-file")
			check(err)
			defer os.Remove(f.Name())
			b := make([]byte, fileSrv)
			for i := range b {
				b[i] = byte(i)
			}
			_, err = f.Write(b)
			check(err)
			fileF = f
		}
		p := &netpoll.Protocol{Name: "bench", Framer: netpoll.LengthPrefixed32(1 << 20), FrameBytesMax: 1 << 20, Handler: handler{}}
		var ls []netpoll.Listener
		for i := 0; i < n; i++ {
			ls = append(ls, netpoll.Listener{Addr: fmt.Sprintf("127.0.0.1:%d", 0), Protocol: p})
		}
		srv, err := netpoll.NewServer(netpoll.Config{Loops: loops, EnginePerListener: per, LockOSThread: lock, TimerTick: tick, NoLoopYield: noYield, NoBatchedWrites: noBatch, CopyThresholdBytes: copyThreshold, TCPCongestionControl: cc,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}, ls)
		check(err)
		check(srv.Start())
		for _, a := range srv.ListenerAddrs() {
			addrs = append(addrs, a.String())
		}
		stop = func() { _ = srv.Stop(context.Background()) }
	case "goroutine":
		var lns []net.Listener
		for i := 0; i < n; i++ {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			check(err)
			lns = append(lns, ln)
			addrs = append(addrs, ln.Addr().String())
			go acceptLoop(ln)
		}
		stop = func() {
			for _, l := range lns {
				l.Close()
			}
		}
	default:
		check(fmt.Errorf("unknown impl %q", impl))
	}
	fmt.Println("ADDRS " + strings.Join(addrs, ","))
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	for s := range sig {
		if s == syscall.SIGUSR1 {
			debug.FreeOSMemory()
			fmt.Println("FREED")
			continue
		}
		stop()
		return
	}
}

// The goroutine-per-connection server: buffered reader and writer, flush
// when no more input is buffered (so pipelined requests share a write).
func acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serveConn(c)
	}
}

func serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriterSize(c, 4096)
	var buf []byte
	write := func(b []byte) { _, _ = w.Write(b) }
	for {
		hdr, err := r.Peek(4)
		if err != nil {
			return
		}
		n := 4 + int(binary.BigEndian.Uint32(hdr))
		if n > 1<<20 {
			return
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		echo(buf, write)
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

type loadResult struct {
	Conns        int     `json:"conns"`
	RoundTrips   int64   `json:"round_trips"`
	Seconds      float64 `json:"seconds"`
	PerSec       float64 `json:"per_sec"`
	P50Micros    float64 `json:"p50_us"`
	P99Micros    float64 `json:"p99_us"`
	Errors       int64   `json:"errors"`
	MaxMicros    float64 `json:"max_us"`
	ConnectFails int64   `json:"connect_fails"`
	CPUSeconds   float64 `json:"cpu_s"` // the load generator's own CPU (user+system), whole run
}

// load: each connection sends a request, waits for the answer, repeats.
func load(addrs []string, conns int, dur, warm time.Duration, size int) {
	var started, measuring, stop atomic.Bool
	var total, errs, cfail atomic.Int64
	lats := make([][]int64, conns)
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addrs[i%len(addrs)])
			ready.Done()
			if err != nil {
				cfail.Add(1)
				return
			}
			defer c.Close()
			req := make([]byte, 4+size)
			binary.BigEndian.PutUint32(req, uint32(size))
			resp := make([]byte, 4+size)
			lat := make([]int64, 0, 4096)
			for !started.Load() {
				time.Sleep(time.Millisecond)
			}
			for !stop.Load() {
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					errs.Add(1)
					return
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					errs.Add(1)
					return
				}
				if measuring.Load() {
					total.Add(1)
					lat = append(lat, int64(time.Since(t0)))
				}
			}
			lats[i] = lat
		}(i)
	}
	ready.Wait()
	started.Store(true)
	time.Sleep(warm)
	measuring.Store(true)
	t0 := time.Now()
	time.Sleep(dur)
	measuring.Store(false)
	el := time.Since(t0)
	stop.Store(true)
	wg.Wait()
	var all []int64
	for _, l := range lats {
		all = append(all, l...)
	}
	reportLoad(loadResult{Conns: conns, RoundTrips: total.Load(), Seconds: el.Seconds(),
		Errors: errs.Load(), ConnectFails: cfail.Load()}, all)
}

// idle opens conns connections, does one round trip on each, prints READY
// and holds them until stdin closes.
func idle(addrs []string, conns int) {
	cs := make([]net.Conn, 0, conns)
	req := make([]byte, 4+16)
	binary.BigEndian.PutUint32(req, 16)
	resp := make([]byte, len(req))
	fails := 0
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addrs[i%len(addrs)])
		if err != nil {
			fails++
			continue
		}
		if _, err := c.Write(req); err != nil {
			fails++
			continue
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			fails++
			continue
		}
		cs = append(cs, c)
	}
	fmt.Printf("READY %d %d\n", len(cs), fails)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range cs {
		c.Close()
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "npbench:", err)
		os.Exit(1)
	}
}
