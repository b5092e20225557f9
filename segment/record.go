package segment

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/klauspost/crc32"
)

// Header is one record header (key/value pair).
type Header struct {
	Key   []byte
	Value []byte
}

// Record is one decoded record of a batch. Its slices alias the batch (or the
// decompression buffer) and are valid only during the ForEachRecord callback.
type Record struct {
	Offset    int64
	Timestamp int64 // ms since the epoch
	Key       []byte
	Value     []byte // nil for a null value (a tombstone)
	Headers   []Header
}

// recordReader decodes Kafka's zig-zag varints with a sticky error.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", ErrCorruptBatch)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) bytes(n int64) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 {
		return nil
	}
	if n > int64(len(r.b)) {
		r.err = fmt.Errorf("%w: field of %d bytes past the end", ErrCorruptBatch, n)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// recordsHeadersMax bounds the headers of one record (a corrupt count must not
// make us allocate without limit).
const recordsHeadersMax = 4096

// ForEachRecord decodes every record of one batch (decompressing it when
// needed) and calls fn with each. Control batches are passed through like any
// other; callers that must skip them check the batch attributes.
func ForEachRecord(batch []byte, fn func(r *Record) error) error {
	h, size, err := ValidateBatch(batch)
	if err != nil {
		return err
	}
	body := batch[BatchHeaderBytes:size]
	if c := h.Compression(); c != CompressionNone {
		buf := getBuf(len(body) * 4)
		defer putBuf(buf)
		body, err = decompress(c, (*buf)[:0], body)
		if err != nil {
			return err
		}
		*buf = body[:0]
	}
	var rec Record
	var hdrs [8]Header
	rr := recordReader{b: body}
	for i := int32(0); i < h.RecordCount; i++ {
		length := rr.varint()
		if rr.err != nil {
			return rr.err
		}
		if length < 0 || length > int64(len(rr.b)) {
			return fmt.Errorf("%w: record length %d", ErrCorruptBatch, length)
		}
		one := recordReader{b: rr.b[:length]}
		rr.b = rr.b[length:]
		if len(one.b) < 1 {
			return fmt.Errorf("%w: empty record", ErrCorruptBatch)
		}
		one.b = one.b[1:] // attributes, unused
		tsDelta := one.varint()
		offDelta := one.varint()
		rec.Key = one.bytes(one.varint())
		rec.Value = one.bytes(one.varint())
		n := one.varint()
		if n < 0 || n > recordsHeadersMax {
			return fmt.Errorf("%w: %d headers", ErrCorruptBatch, n)
		}
		rec.Headers = hdrs[:0]
		for j := int64(0); j < n && one.err == nil; j++ {
			k := one.bytes(one.varint())
			v := one.bytes(one.varint())
			rec.Headers = append(rec.Headers, Header{Key: k, Value: v})
		}
		if one.err != nil {
			return one.err
		}
		rec.Offset = h.BaseOffset + offDelta
		rec.Timestamp = h.BaseTimestamp + tsDelta
		if h.Attributes&AttrLogAppendTime != 0 {
			rec.Timestamp = h.MaxTimestamp
		}
		if err := fn(&rec); err != nil {
			return err
		}
	}
	return nil
}

// BatchBuilder builds an uncompressed RecordBatch v2 from records, for
// protocols whose messages arrive one at a time (AMQP, MQTT, RocketMQ). Reuse
// one builder with Reset; it allocates only while its buffer grows.
type BatchBuilder struct {
	buf      []byte
	count    int32
	baseTS   int64
	maxTS    int64
	producer int64
	epoch    int16
	sequence int32
}

// Reset empties the builder. Producer id -1 means no idempotence.
func (b *BatchBuilder) Reset() {
	b.buf = append(b.buf[:0], make([]byte, BatchHeaderBytes)...)
	b.count = 0
	b.baseTS, b.maxTS = -1, -1
	b.producer, b.epoch, b.sequence = -1, -1, -1
}

// Len is the number of records added since Reset.
func (b *BatchBuilder) Len() int { return int(b.count) }

// Add appends one record. ts is in milliseconds; 0 means now. A nil value is
// a null value; a nil key a null key.
func (b *BatchBuilder) Add(ts int64, key, value []byte, headers []Header) {
	if len(b.buf) < BatchHeaderBytes {
		b.Reset()
	}
	if ts == 0 {
		ts = time.Now().UnixMilli()
	}
	if b.count == 0 {
		b.baseTS = ts
	}
	if ts > b.maxTS {
		b.maxTS = ts
	}
	var body [5 * binary.MaxVarintLen64]byte
	p := body[:0]
	p = append(p, 0) // attributes
	p = binary.AppendVarint(p, ts-b.baseTS)
	p = binary.AppendVarint(p, int64(b.count))
	p = appendBytesField(p, key)
	size := len(p) + lenBytesField(value) + varintLen(int64(len(headers)))
	for _, h := range headers {
		size += lenBytesField(h.Key) + lenBytesField(h.Value)
	}
	b.buf = binary.AppendVarint(b.buf, int64(size))
	b.buf = append(b.buf, p...)
	b.buf = appendBytesField(b.buf, value)
	b.buf = binary.AppendVarint(b.buf, int64(len(headers)))
	for _, h := range headers {
		b.buf = appendBytesField(b.buf, h.Key)
		b.buf = appendBytesField(b.buf, h.Value)
	}
	b.count++
}

// Bytes finishes the batch (header and CRC) and returns it. The slice is valid
// until the next Reset or Add. baseOffset is 0: the log assigns it.
func (b *BatchBuilder) Bytes() []byte {
	if len(b.buf) < BatchHeaderBytes {
		b.Reset()
	}
	be := binary.BigEndian
	h := b.buf[:BatchHeaderBytes]
	be.PutUint64(h[offBaseOffset:], 0)
	be.PutUint32(h[offBatchLength:], uint32(len(b.buf)-batchLogOverheadBytes))
	be.PutUint32(h[offLeaderEpoch:], 0)
	h[offMagic] = 2
	be.PutUint16(h[offAttributes:], 0)
	last := b.count - 1
	if last < 0 {
		last = 0
	}
	be.PutUint32(h[offLastOffsetDelta:], uint32(last))
	be.PutUint64(h[offBaseTimestamp:], uint64(b.baseTS))
	be.PutUint64(h[offMaxTimestamp:], uint64(b.maxTS))
	be.PutUint64(h[offProducerID:], uint64(b.producer))
	be.PutUint16(h[offProducerEpoch:], uint16(b.epoch))
	be.PutUint32(h[offBaseSequence:], uint32(b.sequence))
	be.PutUint32(h[offRecordCount:], uint32(b.count))
	be.PutUint32(h[offCRC:], crc32.Checksum(b.buf[offAttributes:], castagnoli))
	return b.buf
}

func appendBytesField(dst, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(v)))
	return append(dst, v...)
}

func lenBytesField(v []byte) int {
	if v == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(v))) + len(v)
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// WalkRecords calls fn for every record of every whole batch in b, skipping
// control batches and ignoring a trailing partial batch (a read may end
// mid-batch). An error from fn stops the walk and is returned.
func WalkRecords(b []byte, fn func(r *Record) error) error {
	for len(b) >= BatchHeaderBytes {
		h, err := ParseBatchHeader(b)
		if err != nil {
			return err
		}
		size := h.Size()
		if size > len(b) || size < BatchHeaderBytes {
			return nil
		}
		if h.Attributes&AttrControl == 0 {
			if err := ForEachRecord(b[:size], fn); err != nil {
				return err
			}
		}
		b = b[size:]
	}
	return nil
}
