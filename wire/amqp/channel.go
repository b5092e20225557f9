package amqp

// Channel class (20) and the per-channel state: content assembly of
// basic.publish, deliveries awaiting ack, prefetch (basic.qos), confirms,
// transactions, and dispatch of exchange/queue/basic/tx/confirm methods.

import (
	"errors"
	"slices"
	"sort"
	"sync"

	"quartet/engine/exchange"
	"quartet/engine/queue"
	"quartet/netpoll"
)

type netpollConn = netpoll.Conn

type channel struct {
	c       *connection
	id      uint16
	closing bool // sent channel.close, awaiting close-ok
	flow    bool

	// content assembly
	pub      BasicPublish
	pubState uint8 // 0 none, 1 awaiting header, 2 awaiting body
	pubEx    *exchange.Exchange
	pubBuf   []byte // props then body, owned by the message once complete
	pubProps int
	pubSize  int

	// deliveries
	nextTag      uint64
	unacked      []delivery
	unackedHead  int
	unackedCount int
	unackedBytes int64
	consumers    map[string]*consumer

	// basic.qos
	prefetchCount    int   // channel-wide (global=true)
	prefetchSize     int64 // channel-wide bytes
	consumerPrefetch int   // for consumers created later (global=false)

	// confirms
	confirm   bool
	pubSeq    uint64
	pending   map[uint64]*pendingConfirm
	completer *completions

	// transactions
	tx       bool
	txPubs   []txPublish
	txSettle []txSettle

	dests   []exchange.Destination
	replyTo *vqueue // direct reply-to pseudo queue of this channel
}

type delivery struct {
	tag  uint64
	q    *vqueue
	e    queue.Entry
	cons *consumer // nil: basic.get
	done bool
}

type pendingConfirm struct {
	waits int
	err   bool
}

type txPublish struct {
	m         *queue.Message
	mandatory bool
	headers   Table
}

type txSettle struct {
	id       uint32
	tag      uint64
	multiple bool
	requeue  bool
}

func newChannel(c *connection, id uint16) *channel {
	return &channel{c: c, id: id, flow: true, consumers: map[string]*consumer{}}
}

func (ch *channel) vh() *vhost { return ch.c.s.vh }

func (ch *channel) send(m Method) { ch.c.send(ch.id, m) }

// sendDurable sends m once the definitions written so far are durable
// (declare-ok, bind-ok, delete-ok after fdatasync of the metadata log), in
// order with everything sent after it.
func (ch *channel) sendDurable(m Method) {
	st := ch.vh().store
	if st == nil {
		ch.send(m)
		return
	}
	frame := AppendMethodFrame(nil, ch.id, m)
	nc := ch.c.nc
	slot := nc.Reserve()
	if !st.afterMeta(func() { nc.Execute(func(netpoll.Conn) { slot.Fill(frame) }) }) {
		slot.Fill(frame)
	}
}

