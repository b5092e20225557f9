package rocketmq

import (
	"fmt"
	"sync"
	"sync/atomic"

	"quartet/netpoll"
)

var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const debugRequests = false

// handler serves one of the two listeners; the name server answers only the
// name-server codes.
type handler struct {
	s      *Server
	broker bool
}

// conn is the per-connection state (the netpoll context).
type conn struct {
	s      *Server
	c      netpoll.Conn
	broker bool
	remote string
	out    []byte      // scratch for synchronous responses (loop only)
	sc     sendScratch // scratch for sends (loop only)

	// Answers completed off the loop are gathered here and written with one
	// Execute: a writer round completes many sends at once, and one write
	// per connection beats one per answer.
	pmu       sync.Mutex
	pending   []byte
	spare     []byte
	scheduled bool
}

// enqueue queues a whole encoded frame for the connection (any goroutine).
func (cn *conn) enqueue(frame []byte) {
	cn.pmu.Lock()
	cn.pending = append(cn.pending, frame...)
	sched := !cn.scheduled
	cn.scheduled = true
	cn.pmu.Unlock()
	if sched {
		if err := cn.c.Execute(cn.flushPending); err != nil {
			cn.pmu.Lock()
			cn.pending, cn.scheduled = cn.pending[:0], false
			cn.pmu.Unlock()
		}
	}
}

// flushPending writes the gathered answers (loop).
func (cn *conn) flushPending(c netpoll.Conn) {
	cn.pmu.Lock()
	buf := cn.pending
	cn.pending = cn.spare[:0]
	cn.scheduled = false
	cn.pmu.Unlock()
	if len(buf) > 0 {
		c.Write(buf)
	}
	cn.pmu.Lock()
	if cap(buf) <= 1<<20 {
		cn.spare = buf[:0]
	} else {
		cn.spare = nil
	}
	cn.pmu.Unlock()
}

func (h *handler) OnOpen(c netpoll.Conn) any {
	cn := &conn{s: h.s, c: c, broker: h.broker}
	if a := c.RemoteAddr(); a != nil {
		cn.remote = a.String()
	}
	return cn
}

func (h *handler) OnClose(c netpoll.Conn, err error) {
	cn, ok := c.Context().(*conn)
	if ok && err != nil {
		h.s.log.Debug("connection closed", "remote", cn.remote, "err", err)
	}
	if !ok || !cn.broker {
		return
	}
	h.s.reg.dropConn(h.s, cn)
}

func (h *handler) OnFrame(c netpoll.Conn, frame []byte) error {
	cn := c.Context().(*conn)
	cmd, err := DecodeCommand(frame)
	if err != nil {
		h.s.log.Warn("bad frame, closing", "remote", cn.remote, "err", err)
		return err
	}
	if debugRequests {
		h.s.log.Debug("request", "code", cmd.Code, "opaque", cmd.Opaque, "flag", cmd.Flag, "remote", cn.remote, "body", len(cmd.Body))
	}
	if cmd.IsResponse() {
		return nil // answers to CHECK_TRANSACTION_STATE / NOTIFY_CONSUMER_IDS_CHANGED
	}
	if !cn.broker {
		cn.namesrv(cmd)
		return nil
	}
	cn.dispatch(cmd)
	return nil
}

// respond builds the response skeleton for cmd.
func respond(cmd *Command, code int16, remark string) *Out {
	return &Out{Code: code, Opaque: cmd.Opaque, Flag: flagResponse, Remark: remark, Serial: cmd.Serial}
}

// reply writes out now (loop only). Requests flagged oneway get no answer.
func (cn *conn) reply(cmd *Command, out *Out) {
	if cmd.IsOneway() || out == nil {
		return
	}
	cn.out = AppendCommand(cn.out[:0], out)
	cn.c.Write(cn.out)
	if cap(cn.out) > 64<<10 {
		cn.out = nil
	}
}

// later answers a request from another goroutine. RocketMQ matches
// responses by opaque, so answers need no output-order slot (a parked pull
// must not hold back the answers behind it): they are written through
// Conn.Execute when ready.
type later struct {
	cn     *conn
	opaque int32
	serial byte
	oneway bool
	done   atomic.Bool
}

