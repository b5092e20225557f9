package rocketmq

// PULL_MESSAGE (11). Responses FOUND (0) / PULL_NOT_FOUND (19) /
// PULL_RETRY_IMMEDIATELY (20) / PULL_OFFSET_MOVED (21) always carry
// nextBeginOffset, minOffset and maxOffset. A pull at the end of the queue
// with the suspend flag parks on the partition (Partition.Wait) until a new
// message arrives or suspendTimeoutMillis passes (Conn.AfterFunc). Tags are
// filtered on the broker by hash code, from the pull's own expression when it
// carries one, else from the group's heartbeat subscription.

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, pullReadBytes+64<<10); return &b }}

func getReadBuf() *[]byte { return readBufs.Get().(*[]byte) }

func putReadBuf(b *[]byte) {
	if cap(*b) <= 8<<20 {
		readBufs.Put(b)
	}
}

const (
	pullFlagCommitOffset = 1 << 0
	pullFlagSuspend      = 1 << 1
	pullFlagSubscription = 1 << 2

	pullMsgsMax   = 1024
	pullBytesMax  = 4 << 20 // response body budget
	pullReadBytes = 1 << 20 // one read from the log
	suspendMax    = 60 * time.Second
)

var errStop = errors.New("rocketmq: stop")

type pullReq struct {
	group   string
	topic   string
	queue   int
	offset  int64
	max     int
	sub     *subscription
	p       *engine.Partition
	suspend time.Duration
}

func (cn *conn) pullMessage(cmd *Command) {
	s := cn.s
	req := &pullReq{
		group:  cmd.Str("consumerGroup"),
		topic:  cmd.Str("topic"),
		queue:  int(cmd.Int("queueId")),
		offset: cmd.Int("queueOffset"),
		max:    int(cmd.Int("maxMsgNums")),
	}
	if req.max <= 0 {
		req.max = 32
	}
	if req.max > pullMsgsMax {
		req.max = pullMsgsMax
	}
	p, ok := s.partition(req.topic, req.queue)
	if !ok {
		if _, ok := s.e.Topic(req.topic); ok {
			cn.reply(cmd, respond(cmd, respSystemError, "queueId "+strconv.Itoa(req.queue)+" out of range"))
			return
		}
		cn.reply(cmd, respond(cmd, respTopicNotExist, "topic["+req.topic+"] not exist, apply first please!"))
		return
	}
	req.p = p
	sysFlag := cmd.Int("sysFlag")
	if sysFlag&pullFlagSubscription != 0 && (cmd.Str("expressionType") == "" || cmd.Str("expressionType") == "TAG") {
		req.sub = newSubscription(req.topic, cmd.Str("subscription"))
	} else {
		req.sub = s.subscriptionOf(req.group, req.topic)
	}
	if sysFlag&pullFlagCommitOffset != 0 {
		if co, ok := cmd.IntOK("commitOffset"); ok && co >= 0 {
			s.offs.put(req.group, req.topic, req.queue, co)
		}
	}
	if sysFlag&pullFlagSuspend != 0 {
		req.suspend = time.Duration(cmd.Int("suspendTimeoutMillis")) * time.Millisecond
		if req.suspend > suspendMax {
			req.suspend = suspendMax
		}
	}
	min, max := p.StartOffset(), p.HighWatermark()
	switch {
	case req.offset < min || req.offset > max:
		next := min
		if req.offset > max {
			next = max
		}
		cn.reply(cmd, pullStatus(respond(cmd, respPullOffsetMoved, "offset out of range"), next, min, max))
		return
	case req.offset == max:
		if req.suspend <= 0 {
			cn.reply(cmd, pullStatus(respond(cmd, respPullNotFound, "no new message"), max, min, max))
			return
		}
		cn.park(cmd, req)
		return
	}
	l := cn.later(cmd)
	go l.fill(s.readPull(req))
}

