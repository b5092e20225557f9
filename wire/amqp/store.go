package amqp

// Durable state. Definitions (durable exchanges, queues, bindings) live in
// the engine's metadata catalog under the namespaces amqp.x, amqp.q and
// amqp.b. Persistent messages on durable queues share one internal log,
// "amqp-queues" (small queues stay cheap: no file per queue):
//
//	record key "m": id u64 | nqueues u16 | queue shortstr... | exchange shortstr
//	                | routing key shortstr | props longstr | body (rest)
//	record key "r": queue shortstr | n u32 | id u64 ...   (removed: acked,
//	                dropped, expired, dead-lettered, purged)
//
// Recovery replays the log: every message minus its removals goes back to
// its queues, marked redelivered. A message is confirmed to the publisher
// after its append completed (after fdatasync under flush=sync). The log
// start moves past messages no queue holds any more (whole segments go).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"quartet/engine"
	"quartet/engine/exchange"
	"quartet/engine/queue"
	"quartet/segment"
)

const (
	nsExchanges = "amqp.x"
	nsQueues    = "amqp.q"
	nsBindings  = "amqp.b"

	removeFlushMax      = 4096
	removeFlushInterval = 20 * time.Millisecond
	compactInterval     = 5 * time.Second
)

type store struct {
	e    *engine.Engine
	vh   *vhost
	log  *slog.Logger
	l    *segment.Log
	meta *engine.Meta

	batches sync.Pool
	pmu     sync.Mutex // guards cur, scratch
	cur     *appendBatch
	scratch []byte
	kickc   chan struct{}

	mu       sync.Mutex
	nextID   uint64
	live     liveSet
	removes  map[string][]uint64
	nremoves int
	flushT   *time.Timer
	closed   bool

	stop chan struct{}
	wg   sync.WaitGroup

	metaMu        sync.Mutex
	metaIssued    uint64
	metaCompleted uint64
	metaWaiters   []metaWaiter
}

type liveMsg struct {
	offset int64 // -1 until the append completed
	refs   int32
}

// liveSet tracks, per persisted message id, its log offset and how many
// queues still hold it. New ids are consecutive, so they live in a ring
// indexed by id; recovered (sparse) ids live in a map.
type liveSet struct {
	base  uint64 // id of ring[head]
	ring  []liveMsg
	head  int
	extra map[uint64]*liveMsg
}

func (ls *liveSet) add(id uint64, refs int32) {
	if ls.head == len(ls.ring) {
		ls.ring, ls.head, ls.base = ls.ring[:0], 0, id
	}
	if id != ls.base+uint64(len(ls.ring)-ls.head) {
		panic("BUG: amqp: live ids not consecutive")
	}
	ls.ring = append(ls.ring, liveMsg{offset: -1, refs: refs})
}

func (ls *liveSet) get(id uint64) *liveMsg {
	if id >= ls.base && id-ls.base < uint64(len(ls.ring)-ls.head) {
		return &ls.ring[ls.head+int(id-ls.base)]
	}
	return ls.extra[id]
}

func (ls *liveSet) release(id uint64) {
	lm := ls.get(id)
	if lm == nil {
		return
	}
	if lm.refs--; lm.refs > 0 {
		return
	}
	if _, ok := ls.extra[id]; ok {
		delete(ls.extra, id)
		return
	}
	for ls.head < len(ls.ring) && ls.ring[ls.head].refs <= 0 {
		ls.head++
		ls.base++
	}
	if ls.head > 4096 && ls.head > len(ls.ring)/2 {
		n := copy(ls.ring, ls.ring[ls.head:])
		ls.ring, ls.head = ls.ring[:n], 0
	}
}

// low is the smallest offset still held, -1 when nothing is, or ok=false
// while an append is in flight.
func (ls *liveSet) low() (int64, bool) {
	low := int64(-1)
	for _, lm := range ls.extra {
		if low < 0 || lm.offset < low {
			low = lm.offset
		}
	}
	if ls.head < len(ls.ring) {
		o := ls.ring[ls.head].offset
		if o < 0 {
			return 0, false
		}
		if low < 0 || o < low {
			low = o
		}
	}
	return low, true
}

