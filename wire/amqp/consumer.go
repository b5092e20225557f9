package amqp

// basic.consume / basic.cancel and delivery. Consumers pull from their
// queue on their own connection's event loop: a queue that gains messages
// wakes a hungry consumer (Execute on its connection), and the drain takes
// as many messages as prefetch allows, writing them in one batch.

import (
	"quartet/engine/exchange"
	"sync/atomic"
	"time"

	"quartet/engine/queue"
	"quartet/netpoll"
)

const (
	drainBatchMax      = 256     // messages per pull
	drainRoundsMax     = 8       // pulls per drain before yielding the loop
	outboundPauseBytes = 1 << 20 // stop delivering above this much queued output
	replyToName        = "amq.rabbitmq.reply-to"
)

type consumer struct {
	ch        *channel
	tag       string
	q         *vqueue
	qc        queue.Consumer
	noAck     bool
	prefetch  int
	unacked   int
	stopped   bool
	scheduled atomic.Bool
	run       func(netpoll.Conn)
	scratch   []queue.Entry
	retry     netpoll.Timer
	stream    *streamCursor
}

func (ch *channel) consume(m *BasicConsume) error {
	if m.Queue == replyToName {
		return ch.consumeReplyTo(m)
	}
	vq, err := ch.lookupQueue(m.Queue)
	if err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = genName("amq.ctag-")
	}
	if _, dup := ch.consumers[tag]; dup {
		return amqpErr(NotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	cons := &consumer{ch: ch, tag: tag, q: vq, noAck: m.NoAck, prefetch: ch.consumerPrefetch}
	cons.run = func(netpoll.Conn) {
		cons.scheduled.Store(false)
		cons.drain()
	}
	cons.qc.Wake = cons.wake
	cons.qc.Tag = tag
	cons.qc.Cancel = cons.serverCancel
	if p, ok := exchange.AsInt64(m.Arguments["x-priority"]); ok {
		cons.qc.Priority = int(p)
	}
	if vq.stream != nil {
		if m.NoAck {
			return amqpErr(PreconditionFailed, "consumers of stream queue '%s' must use manual acknowledgement", vq.Name())
		}
		if cons.prefetch == 0 && ch.prefetchCount == 0 {
			return amqpErr(PreconditionFailed, "consumers of stream queue '%s' need a prefetch count (basic.qos)", vq.Name())
		}
		cur, err := vq.stream.cursor(m.Arguments["x-stream-offset"])
		if err != nil {
			return amqpErr(PreconditionFailed, "x-stream-offset: %v", err)
		}
		cons.stream = cur
		cur.wake = cons.wake
	}
	if !m.NoWait {
		ch.send(&BasicConsumeOk{ConsumerTag: tag})
	}
	ch.consumers[tag] = cons
	vq.hadCons = true
	if cons.stream != nil {
		cons.drain()
		return nil
	}
	if err := vq.Subscribe(&cons.qc, m.Exclusive); err != nil {
		delete(ch.consumers, tag)
		return amqpErr(AccessRefused, "queue '%s' in vhost '/' in exclusive use", vq.Name())
	}
	return nil
}

func (ch *channel) consumeReplyTo(m *BasicConsume) error {
	if !m.NoAck {
		return amqpErr(PreconditionFailed, "reply consumer cannot acknowledge")
	}
	if ch.replyTo != nil {
		return amqpErr(PreconditionFailed, "reply consumer already set")
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = genName("amq.ctag-")
	}
	cons := &consumer{ch: ch, tag: tag, noAck: true}
	vq := &vqueue{typ: "classic", replyTo: cons, vh: ch.vh()}
	vq.Queue = queue.New(queue.DefaultConfig(genName(replyToName + ".")))
	cons.q = vq
	vh := ch.vh()
	vh.mu.Lock()
	vh.queues[vq.Name()] = vq
	vh.mu.Unlock()
	ch.replyTo = vq
	ch.consumers[tag] = cons
	if !m.NoWait {
		ch.send(&BasicConsumeOk{ConsumerTag: tag})
	}
	return nil
}

// direct delivers a message published to a reply-to pseudo queue.
func (c *consumer) direct(m *queue.Message) {
	c.ch.c.nc.Execute(func(netpoll.Conn) {
		if c.stopped || c.ch.closing {
			return
		}
		c.deliver(c.ch.c.out[:0], queue.Entry{Msg: m})
	})
}

func (c *consumer) deliver(out []byte, e queue.Entry) {
	ch := c.ch
	ch.nextTag++
	out = appendDeliver(out, ch.id, c.tag, ch.nextTag, e.Redelivered, e.Msg.Exchange, e.Msg.RoutingKey)
	out = AppendHeaderFrame(out, ch.id, ClassBasic, uint64(len(e.Msg.Body)), e.Msg.Props)
	out = AppendBodyFrames(out, ch.id, e.Msg.Body, ch.c.frameMax)
	ch.c.out = out
	ch.c.s.counts.out.Add(1) // before Write: counted once the client can see it
	ch.c.nc.Write(out)
}

func (ch *channel) cancel(m *BasicCancel) error {
	if cons := ch.consumers[m.ConsumerTag]; cons != nil {
		delete(ch.consumers, m.ConsumerTag)
		cons.stop()
		if cons.q.replyTo != nil {
			ch.vh().deleteQueue(cons.q, false, false)
			ch.replyTo = nil
		}
	}
	if !m.NoWait {
		ch.send(&BasicCancelOk{ConsumerTag: m.ConsumerTag})
	}
	return nil
}

// stop unsubscribes (loop only); an auto-delete queue loses its last
// consumer and goes.
func (c *consumer) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	if c.retry != nil {
		c.retry.Stop()
	}
	if c.stream != nil {
		c.stream.close()
		return
	}
	if c.q.replyTo != nil {
		return
	}
	if last := c.q.Unsubscribe(&c.qc); last && c.q.Config().AutoDelete && c.q.hadCons {
		c.ch.vh().deleteQueue(c.q, false, false)
	}
}

