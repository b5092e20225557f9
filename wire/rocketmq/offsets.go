package rocketmq

// QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET (15), GET_MAX_OFFSET
// (30), GET_MIN_OFFSET (31), GET_EARLIEST_MSG_STORETIME (32),
// SEARCH_OFFSET_BY_TIMESTAMP (29). Consumer offsets live in the engine's
// metadata store, namespace "offsets", in the same layout as Kafka groups
// (key group 0x00 topic 0x00 queue; value offset int64 | epoch int32 |
// commitMs int64), so a queue's committed offset is one fact for both.

import (
	"encoding/binary"
	"strconv"
	"sync"
	"time"

	"quartet/engine/commitlog"
	"quartet/segment"
)

const offsetsNamespace = "offsets"

// metaStore is the part of the engine's metadata store used here.
type metaStore interface {
	Put(ns, key string, value []byte, done func(error))
	Delete(ns, key string, done func(error))
	Get(ns, key string) ([]byte, bool)
	Range(ns string, fn func(key string, value []byte) bool)
}

// offsetStore keeps committed offsets in memory and writes the changed ones
// to the metadata store once a second (and on Close), as the Java broker
// persists its consumerOffset.json every few seconds: pulls commit offsets
// continuously and must not cost an fdatasync each.
type offsetStore struct {
	meta  metaStore
	mu    sync.Mutex
	mem   map[string]int64
	dirty map[string]bool
}

func (o *offsetStore) init(m metaStore) {
	o.meta = m
	o.mem = map[string]int64{}
	o.dirty = map[string]bool{}
}

func offsetKey(group, topic string, queue int) string {
	return group + "\x00" + topic + "\x00" + strconv.Itoa(queue)
}

func (o *offsetStore) get(group, topic string, queue int) (int64, bool) {
	k := offsetKey(group, topic, queue)
	o.mu.Lock()
	v, ok := o.mem[k]
	o.mu.Unlock()
	if ok {
		return v, true
	}
	b, ok := o.meta.Get(offsetsNamespace, k)
	if !ok || len(b) < 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

func (o *offsetStore) put(group, topic string, queue int, off int64) {
	k := offsetKey(group, topic, queue)
	o.mu.Lock()
	if prev, ok := o.mem[k]; !ok || prev != off {
		o.mem[k] = off
		o.dirty[k] = true
	}
	o.mu.Unlock()
}

// flush writes the changed offsets; done (may be nil) runs when all are durable.
func (o *offsetStore) flush(log func(error), done func()) {
	o.mu.Lock()
	type kv struct {
		k string
		v int64
	}
	var out []kv
	for k := range o.dirty {
		out = append(out, kv{k, o.mem[k]})
	}
	clear(o.dirty)
	o.mu.Unlock()
	var wg sync.WaitGroup
	now := uint64(time.Now().UnixMilli())
	for _, x := range out {
		v := make([]byte, 20)
		binary.BigEndian.PutUint64(v, uint64(x.v))
		binary.BigEndian.PutUint32(v[8:], 0xFFFFFFFF)
		binary.BigEndian.PutUint64(v[12:], now)
		wg.Add(1)
		o.meta.Put(offsetsNamespace, x.k, v, func(err error) {
			if err != nil {
				log(err)
			}
			wg.Done()
		})
	}
	if done != nil {
		wg.Wait()
		done()
	}
}

func (s *Server) queryConsumerOffset(cmd *Command) *Out {
	off, ok := s.offs.get(cmd.Str("consumerGroup"), cmd.Str("topic"), int(cmd.Int("queueId")))
	if !ok {
		return respond(cmd, respQueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
	}
	out := respond(cmd, respSuccess, "")
	out.SetInt("offset", off)
	return out
}

func (s *Server) updateConsumerOffset(cmd *Command) *Out {
	off, ok := cmd.IntOK("commitOffset")
	if !ok || off < 0 {
		return respond(cmd, respSystemError, "bad commitOffset")
	}
	s.offs.put(cmd.Str("consumerGroup"), cmd.Str("topic"), int(cmd.Int("queueId")), off)
	return respond(cmd, respSuccess, "")
}

func (s *Server) logMetaErr(err error) { s.log.Warn("metadata write failed", "err", err) }

// queue resolves topic/queue to its consume queue.
func (s *Server) queue(topic string, queue int) (*commitlog.Queue, bool) {
	t, ok := s.cl.Topic(topic)
	if !ok || queue < 0 || queue >= t.Queues() {
		return nil, false
	}
	return s.cl.Queue(topic, queue), true
}

func (s *Server) queueOffsets(cmd *Command) *Out {
	q, ok := s.queue(cmd.Str("topic"), int(cmd.Int("queueId")))
	out := respond(cmd, respSuccess, "")
	switch cmd.Code {
	case codeGetMaxOffset:
		var v int64
		if ok {
			v = q.Max()
		}
		out.SetInt("offset", v)
	case codeGetMinOffset:
		var v int64
		if ok {
			v = q.Min()
		}
		out.SetInt("offset", v)
	case codeSearchOffsetByTime:
		var v int64
		if ok {
			v, _ = q.OffsetForTime(cmd.Int("timestamp"))
		}
		out.SetInt("offset", v)
	case codeGetEarliestMsgStoretime:
		var ts int64 = -1
		if ok {
			if c, found := q.CommitOffset(q.Min()); found {
				s.cl.ReadAt(c, func(_ string, _ int, r *segment.Record) { ts = r.Timestamp })
			}
		}
		if ts < 0 {
			return respond(cmd, respSystemError, "no message in queue")
		}
		out.SetInt("timestamp", ts)
	}
	return out
}