func openStore(e *engine.Engine, vh *vhost, log *slog.Logger) (*store, error) {
	l, err := e.OpenInternalLog("amqp-queues")
	if err != nil {
		return nil, err
	}
	s := &store{e: e, vh: vh, log: log, l: l, meta: e.Meta(), live: liveSet{extra: map[uint64]*liveMsg{}},
		removes: map[string][]uint64{}, stop: make(chan struct{})}
	s.batches.New = func() any { return &appendBatch{s: s} }
	s.cur = s.newBatch()
	s.kickc = make(chan struct{}, 1)
	s.wg.Add(1)
	go s.flusher()
	return s, nil
}

// ---- definitions ----

func (s *store) saveExchange(x *exchange.Exchange) {
	v := AppendTable(nil, Table{"type": x.Kind.String(), "auto_delete": x.AutoDelete, "internal": x.Internal,
		"args": Table(x.Args)})
	s.put(nsExchanges, x.Name, v)
}

func (s *store) deleteExchange(name string) {
	s.del(nsExchanges, name)
	var gone []string
	s.meta.Range(nsBindings, func(k string, v []byte) bool {
		r := NewReader(v)
		t := r.Table()
		if t["src"] == name || (t["kind"] == "e" && t["dst"] == name) {
			gone = append(gone, k)
		}
		return true
	})
	for _, k := range gone {
		s.del(nsBindings, k)
	}
}

func (s *store) saveQueue(vq *vqueue) {
	cfg := vq.Config()
	v := AppendTable(nil, Table{"auto_delete": cfg.AutoDelete, "args": vq.args})
	s.put(nsQueues, vq.Name(), v)
}

func (s *store) deleteQueue(vq *vqueue) {
	s.del(nsQueues, vq.Name())
	var gone []string
	s.meta.Range(nsBindings, func(k string, v []byte) bool {
		r := NewReader(v)
		t := r.Table()
		if t["kind"] == "q" && t["dst"] == vq.Name() {
			gone = append(gone, k)
		}
		return true
	})
	for _, k := range gone {
		s.del(nsBindings, k)
	}
	if vq.stream != nil {
		vq.stream.remove()
	}
}

func bindingKey(src, dst string, e2e bool, key string, args Table) string {
	kind := "q"
	if e2e {
		kind = "e"
	}
	keys := slices.Sorted(maps.Keys(args))
	a := ""
	for _, k := range keys {
		a += fmt.Sprintf("%q=%v;", k, args[k])
	}
	return src + "\x00" + kind + "\x00" + dst + "\x00" + key + "\x00" + a
}

func (s *store) saveBinding(src, dst string, e2e bool, key string, args Table) {
	kind := "q"
	if e2e {
		kind = "e"
	}
	v := AppendTable(nil, Table{"src": src, "dst": dst, "kind": kind, "key": key, "args": args})
	s.put(nsBindings, bindingKey(src, dst, e2e, key, args), v)
}

func (s *store) deleteBinding(src, dst string, e2e bool, key string, args Table) {
	s.del(nsBindings, bindingKey(src, dst, e2e, key, args))
}

// Metadata writes are counted so that a reply (declare-ok, bind-ok, ...)
// can wait until every definition written before it is durable: the meta
// log completes writes in order, so the n-th completion covers the first n.
func (s *store) put(ns, key string, v []byte) {
	s.metaMu.Lock()
	s.metaIssued++
	s.meta.Put(ns, key, v, s.metaDone)
	s.metaMu.Unlock()
}

func (s *store) del(ns, key string) {
	s.metaMu.Lock()
	s.metaIssued++
	s.meta.Delete(ns, key, s.metaDone)
	s.metaMu.Unlock()
}