// onMethod dispatches one method of an open channel.
func (ch *channel) onMethod(id uint32, r *Reader) error {
	if ch.pubState != 0 {
		return amqpErr(UnexpectedFrame, "expected content header for class 60, got non content header frame instead")
	}
	// Hot paths decode into values that do not escape.
	switch id {
	case IDBasicPublish:
		ch.pub.Decode(r)
		if r.Err() != nil {
			return r.Err()
		}
		return ch.onPublish()
	case IDBasicAck:
		var m BasicAck
		m.Decode(r)
		if r.Err() != nil {
			return r.Err()
		}
		return ch.settle(IDBasicAck, m.DeliveryTag, m.Multiple, false)
	}
	m := NewMethod(id)
	if m == nil {
		return amqpErr(CommandInvalid, "unknown method %d.%d", id>>16, id&0xffff)
	}
	m.Decode(r)
	if err := r.Err(); err != nil {
		return amqpErr(SyntaxError, "%s: %v", m.Name(), err)
	}
	switch m := m.(type) {
	case *ChannelClose:
		ch.release()
		delete(ch.c.channels, ch.id)
		ch.send(&ChannelCloseOk{})
		return nil
	case *ChannelCloseOk:
		return nil
	case *ChannelFlow:
		ch.flow = m.Active
		ch.send(&ChannelFlowOk{Active: m.Active})
		if m.Active {
			ch.drainAll()
		}
		return nil
	case *ChannelFlowOk:
		return nil
	case *ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *ExchangeDelete:
		return ch.exchangeDelete(m)
	case *ExchangeBind:
		return ch.exchangeBind(m.Destination, m.Source, m.RoutingKey, m.Arguments, m.NoWait, true)
	case *ExchangeUnbind:
		return ch.exchangeBind(m.Destination, m.Source, m.RoutingKey, m.Arguments, m.NoWait, false)
	case *QueueDeclare:
		return ch.queueDeclare(m)
	case *QueueBind:
		return ch.queueBind(m.Queue, m.Exchange, m.RoutingKey, m.Arguments, m.NoWait, true)
	case *QueueUnbind:
		return ch.queueBind(m.Queue, m.Exchange, m.RoutingKey, m.Arguments, false, false)
	case *QueuePurge:
		return ch.queuePurge(m)
	case *QueueDelete:
		return ch.queueDelete(m)
	case *BasicQos:
		return ch.qos(m)
	case *BasicConsume:
		return ch.consume(m)
	case *BasicCancel:
		return ch.cancel(m)
	case *BasicGet:
		return ch.get(m)
	case *BasicNack:
		return ch.settle(IDBasicNack, m.DeliveryTag, m.Multiple, m.Requeue)
	case *BasicReject:
		return ch.settle(IDBasicReject, m.DeliveryTag, false, m.Requeue)
	case *BasicRecover:
		return ch.recover(m.Requeue, true)
	case *BasicRecoverAsync:
		return ch.recover(m.Requeue, false)
	case *ConfirmSelect:
		if ch.tx {
			return amqpErr(PreconditionFailed, "cannot switch from tx to confirm mode")
		}
		if !ch.confirm {
			ch.confirm = true
			ch.pending = map[uint64]*pendingConfirm{}
			ch.completer = &completions{ch: ch}
		}
		if !m.Nowait {
			ch.send(&ConfirmSelectOk{})
		}
		return nil
	case *TxSelect:
		if ch.confirm {
			return amqpErr(PreconditionFailed, "cannot switch from confirm to tx mode")
		}
		ch.tx = true
		ch.send(&TxSelectOk{})
		return nil
	case *TxCommit:
		return ch.txCommit()
	case *TxRollback:
		if !ch.tx {
			return amqpErr(PreconditionFailed, "channel is not transactional")
		}
		ch.txPubs, ch.txSettle = nil, nil
		ch.send(&TxRollbackOk{})
		return nil
	}
	return amqpErr(CommandInvalid, "unexpected method %s on a channel", m.Name())
}

// release frees what the channel holds: consumers are cancelled and
// unacked deliveries requeued (in delivery order).
func (ch *channel) release() {
	for tag, cons := range ch.consumers {
		cons.stop()
		delete(ch.consumers, tag)
	}
	ch.requeueAll()
	ch.pubState, ch.pubBuf = 0, nil
	ch.txPubs, ch.txSettle = nil, nil
	if ch.replyTo != nil {
		ch.vh().deleteQueue(ch.replyTo, false, false)
		ch.replyTo = nil
	}
	ch.closing = true
}

func (ch *channel) requeueAll() {
	var batch []queue.Entry
	var bq *vqueue
	flush := func() {
		if len(batch) > 0 && bq.stream == nil {
			bq.Requeue(batch)
		}
		batch = nil
	}
	for i := ch.unackedHead; i < len(ch.unacked); i++ {
		d := &ch.unacked[i]
		if d.done {
			continue
		}
		if d.q != bq {
			flush()
			bq = d.q
		}
		batch = append(batch, d.e)
	}
	flush()
	ch.unacked, ch.unackedHead, ch.unackedCount, ch.unackedBytes = nil, 0, 0, 0
	for _, cons := range ch.consumers {
		cons.unacked = 0
	}
}

// ---- publish ----

func (ch *channel) onPublish() error {
	p := &ch.pub
	if c := ch.c; !c.published {
		c.published = true
		if c.blockReason != "" {
			c.pause() // this message completes, then reads stop
		}
	}
	if p.Exchange != "" {
		x, ok := ch.vh().ex.Get(p.Exchange)
		if !ok {
			return amqpErr(NotFound, "no exchange '%s' in vhost '/'", p.Exchange)
		}
		if x.Internal {
			return amqpErr(AccessRefused, "cannot publish to internal exchange '%s' in vhost '/'", p.Exchange)
		}
		ch.pubEx = x
	} else {
		ch.pubEx = nil
	}
	if p.Immediate {
		return amqpErr(NotImplemented, "immediate=true")
	}
	ch.pubState = 1
	return nil
}

