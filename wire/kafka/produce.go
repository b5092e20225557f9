package kafka

// Produce — versions 3–9 (RecordBatch v2 only). Hand-framed: the record
// batches are handed to the partition log as the client sent them (the log
// copies them once and patches only baseOffset); nothing is decoded but the
// 61-byte batch headers, which idempotence needs.
//
// acks=0 gets no response; acks=1 and acks=-1 are both answered when the
// append completes, which under flush=sync is after fdatasync. Responses
// keep request order through a reserved output slot, so a client may
// pipeline produce requests.
//
// Differences from Kafka: transactional batches are refused with
// INVALID_TXN_STATE (transactions are not served); the timeout is not
// enforced since an append always completes.

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/engine/producer"
	"quartet/netpoll"
	"quartet/segment"
)

type produceTopic struct {
	name         string // copied into ctx.names
	first, count int    // range in parts
}

type producePart struct {
	ctx       *produceCtx
	idx       int32
	code      int16
	base      int64
	logAppend int64
	logStart  int64
	records   int64 // in the batches appended (counted when the append succeeds)
	part      *engine.Partition
	pend      producer.Pending
}

// AppendDone implements segment.Completer (writer goroutine).
func (pp *producePart) AppendDone(base int64, err error) {
	pp.pend.Done(base, err != nil)
	if err != nil {
		pp.code = appendErrCode(err)
	} else {
		pp.base = base
		pp.ctx.s.msgsIn.Add(uint64(pp.records))
	}
	pp.ctx.partDone()
}

// produceCtx is one Produce request in flight; pooled.
type produceCtx struct {
	s       *Server
	c       netpoll.Conn
	slot    *netpoll.Slot
	version int16
	corr    int32
	flex    bool
	acks    int16
	names   []byte
	topics  []produceTopic
	parts   []producePart
	left    atomic.Int32
	buf     []byte
	fillFn  func(netpoll.Conn)
}

var produceCtxs sync.Pool

func getProduceCtx() *produceCtx {
	if pc, ok := produceCtxs.Get().(*produceCtx); ok {
		return pc
	}
	pc := &produceCtx{}
	pc.fillFn = pc.fill
	return pc
}

func (pc *produceCtx) partDone() {
	if pc.left.Add(-1) == 0 {
		pc.finish()
	}
}

// finish runs once every partition has its outcome (any goroutine).
func (pc *produceCtx) finish() {
	if pc.acks == 0 || pc.slot == nil {
		pc.release()
		return
	}
	pc.buf = pc.appendResponse(pc.buf[:0])
	if err := pc.c.Execute(pc.fillFn); err != nil {
		pc.release()
	}
}

func (pc *produceCtx) fill(netpoll.Conn) {
	pc.slot.Fill(pc.buf)
	pc.release()
}

func (pc *produceCtx) release() {
	pc.c, pc.slot, pc.s = nil, nil, nil
	for i := range pc.parts {
		pc.parts[i] = producePart{}
	}
	pc.parts = pc.parts[:0]
	pc.topics = pc.topics[:0]
	pc.names = pc.names[:0]
	if cap(pc.buf) > 1<<20 {
		pc.buf = nil
	}
	produceCtxs.Put(pc)
}

func (pc *produceCtx) appendResponse(dst []byte) []byte {
	v, flex := pc.version, pc.flex
	dst = appendResponseHeader(dst, keyProduce, pc.corr, flex)
	dst = appendArrayLen(dst, len(pc.topics), flex)
	for _, t := range pc.topics {
		dst = appendString(dst, t.name, flex)
		dst = appendArrayLen(dst, t.count, flex)
		for i := t.first; i < t.first+t.count; i++ {
			p := &pc.parts[i]
			dst = appendInt32(dst, p.idx)
			dst = appendInt16(dst, p.code)
			if p.code != errNone {
				dst = appendInt64(dst, -1)
				dst = appendInt64(dst, -1)
			} else {
				dst = appendInt64(dst, p.base)
				dst = appendInt64(dst, p.logAppend)
			}
			if v >= 5 {
				dst = appendInt64(dst, p.logStart)
			}
			if v >= 8 {
				dst = appendArrayLen(dst, 0, flex) // record errors
				dst = appendNullString(dst, flex)  // error message
			}
			dst = appendTags(dst, flex)
		}
		dst = appendTags(dst, flex)
	}
	dst = appendInt32(dst, 0) // throttle
	dst = appendTags(dst, flex)
	finishFrame(dst, 0)
	return dst
}

func appendErrCode(err error) int16 {
	switch {
	case errors.Is(err, segment.ErrBatchTooLarge):
		return errMessageTooLarge
	case errors.Is(err, segment.ErrUnsupportedMagic):
		return errUnsupportedForMessageFmt
	case errors.Is(err, segment.ErrCorruptBatch), errors.Is(err, segment.ErrShortBatch):
		return errCorruptMessage
	case errors.Is(err, segment.ErrLogClosed):
		return errUnknownTopicOrPartition
	default:
		return errKafkaStorageError
	}
}

// produceWalk decodes the request body, calling fn for each partition when
// fn is not nil. It is run once to validate the whole request (fn nil) and
// once to act on it, so a malformed request has no effect.
func produceWalk(body []byte, flex bool, topic func(name string, n int), part func(idx int32, records []byte)) (acks int16, err error) {
	r := reader{b: body}
	r.nullableStr(flex) // transactional id
	acks = r.int16()
	r.int32() // timeout
	nt := r.arrayLen(flex, 2)
	for i := 0; i < nt && r.err == nil; i++ {
		name := r.str(flex)
		np := r.arrayLen(flex, 5)
		if topic != nil && r.err == nil {
			topic(name, max(np, 0))
		}
		for j := 0; j < np && r.err == nil; j++ {
			idx := r.int32()
			recs := r.bytes(flex)
			r.tags(flex)
			if part != nil && r.err == nil {
				part(idx, recs)
			}
		}
		r.tags(flex)
	}
	r.tags(flex)
	return acks, r.err
}

