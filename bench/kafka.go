package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaDriver drives the Kafka protocol with franz-go. Producer i produces to
// topic (i mod topics) with the default sticky partitioner. Without --group
// every consumer reads every partition (each message expected once per
// consumer); with --group the consumers share the partitions.
type kafkaDriver struct{}

func (kafkaDriver) expected(c *Config, sent int64) int64 {
	if c.Group {
		return sent
	}
	return sent * int64(c.Consumers)
}

// topicNames is --topic (default bench-RUNID), or NAME-0..N-1 with --topics N.
func topicNames(c *Config) []string {
	base := c.Topic
	if base == "" {
		base = "bench-" + c.RunID
	}
	if c.Topics == 1 {
		return []string{base}
	}
	t := make([]string, c.Topics)
	for i := range t {
		t[i] = fmt.Sprintf("%s-%d", base, i)
	}
	return t
}

func kafkaBase(c *Config) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(c.Target),
		kgo.ClientID("quartet-bench"),
		kgo.DialTimeout(10 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
	}
}

func (kafkaDriver) setup(ctx context.Context, c *Config) error {
	cl, err := kgo.NewClient(kafkaBase(c)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := topicNames(c)
	if c.ConsumeOnly {
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("list end offsets: %w", err)
		}
		starts, err := adm.ListStartOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("list start offsets: %w", err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		starts.Each(func(o kadm.ListedOffset) { n -= o.Offset })
		if n <= 0 {
			return fmt.Errorf("topic %v is empty: nothing to consume", topics)
		}
		if !c.Group {
			n *= int64(c.Consumers)
		}
		c.consumeExpected = n
		return nil
	}
	res, err := adm.CreateTopics(ctx, int32(c.Partitions), 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

func (kafkaDriver) cleanup(ctx context.Context, c *Config) {}

func kafkaCodec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func (kafkaDriver) publish(ctx context.Context, c *Config, pe *pubEnv) error {
	topics := topicNames(c)
	opts := append(kafkaBase(c),
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchCompression(kafkaCodec(c.Compression)),
		kgo.ProduceRequestTimeout(30*time.Second),
		kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.MaxBufferedRecords(c.MaxBuffered),
	)
	switch c.Acks {
	case -1:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case 1:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case 0:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	n := c.producerConns()
	clients := make([]*kgo.Client, n)
	for i := range clients {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := cl.Ping(ctx); err != nil {
			return fmt.Errorf("kafka ping %s: %w", c.Target, err)
		}
		clients[i] = cl
	}
	pool := sync.Pool{New: func() any { b := newPayload(c.Size); return &b }}
	if err := pe.waitStart(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := range c.Producers {
		cl := clients[i%n]
		rec := pe.acks.add()
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := topics[i%len(topics)]
			pc := pe.pacer(i)
			var seq uint64
			promise := func(r *kgo.Record, err error) {
				now := time.Now()
				if err != nil {
					pe.errs.add(err)
				} else if ts, e := payloadTime(r.Value); e == nil && c.Acks != 0 {
					pe.acked(rec, ts, now)
				}
				b := r.Value
				pool.Put(&b)
			}
			for ctx.Err() == nil {
				ts, ok := pc.next()
				if !ok {
					break
				}
				bp := pool.Get().(*[]byte)
				fillPayload(*bp, ts, uint64(i), seq)
				seq++
				cl.Produce(ctx, &kgo.Record{Topic: topic, Value: *bp}, promise)
				pe.sentOne(ts)
			}
		}()
	}
	wg.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cl := range clients {
		if err := cl.Flush(fctx); err != nil {
			pe.errs.add(fmt.Errorf("flush: %w", err))
		}
	}
	return nil
}

func (kafkaDriver) subscribe(ctx context.Context, c *Config, se *subEnv) error {
	if c.Consumer == "raw" {
		return subscribeRaw(ctx, c, se)
	}
	topics := topicNames(c)
	if c.ConsumeOnly {
		// A cold read is timed from T0: connect only then.
		se.ready()
		if err := se.waitStart(ctx); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	var assigned sync.WaitGroup
	clients := make([]*kgo.Client, c.Consumers)
	for j := range clients {
		opts := append(kafkaBase(c),
			kgo.ConsumeTopics(topics...),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(500*time.Millisecond),
		)
		if c.Group {
			assigned.Add(1)
			var once sync.Once
			opts = append(opts, kgo.ConsumerGroup("bench-"+c.RunID),
				kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { once.Do(assigned.Done) }))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := cl.Ping(ctx); err != nil {
			return fmt.Errorf("kafka ping %s: %w", c.Target, err)
		}
		clients[j] = cl
	}
	for _, cl := range clients {
		cs := se.consumer()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					return
				}
				fs.EachError(func(t string, p int32, err error) {
					if !errors.Is(err, context.Canceled) {
						se.errs.add(fmt.Errorf("fetch %s/%d: %w", t, p, err))
					}
				})
				fs.EachRecord(func(r *kgo.Record) { cs.got(r.Value) })
			}
		}()
	}
	if c.Group {
		// Partitions are read from the start, so nothing is missed; waiting
		// for the assignment keeps the join out of the measured window.
		done := make(chan struct{})
		go func() { assigned.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			return errors.New("kafka consumer group: no assignment within 60s")
		}
	}
	se.ready()
	wg.Wait()
	return nil
}
