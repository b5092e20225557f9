package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sys/unix"
)

// IdleResult is the idle-connections scenario: N connections that connect and
// then stay silent, and what they cost the broker in RSS.
type IdleResult struct {
	Proto        string    `json:"proto"`
	Label        string    `json:"label"`
	Target       string    `json:"target"`
	Conns        int       `json:"conns"`
	Connected    int       `json:"connected"`
	RSSBefore    int64     `json:"rss_before"`
	RSSAfter     int64     `json:"rss_after"`
	PerConnBytes float64   `json:"per_conn_bytes"`
	ConnectRate  float64   `json:"connect_rate"` // connections per second
	BrokerCPU    float64   `json:"broker_cpu_s"`
	Error        string    `json:"error,omitempty"`
	Date         time.Time `json:"date"`
}

type idleConfig struct {
	Proto, Target, Label, Out string
	Conns, BrokerPID          int
	Hold                      time.Duration
	Quiet                     bool
}

func parseIdle(args []string) (*idleConfig, error) {
	ic := &idleConfig{}
	fs := flag.NewFlagSet("quartet-bench idle", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&ic.Proto, "proto", "mqtt", "mqtt or amqp")
	fs.StringVar(&ic.Target, "target", "", "broker HOST:PORT (default: the protocol's port on 127.0.0.1)")
	fs.StringVar(&ic.Label, "label", "", "name in reports")
	fs.IntVar(&ic.Conns, "conns", 10000, "idle connections to open")
	fs.IntVar(&ic.BrokerPID, "broker-pid", 0, "broker process id (required: RSS comes from /proc)")
	fs.DurationVar(&ic.Hold, "hold", 3*time.Second, "settle time before measuring RSS")
	fs.StringVar(&ic.Out, "out", "", "directory for results")
	fs.BoolVar(&ic.Quiet, "quiet", false, "no progress output")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, fmt.Errorf("%w: quartet-bench idle [flags]\n%s", flag.ErrHelp, usageOf(fs))
		}
		return nil, fmt.Errorf("%w: quartet-bench idle: %v", ErrUsage, err)
	}
	if ic.Proto != "mqtt" && ic.Proto != "amqp" {
		return nil, fmt.Errorf("%w: quartet-bench idle: --proto %q: want mqtt or amqp", ErrUsage, ic.Proto)
	}
	if ic.Target == "" {
		ic.Target = defaultTargets[ic.Proto]
	}
	if _, _, err := net.SplitHostPort(ic.Target); err != nil {
		return nil, fmt.Errorf("%w: quartet-bench idle: --target %q: want HOST:PORT", ErrUsage, ic.Target)
	}
	if ic.Conns < 1 || ic.Conns > 1000000 {
		return nil, fmt.Errorf("%w: quartet-bench idle: --conns %d: want 1..1000000", ErrUsage, ic.Conns)
	}
	if ic.BrokerPID <= 0 {
		return nil, fmt.Errorf("%w: quartet-bench idle: --broker-pid is required (RSS per connection comes from /proc/PID/status)", ErrUsage)
	}
	if ic.Label == "" {
		ic.Label = ic.Target
	}
	return ic, nil
}

// raiseNoFile lifts RLIMIT_NOFILE to at least want (up to the hard limit, or
// beyond it when privileged).
func raiseNoFile(want uint64) error {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return err
	}
	if r.Cur >= want {
		return nil
	}
	if r.Max < want {
		n := r
		n.Cur, n.Max = want, want
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &n) == nil {
			return nil
		}
	}
	r.Cur = r.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return err
	}
	if r.Cur < want {
		return fmt.Errorf("bench: RLIMIT_NOFILE hard limit %d < %d needed", r.Max, want)
	}
	return nil
}

// mqttConnectPacket is a 3.1.1 CONNECT, clean session, keepalive 0.
func mqttConnectPacket(clientID string) []byte {
	var v []byte
	v = append(v, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0)
	v = append(v, byte(len(clientID)>>8), byte(len(clientID)))
	v = append(v, clientID...)
	p := []byte{0x10}
	n := len(v)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		p = append(p, b)
		if n == 0 {
			break
		}
	}
	return append(p, v...)
}

