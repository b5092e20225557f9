package kafka

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// Sentinel errors of the codec.
var (
	ErrShortRequest = errors.New("kafka: short or malformed request")
	ErrBadLength    = errors.New("kafka: impossible length in request")
)

// reader decodes Kafka primitive types from a byte slice. Errors are sticky:
// after the first one every read returns a zero value, and err reports it.
// Strings and byte slices alias the input.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b) < n {
		r.fail(ErrShortRequest)
		return false
	}
	return true
}

func (r *reader) int8() int8 {
	if !r.need(1) {
		return 0
	}
	v := int8(r.b[0])
	r.b = r.b[1:]
	return v
}

func (r *reader) int16() int16 {
	if !r.need(2) {
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v
}

func (r *reader) int32() int32 {
	if !r.need(4) {
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *reader) int64() int64 {
	if !r.need(8) {
		return 0
	}
	v := int64(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint32 {
	if r.err != nil {
		return 0
	}
	var v uint32
	for i := 0; i < 5; i++ {
		if len(r.b) == 0 {
			r.fail(ErrShortRequest)
			return 0
		}
		c := r.b[0]
		r.b = r.b[1:]
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v
		}
	}
	r.fail(ErrShortRequest)
	return 0
}

func (r *reader) span(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// unsafeString aliases b; the result must not outlive the frame.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// str reads a (compact when flexible) non-null string; null reads as "".
func (r *reader) str(flexible bool) string {
	s, _ := r.nullableStr(flexible)
	return s
}

// nullableStr reads a (compact) nullable string; ok is false for null.
func (r *reader) nullableStr(flexible bool) (string, bool) {
	var n int
	if flexible {
		n = int(r.uvarint()) - 1
	} else {
		n = int(r.int16())
	}
	if r.err != nil || n < 0 {
		return "", false
	}
	return unsafeString(r.span(n)), r.err == nil
}

// bytes reads (compact) nullable bytes; null reads as nil.
func (r *reader) bytes(flexible bool) []byte {
	var n int
	if flexible {
		n = int(r.uvarint()) - 1
	} else {
		n = int(r.int32())
	}
	if r.err != nil || n < 0 {
		return nil
	}
	return r.span(n)
}

// arrayLen reads a (compact) array length, bounded by the bytes left (every
// element takes at least minElem bytes) so a hostile length cannot make us
// allocate. Null arrays read as -1.
func (r *reader) arrayLen(flexible bool, minElem int) int {
	var n int
	if flexible {
		n = int(r.uvarint()) - 1
	} else {
		n = int(r.int32())
	}
	if r.err != nil {
		return 0
	}
	if n < -1 || (minElem > 0 && n > len(r.b)/minElem) {
		r.fail(ErrBadLength)
		return 0
	}
	return n
}

// skipTags skips a tagged-field section.
func (r *reader) skipTags() {
	n := r.uvarint()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.uvarint() // tag
		size := r.uvarint()
		if size > uint32(len(r.b)) {
			r.fail(ErrBadLength)
			return
		}
		r.span(int(size))
	}
}

// tagsOrNot skips a tagged-field section when flexible.
func (r *reader) tags(flexible bool) {
	if flexible {
		r.skipTags()
	}
}

// Appenders.

func appendInt16(dst []byte, v int16) []byte { return binary.BigEndian.AppendUint16(dst, uint16(v)) }
func appendInt32(dst []byte, v int32) []byte { return binary.BigEndian.AppendUint32(dst, uint32(v)) }
func appendInt64(dst []byte, v int64) []byte { return binary.BigEndian.AppendUint64(dst, uint64(v)) }

func appendUvarint(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

func appendString(dst []byte, s string, flexible bool) []byte {
	if flexible {
		dst = appendUvarint(dst, uint32(len(s)+1))
	} else {
		dst = appendInt16(dst, int16(len(s)))
	}
	return append(dst, s...)
}

func appendNullString(dst []byte, flexible bool) []byte {
	if flexible {
		return append(dst, 0)
	}
	return appendInt16(dst, -1)
}

func appendArrayLen(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return appendUvarint(dst, uint32(n+1))
	}
	return appendInt32(dst, int32(n))
}

// appendBytesLen writes the length prefix of a (compact) bytes field.
func appendBytesLen(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return appendUvarint(dst, uint32(n+1))
	}
	return appendInt32(dst, int32(n))
}

func appendTags(dst []byte, flexible bool) []byte {
	if flexible {
		return append(dst, 0)
	}
	return dst
}
