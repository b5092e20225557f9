package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// driver is one protocol's load generator.
type driver interface {
	// setup runs in the parent before the children start (topics, queues).
	setup(ctx context.Context, c *Config) error
	// expected is how many deliveries sent publishes should produce.
	expected(c *Config, sent int64) int64
	// publish connects the producers, calls pe.waitStart, publishes until
	// pe.t2, waits (bounded) for outstanding acknowledgements and returns.
	publish(ctx context.Context, c *Config, pe *pubEnv) error
	// subscribe connects the consumers, calls se.ready once they are
	// subscribed, and consumes until ctx is cancelled.
	subscribe(ctx context.Context, c *Config, se *subEnv) error
	// cleanup runs in the parent after the run (delete what setup made).
	cleanup(ctx context.Context, c *Config)
}

func driverFor(proto string) driver {
	switch proto {
	case "mqtt":
		return mqttDriver{}
	case "amqp":
		return amqpDriver{}
	case "kafka":
		return kafkaDriver{}
	case "rocketmq":
		return rocketDriver{}
	}
	panic("BUG: no driver for " + proto)
}

// event is one JSON line from a child to the parent.
type event struct {
	Ev         string `json:"ev"`
	Sent       int64  `json:"sent,omitempty"`
	SentWindow int64  `json:"sent_window,omitempty"`
	Recv       int64  `json:"recv,omitempty"`
	RecvWindow int64  `json:"recv_window,omitempty"`
	P99Us      int64  `json:"p99_us,omitempty"`
	Hist       string `json:"hist,omitempty"`
	AckHist    string `json:"ack_hist,omitempty"`
	Errors     int64  `json:"errors,omitempty"`
	Error      string `json:"error,omitempty"`
	FirstNs    int64  `json:"first_ns,omitempty"`
	LastNs     int64  `json:"last_ns,omitempty"`
	WireBytes  int64  `json:"wire_bytes,omitempty"`
}

// clock is the shared timeline of a run.
type clock struct {
	t0, t1, t2 time.Time
}

func clockAt(c *Config, t0 time.Time) clock {
	t1 := t0.Add(c.Warmup)
	return clock{t0: t0, t1: t1, t2: t1.Add(c.Duration)}
}

// errCount counts failures and keeps the first message.
type errCount struct {
	n     atomic.Int64
	mu    sync.Mutex
	first string
}

func (e *errCount) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err.Error()
		e.mu.Unlock()
	}
}

func (e *errCount) firstErr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.first
}

// ---- publisher side ----

// pubEnv is what a driver's publish sees.
type pubEnv struct {
	cfg     *Config
	readyCh chan struct{}
	startCh chan clock
	clock
	sent, sentWindow atomic.Int64
	wireBytes        atomic.Int64
	acks             recorderSet
	errs             errCount
}

func newPubEnv(c *Config) *pubEnv {
	return &pubEnv{cfg: c, readyCh: make(chan struct{}), startCh: make(chan clock, 1)}
}

