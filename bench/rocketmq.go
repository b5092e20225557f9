package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// rocketDriver drives RocketMQ remoting with rocketmq-client-go: producers send
// synchronously (SendSync, one message per request), --conns producer
// instances shared by the producer goroutines; push consumers in one group
// (clustering), so each message is expected once.
type rocketDriver struct{}

func init() { rlog.SetLogLevel("error") }

// expected counts the one route-resolving send per topic made before the start.
func (rocketDriver) expected(c *Config, sent int64) int64 { return sent + int64(c.Topics) }

func rocketResolver(c *Config) primitive.NsResolver {
	return primitive.NewPassthroughResolver([]string{c.Target})
}

func (rocketDriver) setup(ctx context.Context, c *Config) error {
	if c.BrokerAddr == "" {
		return nil // the broker auto-creates topics (TBW102)
	}
	adm, err := admin.NewAdmin(admin.WithResolver(rocketResolver(c)))
	if err != nil {
		return err
	}
	defer adm.Close()
	for _, t := range topicNames(c) {
		if err := adm.CreateTopic(ctx, admin.WithTopicCreate(t), admin.WithBrokerAddrCreate(c.BrokerAddr),
			admin.WithReadQueueNums(4), admin.WithWriteQueueNums(4)); err != nil {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

func (rocketDriver) cleanup(context.Context, *Config) {}

func (rocketDriver) publish(ctx context.Context, c *Config, pe *pubEnv) error {
	topics := topicNames(c)
	n := c.producerConns()
	prods := make([]rocketmq.Producer, n)
	for i := range prods {
		p, err := rocketmq.NewProducer(
			producer.WithNsResolver(rocketResolver(c)),
			producer.WithGroupName("qb-"+c.RunID),
			producer.WithInstanceName(fmt.Sprintf("qb-%s-p%d", c.RunID, i)),
			producer.WithRetry(0),
			producer.WithSendMsgTimeout(10*time.Second),
		)
		if err != nil {
			return err
		}
		if err := p.Start(); err != nil {
			return fmt.Errorf("rocketmq producer start: %w", err)
		}
		defer func() { _ = p.Shutdown() }()
		prods[i] = p
	}
	// One send before the start: resolves the route (and auto-creates the topic).
	for _, t := range topics {
		msg := primitive.NewMessage(t, newPayload(c.Size))
		if _, err := prods[0].SendSync(ctx, msg); err != nil {
			return fmt.Errorf("rocketmq first send to %s via %s: %w", t, c.Target, err)
		}
	}
	if err := pe.waitStart(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := range c.Producers {
		p := prods[i%n]
		rec := pe.acks.add()
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := topics[i%len(topics)]
			pc := pe.pacer(i)
			var seq uint64
			for ctx.Err() == nil {
				ts, ok := pc.next()
				if !ok {
					break
				}
				buf := newPayload(c.Size)
				fillPayload(buf, ts, uint64(i), seq)
				seq++
				res, err := p.SendSync(ctx, primitive.NewMessage(topic, buf))
				pe.sentOne(ts)
				if err != nil {
					pe.errs.add(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if res.Status != primitive.SendOK {
					pe.errs.add(fmt.Errorf("send status %d", res.Status))
					continue
				}
				pe.acked(rec, ts, time.Now())
			}
		}()
	}
	wg.Wait()
	return nil
}

func (rocketDriver) subscribe(ctx context.Context, c *Config, se *subEnv) error {
	topics := topicNames(c)
	for j := range c.Consumers {
		cs := se.consumer()
		pc, err := rocketmq.NewPushConsumer(
			consumer.WithNsResolver(rocketResolver(c)),
			consumer.WithGroupName("qb-"+c.RunID),
			consumer.WithInstance(fmt.Sprintf("qb-%s-s%d", c.RunID, j)),
			consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
			consumer.WithConsumeMessageBatchMaxSize(32),
			consumer.WithPullBatchSize(32),
		)
		if err != nil {
			return err
		}
		for _, t := range topics {
			err := pc.Subscribe(t, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
				for _, m := range msgs {
					cs.got(m.Body)
				}
				return consumer.ConsumeSuccess, nil
			})
			if err != nil {
				return fmt.Errorf("rocketmq subscribe %s: %w", t, err)
			}
		}
		if err := pc.Start(); err != nil {
			return fmt.Errorf("rocketmq push consumer start: %w", err)
		}
		defer func() { _ = pc.Shutdown() }()
	}
	se.ready()
	<-ctx.Done()
	return nil
}
