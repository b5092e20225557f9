package rocketmq

// SEND_MESSAGE (10), SEND_MESSAGE_V2 (310, abbreviated header names),
// SEND_BATCH_MESSAGE (320). A send becomes one RecordBatch v2 (a record per
// message) appended to the commit log, tagged with its topic and queue;
// SEND_OK is answered only when the append has completed (after fdatasync
// under flush=sync) and carries the queue offset the consume queue assigned. Messages with a
// DELAY property go to the delay schedule, prepared transactional messages to
// the half-message store, retries beyond maxReconsumeTimes to %DLQ%<group>.
// Differences from the Java broker: a queueId beyond the topic's queues is
// taken modulo the queue count; SQL92 properties filters are not evaluated.

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"quartet/engine/commitlog"
	"quartet/segment"
)

// v2Names maps SEND_MESSAGE_V2's abbreviated header names to the full ones.
var v2Names = map[string]string{
	"a": "producerGroup", "b": "topic", "c": "defaultTopic", "d": "defaultTopicQueueNums",
	"e": "queueId", "f": "sysFlag", "g": "bornTimestamp", "h": "flag", "i": "properties",
	"j": "reconsumeTimes", "k": "unitMode", "l": "maxReconsumeTimes", "m": "batch", "n": "brokerName",
}

// sendReq is a decoded send request, owning its bytes.
type sendReq struct {
	group     string
	topic     string
	queue     int
	sysFlag   int32
	bornTS    int64
	flag      int32
	props     []prop
	reconsume int32
	maxRecons int32
	batch     bool
	msgs      []message
}

func (cn *conn) sendMessage(cmd *Command) {
	s := cn.s
	if cmd.Code == codeSendMessageV2 || cmd.Code == codeSendBatchMessage {
		if _, ok := cmd.Ext["b"]; ok {
			ext := make(map[string]string, len(cmd.Ext))
			for k, v := range cmd.Ext {
				if n, ok := v2Names[k]; ok {
					k = n
				}
				ext[k] = v
			}
			cmd.Ext = ext
		}
	}
	req, code, err := s.decodeSend(cn, cmd)
	if err != nil {
		cn.reply(cmd, respond(cmd, code, err.Error()))
		return
	}
	l := cn.later(cmd)
	if t, ok := s.cl.Topic(req.topic); ok && !strings.HasPrefix(req.topic, prefixRetry) {
		s.store(req, t, l, &cn.sc) // on the loop: the append copies the bodies
		return
	}
	req.own() // bodies alias the frame: copy before leaving the loop
	go func() {
		t, err := s.topicForSend(req)
		if err != nil {
			code := int16(respSystemError)
			if errors.Is(err, errTopicNotExist) || errors.Is(err, errIllegal) {
				code = respTopicNotExist
			}
			l.fill(&Out{Code: code, Remark: err.Error()})
			return
		}
		s.store(req, t, l, nil)
	}()
}

// own copies the message bodies (they may alias the request frame).
func (req *sendReq) own() {
	for i := range req.msgs {
		req.msgs[i].body = append([]byte(nil), req.msgs[i].body...)
	}
}

// topicForSend resolves the destination, applying the retry → DLQ rule.
func (s *Server) topicForSend(req *sendReq) (*commitlog.Topic, error) {
	if strings.HasPrefix(req.topic, prefixRetry) {
		max := req.maxRecons
		if max <= 0 {
			max = 16
		}
		if req.reconsume >= max {
			dlq := prefixDLQ + strings.TrimPrefix(req.topic, prefixRetry)
			for i := range req.msgs {
				req.msgs[i].props = delProp(req.msgs[i].props, propDelay)
			}
			req.topic, req.queue = dlq, 0
			return s.topic(dlq, true, 1)
		}
		return s.topic(req.topic, true, 1)
	}
	return s.topic(req.topic, s.cfg.AutoCreateTopics, 0)
}

func (s *Server) decodeSend(cn *conn, cmd *Command) (*sendReq, int16, error) {
	req := &sendReq{
		group:     cmd.Str("producerGroup"),
		topic:     cmd.Str("topic"),
		queue:     int(cmd.Int("queueId")),
		sysFlag:   int32(cmd.Int("sysFlag")),
		bornTS:    cmd.Int("bornTimestamp"),
		flag:      int32(cmd.Int("flag")),
		reconsume: int32(cmd.Int("reconsumeTimes")),
		maxRecons: int32(cmd.Int("maxReconsumeTimes")),
		batch:     cmd.Code == codeSendBatchMessage || cmd.Bool("batch"),
	}
	if !validTopic(req.topic) {
		return nil, respMessageIllegal, fmt.Errorf("topic %q is illegal", req.topic)
	}
	if req.topic == topicDefault && !s.cfg.AutoCreateTopics {
		return nil, respNoPermission, fmt.Errorf("sending to %s is not allowed", topicDefault)
	}
	req.props = parseProps(nil, cmd.Str("properties"))
	body := cmd.Body
	if req.sysFlag&sysFlagCompressed != 0 {
		var err error
		body, err = inflate(body, s.cfg.MessageBytesMax)
		if err != nil {
			return nil, respMessageIllegal, err
		}
	}
	if !req.batch && len(body) > s.cfg.MessageBytesMax {
		return nil, respMessageIllegal, fmt.Errorf("message body size %d exceeds %d", len(body), s.cfg.MessageBytesMax)
	}
	base := message{
		topic: req.topic, queue: req.queue, flag: req.flag, sysFlag: req.sysFlag &^ sysFlagCompressed,
		bornTS: req.bornTS, bornHost: cn.remote, reconsume: req.reconsume,
	}
	if req.batch {
		parts, err := decodeBatchBody(body, nil)
		if err != nil || len(parts) == 0 {
			return nil, respMessageIllegal, fmt.Errorf("bad batch body: %v", err)
		}
		for _, p := range parts {
			if len(p.body) > s.cfg.MessageBytesMax {
				return nil, respMessageIllegal, fmt.Errorf("message body size %d exceeds %d", len(p.body), s.cfg.MessageBytesMax)
			}
			m := base
			m.flag, m.body = p.flag, p.body
			m.props = parseProps(append([]prop(nil), req.props...), p.props)
			req.msgs = append(req.msgs, m)
		}
		return req, 0, nil
	}
	base.body, base.props = body, req.props
	req.msgs = []message{base}
	return req, 0, nil
}