func (ch *channel) onHeader(b []byte) error {
	if ch.pubState != 1 {
		return amqpErr(UnexpectedFrame, "unexpected content header frame")
	}
	h, err := ParseContentHeader(b)
	if err != nil {
		return amqpErr(FrameError, "content header: %v", err)
	}
	if h.Class != ClassBasic {
		return amqpErr(FrameError, "content header class %d", h.Class)
	}
	if h.BodySize > uint64(ch.c.s.cfg.BodyBytesMax) {
		ch.pubState = 0
		return amqpErr(PreconditionFailed, "message size %d is larger than configured max size %d", h.BodySize, ch.c.s.cfg.BodyBytesMax)
	}
	ch.pubProps = len(h.Props)
	ch.pubSize = int(h.BodySize)
	// Grow with the body frames rather than trusting the announced size.
	ch.pubBuf = make([]byte, len(h.Props), len(h.Props)+min(int(h.BodySize), 1<<20))
	copy(ch.pubBuf, h.Props)
	if h.BodySize == 0 {
		return ch.complete()
	}
	ch.pubState = 2
	return nil
}

func (ch *channel) onBody(b []byte) error {
	if ch.pubState != 2 {
		return amqpErr(UnexpectedFrame, "unexpected content body frame")
	}
	if len(ch.pubBuf)+len(b) > ch.pubProps+ch.pubSize {
		return amqpErr(FrameError, "content body larger than its header said")
	}
	ch.pubBuf = append(ch.pubBuf, b...)
	if len(ch.pubBuf) == ch.pubProps+ch.pubSize {
		return ch.complete()
	}
	return nil
}

func (ch *channel) complete() error {
	ch.pubState = 0
	buf := ch.pubBuf
	ch.pubBuf = nil
	props, body := buf[:ch.pubProps:ch.pubProps], buf[ch.pubProps:]
	// Headers are decoded for headers routing and for CC/BCC
	// (sender-selected distribution), only when the message has them.
	wantHeaders := len(props) >= 2 && props[0]&byte(FlagHeaders>>8) != 0
	info, err := scanProps(props, wantHeaders)
	if err != nil {
		if errors.Is(err, ErrSyntax) {
			return amqpErr(PreconditionFailed, "invalid expiration")
		}
		return amqpErr(SyntaxError, "content properties: %v", err)
	}
	if _, bcc := info.headers["BCC"]; bcc {
		// BCC routes but is not delivered.
		bp, err := decodeProps(props)
		if err != nil {
			return amqpErr(SyntaxError, "content properties: %v", err)
		}
		h := cloneTable(bp.Headers)
		delete(h, "BCC")
		bp.Headers = h
		props = bp.Append(nil)
	}
	if info.replyTo == replyToName {
		if ch.replyTo == nil {
			return amqpErr(PreconditionFailed, "fast reply consumer does not exist")
		}
		bp, err := decodeProps(props)
		if err != nil {
			return amqpErr(SyntaxError, "content properties: %v", err)
		}
		bp.ReplyTo = ch.replyTo.Name()
		props = bp.Append(nil)
	}
	m := &queue.Message{Exchange: ch.pub.Exchange, RoutingKey: ch.pub.RoutingKey, Props: props, Body: body,
		Priority: info.priority, TTL: info.ttl, Persistent: info.deliveryMode == 2}
	if ch.tx {
		ch.txPubs = append(ch.txPubs, txPublish{m: m, mandatory: ch.pub.Mandatory, headers: info.headers})
		return nil
	}
	return ch.publish(m, ch.pub.Mandatory, info.headers, nil)
}

