package session

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrCorrupt is returned when a stored message or session record cannot be decoded.
var ErrCorrupt = errors.New("session: corrupt record")

// Message is one application message. It is immutable once built and shared
// by reference count: every queue, inflight slot and the retained store that
// holds it owns one reference.
type Message struct {
	refs atomic.Int32

	Topic   []byte
	Payload []byte
	// Props are the MQTT 5 properties forwarded unchanged to v5 subscribers
	// (payload format, content type, response topic, correlation data, user
	// properties), encoded without their length prefix.
	Props    []byte
	QoS      byte
	Retain   bool
	ExpireAt int64 // unix nanoseconds; 0: never expires
	// Origin identifies the publishing session (for no-local); nil for
	// broker-generated messages.
	Origin *Session

	buf []byte
}

// pooledBytesMax keeps very large buffers out of the pool.
const pooledBytesMax = 64 << 10

var msgPool = sync.Pool{New: func() any { return new(Message) }}

// NewMessage copies topic, payload and props into one pooled buffer and
// returns the message with one reference.
func NewMessage(topic, payload, props []byte) *Message {
	m := msgPool.Get().(*Message)
	n := len(topic) + len(payload) + len(props)
	if cap(m.buf) < n {
		m.buf = make([]byte, 0, n)
	}
	b := append(m.buf[:0], topic...)
	b = append(b, payload...)
	b = append(b, props...)
	m.buf = b
	t, p := len(topic), len(topic)+len(payload)
	m.Topic = b[:t:t]
	m.Payload = b[t:p:p]
	m.Props = b[p:n:n]
	m.QoS, m.Retain, m.ExpireAt, m.Origin = 0, false, 0, nil
	m.refs.Store(1)
	return m
}

// Ref adds a reference.
func (m *Message) Ref() { m.refs.Add(1) }

// Release drops a reference; the last one returns m to the pool.
func (m *Message) Release() {
	n := m.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("BUG: session: message released twice")
	}
	m.Origin = nil
	if cap(m.buf) <= pooledBytesMax {
		msgPool.Put(m)
	}
}

// Refs reports the current reference count (tests).
func (m *Message) Refs() int32 { return m.refs.Load() }

// Expired reports whether m has expired at now (unix nanoseconds).
func (m *Message) Expired(now int64) bool { return m.ExpireAt != 0 && now >= m.ExpireAt }

// MessageBytes is the length of m's encoding (AppendMessage).
func MessageBytes(m *Message) int { return 15 + len(m.Topic) + len(m.Props) + len(m.Payload) }

// AppendMessage encodes m for storage:
//
//	flags(1: qos bits 0-1, retain 0x04) expireAt(8) topicLen(2) topic
//	propsLen(4) props payload
func AppendMessage(dst []byte, m *Message) []byte {
	f := m.QoS
	if m.Retain {
		f |= 4
	}
	dst = append(dst, f)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.ExpireAt))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Topic)))
	dst = append(dst, m.Topic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Props)))
	dst = append(dst, m.Props...)
	return append(dst, m.Payload...)
}

// DecodeMessage decodes what AppendMessage wrote into a new message (one reference).
func DecodeMessage(b []byte) (*Message, error) {
	if len(b) < 11 {
		return nil, ErrCorrupt
	}
	f := b[0]
	exp := int64(binary.BigEndian.Uint64(b[1:]))
	tl := int(binary.BigEndian.Uint16(b[9:]))
	b = b[11:]
	if len(b) < tl+4 {
		return nil, ErrCorrupt
	}
	topic := b[:tl]
	b = b[tl:]
	pl := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	if pl > len(b) {
		return nil, ErrCorrupt
	}
	m := NewMessage(topic, b[pl:], b[:pl])
	m.QoS = f & 3
	m.Retain = f&4 != 0
	m.ExpireAt = exp
	return m, nil
}
