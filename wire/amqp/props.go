package amqp

import (
	"encoding/binary"
	"strconv"
)

// propInfo is what the broker needs from a message's properties, scanned
// without decoding the rest.
type propInfo struct {
	deliveryMode uint8
	priority     uint8
	ttl          int64 // expiration in ms; -1: none
	headers      Table
	replyTo      string
	replyToOff   int // offset of the reply-to short string in props (-1: absent)
}

// scanProps reads delivery-mode, priority, expiration, reply-to and (with
// wantHeaders) the headers table from encoded properties.
func scanProps(p []byte, wantHeaders bool) (propInfo, error) {
	info := propInfo{ttl: -1, replyToOff: -1}
	if len(p) < 2 {
		return info, ErrShort
	}
	flags := binary.BigEndian.Uint16(p)
	r := NewReader(p[2:])
	skipShort := func() { r.ShortStrBytes() }
	if flags&FlagContentType != 0 {
		skipShort()
	}
	if flags&FlagContentEncoding != 0 {
		skipShort()
	}
	if flags&FlagHeaders != 0 {
		if wantHeaders {
			info.headers = r.Table()
		} else {
			r.LongStrBytes()
		}
	}
	if flags&FlagDeliveryMode != 0 {
		info.deliveryMode = r.Octet()
	}
	if flags&FlagPriority != 0 {
		info.priority = r.Octet()
	}
	if flags&FlagCorrelationId != 0 {
		skipShort()
	}
	if flags&FlagReplyTo != 0 {
		info.replyToOff = len(p) - len(r.Rest())
		info.replyTo = string(r.ShortStrBytes())
	}
	if flags&FlagExpiration != 0 {
		s := r.ShortStrBytes()
		if r.Err() == nil {
			v, err := strconv.ParseInt(string(s), 10, 64)
			if err != nil || v < 0 {
				return info, ErrSyntax
			}
			info.ttl = v
		}
	}
	return info, r.Err()
}

// decodeProps decodes all properties.
func decodeProps(p []byte) (BasicProperties, error) {
	var bp BasicProperties
	r := NewReader(p)
	bp.Decode(&r)
	return bp, r.Err()
}
