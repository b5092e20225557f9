package amqp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine/exchange"
	"quartet/engine/queue"
	"quartet/netpoll"
	"quartet/segment"
)

// vhost is the one virtual host ("/"): exchanges, bindings and queues, and
// the glue that persists durable definitions and routes dead letters.
type vhost struct {
	log *slog.Logger
	ex  *exchange.Registry

	mu     sync.RWMutex
	queues map[string]*vqueue

	store *store // nil: nothing is persisted
}

// vqueue is a queue with what the AMQP layer keeps beside it.
type vqueue struct {
	*queue.Queue
	args    Table
	owner   *connection // exclusive owner
	dlx     *string
	dlrk    *string
	expires time.Duration
	hadCons bool
	typ     string // classic, quorum, stream
	stream  *streamQueue
	replyTo *consumer // direct reply-to pseudo queue
	// stream retention (x-max-age, x-max-length-bytes,
	// x-stream-max-segment-size-bytes)
	streamAge      time.Duration
	streamBytes    int64
	streamSegBytes int64
	expiryT        *time.Timer
	vh             *vhost

	flowMu      sync.Mutex
	flowWaiters []*connection // publishers paused by this queue's backlog
	flowOn      atomic.Bool
}

// Flow control: a queue whose consumers fall behind (more than
// flowReadyHigh ready messages while it has consumers) pauses reading from
// the connections publishing to it until its consumers bring it below
// flowReadyLow (or flowPauseMax passes), as RabbitMQ's credit flow does: the
// consumer gets the CPU, latency and memory stay bounded.
//
// Publishers in confirm mode limit themselves (outstanding confirms), so
// they are paused only at a far larger backlog: a pause shows in their
// publish-to-confirm latency.
const (
	flowReadyHigh        = 20000
	flowReadyHighConfirm = 200000
	flowReadyLow         = 5000
	flowPauseMax         = 100 * time.Millisecond
)

func (vq *vqueue) addFlowWaiter(c *connection) {
	vq.flowMu.Lock()
	vq.flowWaiters = append(vq.flowWaiters, c)
	vq.flowOn.Store(true)
	vq.flowMu.Unlock()
}

// releaseFlow resumes the publishers paused by this queue.
func (vq *vqueue) releaseFlow() {
	vq.flowMu.Lock()
	ws := vq.flowWaiters
	vq.flowWaiters = nil
	vq.flowOn.Store(false)
	vq.flowMu.Unlock()
	for _, c := range ws {
		c.nc.Execute(func(netpoll.Conn) { c.flowResume() })
	}
}

func newVhost(log *slog.Logger) *vhost {
	v := &vhost{log: log, ex: exchange.NewRegistry(), queues: map[string]*vqueue{}}
	v.ex.Default = func(key string) exchange.Destination {
		if q := v.queue(key); q != nil {
			return q
		}
		return nil
	}
	return v
}

func (v *vhost) queue(name string) *vqueue {
	v.mu.RLock()
	q := v.queues[name]
	v.mu.RUnlock()
	return q
}