// inflate decompresses a zlib body, bounded by max bytes.
func inflate(b []byte, max int) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("bad compressed body: %v", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("bad compressed body: %v", err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("message body exceeds %d bytes", max)
	}
	return out, nil
}

// delayLevelOf returns the message's delay level (0: none), clamped to the
// configured levels.
func (s *Server) delayLevelOf(ps []prop) int {
	v := getProp(ps, propDelay)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	if n > len(s.delayLevels) {
		n = len(s.delayLevels)
	}
	return n
}

// sendScratch is reused by sends on one loop.
type sendScratch struct {
	msgs []commitlog.Message
	hdrs []segment.Header
}

// store routes req to the half store, the delay schedule or the commit log
// and answers through l.
func (s *Server) store(req *sendReq, t *commitlog.Topic, l *later, sc *sendScratch) {
	n := t.Queues()
	q := req.queue
	if q < 0 {
		q = int(time.Now().UnixNano() % int64(n))
	}
	q %= n
	first := &req.msgs[0]
	if !req.batch && isPrepared(first) {
		s.prepareHalf(req, t.Name, q, l)
		return
	}
	if !req.batch {
		if lvl := s.delayLevelOf(first.props); lvl > 0 && !strings.HasPrefix(t.Name, prefixDLQ) {
			s.scheduleDelayed(first, t.Name, q, lvl, l)
			return
		}
	}
	if sc == nil {
		sc = new(sendScratch)
	}
	now := time.Now().UnixMilli()
	msgs, hdrs := sc.msgs[:0], sc.hdrs[:0]
	for i := range req.msgs {
		m := &req.msgs[i]
		m.props = delProp(m.props, propDelay)
		h0 := len(hdrs)
		hdrs = m.headers(hdrs)
		msgs = append(msgs, commitlog.Message{Timestamp: now, Value: m.body, Headers: hdrs[h0:len(hdrs):len(hdrs)]})
	}
	d := &sendDone{s: s, l: l, topic: t.Name, queue: q, n: len(req.msgs)}
	err := s.cl.Append(t.Name, q, msgs, d)
	clear(msgs)
	clear(hdrs)
	sc.msgs, sc.hdrs = msgs[:0], hdrs[:0]
	if err != nil {
		l.fill(&Out{Code: respSystemError, Remark: err.Error()})
	}
}

func isPrepared(m *message) bool {
	if m.sysFlag&sysFlagTxnMask == sysFlagTxnPrep {
		return true
	}
	v, _ := strconv.ParseBool(getProp(m.props, propTranPrepared))
	return v && m.sysFlag&sysFlagTxnMask == 0 && getProp(m.props, propPGroup) != ""
}

// sendDone answers a send once the append completes (writer goroutine).
type sendDone struct {
	s     *Server
	l     *later
	topic string
	queue int
	n     int
	txnID string
}

func (d *sendDone) Done(qoff, coff int64, err error) {
	if err != nil {
		d.s.log.Warn("append failed", "topic", d.topic, "queue", d.queue, "err", err)
		d.l.fill(&Out{Code: respSystemError, Remark: "store failed: " + err.Error()})
		return
	}
	d.s.msgsIn.Add(uint64(d.n))
	d.l.fill(d.s.sendOK(d.queue, qoff, coff, d.n, d.txnID))
}

// sendOK is SEND_OK for n messages stored from commit-log offset coff, the
// first at queue offset qoff of queue.
func (s *Server) sendOK(queue int, qoff, coff int64, n int, txnID string) *Out {
	store := *s.storeHost.Load()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ids = append(ids, offsetMsgID(store, coff+int64(i)))
	}
	out := &Out{Code: respSuccess}
	out.Set("msgId", strings.Join(ids, ","))
	out.SetInt("queueId", int64(queue))
	out.SetInt("queueOffset", qoff)
	if txnID != "" {
		out.Set("transactionId", txnID)
	}
	out.Set("MSG_REGION", "DefaultRegion")
	out.Set("TRACE_ON", "true")
	return out
}

// appendWait appends one message to topic/queue and waits (off the loop).
func (s *Server) appendWait(m *message, t *commitlog.Topic, q int) (int64, error) {
	if q < 0 || q >= t.Queues() {
		q = 0
	}
	ch := make(chan appendResult, 1)
	msg := []commitlog.Message{{Timestamp: time.Now().UnixMilli(), Value: m.body, Headers: m.headers(nil)}}
	if err := s.cl.Append(t.Name, q, msg, commitlog.CompleterFunc(func(qoff, _ int64, err error) { ch <- appendResult{qoff, err} })); err != nil {
		return 0, err
	}
	r := <-ch
	return r.off, r.err
}

type appendResult struct {
	off int64
	err error
}
