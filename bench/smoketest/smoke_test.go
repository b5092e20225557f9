package smoketest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"quartet/appliance"
	"quartet/bench"
)

// readyCapture is a slog handler that keeps the log text and the attributes
// of the appliance's `ready` line (the bound addresses).
type readyCapture struct {
	mu    *sync.Mutex
	buf   *bytes.Buffer
	inner slog.Handler
	ready chan map[string]string
}

func newReadyCapture() *readyCapture {
	b := &bytes.Buffer{}
	return &readyCapture{mu: &sync.Mutex{}, buf: b, inner: slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}), ready: make(chan map[string]string, 1)}
}

func (h *readyCapture) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}
func (h *readyCapture) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "ready" {
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		select {
		case h.ready <- m:
		default:
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inner.Handle(ctx, r)
}
func (h *readyCapture) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	return &c
}
func (h *readyCapture) WithGroup(n string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(n)
	return &c
}
func (h *readyCapture) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}

// startAppliance runs Quartet in this process on ephemeral loopback ports and
// returns the bound address of each listener.
func startAppliance(t *testing.T) map[string]string {
	t.Helper()
	cfg := appliance.Default()
	cfg.DataDir = t.TempDir()
	ls := &cfg.Listeners
	for _, l := range []*appliance.Listener{&ls.Kafka, &ls.AMQP, &ls.MQTT, &ls.RocketMQNamesrv, &ls.RocketMQBroker} {
		l.Addr = "127.0.0.1:0"
	}
	ls.MQTTWS.Addr, ls.HTTP.Addr = "", ""
	h := newReadyCapture()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- appliance.Serve(ctx, cfg, slog.New(h)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("appliance did not stop")
		}
		if t.Failed() {
			t.Logf("appliance log:\n%s", h.String())
		}
	})
	select {
	case m := <-h.ready:
		return m
	case err := <-done:
		t.Fatalf("appliance exited before ready: %v\n%s", err, h.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("appliance not ready in 30s:\n%s", h.String())
	}
	return nil
}

// smoke runs proto for one second against the in-process appliance with the
// publishers and subscribers in this process, and checks every message
// arrived, latency was recorded and nothing failed.
func smoke(t *testing.T, proto, listener string, args ...string) {
	addrs := startAppliance(t)
	addr := addrs[listener]
	if addr == "" {
		t.Skipf("the appliance does not serve %s yet (no %s listener in its ready line: %v)", proto, listener, addrs)
	}
	args = append(args, "--target", addr, "--inproc", "--quiet", "--duration", "1s", "--warmup", "300ms",
		"--drain", "2s", "--broker-pid", strconv.Itoa(os.Getpid()), "--label", "quartet")
	cfg, err := bench.ParseConfig(proto, args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	res, err := bench.Run(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("%s run: %v", proto, err)
	}
	var b strings.Builder
	bench.PrintSummary(&b, res)
	t.Log(b.String())
	if res.Errors != 0 {
		t.Errorf("%d errors, first: %s", res.Errors, res.Error)
	}
	if res.SentWindow == 0 || res.Sent == 0 {
		t.Fatalf("nothing sent in the window")
	}
	if res.Received < res.Expected || res.Dropped != 0 {
		t.Errorf("received %d of %d expected (dropped %d)", res.Received, res.Expected, res.Dropped)
	}
	if res.Latency.Count == 0 || res.Latency.P50Us <= 0 {
		t.Errorf("no publish-to-consume latency recorded")
	}
	if res.BrokerCPU <= 0 || res.BrokerRSSPeak <= 0 {
		t.Errorf("broker CPU %v s / RSS %d not measured", res.BrokerCPU, res.BrokerRSSPeak)
	}
}

func TestSmokeKafka(t *testing.T) {
	smoke(t, "kafka", "kafka", "--producers", "2", "--partitions", "2", "--consumers", "1", "--acks", "-1")
}

func TestSmokeAMQP(t *testing.T) {
	smoke(t, "amqp", "amqp", "--producers", "2", "--consumers", "1", "--durable", "--confirm", "--outstanding", "100")
}

func TestSmokeMQTT(t *testing.T) {
	smoke(t, "mqtt", "mqtt", "--producers", "2", "--consumers", "1", "--qos", "1", "--inflight", "16")
}

func TestSmokeRocketMQ(t *testing.T) {
	smoke(t, "rocketmq", "rocketmq_namesrv", "--producers", "2", "--consumers", "1")
}