// waitStart reports the producers connected and blocks until the start
// command (or ctx's end).
func (pe *pubEnv) waitStart(ctx context.Context) error {
	close(pe.readyCh)
	select {
	case ck := <-pe.startCh:
		pe.clock = ck
		if d := time.Until(ck.t0); d > 0 {
			time.Sleep(d)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacer returns producer i's pacer.
func (pe *pubEnv) pacer(i int) *pacer {
	p := &pacer{start: pe.t0, end: pe.t2}
	if pe.cfg.Rate > 0 && pe.cfg.Producers > 0 {
		per := pe.cfg.Rate / float64(pe.cfg.Producers)
		p.interval = time.Duration(float64(time.Second) / per)
		// Stagger producers so they do not fire in lockstep.
		p.start = p.start.Add(time.Duration(i) * p.interval / time.Duration(pe.cfg.Producers))
	}
	return p
}

// sentOne counts one publish whose payload timestamp is ts.
func (pe *pubEnv) sentOne(ts int64) {
	pe.sent.Add(1)
	if ts >= pe.t1.UnixNano() && ts < pe.t2.UnixNano() {
		pe.sentWindow.Add(1)
	}
}

// acked records publish-to-acknowledgement latency of a message sent at ts.
func (pe *pubEnv) acked(r *recorder, ts int64, now time.Time) {
	if ts >= pe.t1.UnixNano() && ts < pe.t2.UnixNano() {
		r.record(now.Sub(time.Unix(0, ts)))
	}
}

// pacer spaces one producer's publishes. Open loop: intended send times at a
// fixed interval (the intended time is the timestamp, so a stalled broker
// shows as latency, not as a lower offered rate). Closed loop: now.
type pacer struct {
	start, end time.Time
	interval   time.Duration
	n          int64
}

// due reports whether the next message may go now (closed loop: always).
func (p *pacer) due() bool {
	return p.interval == 0 || !p.start.Add(time.Duration(p.n)*p.interval).After(time.Now())
}

// next returns the timestamp for the next message, or ok=false at the end.
func (p *pacer) next() (ts int64, ok bool) {
	now := time.Now()
	if !now.Before(p.end) {
		return 0, false
	}
	if p.interval == 0 {
		return now.UnixNano(), true
	}
	at := p.start.Add(time.Duration(p.n) * p.interval)
	p.n++
	if !at.Before(p.end) {
		time.Sleep(time.Until(p.end))
		return 0, false
	}
	if d := at.Sub(now); d > 0 {
		time.Sleep(d)
	}
	return at.UnixNano(), true
}

// ---- subscriber side ----

// subEnv is what a driver's subscribe sees.
type subEnv struct {
	cfg       *Config
	readyOnce sync.Once
	readyCh   chan struct{}
	startedCh chan struct{} // closed at the start command
	ck        atomic.Pointer[clock]
	mu        sync.Mutex
	consumers []*consumerStat
	errs      errCount
}

func newSubEnv(c *Config) *subEnv {
	return &subEnv{cfg: c, readyCh: make(chan struct{}), startedCh: make(chan struct{})}
}

// ready reports the consumers subscribed.
func (se *subEnv) ready() { se.readyOnce.Do(func() { close(se.readyCh) }) }

// waitStart blocks until the start command and then until T0 (used where
// consumers must not begin before the clock, e.g. a cold read).
func (se *subEnv) waitStart(ctx context.Context) error {
	select {
	case <-se.startedCh:
		time.Sleep(time.Until(se.ck.Load().t0))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// consumer returns a new per-consumer counter (one goroutine writes it).
func (se *subEnv) consumer() *consumerStat {
	cs := &consumerStat{env: se, rec: newRecorder()}
	se.mu.Lock()
	se.consumers = append(se.consumers, cs)
	se.mu.Unlock()
	return cs
}

func (se *subEnv) all() []*consumerStat {
	se.mu.Lock()
	defer se.mu.Unlock()
	return append([]*consumerStat(nil), se.consumers...)
}

// consumerStat counts one consumer's deliveries.
type consumerStat struct {
	env              *subEnv
	rec              *recorder
	recv, recvWindow atomic.Int64
	first, last      atomic.Int64
	bad              atomic.Int64
}

// got accounts one delivered payload.
func (cs *consumerStat) got(p []byte) {
	now := time.Now()
	nowNs := now.UnixNano()
	cs.recv.Add(1)
	if cs.first.Load() == 0 {
		cs.first.Store(nowNs)
	}
	cs.last.Store(nowNs)
	ck := cs.env.ck.Load()
	if ck == nil {
		return // before the start command: leftovers
	}
	if nowNs >= ck.t1.UnixNano() && nowNs < ck.t2.UnixNano() {
		cs.recvWindow.Add(1)
	}
	ts, err := payloadTime(p)
	if err != nil {
		cs.bad.Add(1)
		return
	}
	if ts >= ck.t1.UnixNano() && ts < ck.t2.UnixNano() {
		cs.rec.record(now.Sub(time.Unix(0, ts)))
	}
}

// ---- child process main ----

// runChild runs role ("pub" or "sub") with commands on in and events to out.
func runChild(ctx context.Context, c *Config, role string, in io.Reader, out io.Writer) error {
	d := driverFor(c.Proto)
	var wmu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(ev event) {
		wmu.Lock()
		_ = enc.Encode(ev)
		wmu.Unlock()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmds := make(chan []string, 4)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			cmds <- strings.Fields(sc.Text())
		}
		close(cmds)
	}()
	parseT0 := func(f []string) (time.Time, error) {
		if len(f) != 2 || f[0] != "start" {
			return time.Time{}, fmt.Errorf("bench: child: want start command, got %q", f)
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		return time.Unix(0, ns), err
	}
	switch role {
	case "pub":
		pe := newPubEnv(c)
		done := make(chan error, 1)
		go func() { done <- d.publish(ctx, c, pe) }()
		select {
		case <-pe.readyCh:
			send(event{Ev: "ready"})
		case err := <-done:
			return fmt.Errorf("publishers: %w", errOr(err))
		}
		f, ok := <-cmds
		if !ok {
			return errors.New("bench: parent went away")
		}
		t0, err := parseT0(f)
		if err != nil {
			return err
		}
		pe.startCh <- clockAt(c, t0)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case err := <-done:
				ev := event{Ev: "done", Sent: pe.sent.Load(), SentWindow: pe.sentWindow.Load(),
					Errors: pe.errs.n.Load(), Error: pe.errs.firstErr(), WireBytes: pe.wireBytes.Load()}
				if err != nil && !errors.Is(err, context.Canceled) {
					ev.Error = err.Error()
					ev.Errors++
				}
				ev.AckHist, _ = encodeHist(pe.acks.merged())
				send(ev)
				return nil
			case <-tick.C:
				send(event{Ev: "tick", Sent: pe.sent.Load(), WireBytes: pe.wireBytes.Load()})
			case _, ok := <-cmds:
				if !ok {
					cancel()
				}
			}
		}
	case "sub":
		se := newSubEnv(c)
		subCtx, subCancel := context.WithCancel(ctx)
		defer subCancel()
		done := make(chan error, 1)
		go func() { done <- d.subscribe(subCtx, c, se) }()
		select {
		case <-se.readyCh:
			send(event{Ev: "ready"})
		case err := <-done:
			return fmt.Errorf("consumers: %w", errOr(err))
		}
		f, ok := <-cmds
		if !ok {
			return errors.New("bench: parent went away")
		}
		t0, err := parseT0(f)
		if err != nil {
			return err
		}
		ck := clockAt(c, t0)
		se.ck.Store(&ck)
		close(se.startedCh)
		totals := func() (recv, win, first, last int64) {
			for _, cs := range se.all() {
				recv += cs.recv.Load()
				win += cs.recvWindow.Load()
				if fv := cs.first.Load(); fv != 0 && (first == 0 || fv < first) {
					first = fv
				}
				last = max(last, cs.last.Load())
			}
			return
		}
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var p99Tick int
		var expected int64 = -1
		var lastRecv int64
		lastProgress := time.Now()
		var drainStart time.Time
		for {
			select {
			case err := <-done:
				if expected < 0 {
					return fmt.Errorf("consumers stopped early: %w", errOr(err))
				}
				h := newHist()
				for _, cs := range se.all() {
					cs.rec.mergeInto(h)
				}
				recv, win, first, last := totals()
				ev := event{Ev: "done", Recv: recv, RecvWindow: win, FirstNs: first, LastNs: last,
					Errors: se.errs.n.Load(), Error: se.errs.firstErr()}
				if err != nil && !errors.Is(err, context.Canceled) {
					ev.Error = err.Error()
					ev.Errors++
				}
				ev.Hist, _ = encodeHist(h)
				send(ev)
				return nil
			case f, ok := <-cmds:
				if !ok {
					subCancel()
					continue
				}
				if len(f) == 2 && f[0] == "drain" {
					expected, _ = strconv.ParseInt(f[1], 10, 64)
					drainStart = time.Now()
					lastProgress = drainStart
				}
			case <-tick.C:
				recv, _, _, _ := totals()
				ev := event{Ev: "tick", Recv: recv}
				if p99Tick++; p99Tick%4 == 0 { // p99 so far, once a second
					h := newHist()
					for _, cs := range se.all() {
						cs.rec.mergeInto(h)
					}
					ev.P99Us = h.ValueAtQuantile(99)
				}
				send(ev)
				if recv != lastRecv {
					lastRecv = recv
					lastProgress = time.Now()
				}
				if expected >= 0 {
					idle := time.Since(lastProgress)
					if recv >= expected || idle >= c.Drain || time.Since(drainStart) > 10*c.Drain+30*time.Second {
						subCancel()
					}
				}
			}
		}
	}
	return fmt.Errorf("bench: unknown role %q", role)
}

func errOr(err error) error {
	if err == nil {
		return errors.New("returned before ready")
	}
	return err
}

// ---- parent ----

// child is a running pub or sub, as a process or a goroutine.
type child struct {
	role   string
	cmd    *exec.Cmd
	pid    int // 0 for in-process
	in     io.WriteCloser
	events chan event
	errc   chan error
	mu     sync.Mutex
	last   event
}

func (ch *child) command(s string) {
	_, _ = io.WriteString(ch.in, s+"\n")
}

func (ch *child) lastTick() event {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.last
}

// startChild launches role for c.
func startChild(ctx context.Context, c *Config, role string) (*child, error) {
	ch := &child{role: role, events: make(chan event, 16), errc: make(chan error, 1)}
	var evr io.Reader
	if c.InProc {
		inR, inW := io.Pipe()
		evR, evW := io.Pipe()
		ch.in, evr = inW, evR
		go func() {
			err := runChild(ctx, c, role, inR, evW)
			evW.CloseWithError(errOr2(err))
			ch.errc <- err
		}()
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, exe, c.childArgs(role)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		evR, evW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.ExtraFiles = []*os.File{evW}
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("bench: start %s child: %w", role, err)
		}
		evW.Close()
		ch.cmd, ch.pid, ch.in, evr = cmd, cmd.Process.Pid, in, evR
		go func() { ch.errc <- cmd.Wait() }()
	}
	go func() {
		sc := bufio.NewScanner(evr)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var ev event
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			if ev.Ev == "tick" {
				ch.mu.Lock()
				ch.last = ev
				ch.mu.Unlock()
				continue
			}
			ch.events <- ev
		}
		close(ch.events)
	}()
	return ch, nil
}

func errOr2(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

// await waits for the next non-tick event of ch.
func (ch *child) await(ctx context.Context, want string, timeout time.Duration) (event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev, ok := <-ch.events:
		if !ok {
			var err error
			select {
			case err = <-ch.errc:
			case <-time.After(2 * time.Second):
			}
			return ev, fmt.Errorf("bench: %s child exited before %q: %v", ch.role, want, err)
		}
		if ev.Ev == "fatal" {
			return ev, fmt.Errorf("bench: %s child: %s", ch.role, ev.Error)
		}
		if ev.Ev != want {
			return ev, fmt.Errorf("bench: %s child: got %q, want %q", ch.role, ev.Ev, want)
		}
		return ev, nil
	case <-t.C:
		return event{}, fmt.Errorf("bench: %s child: no %q within %v", ch.role, want, timeout)
	case <-ctx.Done():
		return event{}, ctx.Err()
	}
}

func (ch *child) kill() {
	if ch == nil {
		return
	}
	ch.in.Close()
	if ch.cmd != nil && ch.cmd.Process != nil {
		done := make(chan struct{})
		go func() {
			select {
			case <-ch.errc:
			case <-time.After(3 * time.Second):
				_ = ch.cmd.Process.Kill()
			}
			close(done)
		}()
		<-done
	}
}

// Run executes one load-generator run and returns its result.
func Run(ctx context.Context, c *Config, progress io.Writer) (*Result, error) {
	if c.RunID == "" {
		c.RunID = strconv.FormatInt(time.Now().UnixNano()%1e10, 36)
	}
	if c.Ceiling {
		return runCeiling(ctx, c, progress)
	}
	d := driverFor(c.Proto)
	setupCtx, cancelSetup := context.WithTimeout(ctx, 60*time.Second)
	err := d.setup(setupCtx, c)
	cancelSetup()
	if err != nil {
		return nil, fmt.Errorf("bench: %s setup against %s: %w", c.Proto, c.Target, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.cleanup(cctx, c)
		cancel()
	}()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sub, pub *child
	defer func() { sub.kill(); pub.kill() }()
	if c.Consumers > 0 {
		if sub, err = startChild(runCtx, c, "sub"); err != nil {
			return nil, err
		}
		if _, err := sub.await(ctx, "ready", 90*time.Second); err != nil {
			return nil, err
		}
	}
	if c.Producers > 0 {
		if pub, err = startChild(runCtx, c, "pub"); err != nil {
			return nil, err
		}
		if _, err := pub.await(ctx, "ready", 90*time.Second); err != nil {
			return nil, err
		}
	}
	genPIDs := []int{0}
	for _, ch := range []*child{sub, pub} {
		if ch != nil && ch.pid != 0 {
			genPIDs = append(genPIDs, ch.pid)
		}
	}
	gen := cpuProbe{pids: genPIDs}
	broker := cpuProbe{}
	if c.BrokerPID > 0 {
		broker.pids = []int{c.BrokerPID}
	}
	t0 := time.Now().Add(100 * time.Millisecond)
	ck := clockAt(c, t0)
	for _, ch := range []*child{sub, pub} {
		if ch != nil {
			ch.command("start " + strconv.FormatInt(t0.UnixNano(), 10))
		}
	}
	res := &Result{Config: *c, Start: t0, Hardware: hardware()}
	sampler := startSampler(c, ck, gen, broker, res)
	prog := newProgress(progress, c)
	stopProg := prog.run(ck, pub, sub)

	var pubDone event
	if pub != nil {
		pubDone, err = pub.await(ctx, "done", time.Until(ck.t2)+60*time.Second)
		if err != nil {
			stopProg()
			return nil, err
		}
	}
	var subDone event
	if sub != nil {
		exp := d.expected(c, pubDone.Sent)
		if c.Producers == 0 {
			exp = c.consumeExpected
		}
		sub.command("drain " + strconv.FormatInt(exp, 10))
		res.Expected = exp
		wait := time.Until(ck.t2) + 12*c.Drain + 60*time.Second
		subDone, err = sub.await(ctx, "done", wait)
		if err != nil {
			stopProg()
			return nil, err
		}
	}
	stopProg()
	sampler.stop()
	res.fill(c, pubDone, subDone)
	return res, nil
}

// sampler reads broker and generator CPU at T1 and T2 and the broker's RSS
// every 100 ms.
type sampler struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func startSampler(c *Config, ck clock, gen, broker cpuProbe, res *Result) *sampler {
	s := &sampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var g1, b1 time.Duration
		t1 := time.NewTimer(time.Until(ck.t1))
		t2 := time.NewTimer(time.Until(ck.t2))
		rss := time.NewTicker(100 * time.Millisecond)
		defer t1.Stop()
		defer t2.Stop()
		defer rss.Stop()
		sample := func() {
			if c.BrokerPID > 0 {
				if r, hwm, err := procMem(c.BrokerPID); err == nil {
					res.BrokerRSSPeak = max(res.BrokerRSSPeak, r)
					res.BrokerHWM = hwm
				}
			}
		}
		started, ended := false, false
		end := func() {
			res.GenCPU = (gen.sample() - g1).Seconds()
			if c.BrokerPID > 0 {
				res.BrokerCPU = (broker.sample() - b1).Seconds()
			}
			ended = true
			sample()
		}
		sample()
		for {
			select {
			case <-t1.C:
				g1, b1 = gen.sample(), broker.sample()
				started = true
			case <-t2.C:
				end()
			case <-rss.C:
				sample()
			case <-s.done:
				// A run that ends before T2 (consume-only) is measured to here.
				if started && !ended {
					end()
				}
				return
			}
		}
	}()
	return s
}

func (s *sampler) stop() {
	close(s.done)
	s.wg.Wait()
}

// mergeHists decodes and merges encoded histograms.
func mergeHists(enc ...string) *hdrhistogram.Histogram {
	h := newHist()
	for _, e := range enc {
		if x, err := decodeHist(e); err == nil {
			h.Merge(x)
		}
	}
	return h
}