// later prepares an answer to cmd (loop only).
func (cn *conn) later(cmd *Command) *later {
	return &later{cn: cn, opaque: cmd.Opaque, serial: cmd.Serial, oneway: cmd.IsOneway()}
}

// fill sends out (any goroutine; only the first call counts).
func (l *later) fill(out *Out) {
	if l.oneway || !l.done.CompareAndSwap(false, true) {
		return
	}
	if out == nil {
		out = &Out{Code: respSystemError, Remark: "no response"}
	}
	out.Opaque, out.Flag, out.Serial = l.opaque, flagResponse, l.serial
	b := frameBufs.Get().(*[]byte)
	*b = AppendCommand((*b)[:0], out)
	l.cn.enqueue(*b)
	if cap(*b) <= 64<<10 {
		frameBufs.Put(b)
	}
}

// offLoop runs fn on a goroutine and answers with its result in order.
func (cn *conn) offLoop(cmd *Command, fn func() *Out) {
	l := cn.later(cmd)
	go func() { l.fill(fn()) }()
}

// send writes a broker-initiated request to the client (any goroutine).
func (cn *conn) send(code int16, ext []Field, body []byte) {
	o := &Out{Code: code, Opaque: cn.s.opaque.Add(1), Ext: ext, Body: body, Serial: serialJSON}
	cn.enqueue(AppendCommand(nil, o))
}

func (cn *conn) namesrv(cmd *Command) {
	switch cmd.Code {
	case codeGetRouteInfoByTopic, codeGetBrokerClusterInfo, codeGetAllTopicListFromNS:
		cn.offLoop(cmd, func() *Out { return cn.s.nameServer(cmd) })
	default:
		cn.reply(cmd, notSupported(cmd))
	}
}

func notSupported(cmd *Command) *Out {
	return respond(cmd, respNotSupported, fmt.Sprintf("request code %d not supported", cmd.Code))
}

func (cn *conn) dispatch(cmd *Command) {
	s := cn.s
	switch cmd.Code {
	case codeSendMessage, codeSendMessageV2, codeSendBatchMessage:
		cn.sendMessage(cmd)
	case codePullMessage:
		cn.pullMessage(cmd)
	case codeHeartBeat:
		cn.reply(cmd, s.heartbeat(cn, cmd))
	case codeUnregisterClient:
		cn.reply(cmd, s.unregister(cn, cmd))
	case codeGetConsumerListByGroup:
		cn.reply(cmd, s.consumerList(cmd))
	case codeQueryConsumerOffset:
		cn.reply(cmd, s.queryConsumerOffset(cmd))
	case codeUpdateConsumerOffset:
		// Answered unless flagged oneway (synchronous Java callers wait for
		// it; the Go client sends it without the flag and drops the answer).
		cn.reply(cmd, s.updateConsumerOffset(cmd))
	case codeGetMaxOffset, codeGetMinOffset, codeGetEarliestMsgStoretime, codeSearchOffsetByTime:
		cn.offLoop(cmd, func() *Out { return s.queueOffsets(cmd) })
	case codeLockBatchMQ:
		cn.reply(cmd, s.lockBatch(cmd))
	case codeUnlockBatchMQ:
		cn.reply(cmd, s.unlockBatch(cmd))
	case codeConsumerSendMsgBack:
		body := append([]byte(nil), cmd.Body...)
		cmd.Body = body
		cn.offLoop(cmd, func() *Out { return s.sendBack(cmd) })
	case codeEndTransaction:
		// Answered unless flagged oneway, like UPDATE_CONSUMER_OFFSET.
		cn.offLoop(cmd, func() *Out { return s.endTransaction(cmd) })
	case codeViewMessageByID:
		cn.offLoop(cmd, func() *Out { return s.viewMessage(cmd) })
	case codeUpdateCreateTopic:
		cn.offLoop(cmd, func() *Out { return s.createTopic(cmd) })
	case codeGetRouteInfoByTopic, codeGetBrokerClusterInfo, codeGetAllTopicListFromNS:
		cn.offLoop(cmd, func() *Out { return s.nameServer(cmd) })
	default:
		s.log.Debug("request code not supported", "code", cmd.Code, "remote", cn.remote)
		cn.reply(cmd, notSupported(cmd))
	}
}