func idleMQTT(target, id string) (io.Closer, error) {
	conn, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(mqttConnectPacket(id)); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var ack [4]byte
	if _, err := io.ReadFull(bufio.NewReaderSize(conn, 16), ack[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connack refused: % x", ack)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

type amqpIdle struct{ c *amqp.Connection }

func (a amqpIdle) Close() error { return a.c.Close() }

func idleAMQP(target string) (io.Closer, error) {
	c, err := amqp.DialConfig("amqp://guest:guest@"+target+"/", amqp.Config{Heartbeat: 0, Locale: "en_US", Dial: amqp.DefaultDial(15 * time.Second)})
	if err != nil {
		return nil, err
	}
	if _, err := c.Channel(); err != nil {
		c.Close()
		return nil, err
	}
	return amqpIdle{c}, nil
}

// runIdle opens ic.Conns connections, waits, and measures the broker's RSS.
func runIdle(ctx context.Context, ic *idleConfig, progress io.Writer) (*IdleResult, error) {
	if err := raiseNoFile(uint64(ic.Conns) + 1024); err != nil {
		return nil, err
	}
	res := &IdleResult{Proto: ic.Proto, Label: ic.Label, Target: ic.Target, Conns: ic.Conns, Date: time.Now().UTC()}
	rss0, _, err := procMem(ic.BrokerPID)
	if err != nil {
		return nil, fmt.Errorf("bench: idle: broker pid %d: %w", ic.BrokerPID, err)
	}
	cpu0, _ := procCPU(ic.BrokerPID)
	res.RSSBefore = rss0
	conns := make([]io.Closer, ic.Conns)
	var done atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, 128)
	var wg sync.WaitGroup
	start := time.Now()
	runID := fmt.Sprintf("%x", start.UnixNano()&0xffffff)
	stopProg := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProg:
				return
			case <-t.C:
				if progress != nil && !ic.Quiet {
					fmt.Fprintf(progress, "[idle %s %s] %d/%d connected\n", ic.Proto, ic.Label, done.Load(), ic.Conns)
				}
			}
		}
	}()
	for i := range conns {
		if ctx.Err() != nil || firstErr.Load() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var c io.Closer
			var err error
			if ic.Proto == "mqtt" {
				c, err = idleMQTT(ic.Target, fmt.Sprintf("qb-idle-%s-%d", runID, i))
			} else {
				c, err = idleAMQP(ic.Target)
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, fmt.Errorf("connection %d: %w", i, err))
				return
			}
			conns[i] = c
			done.Add(1)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProg)
	res.Connected = int(done.Load())
	res.ConnectRate = float64(res.Connected) / elapsed.Seconds()
	if e := firstErr.Load(); e != nil {
		res.Error = e.(error).Error()
	}
	time.Sleep(ic.Hold)
	rss1, _, _ := procMem(ic.BrokerPID)
	cpu1, _ := procCPU(ic.BrokerPID)
	res.RSSAfter = rss1
	res.BrokerCPU = (cpu1 - cpu0).Seconds()
	if res.Connected > 0 {
		res.PerConnBytes = float64(rss1-rss0) / float64(res.Connected)
	}
	var cw sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			cw.Add(1)
			sem <- struct{}{}
			go func() { defer cw.Done(); defer func() { <-sem }(); c.Close() }()
		}
	}
	cw.Wait()
	if progress != nil && !ic.Quiet {
		fmt.Fprintf(progress, "[idle %s %s] %d connections: broker RSS %s → %s, %s per connection, %s conns/s\n",
			ic.Proto, ic.Label, res.Connected, fmtBytes(float64(rss0)), fmtBytes(float64(rss1)),
			fmtBytes(res.PerConnBytes), fmtRate(res.ConnectRate))
	}
	return res, nil
}