func (s *store) metaDone(err error) {
	if err != nil {
		s.log.Error("metadata write failed", "err", err)
	}
	s.metaMu.Lock()
	s.metaCompleted++
	var run []func()
	for len(s.metaWaiters) > 0 && s.metaWaiters[0].seq <= s.metaCompleted {
		run = append(run, s.metaWaiters[0].fn)
		s.metaWaiters = s.metaWaiters[1:]
	}
	s.metaMu.Unlock()
	for _, fn := range run {
		fn()
	}
}

// afterMeta runs fn (from the writer goroutine) once every metadata write
// issued so far is durable; it reports false, without calling fn, when
// they already are.
func (s *store) afterMeta(fn func()) bool {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.metaCompleted >= s.metaIssued {
		return false
	}
	s.metaWaiters = append(s.metaWaiters, metaWaiter{seq: s.metaIssued, fn: fn})
	return true
}

type metaWaiter struct {
	seq uint64
	fn  func()
}

// ---- messages ----

var (
	keyMessage = []byte("m")
	keyRemove  = []byte("r")
)

const appendBatchBytesMax = 4 << 20 // flush inline above this much pending

// appendBatch gathers records (messages and removals) appended together
// by the flusher goroutine: one log append and one writer request for all
// the messages published while the previous append was being queued.
type appendBatch struct {
	s     *store
	bb    segment.BatchBuilder
	ids   []uint64      // per record: message id, 0 for a removal record
	dones []func(error) // per record, may be nil
	bytes int
}

// AppendDone implements segment.Completer (writer goroutine).
func (b *appendBatch) AppendDone(base int64, err error) {
	s := b.s
	if err == nil {
		s.mu.Lock()
		for i, id := range b.ids {
			if id != 0 {
				if lm := s.live.get(id); lm != nil {
					lm.offset = base + int64(i)
				}
			}
		}
		s.mu.Unlock()
	} else {
		s.log.Error("queue log append failed", "err", err)
	}
	for _, d := range b.dones {
		if d != nil {
			d(err)
		}
	}
	clear(b.dones)
	b.ids, b.dones, b.bytes = b.ids[:0], b.dones[:0], 0
	s.batches.Put(b)
}

func (s *store) newBatch() *appendBatch {
	b := s.batches.Get().(*appendBatch)
	b.bb.Reset()
	return b
}

// addLocked adds one record to the pending batch (s.pmu held).
func (s *store) addLocked(key, v []byte, id uint64, done func(error)) {
	b := s.cur
	b.bb.Add(0, key, v, nil)
	b.ids = append(b.ids, id)
	b.dones = append(b.dones, done)
	b.bytes += len(v)
}

// kick wakes the flusher; with too much pending it flushes here.
func (s *store) kick(big bool) {
	if big {
		s.flushPending()
		return
	}
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

// flushPending appends the pending batch.
func (s *store) flushPending() {
	s.pmu.Lock()
	b := s.cur
	if len(b.ids) == 0 {
		s.pmu.Unlock()
		return
	}
	s.cur = s.newBatch()
	s.pmu.Unlock()
	if err := s.l.Append(b.bb.Bytes(), b); err != nil {
		b.AppendDone(0, err)
	}
}

func (s *store) flusher() {
	defer s.wg.Done()
	for {
		select {
		case <-s.kickc:
			s.flushPending()
		case <-s.stop:
			s.flushPending()
			return
		}
	}
}

// persist assigns m its ID and queues it for the durable queues qs; done
// (may be nil) gets the outcome from the writer goroutine.
func (s *store) persist(m *queue.Message, qs []*vqueue, done func(error)) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.live.add(id, int32(len(qs)))
	s.mu.Unlock()
	m.ID = id
	s.pmu.Lock()
	v := s.scratch[:0]
	v = binary.BigEndian.AppendUint64(v, id)
	v = binary.BigEndian.AppendUint16(v, uint16(len(qs)))
	for _, q := range qs {
		v = AppendShortStr(v, q.Name())
	}
	v = AppendShortStr(v, m.Exchange)
	v = AppendShortStr(v, m.RoutingKey)
	v = appendLong(v, uint32(len(m.Props)))
	v = append(v, m.Props...)
	v = append(v, m.Body...)
	s.addLocked(keyMessage, v, id, done)
	if cap(v) <= 64<<10 {
		s.scratch = v
	}
	big := s.cur.bytes > appendBatchBytesMax
	s.pmu.Unlock()
	s.kick(big)
}