// park suspends the pull until the partition grows or the timeout passes;
// whichever comes first answers and cancels the other.
func (cn *conn) park(cmd *Command, req *pullReq) {
	s := cn.s
	l := cn.later(cmd)
	pk := &parked{}
	pk.timer = cn.c.AfterFunc(req.suspend, func(netpoll.Conn) {
		if pk.claimed.CompareAndSwap(false, true) {
			if c := pk.cancel.Load(); c != nil {
				(*c)()
			}
			min, max := req.p.StartOffset(), req.p.HighWatermark()
			l.fill(pullStatus(&Out{Code: respPullNotFound, Remark: "no new message"}, req.offset, min, max))
		}
	})
	cancel := req.p.Wait(req.offset, func() {
		if pk.claimed.CompareAndSwap(false, true) {
			pk.timer.Stop()
			go l.fill(s.readPull(req))
		}
	})
	pk.cancel.Store(&cancel)
}

type parked struct {
	claimed atomic.Bool
	timer   netpoll.Timer
	cancel  atomic.Pointer[func() bool]
}

func pullStatus(out *Out, next, min, max int64) *Out {
	out.Set("suggestWhichBrokerId", "0")
	out.SetInt("nextBeginOffset", next)
	out.SetInt("minOffset", min)
	out.SetInt("maxOffset", max)
	return out
}

// readPull reads messages for req (off the loop).
func (s *Server) readPull(req *pullReq) *Out {
	p := req.p
	store := *s.storeHost.Load()
	no := s.topicNos.number(req.topic)
	var body []byte
	var props []byte
	var st stored
	next := req.offset
	found, scanned := 0, 0
	buf := getReadBuf()
	defer putReadBuf(buf)
	for found < req.max && len(body) < pullBytesMax {
		hw := p.HighWatermark()
		if next >= hw {
			break
		}
		b, err := p.ReadBytes((*buf)[:0], next, pullReadBytes)
		if err != nil {
			if found == 0 && scanned == 0 {
				min := p.StartOffset()
				if next < min {
					return pullStatus(&Out{Code: respPullOffsetMoved, Remark: "offset moved"}, min, min, hw)
				}
				s.log.Warn("pull: read failed", "topic", req.topic, "queue", req.queue, "offset", next, "err", err)
				return pullStatus(&Out{Code: respSystemError, Remark: err.Error()}, next, min, hw)
			}
			break
		}
		*buf = b[:0]
		progressed := false
		err = forEachRecord(b, func(r *segment.Record) error {
			if r.Offset < next {
				return nil
			}
			if found >= req.max || len(body) >= pullBytesMax {
				return errStop
			}
			progressed = true
			scanned++
			next = r.Offset + 1
			props = st.fromRecord(r, props)
			if !req.sub.matches(st.tags) {
				return nil
			}
			found++
			body = appendMessageExt(body, req.topic, req.queue, physOffset(no, req.queue, r.Offset), store, &st)
			return nil
		})
		if err != nil {
			s.log.Warn("pull: bad batch", "topic", req.topic, "queue", req.queue, "offset", next, "err", err)
			if !progressed {
				next++ // skip what cannot be decoded
			}
		}
		if !progressed && err == nil {
			// Control batches or a gap (compacted / transactional markers):
			// move on to the next readable offset.
			if h, herr := segment.ParseBatchHeader(b); herr == nil && h.LastOffset() >= next {
				next = h.LastOffset() + 1
			} else {
				break
			}
		}
	}
	min, max := p.StartOffset(), p.HighWatermark()
	switch {
	case found > 0:
		out := pullStatus(&Out{Code: respSuccess}, next, min, max)
		out.Body = body
		return out
	case next > req.offset:
		return pullStatus(&Out{Code: respPullRetryImmediately, Remark: "no matched message"}, next, min, max)
	default:
		return pullStatus(&Out{Code: respPullNotFound, Remark: "no new message"}, next, min, max)
	}
}

// forEachRecord calls fn for each record of the whole batches in b (a read
// may end with a partial batch), skipping control batches.
func forEachRecord(b []byte, fn func(r *segment.Record) error) error {
	if err := segment.WalkRecords(b, fn); err != errStop {
		return err
	}
	return nil
}