func genName(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// queueArgs parses the x- arguments RabbitMQ knows into a queue.Config.
func queueArgs(name string, durable, exclusive, autoDelete bool, args Table) (queue.Config, *vqueue, error) {
	cfg := queue.DefaultConfig(name)
	cfg.Durable, cfg.Exclusive, cfg.AutoDelete = durable, exclusive, autoDelete
	vq := &vqueue{args: args, typ: "classic"}
	for k, val := range args {
		n, isInt := exchange.AsInt64(val)
		s, isStr := val.(string)
		bad := func() error {
			return amqpErr(PreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '/': %v", k, name, val)
		}
		switch k {
		case "x-message-ttl":
			if !isInt || n < 0 {
				return cfg, nil, bad()
			}
			cfg.MessageTTL = n
		case "x-expires":
			if !isInt || n <= 0 {
				return cfg, nil, bad()
			}
			vq.expires = time.Duration(n) * time.Millisecond
		case "x-max-length":
			if !isInt || n < 0 {
				return cfg, nil, bad()
			}
			cfg.MaxLength = n
		case "x-max-length-bytes":
			if !isInt || n < 0 {
				return cfg, nil, bad()
			}
			cfg.MaxLengthBytes = n
		case "x-overflow":
			switch s {
			case "drop-head":
				cfg.Overflow = queue.DropHead
			case "reject-publish":
				cfg.Overflow = queue.RejectPublish
			case "reject-publish-dlx":
				cfg.Overflow = queue.RejectPublishDLX
			default:
				return cfg, nil, bad()
			}
		case "x-dead-letter-exchange":
			if !isStr {
				return cfg, nil, bad()
			}
			vq.dlx = &s
		case "x-dead-letter-routing-key":
			if !isStr {
				return cfg, nil, bad()
			}
			vq.dlrk = &s
		case "x-max-priority":
			if !isInt || n < 0 || n > 255 {
				return cfg, nil, bad()
			}
			cfg.MaxPriority = uint8(n)
		case "x-single-active-consumer":
			b, ok := val.(bool)
			if !ok {
				return cfg, nil, bad()
			}
			cfg.SingleActive = b
		case "x-delivery-limit":
			if !isInt || n < 0 {
				return cfg, nil, bad()
			}
			cfg.DeliveryLimit = n
		case "x-queue-type":
			switch s {
			case "classic", "quorum", "stream":
				vq.typ = s
			default:
				return cfg, nil, bad()
			}
		case "x-max-age":
			d, err := parseMaxAge(s)
			if !isStr || err != nil {
				return cfg, nil, bad()
			}
			vq.streamAge = d
		case "x-stream-max-segment-size-bytes":
			if !isInt || n <= 0 {
				return cfg, nil, bad()
			}
			vq.streamSegBytes = n
		case "x-queue-mode", "x-queue-version", "x-queue-master-locator", "x-dead-letter-strategy",
			"x-quorum-initial-group-size", "x-initial-cluster-size":
			// accepted, no effect on a single node
		}
	}
	if vq.typ != "classic" {
		if !durable || exclusive || autoDelete {
			return cfg, nil, amqpErr(PreconditionFailed, "invalid property '%s' for queue '%s': %s queues must be durable, non-exclusive and not auto-delete",
				map[bool]string{true: "durable", false: "exclusive/auto-delete"}[!durable], name, vq.typ)
		}
	}
	if vq.typ == "stream" && cfg.MaxLengthBytes >= 0 {
		// On a stream x-max-length-bytes is retention, not overflow.
		vq.streamBytes, cfg.MaxLengthBytes = cfg.MaxLengthBytes, -1
	}
	if vq.typ != "quorum" && cfg.DeliveryLimit >= 0 {
		// RabbitMQ ignores x-delivery-limit on classic queues.
		cfg.DeliveryLimit = -1
	}
	return cfg, vq, nil
}

// declareQueue creates or checks a queue.
func (v *vhost) declareQueue(c *connection, name string, passive, durable, exclusive, autoDelete bool, args Table) (*vqueue, error) {
	generated := false
	if name == "" && !passive {
		name = genName("amq.gen-")
		generated = true
	}
	if q := v.queue(name); q != nil {
		if q.owner != nil && q.owner != c {
			return nil, amqpErr(ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", name)
		}
		if !passive {
			cfg := q.Config()
			if cfg.Durable != durable || cfg.AutoDelete != autoDelete || (q.owner != nil) != exclusive {
				return nil, amqpErr(PreconditionFailed, "inequivalent arg 'durable' for queue '%s' in vhost '/': received '%v' but current is '%v'", name, durable, cfg.Durable)
			}
			for _, k := range []string{"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-overflow",
				"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-priority", "x-queue-type", "x-single-active-consumer", "x-delivery-limit"} {
				a, b := q.args[k], args[k]
				if k == "x-queue-type" && (a == nil || b == nil) {
					continue
				}
				if fmt.Sprint(a) != fmt.Sprint(b) {
					return nil, amqpErr(PreconditionFailed, "inequivalent arg '%s' for queue '%s' in vhost '/': received %s but current is %s", k, name, argStr(b), argStr(a))
				}
			}
		}
		q.Touch()
		return q, nil
	}
	if passive {
		return nil, amqpErr(NotFound, "no queue '%s' in vhost '/'", name)
	}
	if strings.HasPrefix(name, "amq.") && !generated {
		return nil, amqpErr(AccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	cfg, vq, err := queueArgs(name, durable, exclusive, autoDelete, args)
	if err != nil {
		return nil, err
	}
	vq.vh = v
	if exclusive {
		vq.owner = c
	}
	v.mu.Lock()
	if q := v.queues[name]; q != nil { // lost a race: check again
		v.mu.Unlock()
		return v.declareQueue(c, name, passive, durable, exclusive, autoDelete, args)
	}
	if err := v.attach(vq, cfg); err != nil {
		v.mu.Unlock()
		return nil, err
	}
	v.queues[name] = vq
	v.mu.Unlock()
	if exclusive {
		c.exclusive = append(c.exclusive, vq)
	}
	if durable && !exclusive && v.store != nil {
		v.store.saveQueue(vq) // exclusive queues die with their connection
	}
	v.armExpiry(vq)
	return vq, nil
}

// attach builds the queue (or stream) behind vq.
func (v *vhost) attach(vq *vqueue, cfg queue.Config) error {
	cfg.DeadLetter = vq.deadLetter
	if cfg.Durable && !cfg.Exclusive && v.store != nil {
		cfg.Store = v.store
	}
	vq.Queue = queue.New(cfg)
	if vq.typ == "stream" {
		if v.store == nil {
			return amqpErr(NotImplemented, "stream queues need the storage engine")
		}
		s, err := v.store.openStream(cfg.Name)
		if err != nil {
			return amqpErr(InternalError, "open stream '%s': %v", cfg.Name, err)
		}
		seg := vq.streamSegBytes
		if seg <= 0 {
			seg = 500 << 20 // RabbitMQ's default stream segment size
		}
		s.l.SetConfig(segment.Config{SegmentBytes: seg, RetentionBytes: vq.streamBytes, RetentionAge: vq.streamAge})
		vq.stream = s
	}
	return nil
}

// parseMaxAge parses RabbitMQ's x-max-age: a number and a unit of Y, M, D,
// h, m or s ("7D", "12h").
func parseMaxAge(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("bad max age %q", s)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad max age %q", s)
	}
	unit := map[byte]time.Duration{'Y': 365 * 24 * time.Hour, 'M': 30 * 24 * time.Hour, 'D': 24 * time.Hour,
		'h': time.Hour, 'm': time.Minute, 's': time.Second}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("bad max age unit in %q", s)
	}
	return time.Duration(n) * unit, nil
}

func argStr(v any) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprintf("'%v'", v)
}

// armExpiry (x-expires) deletes the queue once unused for its expiry.
func (v *vhost) armExpiry(vq *vqueue) {
	if vq.expires <= 0 {
		return
	}
	var check func()
	check = func() {
		last, consumers := vq.LastUsed()
		if vq.Deleted() {
			return
		}
		if consumers == 0 && time.Since(last) >= vq.expires {
			v.deleteQueue(vq, false, false)
			return
		}
		wait := vq.expires - time.Since(last)
		if consumers > 0 || wait <= 0 {
			wait = vq.expires
		}
		vq.expiryT = time.AfterFunc(wait, check)
	}
	vq.expiryT = time.AfterFunc(vq.expires, check)
}

// deleteQueue removes a queue, its bindings and its stored messages.
func (v *vhost) deleteQueue(vq *vqueue, ifUnused, ifEmpty bool) (int, error) {
	n, err := vq.Delete(ifUnused, ifEmpty)
	if err != nil {
		if errors.Is(err, queue.ErrInUse) || errors.Is(err, queue.ErrNotEmpty) {
			return 0, amqpErr(PreconditionFailed, "%v", err)
		}
		return 0, err
	}
	v.mu.Lock()
	if v.queues[vq.Name()] == vq {
		delete(v.queues, vq.Name())
	}
	v.mu.Unlock()
	for _, x := range v.ex.UnbindAll(vq) {
		if x.Durable && v.store != nil {
			v.store.deleteExchange(x.Name)
		}
	}
	if vq.Config().Durable && !vq.Config().Exclusive && v.store != nil {
		v.store.deleteQueue(vq)
	}
	if vq.expiryT != nil {
		vq.expiryT.Stop()
	}
	return n, nil
}

// route resolves exchange name and key to queues, appending to out.
func (v *vhost) route(exName, key string, headers Table, out []exchange.Destination) ([]exchange.Destination, error) {
	out, err := v.ex.RouteName(exName, key, headers, out)
	if err != nil {
		return out, amqpErr(NotFound, "no exchange '%s' in vhost '/'", exName)
	}
	return out, nil
}

// deadLetter republishes dead-lettered entries of vq to its dead-letter
// exchange with an x-death header (queue.Config.DeadLetter).
func (vq *vqueue) deadLetter(_ *queue.Queue, es []queue.Entry, reason queue.Reason) {
	if vq.dlx == nil {
		return
	}
	v := vq.vh
	var dests []exchange.Destination
	for _, e := range es {
		m := e.Msg
		key := m.RoutingKey
		if vq.dlrk != nil {
			key = *vq.dlrk
		}
		props, err := decodeProps(m.Props)
		if err != nil {
			continue
		}
		if props.Headers == nil {
			props.Headers = Table{}
		} else {
			props.Headers = cloneTable(props.Headers)
		}
		cycle := addDeath(props.Headers, vq.Name(), string(reason), m.Exchange, m.RoutingKey, props.Expiration)
		props.Flags |= FlagHeaders
		props.Flags &^= FlagExpiration
		props.Expiration = ""
		nm := &queue.Message{Exchange: *vq.dlx, RoutingKey: key, Props: props.Append(nil), Body: m.Body,
			Priority: m.Priority, TTL: -1, Persistent: m.Persistent}
		dests, err = v.route(*vq.dlx, key, props.Headers, dests[:0])
		if err != nil || len(dests) == 0 {
			continue
		}
		// Cut cycles that no rejection breaks (RabbitMQ drops them).
		if reason != queue.ReasonRejected {
			dests = slices.DeleteFunc(dests, func(d exchange.Destination) bool { return cycle[d.DestinationName()] })
		}
		v.enqueue(nm, dests, nil)
	}
}

func cloneTable(t Table) Table {
	n := make(Table, len(t))
	for k, v := range t {
		n[k] = v
	}
	return n
}

// addDeath updates the x-death header the way RabbitMQ does and returns the
// queues already in it whose deaths were not rejections.
func addDeath(h Table, qname, reason, exName, key, expiration string) map[string]bool {
	deaths, _ := h["x-death"].([]any)
	cycle := map[string]bool{}
	found := -1
	for i, d := range deaths {
		t, ok := d.(Table)
		if !ok {
			continue
		}
		if t["reason"] != "rejected" {
			if qn, ok := t["queue"].(string); ok {
				cycle[qn] = true
			}
		}
		if t["queue"] == qname && t["reason"] == reason {
			found = i
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	if found >= 0 {
		t := cloneTable(deaths[found].(Table))
		cnt, _ := exchange.AsInt64(t["count"])
		t["count"] = cnt + 1
		t["time"] = now
		deaths = append([]any{t}, slices.Delete(slices.Clone(deaths), found, found+1)...)
	} else {
		t := Table{"queue": qname, "reason": reason, "count": int64(1), "exchange": exName,
			"routing-keys": []any{key}, "time": now}
		if expiration != "" {
			t["original-expiration"] = expiration
		}
		deaths = append([]any{t}, deaths...)
	}
	h["x-death"] = deaths
	if _, ok := h["x-first-death-queue"]; !ok {
		h["x-first-death-queue"] = qname
		h["x-first-death-reason"] = reason
		h["x-first-death-exchange"] = exName
	}
	h["x-last-death-queue"] = qname
	h["x-last-death-reason"] = reason
	h["x-last-death-exchange"] = exName
	return cycle
}

// enqueue puts m on the destination queues. Persistent messages routed to
// durable queues are appended to the store first; done (may be nil) is
// called with the outcome once the message is durable (at once when no
// store write is needed), from any goroutine. It reports whether every
// queue accepted the message (false: some queue refused it by overflow).
func (v *vhost) enqueue(m *queue.Message, dests []exchange.Destination, done func(error)) (accepted bool, waits int, over *vqueue, backlog int) {
	accepted = true
	var durable []*vqueue
	if m.Persistent && v.store != nil {
		for _, d := range dests {
			if vq, ok := d.(*vqueue); ok && vq.Config().Durable && !vq.Config().Exclusive && vq.stream == nil {
				durable = append(durable, vq)
			}
		}
	}
	if len(durable) > 0 {
		v.store.persist(m, durable, done)
		if done != nil {
			waits++
		}
	}
	for _, d := range dests {
		vq, ok := d.(*vqueue)
		if !ok {
			continue
		}
		switch {
		case vq.stream != nil:
			if vq.stream.append(m, done) {
				waits++
			}
		case vq.replyTo != nil:
			vq.replyTo.direct(m)
		default:
			ok, b := vq.PublishBacklog(m)
			if !ok {
				accepted = false
			}
			if b > flowReadyHigh && b > backlog {
				over, backlog = vq, b
			}
		}
	}
	return accepted, waits, over, backlog
}