// Remove implements queue.Store: it records that q no longer holds ids.
func (s *store) Remove(q *queue.Queue, ids []uint64) {
	s.mu.Lock()
	for _, id := range ids {
		s.live.release(id)
	}
	s.removes[q.Name()] = append(s.removes[q.Name()], ids...)
	s.nremoves += len(ids)
	if s.nremoves >= removeFlushMax {
		s.flushRemovesLocked()
	} else if s.flushT == nil && !s.closed {
		s.flushT = time.AfterFunc(removeFlushInterval, func() {
			s.mu.Lock()
			s.flushT = nil
			s.flushRemovesLocked()
			s.mu.Unlock()
		})
	}
	s.mu.Unlock()
}

func (s *store) flushRemovesLocked() {
	if s.nremoves == 0 {
		return
	}
	// Through the pending batch, so a removal never precedes its message.
	s.pmu.Lock()
	for name, ids := range s.removes {
		v := AppendShortStr(s.scratch[:0], name)
		v = appendLong(v, uint32(len(ids)))
		for _, id := range ids {
			v = binary.BigEndian.AppendUint64(v, id)
		}
		s.addLocked(keyRemove, v, 0, nil)
	}
	big := s.cur.bytes > appendBatchBytesMax
	s.pmu.Unlock()
	clear(s.removes)
	s.nremoves = 0
	s.kick(big)
}

// retainStreams applies stream retention (x-max-age, x-max-length-bytes).
func (s *store) retainStreams(now time.Time) {
	s.vh.mu.RLock()
	var ls []*segment.Log
	for _, vq := range s.vh.queues {
		if vq.stream != nil && (vq.streamAge > 0 || vq.streamBytes > 0) {
			ls = append(ls, vq.stream.l)
		}
	}
	s.vh.mu.RUnlock()
	for _, l := range ls {
		l.Retain(now)
	}
}

// compact moves the log start past messages no queue holds.
func (s *store) compact() {
	s.mu.Lock()
	low, ok := s.live.low()
	s.mu.Unlock()
	if !ok {
		return // an append in flight: try next time
	}
	if low < 0 {
		low = s.l.HighWatermark()
	}
	if low > s.l.StartOffset() {
		if err := s.l.DeleteBefore(low); err != nil {
			s.log.Warn("queue log compaction", "err", err)
		}
	}
}

func (s *store) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.flushT != nil {
		s.flushT.Stop()
	}
	s.flushRemovesLocked()
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	return nil
}

// ---- recovery ----

type recMsg struct {
	m      *queue.Message
	queues []string
	offset int64
	ts     int64 // append time, unix ms
}

