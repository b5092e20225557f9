package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Sentinel errors of the codec.
var (
	ErrSyntax        = errors.New("amqp: syntax error")
	ErrShort         = errors.New("amqp: truncated data")
	ErrFrameEnd      = errors.New("amqp: bad frame-end octet")
	ErrFrameTooLarge = errors.New("amqp: frame larger than frame-max")
	ErrUnknownMethod = errors.New("amqp: unknown class or method")
)

const tableDepthMax = 32 // nesting of tables and arrays

// Method is one AMQP method (generated from the specification).
type Method interface {
	ID() uint32
	Name() string
	Synchronous() bool
	HasContent() bool
	// Append appends class id, method id and the arguments.
	Append(dst []byte) []byte
	// Decode reads the arguments (after class and method ids).
	Decode(r *Reader)
}

// Table is an AMQP field table (RabbitMQ field types). Values are bool, int8,
// uint8, int16, uint16, int32, uint32, int64, float32, float64, Decimal,
// string, []byte, []any, time.Time, Table or nil.
type Table map[string]any

// Decimal is the AMQP decimal value: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// Reader decodes AMQP primitives with a sticky error: after the first
// failure every read returns a zero value; check Err once at the end.
type Reader struct {
	b     []byte
	err   error
	depth int
}

// NewReader returns a Reader over b (not copied).
func NewReader(b []byte) Reader { return Reader{b: b} }

// Reset makes r read b and clears the error.
func (r *Reader) Reset(b []byte) { r.b, r.err, r.depth = b, nil, 0 }

// Err is the first error met.
func (r *Reader) Err() error { return r.err }

// Rest is what has not been read.
func (r *Reader) Rest() []byte { return r.b }

func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail(ErrShort)
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *Reader) Octet() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *Reader) Short() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *Reader) Long() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *Reader) LongLong() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// ShortStrBytes returns a short string aliasing the input.
func (r *Reader) ShortStrBytes() []byte {
	n := int(r.Octet())
	return r.take(n)
}

func (r *Reader) ShortStr() string { return string(r.ShortStrBytes()) }

// LongStrBytes returns a long string aliasing the input.
func (r *Reader) LongStrBytes() []byte {
	n := r.Long()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail(ErrShort)
		return nil
	}
	return r.take(int(n))
}

func (r *Reader) LongStr() string { return string(r.LongStrBytes()) }

// Table decodes a field table. An empty table decodes as nil.
func (r *Reader) Table() Table {
	b := r.LongStrBytes()
	if r.err != nil || len(b) == 0 {
		return nil
	}
	if r.depth >= tableDepthMax {
		r.fail(ErrSyntax)
		return nil
	}
	sub := Reader{b: b, depth: r.depth + 1}
	t := make(Table)
	for len(sub.b) > 0 && sub.err == nil {
		k := sub.ShortStr()
		v := sub.fieldValue()
		if sub.err == nil {
			t[k] = v
		}
	}
	if sub.err != nil {
		r.fail(sub.err)
		return nil
	}
	return t
}

func (r *Reader) array() []any {
	b := r.LongStrBytes()
	if r.err != nil {
		return nil
	}
	if r.depth >= tableDepthMax {
		r.fail(ErrSyntax)
		return nil
	}
	sub := Reader{b: b, depth: r.depth + 1}
	a := []any{}
	for len(sub.b) > 0 && sub.err == nil {
		v := sub.fieldValue()
		if sub.err == nil {
			a = append(a, v)
		}
	}
	if sub.err != nil {
		r.fail(sub.err)
		return nil
	}
	return a
}

func (r *Reader) fieldValue() any {
	switch r.Octet() {
	case 't':
		return r.Octet() != 0
	case 'b':
		return int8(r.Octet())
	case 'B':
		return r.Octet()
	case 's':
		return int16(r.Short())
	case 'u':
		return r.Short()
	case 'I':
		return int32(r.Long())
	case 'i':
		return r.Long()
	case 'l':
		return int64(r.LongLong())
	case 'L':
		return r.LongLong()
	case 'f':
		return math.Float32frombits(r.Long())
	case 'd':
		return math.Float64frombits(r.LongLong())
	case 'D':
		s := r.Octet()
		return Decimal{Scale: s, Value: int32(r.Long())}
	case 'S':
		return r.LongStr()
	case 'x':
		return append([]byte(nil), r.LongStrBytes()...)
	case 'A':
		return r.array()
	case 'T':
		return time.Unix(int64(r.LongLong()), 0).UTC()
	case 'F':
		t := r.Table()
		if t == nil && r.err == nil {
			t = Table{}
		}
		return t
	case 'V':
		return nil
	}
	r.fail(ErrSyntax)
	return nil
}

func appendShort(dst []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(dst, v) }
func appendLong(dst []byte, v uint32) []byte  { return binary.BigEndian.AppendUint32(dst, v) }
func appendLongLong(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, v)
}

