package rocketmq

import (
	"bytes"
	"strconv"
	"strings"

	"quartet/segment"
)

// Message properties travel as "k\x01v\x02k\x01v\x02". In the store each
// property becomes a record header "rmq:<name>"; the non-property fields of a
// RocketMQ message become headers "rmq@<field>". Headers without either prefix
// (written by another protocol) are shown to RocketMQ consumers as properties.
const (
	propSep      = '\x02'
	nameValueSep = '\x01'

	hdrPropPrefix  = "rmq:"
	hdrFieldPrefix = "rmq@"

	hdrFlag      = "rmq@flag"
	hdrBornTS    = "rmq@born"
	hdrBornHost  = "rmq@bornhost"
	hdrSysFlag   = "rmq@sysflag"
	hdrReconsume = "rmq@reconsume"
	hdrPrepared  = "rmq@prepared" // prepared transaction offset (commit log offset of the half)

	propKeys          = "KEYS"
	propTags          = "TAGS"
	propDelay         = "DELAY"
	propRetryTopic    = "RETRY_TOPIC"
	propRealTopic     = "REAL_TOPIC"
	propRealQid       = "REAL_QID"
	propTranPrepared  = "TRAN_MSG"
	propPGroup        = "PGROUP"
	propUniqKey       = "UNIQ_KEY"
	propMaxReconsume  = "MAX_RECONSUME_TIMES"
	propReconsumeTime = "RECONSUME_TIME"
	propOriginMsgID   = "ORIGIN_MESSAGE_ID"
	propTransactionID = "__transactionId__"
	propTimerDeliver  = "TIMER_DELIVER_MS"
	propCheckTimes    = "TRANSACTION_CHECK_TIMES"
	propTranPrepQOff  = "TRAN_PREPARED_QUEUE_OFFSET"

	propsBytesMax = 32 << 10 // properties are an int16-length field in MessageExt
)

// prop is one property.
type prop struct{ k, v string }

// parseProps splits a property string; malformed items are skipped.
func parseProps(dst []prop, s string) []prop {
	for len(s) > 0 {
		item := s
		if i := strings.IndexByte(s, propSep); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if i := strings.IndexByte(item, nameValueSep); i > 0 {
			dst = append(dst, prop{item[:i], item[i+1:]})
		}
	}
	return dst
}

func getProp(ps []prop, k string) string {
	for _, p := range ps {
		if p.k == k {
			return p.v
		}
	}
	return ""
}

func setProp(ps []prop, k, v string) []prop {
	for i := range ps {
		if ps[i].k == k {
			ps[i].v = v
			return ps
		}
	}
	return append(ps, prop{k, v})
}

func delProp(ps []prop, k string) []prop {
	for i := range ps {
		if ps[i].k == k {
			return append(ps[:i], ps[i+1:]...)
		}
	}
	return ps
}

func appendProps(dst []byte, ps []prop) []byte {
	for _, p := range ps {
		dst = append(dst, p.k...)
		dst = append(dst, nameValueSep)
		dst = append(dst, p.v...)
		dst = append(dst, propSep)
	}
	return dst
}

// message is a RocketMQ message on its way into the store.
type message struct {
	topic     string
	queue     int
	flag      int32
	sysFlag   int32
	bornTS    int64
	bornHost  string
	reconsume int32
	prepared  int64 // commit log offset of the half message (committed transactional messages)
	props     []prop
	body      []byte
}

// headers renders m's fields and properties as record headers (appended to dst).
func (m *message) headers(dst []segment.Header) []segment.Header {
	num := func(k string, v int64) {
		dst = append(dst, segment.Header{Key: []byte(k), Value: strconv.AppendInt(nil, v, 10)})
	}
	if m.flag != 0 {
		num(hdrFlag, int64(m.flag))
	}
	if m.bornTS != 0 {
		num(hdrBornTS, m.bornTS)
	}
	if m.bornHost != "" {
		dst = append(dst, segment.Header{Key: []byte(hdrBornHost), Value: []byte(m.bornHost)})
	}
	if sf := m.sysFlag &^ (sysFlagCompressed | sysFlagTxnMask | sysFlagBornV6 | sysFlagStoreV6); sf != 0 {
		num(hdrSysFlag, int64(sf))
	}
	if m.reconsume != 0 {
		num(hdrReconsume, int64(m.reconsume))
	}
	if m.prepared != 0 {
		num(hdrPrepared, m.prepared)
	}
	for _, p := range m.props {
		dst = append(dst, segment.Header{Key: []byte(hdrPropPrefix + p.k), Value: []byte(p.v)})
	}
	return dst
}

// stored is a record read back from the store, seen as a RocketMQ message.
type stored struct {
	offset    int64
	storeTS   int64
	flag      int32
	sysFlag   int32
	bornTS    int64
	bornHost  string
	reconsume int32
	prepared  int64
	tags      []byte
	props     []byte // rendered property string
	body      []byte
}

// fromRecord fills s from r; props is rendered into buf (reused).
func (s *stored) fromRecord(r *segment.Record, buf []byte) []byte {
	*s = stored{offset: r.Offset, storeTS: r.Timestamp, body: r.Value, bornTS: r.Timestamp}
	buf = buf[:0]
	for _, h := range r.Headers {
		k := h.Key
		switch {
		case bytes.HasPrefix(k, []byte(hdrPropPrefix)):
			name := k[len(hdrPropPrefix):]
			if string(name) == propTags {
				s.tags = h.Value
			}
			buf = append(buf, name...)
			buf = append(buf, nameValueSep)
			buf = append(buf, h.Value...)
			buf = append(buf, propSep)
		case bytes.HasPrefix(k, []byte(hdrFieldPrefix)):
			n, _ := strconv.ParseInt(string(h.Value), 10, 64)
			switch string(k) {
			case hdrFlag:
				s.flag = int32(n)
			case hdrBornTS:
				s.bornTS = n
			case hdrBornHost:
				s.bornHost = string(h.Value)
			case hdrSysFlag:
				s.sysFlag = int32(n)
			case hdrReconsume:
				s.reconsume = int32(n)
			case hdrPrepared:
				s.prepared = n
			}
		default:
			if len(k) == 0 || bytes.IndexByte(k, nameValueSep) >= 0 || bytes.IndexByte(k, propSep) >= 0 ||
				bytes.IndexByte(h.Value, nameValueSep) >= 0 || bytes.IndexByte(h.Value, propSep) >= 0 {
				continue
			}
			buf = append(buf, k...)
			buf = append(buf, nameValueSep)
			buf = append(buf, h.Value...)
			buf = append(buf, propSep)
		}
	}
	if len(buf) > propsBytesMax {
		buf = buf[:0]
	}
	s.props = buf
	return buf
}
