package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

type broker struct {
	t   *testing.T
	dir string
	e   *engine.Engine
	s   *Server
	ns  *netpoll.Server
	url string
}

func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("AMQP_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func startBroker(t *testing.T, dir string, cfg Config) *broker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	log := testLogger()
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOAuto}, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e, cfg, log)
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	ns, err := netpoll.NewServer(netpoll.Config{Logger: log}, []netpoll.Listener{{Addr: "127.0.0.1:0", Protocol: s.Protocol()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, dir: dir, e: e, s: s, ns: ns}
	for _, a := range ns.Addrs() {
		b.url = fmt.Sprintf("amqp://guest:guest@%s/", a)
	}
	t.Cleanup(b.stop)
	return b
}

func (b *broker) stop() {
	if b.ns == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.ns.Stop(ctx)
	b.s.Close()
	b.e.Close()
	b.ns = nil
}

func (b *broker) dial() *amqp091.Connection {
	b.t.Helper()
	c, err := amqp091.Dial(b.url)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { c.Close() })
	return c
}

func (b *broker) channel() (*amqp091.Connection, *amqp091.Channel) {
	b.t.Helper()
	c := b.dial()
	ch, err := c.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	return c, ch
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func publish(t *testing.T, ch *amqp091.Channel, ex, key string, p amqp091.Publishing) {
	t.Helper()
	must(t, ch.PublishWithContext(context.Background(), ex, key, false, false, p))
}

func recv(t *testing.T, c <-chan amqp091.Delivery) amqp091.Delivery {
	t.Helper()
	select {
	case d, ok := <-c:
		if !ok {
			t.Fatal("delivery channel closed")
		}
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	return amqp091.Delivery{}
}

func none(t *testing.T, c <-chan amqp091.Delivery, wait time.Duration) {
	t.Helper()
	select {
	case d := <-c:
		t.Fatalf("unexpected delivery %q", d.Body)
	case <-time.After(wait):
	}
}

func getBody(t *testing.T, ch *amqp091.Channel, q string) string {
	t.Helper()
	d, ok, err := ch.Get(q, true)
	must(t, err)
	if !ok {
		return ""
	}
	return string(d.Body)
}
