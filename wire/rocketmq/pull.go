package rocketmq

// PULL_MESSAGE (11). Responses FOUND (0) / PULL_NOT_FOUND (19) /
// PULL_RETRY_IMMEDIATELY (20) / PULL_OFFSET_MOVED (21) always carry
// nextBeginOffset, minOffset and maxOffset. A pull at the end of the queue
// with the suspend flag parks on the consume queue (Queue.Wait) until a new
// message arrives or suspendTimeoutMillis passes (Conn.AfterFunc). Messages
// are read from the commit log at the offsets the consume queue lists. Tags are
// filtered on the broker by hash code, from the pull's own expression when it
// carries one, else from the group's heartbeat subscription.

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine/commitlog"
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
	pullScanMax   = 256     // queue entries looked at per Scan
	pullScansMax  = 16      // Scans per pull (bounds a tag-filtered pull)
	suspendMax    = 60 * time.Second
)

type pullReq struct {
	group   string
	topic   string
	queue   int
	offset  int64
	max     int
	sub     *subscription
	q       *commitlog.Queue
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
	q, ok := s.queue(req.topic, req.queue)
	if !ok {
		if _, ok := s.cl.Topic(req.topic); ok {
			cn.reply(cmd, respond(cmd, respSystemError, "queueId "+strconv.Itoa(req.queue)+" out of range"))
			return
		}
		cn.reply(cmd, respond(cmd, respTopicNotExist, "topic["+req.topic+"] not exist, apply first please!"))
		return
	}
	req.q = q
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
	min, max := q.Offsets()
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
			min, max := req.q.Offsets()
			l.fill(pullStatus(&Out{Code: respPullNotFound, Remark: "no new message"}, req.offset, min, max))
		}
	})
	cancel := req.q.Wait(req.offset, func() {
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
	q := req.q
	store := *s.storeHost.Load()
	var body []byte
	var props []byte
	var st stored
	found := 0
	buf := getReadBuf()
	defer putReadBuf(buf)
	next := req.offset
	for i := 0; i < pullScansMax && found < req.max && len(body) < pullBytesMax; i++ {
		from := next
		var err error
		next, err = q.Scan(from, pullScanMax, buf, func(qoff, coff int64, r *segment.Record) error {
			if found >= req.max || len(body) >= pullBytesMax {
				return commitlog.ErrStop
			}
			props = st.fromRecord(r, props)
			if !req.sub.matches(st.tags) {
				return nil
			}
			st.offset = qoff
			found++
			body = appendMessageExt(body, req.topic, req.queue, coff, store, &st)
			return nil
		})
		if err != nil {
			min, max := q.Offsets()
			if found == 0 && next == req.offset {
				if errors.Is(err, segment.ErrOffsetOutOfRange) || next < min {
					return pullStatus(&Out{Code: respPullOffsetMoved, Remark: "offset moved"}, min, min, max)
				}
				s.log.Warn("pull: read failed", "topic", req.topic, "queue", req.queue, "offset", next, "err", err)
				return pullStatus(&Out{Code: respSystemError, Remark: err.Error()}, next, min, max)
			}
			s.log.Warn("pull: read failed", "topic", req.topic, "queue", req.queue, "offset", next, "err", err)
			break
		}
		if next == from {
			break // at the end of the queue
		}
	}
	s.msgsOut.Add(uint64(found))
	min, max := q.Offsets()
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