// serverCancel runs when the queue is deleted under the consumer.
func (c *consumer) serverCancel() {
	c.ch.c.nc.Execute(func(netpoll.Conn) {
		if c.stopped {
			return
		}
		c.stopped = true
		ch := c.ch
		if ch.consumers[c.tag] == c {
			delete(ch.consumers, c.tag)
		}
		if ch.c.cancelNote && !ch.closing {
			ch.send(&BasicCancel{ConsumerTag: c.tag, NoWait: true})
		}
	})
}

// wake schedules a drain on the consumer's loop (any goroutine).
func (c *consumer) wake() {
	if c.scheduled.CompareAndSwap(false, true) {
		if c.ch.c.nc.Execute(c.run) != nil {
			c.scheduled.Store(false)
		}
	}
}

// credit is how many more messages the consumer may take now.
func (c *consumer) credit() (int, int64) {
	ch := c.ch
	n := drainBatchMax
	var bytes int64
	if !c.noAck {
		if c.prefetch > 0 {
			n = min(n, c.prefetch-c.unacked)
		}
		if ch.prefetchCount > 0 {
			n = min(n, ch.prefetchCount-ch.unackedCount)
		}
		if ch.prefetchSize > 0 {
			bytes = ch.prefetchSize - ch.unackedBytes
			if bytes <= 0 {
				n = 0
			}
		}
	}
	return n, bytes
}

// drain delivers what credit allows (loop only).
func (c *consumer) drain() {
	ch := c.ch
	if c.stopped || ch.closing {
		return
	}
	if c.stream != nil {
		c.drainStream()
		return
	}
	if !ch.flow {
		c.q.Skip(&c.qc)
		return
	}
	conn := ch.c
	for round := 0; round < drainRoundsMax; round++ {
		credit, maxBytes := c.credit()
		if credit <= 0 {
			c.q.Skip(&c.qc)
			return
		}
		if conn.nc.OutboundBytes() > outboundPauseBytes {
			c.retryLater()
			return
		}
		es := c.q.Pull(&c.qc, credit, maxBytes, c.noAck, c.scratch[:0])
		if c.q.flowOn.Load() {
			if ready, _, _ := c.q.Counts(); ready < flowReadyLow {
				c.q.releaseFlow()
			}
		}
		if len(es) == 0 {
			return
		}
		out := conn.out[:0]
		for _, e := range es {
			ch.nextTag++
			out = appendDeliver(out, ch.id, c.tag, ch.nextTag, e.Redelivered, e.Msg.Exchange, e.Msg.RoutingKey)
			out = AppendHeaderFrame(out, ch.id, ClassBasic, uint64(len(e.Msg.Body)), e.Msg.Props)
			out = AppendBodyFrames(out, ch.id, e.Msg.Body, conn.frameMax)
			if !c.noAck {
				ch.unacked = append(ch.unacked, delivery{tag: ch.nextTag, q: c.q, e: e, cons: c})
				ch.unackedCount++
				ch.unackedBytes += int64(len(e.Msg.Body))
				c.unacked++
			}
		}
		conn.s.counts.out.Add(uint64(len(es)))
		conn.nc.Write(out)
		if cap(out) > 256<<10 {
			out = nil
		}
		conn.out = out
		clear(es)
		c.scratch = es[:0]
		if len(es) < credit {
			return
		}
	}
	c.wake() // more ready: continue after other connections had a turn
}

func (c *consumer) retryLater() {
	if c.retry != nil {
		c.retry.Stop()
	}
	c.retry = c.ch.c.nc.AfterFunc(2*time.Millisecond, func(netpoll.Conn) {
		c.retry = nil
		c.drain()
	})
}

// appendDeliver appends a basic.deliver method frame without allocating.
func appendDeliver(dst []byte, ch uint16, ctag string, tag uint64, redelivered bool, ex, key string) []byte {
	dst, start := beginFrame(dst, FrameMethod, ch)
	dst = appendLong(dst, IDBasicDeliver)
	dst = AppendShortStr(dst, ctag)
	dst = appendLongLong(dst, tag)
	if redelivered {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = AppendShortStr(dst, ex)
	dst = AppendShortStr(dst, key)
	return endFrame(dst, start)
}