// AppendShortStr appends s as a short string, truncated to 255 bytes.
func AppendShortStr(dst []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// AppendLongStr appends s as a long string.
func AppendLongStr(dst []byte, s string) []byte {
	dst = appendLong(dst, uint32(len(s)))
	return append(dst, s...)
}

// AppendTable appends t as a field table (keys in no particular order).
func AppendTable(dst []byte, t Table) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for k, v := range t {
		dst = AppendShortStr(dst, k)
		dst = appendFieldValue(dst, v)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

func appendFieldValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case bool:
		b := byte(0)
		if v {
			b = 1
		}
		return append(dst, 't', b)
	case int8:
		return append(dst, 'b', byte(v))
	case uint8:
		return append(dst, 'B', v)
	case int16:
		return appendShort(append(dst, 's'), uint16(v))
	case uint16:
		return appendShort(append(dst, 'u'), v)
	case int32:
		return appendLong(append(dst, 'I'), uint32(v))
	case uint32:
		return appendLong(append(dst, 'i'), v)
	case int:
		return appendLongLong(append(dst, 'l'), uint64(v))
	case int64:
		return appendLongLong(append(dst, 'l'), uint64(v))
	case uint64:
		return appendLongLong(append(dst, 'l'), v)
	case float32:
		return appendLong(append(dst, 'f'), math.Float32bits(v))
	case float64:
		return appendLongLong(append(dst, 'd'), math.Float64bits(v))
	case Decimal:
		return appendLong(append(dst, 'D', v.Scale), uint32(v.Value))
	case string:
		return AppendLongStr(append(dst, 'S'), v)
	case []byte:
		dst = appendLong(append(dst, 'x'), uint32(len(v)))
		return append(dst, v...)
	case []any:
		dst = append(dst, 'A')
		start := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		for _, e := range v {
			dst = appendFieldValue(dst, e)
		}
		binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
		return dst
	case time.Time:
		return appendLongLong(append(dst, 'T'), uint64(v.Unix()))
	case Table:
		return AppendTable(append(dst, 'F'), v)
	case map[string]any:
		return AppendTable(append(dst, 'F'), Table(v))
	case nil:
		return append(dst, 'V')
	}
	panic(fmt.Sprintf("BUG: amqp: unsupported table value %T", v))
}

// Frame is one decoded frame; Payload aliases the input.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

const frameOverheadBytes = 8 // type, channel, size, frame-end

// ParseFrame checks a whole frame (as delimited by the Framer): its size
// field, its frame-end octet and frameMax (0: no limit).
func ParseFrame(b []byte, frameMax int) (Frame, error) {
	if len(b) < frameOverheadBytes {
		return Frame{}, ErrShort
	}
	size := binary.BigEndian.Uint32(b[3:7])
	if uint64(size)+frameOverheadBytes != uint64(len(b)) {
		return Frame{}, ErrSyntax
	}
	if frameMax > 0 && len(b) > frameMax {
		return Frame{}, ErrFrameTooLarge
	}
	if b[len(b)-1] != FrameEnd {
		return Frame{}, ErrFrameEnd
	}
	return Frame{Type: b[0], Channel: binary.BigEndian.Uint16(b[1:3]), Payload: b[7 : len(b)-1]}, nil
}

// FrameLen is the netpoll Framer: the length of the first whole frame.
func FrameLen(buf []byte) (int, error) {
	if len(buf) < 7 {
		return 0, nil
	}
	n := int(binary.BigEndian.Uint32(buf[3:7])) + frameOverheadBytes
	if len(buf) < n {
		return 0, nil
	}
	return n, nil
}

// beginFrame appends a frame header with a placeholder size; endFrame fixes
// the size and appends frame-end.
func beginFrame(dst []byte, typ uint8, ch uint16) ([]byte, int) {
	start := len(dst)
	return append(dst, typ, byte(ch>>8), byte(ch), 0, 0, 0, 0), start
}

func endFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+3:], uint32(len(dst)-start-7))
	return append(dst, FrameEnd)
}

// AppendMethodFrame appends m as a method frame on channel ch.
func AppendMethodFrame(dst []byte, ch uint16, m Method) []byte {
	dst, start := beginFrame(dst, FrameMethod, ch)
	dst = m.Append(dst)
	return endFrame(dst, start)
}

// AppendHeaderFrame appends a content header frame whose properties are the
// already encoded props (flags included).
func AppendHeaderFrame(dst []byte, ch uint16, class uint16, bodySize uint64, props []byte) []byte {
	dst, start := beginFrame(dst, FrameHeader, ch)
	dst = appendShort(dst, class)
	dst = appendShort(dst, 0)
	dst = appendLongLong(dst, bodySize)
	dst = append(dst, props...)
	return endFrame(dst, start)
}

// AppendBodyFrames appends body split into frames of at most frameMax bytes.
func AppendBodyFrames(dst []byte, ch uint16, body []byte, frameMax int) []byte {
	chunk := frameMax - frameOverheadBytes
	if chunk <= 0 {
		chunk = len(body)
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		var start int
		dst, start = beginFrame(dst, FrameBody, ch)
		dst = append(dst, body[:n]...)
		dst = endFrame(dst, start)
		body = body[n:]
	}
	return dst
}

// AppendHeartbeat appends a heartbeat frame.
func AppendHeartbeat(dst []byte) []byte {
	return append(dst, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// DecodeMethod decodes a method frame payload into a new Method.
func DecodeMethod(payload []byte) (Method, error) {
	r := NewReader(payload)
	id := r.Long()
	if r.Err() != nil {
		return nil, r.Err()
	}
	m := NewMethod(id)
	if m == nil {
		return nil, fmt.Errorf("%w: %d.%d", ErrUnknownMethod, id>>16, id&0xffff)
	}
	m.Decode(&r)
	return m, r.Err()
}

// ContentHeader is a decoded content header frame; Props aliases the input
// (flags and property list, as sent).
type ContentHeader struct {
	Class    uint16
	BodySize uint64
	Props    []byte
}

// ParseContentHeader decodes the fixed part of a content header payload.
func ParseContentHeader(payload []byte) (ContentHeader, error) {
	if len(payload) < 14 {
		return ContentHeader{}, ErrShort
	}
	h := ContentHeader{
		Class:    binary.BigEndian.Uint16(payload[0:2]),
		BodySize: binary.BigEndian.Uint64(payload[4:12]),
		Props:    payload[12:],
	}
	return h, nil
}
