package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpDriver drives AMQP 0-9-1 with amqp091-go. Producer i publishes through
// the default exchange to queue (i mod queues); consumer j consumes queue
// (j mod queues) with manual multiple acks. Each message is expected once.
type amqpDriver struct{}

func (amqpDriver) expected(_ *Config, sent int64) int64 { return sent }

func amqpURL(c *Config) string { return "amqp://guest:guest@" + c.Target + "/" }

func amqpDial(c *Config) (*amqp.Connection, error) {
	return amqp.DialConfig(amqpURL(c), amqp.Config{
		Heartbeat:  60 * time.Second,
		Locale:     "en_US",
		Dial:       amqp.DefaultDial(15 * time.Second),
		Properties: amqp.Table{"connection_name": "quartet-bench"},
	})
}

func amqpQueue(c *Config, i int) string {
	base := c.Queue
	if base == "" {
		base = "bench-" + c.RunID
	}
	if c.Queues == 1 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, i%c.Queues)
}

func (amqpDriver) setup(ctx context.Context, c *Config) error {
	conn, err := amqpDial(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	for i := range c.Queues {
		q := amqpQueue(c, i)
		if _, err := ch.QueueDeclare(q, c.Durable, false, false, false, nil); err != nil {
			return fmt.Errorf("declare queue %s: %w", q, err)
		}
		if _, err := ch.QueuePurge(q, false); err != nil {
			return fmt.Errorf("purge queue %s: %w", q, err)
		}
	}
	return nil
}

func (amqpDriver) cleanup(ctx context.Context, c *Config) {
	if c.Queue != "" {
		return // named by the user: keep
	}
	conn, err := amqpDial(c)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for i := range c.Queues {
		_, _ = ch.QueueDelete(amqpQueue(c, i), false, false, false)
	}
}

func (amqpDriver) publish(ctx context.Context, c *Config, pe *pubEnv) error {
	nconn := c.producerConns()
	conns := make([]*amqp.Connection, nconn)
	for i := range conns {
		conn, err := amqpDial(c)
		if err != nil {
			return err
		}
		defer conn.Close()
		conns[i] = conn
	}
	chans := make([]*amqp.Channel, c.Producers)
	confirms := make([]chan amqp.Confirmation, c.Producers)
	for i := range chans {
		ch, err := conns[i%nconn].Channel()
		if err != nil {
			return err
		}
		if c.Confirm {
			if err := ch.Confirm(false); err != nil {
				return fmt.Errorf("confirm.select: %w", err)
			}
			confirms[i] = ch.NotifyPublish(make(chan amqp.Confirmation, c.Outstanding+1))
		}
		chans[i] = ch
	}
	if err := pe.waitStart(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			amqpPublisher(ctx, c, pe, i, ch, confirms[i])
		}()
	}
	wg.Wait()
	return nil
}

func amqpPublisher(ctx context.Context, c *Config, pe *pubEnv, i int, ch *amqp.Channel, confirms chan amqp.Confirmation) {
	queue := amqpQueue(c, i)
	mode := amqp.Transient
	if c.Durable {
		mode = amqp.Persistent
	}
	buf := newPayload(c.Size)
	msg := amqp.Publishing{DeliveryMode: mode, Body: buf}
	var sendTs []int64
	var slots chan struct{}
	if confirms != nil {
		sendTs = make([]int64, c.Outstanding)
		slots = make(chan struct{}, c.Outstanding)
		rec := pe.acks.add()
		go func() {
			for cf := range confirms {
				ts := sendTs[(cf.DeliveryTag-1)%uint64(len(sendTs))]
				if !cf.Ack {
					pe.errs.add(fmt.Errorf("publisher %d: nack for delivery tag %d", i, cf.DeliveryTag))
				} else {
					pe.acked(rec, ts, time.Now())
				}
				<-slots
			}
		}()
	}
	pc := pe.pacer(i)
	var seq uint64
	for ctx.Err() == nil {
		ts, ok := pc.next()
		if !ok {
			break
		}
		if slots != nil {
			slots <- struct{}{}
			sendTs[seq%uint64(len(sendTs))] = ts
		}
		fillPayload(buf, ts, uint64(i), seq)
		seq++
		if err := ch.PublishWithContext(ctx, "", queue, false, false, msg); err != nil {
			pe.errs.add(fmt.Errorf("publisher %d: %w", i, err))
			return
		}
		pe.sentOne(ts)
	}
	if slots != nil {
		// Wait for the outstanding confirms (all slots free).
		deadline := time.After(15 * time.Second)
		for k := 0; k < cap(slots); k++ {
			select {
			case slots <- struct{}{}:
			case <-deadline:
				pe.errs.add(fmt.Errorf("publisher %d: confirms outstanding after 15s", i))
				return
			}
		}
	}
}

func (amqpDriver) subscribe(ctx context.Context, c *Config, se *subEnv) error {
	var streams []<-chan amqp.Delivery
	for j := range c.Consumers {
		conn, err := amqpDial(c)
		if err != nil {
			return err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		if c.Prefetch > 0 && !c.AutoAck {
			if err := ch.Qos(c.Prefetch, 0, false); err != nil {
				return fmt.Errorf("basic.qos: %w", err)
			}
		}
		ds, err := ch.Consume(amqpQueue(c, j), fmt.Sprintf("qb-%s-%d", c.RunID, j), c.AutoAck, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("basic.consume %s: %w", amqpQueue(c, j), err)
		}
		streams = append(streams, ds)
	}
	se.ready()
	var wg sync.WaitGroup
	for _, ds := range streams {
		cs := se.consumer()
		wg.Add(1)
		go func() {
			defer wg.Done()
			amqpConsume(ctx, c, se, cs, ds)
		}()
	}
	wg.Wait()
	return nil
}

// amqpConsume acks with multiple=true every --multi-ack deliveries, and
// whatever it holds after an idle tick so a partial batch never stalls.
func amqpConsume(ctx context.Context, c *Config, se *subEnv, cs *consumerStat, ds <-chan amqp.Delivery) {
	var pending, seen, lastSeen int
	var last amqp.Delivery
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				se.errs.add(fmt.Errorf("consumer channel closed"))
				return
			}
			cs.got(d.Body)
			seen++
			if c.AutoAck {
				continue
			}
			pending++
			last = d
			if pending == c.MultiAck {
				pending = 0
				if err := d.Ack(true); err != nil {
					se.errs.add(err)
					return
				}
			}
		case <-ctx.Done():
			if pending > 0 {
				_ = last.Ack(true)
			}
			return
		case <-tick.C:
			if pending > 0 && seen == lastSeen {
				pending = 0
				_ = last.Ack(true)
			}
			lastSeen = seen
		}
	}
}
