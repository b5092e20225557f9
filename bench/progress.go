package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress prints the state of a run: one line rewritten in place on a
// terminal, plain periodic lines otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	name  string
	quiet bool
}

func newProgress(w io.Writer, c *Config) *progress {
	p := &progress{w: w, every: c.Progress, quiet: c.Quiet || w == nil}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	if p.every <= 0 {
		p.every = time.Second
	}
	p.name = c.Proto + " " + c.Label
	if c.Scenario != "" {
		p.name = c.Scenario + " " + c.Label
	}
	return p
}

// run starts printing; the returned func stops it (ending the TTY line).
func (p *progress) run(ck clock, pub, sub *child) func() {
	if p.quiet {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every := p.every
		if p.tty {
			every = 250 * time.Millisecond
		}
		t := time.NewTicker(every)
		defer t.Stop()
		var lastSent, lastRecv int64
		var p99 int64
		last := time.Now()
		for {
			select {
			case <-done:
				if p.tty {
					fmt.Fprintln(p.w)
				}
				return
			case now := <-t.C:
				var sent, recv int64
				if pub != nil {
					sent = pub.lastTick().Sent
				}
				if sub != nil {
					ev := sub.lastTick()
					recv = ev.Recv
					if ev.P99Us > 0 {
						p99 = ev.P99Us
					}
				}
				dt := now.Sub(last).Seconds()
				line := p.line(ck, now, float64(sent-lastSent)/dt, float64(recv-lastRecv)/dt, sent, recv, p99)
				lastSent, lastRecv, last = sent, recv, now
				if p.tty {
					fmt.Fprintf(p.w, "\r\x1b[K%s", line)
				} else {
					fmt.Fprintln(p.w, line)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (p *progress) line(ck clock, now time.Time, sendRate, recvRate float64, sent, recv, p99 int64) string {
	phase := "warm-up"
	el := now.Sub(ck.t0)
	switch {
	case now.After(ck.t2):
		phase = "drain"
	case now.After(ck.t1):
		phase = "measure"
	}
	s := fmt.Sprintf("[%s] %5.1fs %-7s pub %s/s sub %s/s total pub %s sub %s",
		p.name, el.Seconds(), phase, si(sendRate), si(recvRate), si(float64(sent)), si(float64(recv)))
	if p99 > 0 {
		s += " p99 " + usStr(p99)
	}
	return s
}

// si formats n with a k/M suffix.
func si(n float64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.0fk", n/1e3)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

// usStr formats microseconds for people.
func usStr(us int64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	}
	return fmt.Sprintf("%dµs", us)
}
