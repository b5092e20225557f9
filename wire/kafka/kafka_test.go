package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"quartet/engine"
	"quartet/engine/group"
	"quartet/netpoll"
	"quartet/segment"
)

// broker is an in-process engine + netpoll + kafka server.
type broker struct {
	t    testing.TB
	dir  string
	e    *engine.Engine
	k    *Server
	np   *netpoll.Server
	addr string
	cfg  Config
	ecfg engine.Config
}

func testLogger() *slog.Logger {
	if os.Getenv("KAFKA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func testConfig() Config {
	return Config{Group: group.Config{InitialRebalanceDelay: 100 * time.Millisecond}}
}

func startBroker(t testing.TB, cfg Config) *broker {
	t.Helper()
	b := &broker{t: t, dir: t.TempDir(), cfg: cfg}
	b.ecfg = engine.Config{DataDir: b.dir, Flush: segment.FlushSync}
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start(addr string) {
	t := b.t
	var err error
	b.ecfg.DataDir = b.dir
	if b.e, err = engine.Open(b.ecfg, testLogger()); err != nil {
		t.Fatal(err)
	}
	if b.k, err = New(b.e, b.cfg, testLogger()); err != nil {
		t.Fatal(err)
	}
	b.np, err = netpoll.NewServer(netpoll.Config{Loops: 2, Logger: testLogger()},
		[]netpoll.Listener{{Addr: addr, Protocol: b.k.Protocol()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.np.Start(); err != nil {
		t.Fatal(err)
	}
	b.addr = b.np.ListenerAddrs()[0].String()
}

func (b *broker) stop() {
	if b.np == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.np.Stop(ctx)
	b.k.Close()
	b.e.Close()
	b.np = nil
}

// restart stops everything and reopens the same data dir on the same port.
func (b *broker) restart() {
	addr := b.addr
	b.stop()
	b.start(addr)
}

func (b *broker) client(opts ...kgo.Opt) *kgo.Client {
	b.t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(b.addr), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(cl.Close)
	return cl
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestProduceConsumeCodecs(t *testing.T) {
	b := startBroker(t, testConfig())
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			p := b.client(kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic),
				kgo.AllowAutoTopicCreation())
			ctx := ctxT(t, 20*time.Second)
			const n = 200
			base := time.UnixMilli(1_700_000_000_000)
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{
					Key:       []byte(fmt.Sprintf("k%d", i)),
					Value:     []byte(fmt.Sprintf("value-%d-%s", i, name)),
					Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}},
					Timestamp: base.Add(time.Duration(i) * time.Millisecond),
				})
			}
			if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			c := b.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := 0
			for got < n {
				fs := c.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					i := got
					if r.Offset != int64(i) || string(r.Key) != fmt.Sprintf("k%d", i) ||
						string(r.Value) != fmt.Sprintf("value-%d-%s", i, name) ||
						len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) ||
						!r.Timestamp.Equal(base.Add(time.Duration(i)*time.Millisecond)) {
						t.Fatalf("record %d: offset %d key %q value %q headers %v ts %v", i, r.Offset, r.Key, r.Value, r.Headers, r.Timestamp)
					}
					got++
				})
			}
		})
	}
}