func (s *store) recover() error {
	vh := s.vh
	// Exchanges first, then queues, then bindings.
	s.meta.Range(nsExchanges, func(name string, v []byte) bool {
		r := NewReader(v)
		t := r.Table()
		kind, err := exchange.ParseKind(fmt.Sprint(t["type"]))
		if err != nil {
			s.log.Warn("skipping stored exchange", "name", name, "err", err)
			return true
		}
		args, _ := t["args"].(Table)
		ad, _ := t["auto_delete"].(bool)
		in, _ := t["internal"].(bool)
		if _, _, err := vh.ex.Declare(name, kind, true, ad, in, exchange.Table(args)); err != nil {
			s.log.Warn("skipping stored exchange", "name", name, "err", err)
		}
		return true
	})
	var qerr error
	s.meta.Range(nsQueues, func(name string, v []byte) bool {
		r := NewReader(v)
		t := r.Table()
		args, _ := t["args"].(Table)
		ad, _ := t["auto_delete"].(bool)
		cfg, vq, err := queueArgs(name, true, false, ad, args)
		if err != nil {
			s.log.Warn("skipping stored queue", "name", name, "err", err)
			return true
		}
		vq.vh = vh
		if err := vh.attach(vq, cfg); err != nil {
			qerr = err
			return false
		}
		vh.queues[name] = vq
		vh.armExpiry(vq)
		return true
	})
	if qerr != nil {
		return qerr
	}
	s.meta.Range(nsBindings, func(_ string, v []byte) bool {
		r := NewReader(v)
		t := r.Table()
		src, _ := t["src"].(string)
		dst, _ := t["dst"].(string)
		key, _ := t["key"].(string)
		args, _ := t["args"].(Table)
		sx, ok := vh.ex.Get(src)
		if !ok {
			return true
		}
		if t["kind"] == "e" {
			if dx, ok := vh.ex.Get(dst); ok {
				vh.ex.Bind(sx, dx, key, exchange.Table(args))
			}
		} else if q := vh.queues[dst]; q != nil {
			vh.ex.Bind(sx, q, key, exchange.Table(args))
		}
		return true
	})
	// Messages.
	msgs := map[uint64]*recMsg{}
	var maxID uint64
	err := s.l.ScanRecords(s.l.StartOffset(), 1<<20, func(rec *segment.Record) error {
		s.replay(rec, msgs, &maxID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read queue log: %w", err)
	}
	s.nextID = maxID
	ids := slices.Sorted(maps.Keys(msgs))
	restore := map[*vqueue][]queue.Entry{}
	n := 0
	for _, id := range ids {
		rm := msgs[id]
		refs := 0
		for _, qn := range rm.queues {
			vq := vh.queues[qn]
			if vq == nil || vq.stream != nil {
				continue
			}
			restore[vq] = append(restore[vq], queue.Entry{Msg: rm.m, Redelivered: true, ExpiresAt: vq.ExpiryFor(rm.m, rm.ts)})
			refs++
		}
		if refs > 0 {
			s.live.extra[id] = &liveMsg{offset: rm.offset, refs: int32(refs)}
			n++
		}
	}
	for vq, es := range restore {
		vq.Restore(es)
	}
	if n > 0 || len(vh.queues) > 0 {
		s.log.Info("recovered durable queues", "queues", len(vh.queues), "messages", n)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(compactInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				s.compact()
				s.retainStreams(now)
			}
		}
	}()
	return nil
}

var errBadRecord = errors.New("amqp: bad queue log record")

func (s *store) replay(rec *segment.Record, msgs map[uint64]*recMsg, maxID *uint64) {
	r := NewReader(rec.Value)
	switch string(rec.Key) {
	case "m":
		id := r.LongLong()
		nq := int(r.Short())
		var qs []string
		for i := 0; i < nq && r.Err() == nil; i++ {
			qs = append(qs, r.ShortStr())
		}
		ex := r.ShortStr()
		key := r.ShortStr()
		props := append([]byte(nil), r.LongStrBytes()...)
		body := append([]byte(nil), r.Rest()...)
		if r.Err() != nil {
			s.log.Warn("skipping queue log record", "offset", rec.Offset, "err", errBadRecord)
			return
		}
		info, _ := scanProps(props, false)
		msgs[id] = &recMsg{m: &queue.Message{Exchange: ex, RoutingKey: key, Props: props, Body: body,
			Priority: info.priority, TTL: info.ttl, Persistent: true, ID: id}, queues: qs, offset: rec.Offset, ts: rec.Timestamp}
		*maxID = max(*maxID, id)
	case "r":
		qn := r.ShortStr()
		n := int(r.Long())
		for i := 0; i < n && r.Err() == nil; i++ {
			id := r.LongLong()
			if rm := msgs[id]; rm != nil {
				if j := slices.Index(rm.queues, qn); j >= 0 {
					rm.queues = slices.Delete(rm.queues, j, j+1)
					if len(rm.queues) == 0 {
						delete(msgs, id)
					}
				}
			}
		}
	}
}
