package main

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// loadEpoll is the load generator used for the reported figures: one
// thread per -threads, each driving its share of the connections through
// its own epoll set (one request in flight per connection). It costs far
// less CPU than a goroutine per connection, so on a 2-core machine the
// server, not the client, is what limits the rate.
func loadEpoll(addrs []string, conns, threads int, dur, warm time.Duration, size int) {
	respLen := 4 + size
	req := make([]byte, 4+size)
	binary.BigEndian.PutUint32(req, uint32(size))
	measureFrom := time.Now().Add(warm)
	measureTo := measureFrom.Add(dur)
	runLoad(conns, threads, dur, func(th int) ([]int64, int64, int64) {
		ep, err := unix.EpollCreate1(0)
		check(err)
		defer unix.Close(ep)
		states := dialConns(ep, th, threads, conns, addrs)
		defer closeConns(states)
		t := newThread(ep, 256, respLen, measureFrom, measureTo)
		t.errs = sendFirst(states, req)
		buf := make([]byte, 64<<10)
		for {
			events, now, ok := t.wait()
			if !ok {
				break
			}
			for _, ev := range events {
				s := states[int(ev.Fd)]
				r, err := unix.Read(s.fd, buf)
				if !t.read(s, r, err == unix.EAGAIN, now) {
					continue
				}
				if _, err := unix.Write(s.fd, req); err != nil {
					t.errs++
				}
			}
		}
		return t.lat, int64(len(t.lat)), t.errs
	})
}

// thread is one load-generator thread's epoll wait and tally: its round
// trips' latencies in the measured window and its errors.
type thread struct {
	ep        int
	events    []unix.EpollEvent
	respLen   int
	from, to  int64 // the measured window (unix nanoseconds)
	lastYield int64
	lat       []int64
	errs      int64
}

func newThread(ep, events, respLen int, from, to time.Time) *thread {
	return &thread{ep: ep, events: make([]unix.EpollEvent, events), respLen: respLen,
		from: from.UnixNano(), to: to.UnixNano(), lat: make([]int64, 0, 1<<16)}
}

// wait returns the ready connections and the time, or false once the
// window has ended. Now and then it passes through the scheduler, as
// netpoll's loops do: a goroutine that never parks is preempted by sysmon
// every 10 ms, which then polls every 20 µs.
func (t *thread) wait() (events []unix.EpollEvent, now int64, ok bool) {
	k, err := unix.EpollWait(t.ep, t.events, 100)
	if err != nil && err != unix.EINTR {
		check(err)
	}
	now = time.Now().UnixNano()
	if now > t.to {
		return nil, now, false
	}
	if now-t.lastYield > 2e6 {
		t.lastYield = now
		runtime.Gosched()
	}
	return t.events[:max(k, 0)], now, true
}

// read accounts a read of r bytes from s at now (r <= 0: nothing, eagain
// or a failure, which counts as an error and drops s) and reports whether
// a whole response is in: send the next request.
func (t *thread) read(s *cstate, r int, eagain bool, now int64) bool {
	if r <= 0 {
		if !eagain {
			t.errs++
			unix.EpollCtl(t.ep, unix.EPOLL_CTL_DEL, s.fd, nil)
		}
		return false
	}
	var done bool
	t.lat, done = s.received(r, t.respLen, now, t.from, t.to, t.lat)
	return done
}

// cstate is one load-generator connection: bytes of the response read so
// far and when its request was sent.
type cstate struct {
	fd   int
	got  int
	sent int64
}

// received accounts r bytes of response read at now. Once a whole
// response is in it appends the round trip's latency to lat (if it falls in
// the measured window [from, to]), restarts the clock for the next request
// (one clock read per round trip) and reports true: send that request.
func (s *cstate) received(r, respLen int, now, from, to int64, lat []int64) ([]int64, bool) {
	s.got += r
	if s.got < respLen {
		return lat, false
	}
	s.got -= respLen
	if s.sent >= from && now <= to {
		lat = append(lat, now-s.sent)
	}
	s.sent = now
	return lat, true
}

// dialConns connects this thread's share of the conns (every threads-th
// from th) to addrs in turn, non-blocking with TCP_NODELAY, registered for
// EPOLLIN on ep, and returns their states indexed by fd (no map lookup per
// event).
func dialConns(ep, th, threads, conns int, addrs []string) []*cstate {
	var states []*cstate
	for i := th; i < conns; i += threads {
		ta, err := net.ResolveTCPAddr("tcp", addrs[i%len(addrs)])
		check(err)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		check(err)
		sa := &unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ta.IP.To4())
		check(unix.Connect(fd, sa))
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		check(unix.SetNonblock(fd, true))
		check(unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}))
		for len(states) <= fd {
			states = append(states, nil)
		}
		states[fd] = &cstate{fd: fd}
	}
	return states
}

func closeConns(states []*cstate) {
	for _, s := range states {
		if s != nil {
			unix.Close(s.fd)
		}
	}
}

// sendFirst sends every connection its first request and returns the
// number of failed writes.
func sendFirst(states []*cstate, req []byte) (errs int64) {
	for _, s := range states {
		if s == nil {
			continue
		}
		s.sent = time.Now().UnixNano()
		if _, err := unix.Write(s.fd, req); err != nil {
			errs++
		}
	}
	return errs
}

// runLoad runs worker once per thread, each returning the latencies it
// measured (ns), its round trips and its errors, and reports them merged.
func runLoad(conns, threads int, dur time.Duration, worker func(th int) (lat []int64, n, errs int64)) {
	var mu sync.Mutex
	var all []int64
	var total, errs int64
	var wg sync.WaitGroup
	for th := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, n, e := worker(th)
			mu.Lock()
			all = append(all, lat...)
			total += n
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	reportLoad(loadResult{Conns: conns, RoundTrips: total, Seconds: dur.Seconds(), Errors: errs}, all)
}

// reportLoad completes res (rate, latency percentiles of all, in
// nanoseconds and sorted here, and this process's CPU) and prints it as JSON.
func reportLoad(res loadResult, all []int64) {
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1e3
	}
	res.PerSec = float64(res.RoundTrips) / res.Seconds
	res.P50Micros, res.P99Micros = pct(0.5), pct(0.99)
	if len(all) > 0 {
		res.MaxMicros = float64(all[len(all)-1]) / 1e3
	}
	res.CPUSeconds = cpuSeconds()
	check(json.NewEncoder(os.Stdout).Encode(res))
}

// cpuSeconds is the process's user plus system CPU time so far.
func cpuSeconds() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