// publish routes and enqueues one complete message; tx (may be nil) counts
// store completions for a transaction commit.
func (ch *channel) publish(m *queue.Message, mandatory bool, headers Table, tx *txCommit) error {
	var err error
	ch.dests, err = ch.vh().route(m.Exchange, m.RoutingKey, headers, ch.dests[:0])
	if err != nil {
		return err
	}
	for _, k := range []string{"CC", "BCC"} {
		keys, _ := headers[k].([]any)
		for _, key := range keys {
			if ks, ok := key.(string); ok {
				n := len(ch.dests)
				ch.dests, _ = ch.vh().route(m.Exchange, ks, headers, ch.dests)
				// keep the destinations distinct
				for i := n; i < len(ch.dests); i++ {
					if slices.Contains(ch.dests[:n], ch.dests[i]) {
						ch.dests = slices.Delete(ch.dests, i, i+1)
						i--
					}
				}
			}
		}
	}
	var seq uint64
	if ch.confirm {
		ch.pubSeq++
		seq = ch.pubSeq
	}
	if len(ch.dests) == 0 {
		if mandatory {
			ch.sendReturn(m, NoRoute, "NO_ROUTE")
		} else {
			ch.c.s.counts.in.Add(1)
		}
		if ch.confirm {
			ch.send(&BasicAck{DeliveryTag: seq})
		}
		return nil
	}
	var done func(error)
	switch {
	case ch.confirm:
		done = ch.completer.doneFunc(seq)
	case tx != nil:
		done = tx.doneFunc()
	}
	accepted, waits, over, backlog := ch.vh().enqueue(m, ch.dests, done)
	clear(ch.dests)
	if accepted {
		ch.c.s.counts.in.Add(1)
	}
	if over != nil && (!ch.confirm || backlog > flowReadyHighConfirm) {
		ch.c.flowPause(over)
	}
	if tx != nil {
		tx.waits += waits
	}
	if ch.confirm {
		switch {
		case !accepted:
			ch.send(&BasicNack{DeliveryTag: seq})
			if waits > 0 {
				ch.pending[seq] = &pendingConfirm{waits: waits, err: true}
			}
		case waits == 0:
			ch.send(&BasicAck{DeliveryTag: seq})
		default:
			ch.pending[seq] = &pendingConfirm{waits: waits}
		}
	}
	return nil
}

func (ch *channel) sendReturn(m *queue.Message, code uint16, text string) {
	c := ch.c
	c.out = AppendMethodFrame(c.out[:0], ch.id, &BasicReturn{ReplyCode: code, ReplyText: text,
		Exchange: m.Exchange, RoutingKey: m.RoutingKey})
	c.out = AppendHeaderFrame(c.out, ch.id, ClassBasic, uint64(len(m.Body)), m.Props)
	c.out = AppendBodyFrames(c.out, ch.id, m.Body, c.frameMax)
	c.nc.Write(c.out)
}

// ---- acks ----

func (ch *channel) findTag(tag uint64) int {
	l := ch.unacked[ch.unackedHead:]
	i := sort.Search(len(l), func(i int) bool { return l[i].tag >= tag })
	if i < len(l) && l[i].tag == tag && !l[i].done {
		return ch.unackedHead + i
	}
	return -1
}

// settle acks, nacks or rejects deliveries.
func (ch *channel) settle(id uint32, tag uint64, multiple, requeue bool) error {
	if ch.tx {
		if !multiple && tag != 0 && ch.findTag(tag) < 0 {
			return amqpErr(PreconditionFailed, "unknown delivery tag %d", tag)
		}
		ch.txSettle = append(ch.txSettle, txSettle{id: id, tag: tag, multiple: multiple, requeue: requeue})
		return nil
	}
	return ch.settleNow(id, tag, multiple, requeue)
}

func (ch *channel) settleNow(id uint32, tag uint64, multiple, requeue bool) error {
	lo, hi := 0, 0
	if multiple {
		lo = ch.unackedHead
		hi = lo
		for hi < len(ch.unacked) && (tag == 0 || ch.unacked[hi].tag <= tag) {
			hi++
		}
		if tag != 0 && hi == lo && ch.findTag(tag) < 0 {
			return amqpErr(PreconditionFailed, "unknown delivery tag %d", tag)
		}
	} else {
		i := ch.findTag(tag)
		if i < 0 {
			return amqpErr(PreconditionFailed, "unknown delivery tag %d", tag)
		}
		lo, hi = i, i+1
	}
	var batch []queue.Entry
	var stack [64]queue.Entry
	var bq *vqueue
	flush := func() {
		if len(batch) == 0 {
			return
		}
		switch {
		case bq.stream != nil || bq.replyTo != nil:
		case id == IDBasicAck:
			bq.Ack(batch)
		case requeue:
			bq.Requeue(batch)
		default:
			bq.Reject(batch)
		}
		batch = stack[:0]
	}
	batch = stack[:0]
	freed := false
	for i := lo; i < hi; i++ {
		d := &ch.unacked[i]
		if d.done {
			continue
		}
		if d.q != bq {
			flush()
			bq = d.q
		}
		batch = append(batch, d.e)
		d.done = true
		ch.unackedCount--
		ch.unackedBytes -= int64(len(d.e.Msg.Body))
		if d.cons != nil {
			d.cons.unacked--
			freed = true
		}
		d.e = queue.Entry{}
	}
	flush()
	for ch.unackedHead < len(ch.unacked) && ch.unacked[ch.unackedHead].done {
		ch.unackedHead++
	}
	if ch.unackedHead == len(ch.unacked) {
		ch.unacked, ch.unackedHead = ch.unacked[:0], 0
	} else if ch.unackedHead > 1024 && ch.unackedHead > len(ch.unacked)/2 {
		n := copy(ch.unacked, ch.unacked[ch.unackedHead:])
		ch.unacked, ch.unackedHead = ch.unacked[:n], 0
	}
	if freed || ch.prefetchCount > 0 || ch.prefetchSize > 0 {
		ch.drainAll()
	}
	return nil
}

