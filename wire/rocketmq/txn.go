package rocketmq

// Delayed messages, transactional half messages (END_TRANSACTION 37,
// CHECK_TRANSACTION_STATE 39 to a live producer of the group), consumer
// send-back (CONSUMER_SEND_MSG_BACK 36 → %RETRY%<group> with growing delay,
// %DLQ%<group> after maxReconsumeTimes) and VIEW_MESSAGE_BY_ID (33).

import (
	"errors"
	"strconv"
	"time"

	"quartet/engine/commitlog"
	"quartet/engine/txn"
	"quartet/segment"
)

// scheduleDelayed hands m to the delay scheduler; SEND_OK when it is stored.
func (s *Server) scheduleDelayed(m *message, topic string, q, level int, l *later) {
	m.props = delProp(m.props, propDelay)
	m.props = setProp(m.props, propRealTopic, topic)
	m.props = setProp(m.props, propRealQid, strconv.Itoa(q))
	c := commitlog.CompleterFunc(func(qoff, coff int64, err error) {
		if err != nil {
			l.fill(&Out{Code: respSystemError, Remark: "store failed: " + err.Error()})
			return
		}
		s.msgsIn.Add(1)
		l.fill(s.sendOK(q, qoff, coff, 1, ""))
	})
	if err := s.delay.Schedule(level, topic, q, m.body, m.headers(nil), c); err != nil {
		l.fill(&Out{Code: respSystemError, Remark: err.Error()})
	}
}

// prepareHalf stores a prepared transactional message.
func (s *Server) prepareHalf(req *sendReq, topic string, q int, l *later) {
	m := &req.msgs[0]
	uniq := getProp(m.props, propUniqKey)
	group := req.group
	if g := getProp(m.props, propPGroup); g != "" {
		group = g
	}
	c := commitlog.CompleterFunc(func(qoff, coff int64, err error) {
		if err != nil {
			l.fill(&Out{Code: respSystemError, Remark: "store failed: " + err.Error()})
			return
		}
		s.msgsIn.Add(1)
		l.fill(s.sendOK(q, qoff, coff, 1, uniq))
	})
	if err := s.txn.Prepare(group, topic, q, m.body, m.headers(nil), c); err != nil {
		code := int16(respSystemError)
		if errors.Is(err, txn.ErrFull) {
			code = respSystemBusy
		}
		l.fill(&Out{Code: code, Remark: err.Error()})
	}
}

func (s *Server) endTransaction(cmd *Command) *Out {
	phys := cmd.Int("commitLogOffset")
	if _, ok := s.txn.Get(phys); !ok {
		return respond(cmd, respSystemError, "find prepared transaction message failed")
	}
	off := phys
	switch cmd.Int("commitOrRollback") {
	case sysFlagTxnCommit:
		ch := make(chan error, 1)
		extra := []segment.Header{{Key: []byte(hdrPrepared), Value: strconv.AppendInt(nil, phys, 10)}}
		err := s.txn.Commit(off, extra, func(_ int, _ int64, err error) { ch <- err })
		if err == nil {
			err = <-ch
		}
		if err != nil {
			return respond(cmd, respSystemError, "commit failed: "+err.Error())
		}
		return respond(cmd, respSuccess, "")
	case sysFlagTxnRoll:
		if err := s.txn.Rollback(off); err != nil {
			return respond(cmd, respSystemError, "rollback failed: "+err.Error())
		}
		return respond(cmd, respSuccess, "")
	default:
		return respond(cmd, respSuccess, "") // unknown: stays pending for check-back
	}
}

// checkTransaction sends CHECK_TRANSACTION_STATE for h to a producer of its
// group (txn goroutine).
func (s *Server) checkTransaction(h *txn.Half) bool {
	cn := s.producerConn(h.Group)
	if cn == nil {
		return false
	}
	phys := h.Offset
	var st stored
	rec := segment.Record{Offset: h.Offset, Timestamp: h.Timestamp, Value: h.Value, Headers: h.Headers}
	st.fromRecord(&rec, nil)
	st.offset = h.QueueOffset
	st.prepared = 0
	store := *s.storeHost.Load()
	body := appendMessageExt(nil, h.Topic, h.Partition, phys, store, &st)
	uniq := ""
	txnID := ""
	for _, p := range parseProps(nil, string(st.props)) {
		switch p.k {
		case propUniqKey:
			uniq = p.v
		case propTransactionID:
			txnID = p.v
		}
	}
	if txnID == "" {
		txnID = uniq
	}
	cn.send(codeCheckTransactionState, []Field{
		{"tranStateTableOffset", strconv.FormatInt(h.QueueOffset, 10)},
		{"commitLogOffset", strconv.FormatInt(phys, 10)},
		{"msgId", uniq},
		{"transactionId", txnID},
		{"offsetMsgId", offsetMsgID(store, phys)},
	}, body)
	return true
}