func (s *Server) handleProduce(cs *connState, rq *request) error {
	acks, err := produceWalk(rq.body, rq.flexible, nil, nil)
	if err != nil {
		return err
	}
	pc := getProduceCtx()
	pc.s, pc.c, pc.version, pc.corr, pc.flex, pc.acks = s, cs.c, rq.version, rq.corr, rq.flexible, acks
	pc.left.Store(1) // released after the walk
	if acks != 0 {
		pc.slot = cs.c.Reserve()
	}
	if acks != 0 && acks != 1 && acks != -1 {
		// INVALID_REQUIRED_ACKS for every partition.
		produceWalk(rq.body, rq.flexible, pc.addTopic, func(idx int32, _ []byte) {
			pc.parts = append(pc.parts, producePart{ctx: pc, idx: idx, code: errInvalidRequiredAcks})
		})
		pc.partDone()
		return nil
	}
	// Size parts up front: AppendDone holds pointers into it.
	n := 0
	produceWalk(rq.body, rq.flexible, func(_ string, np int) { n += np }, nil)
	if cap(pc.parts) < n {
		pc.parts = make([]producePart, 0, n)
	}
	var t *engine.Topic
	produceWalk(rq.body, rq.flexible, func(name string, np int) {
		pc.addTopic(name, np)
		t, _ = s.e.Topic(name)
	}, func(idx int32, recs []byte) {
		pc.parts = append(pc.parts, producePart{ctx: pc, idx: idx, base: -1, logAppend: -1})
		pp := &pc.parts[len(pc.parts)-1]
		s.producePartition(pp, t, recs)
	})
	pc.partDone()
	return nil
}

func (pc *produceCtx) addTopic(name string, np int) {
	pc.names = append(pc.names, name...)
	pc.topics = append(pc.topics, produceTopic{first: len(pc.parts), count: np})
	// name is re-pointed at pc.names once the walk is over; meanwhile keep a
	// copy-free reference by offset.
	t := &pc.topics[len(pc.topics)-1]
	t.name = unsafeString(pc.names[len(pc.names)-len(name):])
}

// producePartition appends one partition's batches (loop goroutine).
func (s *Server) producePartition(pp *producePart, t *engine.Topic, recs []byte) {
	if t == nil {
		pp.code = errUnknownTopicOrPartition
		return
	}
	p := t.Partition(pp.idx)
	if p == nil {
		pp.code = errUnknownTopicOrPartition
		return
	}
	pp.part = p
	pp.logStart = p.StartOffset()
	if len(recs) < segment.BatchHeaderBytes {
		pp.code = errCorruptMessage
		return
	}
	cfg := t.Config()
	if (cfg.MaxMessageBytes > 0 && len(recs) > int(cfg.MaxMessageBytes)) ||
		(cfg.MaxMessageBytes <= 0 && s.cfg.MessageBytesMax > 0 && len(recs) > s.cfg.MessageBytesMax) {
		pp.code = errMessageTooLarge
		return
	}
	h, err := segment.ParseBatchHeader(recs)
	if err != nil {
		pp.code = errCorruptMessage
		return
	}
	if h.Magic != 2 {
		pp.code = errUnsupportedForMessageFmt
		return
	}
	if h.Attributes&segment.AttrTransactional != 0 || h.Attributes&segment.AttrControl != 0 {
		pp.code = errInvalidTxnState
		return
	}
	if cfg.TimestampType == "LogAppendTime" {
		now := time.Now().UnixMilli()
		err := segment.SplitBatches(recs, func(_ *segment.BatchHeader, b []byte) error {
			segment.SetLogAppendTime(b, now)
			return nil
		})
		if err != nil {
			pp.code = appendErrCode(err)
			return
		}
		pp.logAppend = now
	}
	if h.ProducerID < 0 {
		pp.records = batchRecords(recs, &h)
		pp.ctx.left.Add(1)
		if err := p.Append(recs, pp); err != nil {
			pp.code = appendErrCode(err)
			pp.ctx.left.Add(-1)
		}
		return
	}
	// Idempotent producer: check sequences, append and record atomically.
	if h.Size() != len(recs) {
		// Kafka producers send one batch per partition; more is refused.
		pp.code = errInvalidRecord
		return
	}
	st := s.prod.State(p, p)
	st.Lock()
	code, dup, off := st.Check(&h)
	switch {
	case dup:
		pp.code, pp.base = code, off
		st.Unlock()
		return
	case code != errNone:
		pp.code = code
		st.Unlock()
		return
	}
	pp.records = int64(h.RecordCount)
	pp.ctx.left.Add(1)
	pp.pend = st.Record(&h)
	if err := p.Append(recs, pp); err != nil {
		st.Unlock()
		pp.pend.Done(-1, true)
		pp.pend = producer.Pending{}
		pp.code = appendErrCode(err)
		pp.ctx.left.Add(-1)
		return
	}
	st.Unlock()
}

// batchRecords is the record count of the batches in recs from their headers
// (first is the header of the first); the log validates the batches, so
// a malformed tail only makes the append fail.
func batchRecords(recs []byte, first *segment.BatchHeader) int64 {
	n := int64(first.RecordCount)
	for b := recs[min(max(first.Size(), 0), len(recs)):]; len(b) >= segment.BatchHeaderBytes; {
		h, err := segment.ParseBatchHeader(b)
		if err != nil || h.Size() <= 0 || h.Size() > len(b) {
			break
		}
		n += int64(h.RecordCount)
		b = b[h.Size():]
	}
	return n
}
