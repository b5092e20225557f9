package rocketmq

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

func init() { rlog.SetLogLevel("error") }

type broker struct {
	t      testing.TB
	dir    string
	e      *engine.Engine
	srv    *Server
	np     *netpoll.Server
	nsAddr string
	brAddr string
}

func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("RMQ_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// startBroker runs engine + name server + broker on 127.0.0.1:0 over dir.
func startBroker(t testing.TB, dir string, cfg Config) *broker {
	t.Helper()
	lg := testLogger()
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOSync}, lg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(e, cfg, lg)
	if err != nil {
		t.Fatal(err)
	}
	np, err := netpoll.NewServer(netpoll.Config{Loops: 2, Logger: lg}, []netpoll.Listener{
		{Addr: "127.0.0.1:0", Protocol: srv.NamesrvProtocol()},
		{Addr: "127.0.0.1:0", Protocol: srv.BrokerProtocol()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := np.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := np.ListenerAddrs()
	b := &broker{t: t, dir: dir, e: e, srv: srv, np: np, nsAddr: addrs[0].String(), brAddr: addrs[1].String()}
	srv.SetBrokerAddr(b.brAddr)
	t.Cleanup(b.stop)
	return b
}

func (b *broker) stop() {
	if b.np == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.np.Stop(ctx)
	_ = b.srv.Close()
	_ = b.e.Close()
	b.np = nil
}

var instanceSeq atomic.Int64

func instance(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), instanceSeq.Add(1))
}

func (b *broker) producer(group string, opts ...producer.Option) rocketmqProducer {
	b.t.Helper()
	all := append([]producer.Option{
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{b.nsAddr})),
		producer.WithGroupName(group),
		producer.WithInstanceName(instance("p")),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(10 * time.Second),
	}, opts...)
	p, err := producer.NewDefaultProducer(all...)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

type rocketmqProducer interface {
	SendSync(ctx context.Context, mq ...*primitive.Message) (*primitive.SendResult, error)
	SendAsync(ctx context.Context, h func(ctx context.Context, result *primitive.SendResult, err error), mq ...*primitive.Message) error
	SendOneWay(ctx context.Context, mq ...*primitive.Message) error
	Shutdown() error
}

func (b *broker) pushConsumer(group string, opts ...consumer.Option) pushConsumerT {
	b.t.Helper()
	all := append([]consumer.Option{
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{b.nsAddr})),
		consumer.WithGroupName(group),
		consumer.WithInstance(instance("c")),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}, opts...)
	c, err := consumer.NewPushConsumer(all...)
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

type pushConsumerT interface {
	Start() error
	Shutdown() error
	Subscribe(topic string, selector consumer.MessageSelector, f func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)) error
}

// collector gathers consumed messages.
type collector struct {
	ch chan *primitive.MessageExt
}

func newCollector() *collector { return &collector{ch: make(chan *primitive.MessageExt, 10000)} }

func (c *collector) fn(result consumer.ConsumeResult) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			c.ch <- m
		}
		return result, nil
	}
}

// take waits for n messages.
func (c *collector) take(t *testing.T, n int, timeout time.Duration) []*primitive.MessageExt {
	t.Helper()
	var out []*primitive.MessageExt
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m := <-c.ch:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("got %d of %d messages in %v", len(out), n, timeout)
		}
	}
	return out
}

// none checks nothing more arrives for d.
func (c *collector) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.ch:
		t.Fatalf("unexpected message %s", m.Body)
	case <-time.After(d):
	}
}