func (ch *channel) recover(requeue, sync bool) error {
	if !requeue {
		return amqpErr(NotImplemented, "requeue=false")
	}
	ch.requeueAll()
	if sync {
		ch.send(&BasicRecoverOk{})
	}
	ch.drainAll()
	return nil
}

func (ch *channel) drainAll() {
	for _, cons := range ch.consumers {
		cons.drain()
	}
}

// ---- transactions ----

type txCommit struct {
	ch    *channel
	waits int
	done  int
	err   bool
	sent  bool
}

func (t *txCommit) doneFunc() func(error) {
	return func(err error) {
		t.ch.c.nc.Execute(func(_ netpollConn) {
			t.done++
			if err != nil {
				t.err = true
			}
			t.maybeFinish()
		})
	}
}

func (t *txCommit) maybeFinish() {
	if t.sent || t.done < t.waits || t.ch.closing {
		return
	}
	t.sent = true
	t.ch.send(&TxCommitOk{})
}

func (ch *channel) txCommit() error {
	if !ch.tx {
		return amqpErr(PreconditionFailed, "channel is not transactional")
	}
	pubs, settles := ch.txPubs, ch.txSettle
	ch.txPubs, ch.txSettle = nil, nil
	t := &txCommit{ch: ch}
	for _, p := range pubs {
		if err := ch.publish(p.m, p.mandatory, p.headers, t); err != nil {
			return err
		}
	}
	for _, s := range settles {
		if err := ch.settleNow(s.id, s.tag, s.multiple, s.requeue); err != nil {
			return err
		}
	}
	t.maybeFinish()
	return nil
}

// ---- confirms completed by the store (any goroutine) ----

type completions struct {
	ch        *channel
	mu        sync.Mutex
	seqs      []uint64
	errs      []uint64
	scheduled bool
}

func (cp *completions) doneFunc(seq uint64) func(error) {
	return func(err error) {
		cp.mu.Lock()
		if err != nil {
			cp.errs = append(cp.errs, seq)
		} else {
			cp.seqs = append(cp.seqs, seq)
		}
		if cp.scheduled {
			cp.mu.Unlock()
			return
		}
		cp.scheduled = true
		cp.mu.Unlock()
		cp.ch.c.nc.Execute(func(_ netpollConn) { cp.flush() })
	}
}

// flush runs on the loop: it settles completed confirms, acking the longest
// run below the lowest still pending with one multiple ack.
func (cp *completions) flush() {
	cp.mu.Lock()
	seqs, errs := cp.seqs, cp.errs
	cp.seqs, cp.errs = nil, nil
	cp.scheduled = false
	cp.mu.Unlock()
	ch := cp.ch
	if ch.closing || !ch.confirm {
		return
	}
	for _, s := range errs {
		if p := ch.pending[s]; p != nil {
			p.waits--
			if !p.err {
				p.err = true
				ch.send(&BasicNack{DeliveryTag: s})
			}
			if p.waits <= 0 {
				delete(ch.pending, s)
			}
		}
	}
	var acked []uint64
	for _, s := range seqs {
		p := ch.pending[s]
		if p == nil {
			continue
		}
		p.waits--
		if p.waits > 0 {
			continue
		}
		delete(ch.pending, s)
		if !p.err {
			acked = append(acked, s)
		}
	}
	if len(acked) == 0 {
		return
	}
	slices.Sort(acked)
	low := ^uint64(0)
	for s := range ch.pending {
		low = min(low, s)
	}
	i := sort.Search(len(acked), func(i int) bool { return acked[i] >= low })
	c := ch.c
	c.out = c.out[:0]
	if i > 0 {
		c.out = AppendMethodFrame(c.out, ch.id, &BasicAck{DeliveryTag: acked[i-1], Multiple: true})
	}
	for _, s := range acked[i:] {
		c.out = AppendMethodFrame(c.out, ch.id, &BasicAck{DeliveryTag: s})
	}
	c.nc.Write(c.out)
}
