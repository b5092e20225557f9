package amqp

// Exchange (40), queue (50) and basic (60) methods other than publish and
// the ack family: declare/delete/bind/unbind, purge, qos, consume, cancel, get.

import (
	"errors"
	"strings"

	"quartet/engine/exchange"
)

func (ch *channel) exchangeDeclare(m *ExchangeDeclare) error {
	vh := ch.vh()
	if m.Passive {
		if m.Exchange == "" {
			if !m.NoWait {
				ch.send(&ExchangeDeclareOk{})
			}
			return nil
		}
		if _, ok := vh.ex.Get(m.Exchange); !ok {
			return amqpErr(NotFound, "no exchange '%s' in vhost '/'", m.Exchange)
		}
		if !m.NoWait {
			ch.send(&ExchangeDeclareOk{})
		}
		return nil
	}
	kind, err := exchange.ParseKind(m.Type)
	if err != nil {
		return amqpErr(CommandInvalid, "invalid exchange type '%s'", m.Type)
	}
	if m.Exchange == "" || (strings.HasPrefix(m.Exchange, "amq.") && !isBuiltinMatch(vh, m.Exchange, kind, m.Durable)) {
		return amqpErr(AccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", m.Exchange)
	}
	if strings.HasPrefix(m.Exchange, "amq.") {
		if !m.NoWait {
			ch.send(&ExchangeDeclareOk{})
		}
		return nil
	}
	x, created, err := vh.ex.Declare(m.Exchange, kind, m.Durable, m.AutoDelete, m.Internal, exchange.Table(m.Arguments))
	if err != nil {
		if errors.Is(err, exchange.ErrInequivalent) {
			return amqpErr(PreconditionFailed, "inequivalent arg for exchange '%s' in vhost '/'", m.Exchange)
		}
		return amqpErr(AccessRefused, "%v", err)
	}
	if created && x.Durable && vh.store != nil {
		vh.store.saveExchange(x)
	}
	if !m.NoWait {
		ch.sendDurable(&ExchangeDeclareOk{})
	}
	return nil
}

func isBuiltinMatch(vh *vhost, name string, k exchange.Kind, durable bool) bool {
	x, ok := vh.ex.Get(name)
	return ok && x.Kind == k && durable
}

func (ch *channel) exchangeDelete(m *ExchangeDelete) error {
	vh := ch.vh()
	if m.Exchange == "" || strings.HasPrefix(m.Exchange, "amq.") {
		return amqpErr(AccessRefused, "operation not permitted on the default exchange")
	}
	x, ok := vh.ex.Get(m.Exchange)
	if ok {
		if err := vh.ex.Delete(m.Exchange, m.IfUnused); err != nil {
			if errors.Is(err, exchange.ErrInUse) {
				return amqpErr(PreconditionFailed, "exchange '%s' in vhost '/' in use", m.Exchange)
			}
			return amqpErr(NotFound, "%v", err)
		}
		if x.Durable && vh.store != nil {
			vh.store.deleteExchange(x.Name)
		}
	}
	if !m.NoWait {
		ch.sendDurable(&ExchangeDeleteOk{})
	}
	return nil
}

func (ch *channel) exchangeBind(dst, src, key string, args Table, noWait, bind bool) error {
	vh := ch.vh()
	if src == "" || dst == "" {
		return amqpErr(AccessRefused, "operation not permitted on the default exchange")
	}
	sx, ok := vh.ex.Get(src)
	if !ok {
		return amqpErr(NotFound, "no exchange '%s' in vhost '/'", src)
	}
	dx, ok := vh.ex.Get(dst)
	if !ok {
		return amqpErr(NotFound, "no exchange '%s' in vhost '/'", dst)
	}
	if bind {
		if vh.ex.Bind(sx, dx, key, exchange.Table(args)) && sx.Durable && dx.Durable && vh.store != nil {
			vh.store.saveBinding(sx.Name, dx.Name, true, key, args)
		}
		if !noWait {
			ch.sendDurable(&ExchangeBindOk{})
		}
	} else {
		ok, gone := vh.ex.Unbind(sx, dx, key, exchange.Table(args))
		if ok && vh.store != nil {
			vh.store.deleteBinding(sx.Name, dx.Name, true, key, args)
		}
		for _, x := range gone {
			if x.Durable && vh.store != nil {
				vh.store.deleteExchange(x.Name)
			}
		}
		if !noWait {
			ch.sendDurable(&ExchangeUnbindOk{})
		}
	}
	return nil
}

func (ch *channel) queueDeclare(m *QueueDeclare) error {
	vq, err := ch.vh().declareQueue(ch.c, m.Queue, m.Passive, m.Durable, m.Exclusive, m.AutoDelete, m.Arguments)
	if err != nil {
		return err
	}
	if !m.NoWait {
		ready, _, consumers := vq.Counts()
		if vq.stream != nil {
			ready = int(vq.stream.count())
		}
		ch.sendDurable(&QueueDeclareOk{Queue: vq.Name(), MessageCount: uint32(ready), ConsumerCount: uint32(consumers)})
	}
	return nil
}

// lookupQueue finds a queue usable by this connection.
func (ch *channel) lookupQueue(name string) (*vqueue, error) {
	vq := ch.vh().queue(name)
	if vq == nil {
		return nil, amqpErr(NotFound, "no queue '%s' in vhost '/'", name)
	}
	if vq.owner != nil && vq.owner != ch.c {
		return nil, amqpErr(ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", name)
	}
	return vq, nil
}

func (ch *channel) queueBind(qname, xname, key string, args Table, noWait, bind bool) error {
	vh := ch.vh()
	vq, err := ch.lookupQueue(qname)
	if err != nil {
		return err
	}
	if xname == "" {
		return amqpErr(AccessRefused, "operation not permitted on the default exchange")
	}
	x, ok := vh.ex.Get(xname)
	if !ok {
		return amqpErr(NotFound, "no exchange '%s' in vhost '/'", xname)
	}
	if bind {
		if vh.ex.Bind(x, vq, key, exchange.Table(args)) && x.Durable && vq.Config().Durable && vh.store != nil {
			vh.store.saveBinding(x.Name, vq.Name(), false, key, args)
		}
		if !noWait {
			ch.sendDurable(&QueueBindOk{})
		}
		return nil
	}
	ok, gone := vh.ex.Unbind(x, vq, key, exchange.Table(args))
	if ok && vh.store != nil {
		vh.store.deleteBinding(x.Name, vq.Name(), false, key, args)
	}
	for _, gx := range gone {
		if gx.Durable && vh.store != nil {
			vh.store.deleteExchange(gx.Name)
		}
	}
	ch.sendDurable(&QueueUnbindOk{})
	return nil
}

func (ch *channel) queuePurge(m *QueuePurge) error {
	vq, err := ch.lookupQueue(m.Queue)
	if err != nil {
		return err
	}
	n := vq.Purge()
	if !m.NoWait {
		ch.send(&QueuePurgeOk{MessageCount: uint32(n)})
	}
	return nil
}

func (ch *channel) queueDelete(m *QueueDelete) error {
	vq := ch.vh().queue(m.Queue)
	if vq == nil {
		// RabbitMQ: deleting a missing queue succeeds.
		if !m.NoWait {
			ch.send(&QueueDeleteOk{})
		}
		return nil
	}
	if vq.owner != nil && vq.owner != ch.c {
		return amqpErr(ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", m.Queue)
	}
	n, err := ch.vh().deleteQueue(vq, m.IfUnused, m.IfEmpty)
	if err != nil {
		return err
	}
	if vq.owner == ch.c {
		for i, q := range ch.c.exclusive {
			if q == vq {
				ch.c.exclusive = append(ch.c.exclusive[:i], ch.c.exclusive[i+1:]...)
				break
			}
		}
	}
	if !m.NoWait {
		ch.sendDurable(&QueueDeleteOk{MessageCount: uint32(n)})
	}
	return nil
}

func (ch *channel) qos(m *BasicQos) error {
	if m.Global {
		ch.prefetchCount = int(m.PrefetchCount)
		ch.prefetchSize = int64(m.PrefetchSize)
	} else {
		ch.consumerPrefetch = int(m.PrefetchCount)
		if m.PrefetchSize != 0 {
			ch.prefetchSize = int64(m.PrefetchSize)
		}
	}
	ch.send(&BasicQosOk{})
	ch.drainAll()
	return nil
}

func (ch *channel) get(m *BasicGet) error {
	vq, err := ch.lookupQueue(m.Queue)
	if err != nil {
		return err
	}
	if vq.stream != nil {
		return amqpErr(PreconditionFailed, "queue '%s' in vhost '/' is a stream: basic.get is not supported", m.Queue)
	}
	es := vq.Pull(nil, 1, 0, m.NoAck, nil)
	if len(es) == 0 {
		ch.send(&BasicGetEmpty{})
		return nil
	}
	e := es[0]
	ch.nextTag++
	tag := ch.nextTag
	if !m.NoAck {
		ch.unacked = append(ch.unacked, delivery{tag: tag, q: vq, e: e})
		ch.unackedCount++
		ch.unackedBytes += int64(len(e.Msg.Body))
	}
	ready, _, _ := vq.Counts()
	c := ch.c
	c.out = AppendMethodFrame(c.out[:0], ch.id, &BasicGetOk{DeliveryTag: tag, Redelivered: e.Redelivered,
		Exchange: e.Msg.Exchange, RoutingKey: e.Msg.RoutingKey, MessageCount: uint32(ready)})
	c.out = AppendHeaderFrame(c.out, ch.id, ClassBasic, uint64(len(e.Msg.Body)), e.Msg.Props)
	c.out = AppendBodyFrames(c.out, ch.id, e.Msg.Body, c.frameMax)
	c.s.counts.out.Add(1)
	c.nc.Write(c.out)
	return nil
}