// readAt returns the stored message at a commit-log offset (copied).
func (s *Server) readAt(phys int64) (topic string, queue int, st stored, props []prop, ok bool) {
	ok, _ = s.cl.ReadAt(phys, func(t string, q int, r *segment.Record) {
		topic, queue = t, q
		buf := st.fromRecord(r, nil)
		st.body = append([]byte(nil), st.body...)
		st.tags = nil
		st.props = append([]byte(nil), buf...)
		props = parseProps(nil, string(st.props))
	})
	if ok {
		st.offset, _ = s.cl.Queue(topic, queue).QueueOffset(phys)
	}
	return topic, queue, st, props, ok
}

func (s *Server) sendBack(cmd *Command) *Out {
	group := cmd.Str("group")
	if group == "" {
		return respond(cmd, respSystemError, "no group")
	}
	origTopic, _, st, props, ok := s.readAt(cmd.Int("offset"))
	if !ok {
		return respond(cmd, respSystemError, "look message by offset failed, "+cmd.Str("offset"))
	}
	maxRecons := int32(cmd.Int("maxReconsumeTimes"))
	if _, set := cmd.Ext["maxReconsumeTimes"]; !set {
		maxRecons = 16
	}
	level := int(cmd.Int("delayLevel"))
	if getProp(props, propRetryTopic) == "" {
		props = setProp(props, propRetryTopic, origTopic)
	}
	origin := cmd.Str("originMsgId")
	if origin == "" {
		origin = offsetMsgID(*s.storeHost.Load(), cmd.Int("offset"))
	}
	props = setProp(props, propOriginMsgID, origin)
	props = delProp(props, propDelay)
	props = delProp(props, propRealTopic)
	props = delProp(props, propRealQid)
	m := message{flag: st.flag, sysFlag: st.sysFlag, bornTS: st.bornTS, bornHost: st.bornHost,
		reconsume: st.reconsume + 1, props: props, body: st.body}
	if st.reconsume >= maxRecons || level < 0 {
		dlq := prefixDLQ + group
		t, err := s.topic(dlq, true, 1)
		if err != nil {
			return respond(cmd, respSystemError, err.Error())
		}
		m.topic = dlq
		if _, err := s.appendWait(&m, t, 0); err != nil {
			return respond(cmd, respSystemError, err.Error())
		}
		s.log.Info("message sent to dead letter queue", "group", group, "topic", origTopic, "reconsumeTimes", st.reconsume)
		return respond(cmd, respSuccess, "")
	}
	if level == 0 {
		level = 3 + int(st.reconsume)
	}
	if level > len(s.delayLevels) {
		level = len(s.delayLevels)
	}
	retry := prefixRetry + group
	if _, err := s.topic(retry, true, 1); err != nil {
		return respond(cmd, respSystemError, err.Error())
	}
	m.topic = retry
	m.props = setProp(m.props, propRealTopic, retry)
	m.props = setProp(m.props, propRealQid, "0")
	ch := make(chan error, 1)
	err := s.delay.Schedule(level, retry, 0, m.body, m.headers(nil), commitlog.CompleterFunc(func(_, _ int64, err error) { ch <- err }))
	if err == nil {
		select {
		case err = <-ch:
		case <-time.After(30 * time.Second):
			err = errors.New("schedule timed out")
		}
	}
	if err != nil {
		return respond(cmd, respSystemError, err.Error())
	}
	return respond(cmd, respSuccess, "")
}

func (s *Server) viewMessage(cmd *Command) *Out {
	phys := cmd.Int("offset")
	topic, q, st, _, ok := s.readAt(phys)
	if !ok {
		return respond(cmd, respSystemError, "can not find message by the offset, "+strconv.FormatInt(phys, 10))
	}
	out := respond(cmd, respSuccess, "")
	out.Body = appendMessageExt(nil, topic, q, phys, *s.storeHost.Load(), &st)
	return out
}
