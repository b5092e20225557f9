package segment

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/crc32"
)

// Kafka RecordBatch v2 header layout (big-endian). Offsets are from the start
// of the batch; batchLength counts the bytes after itself.
const (
	offBaseOffset      = 0  // int64, patched by the log (outside the CRC)
	offBatchLength     = 8  // int32
	offLeaderEpoch     = 12 // int32, set by the log (outside the CRC)
	offMagic           = 16 // int8 = 2
	offCRC             = 17 // uint32 CRC-32C of bytes [21, end)
	offAttributes      = 21 // int16
	offLastOffsetDelta = 23 // int32
	offBaseTimestamp   = 27 // int64
	offMaxTimestamp    = 35 // int64
	offProducerID      = 43 // int64
	offProducerEpoch   = 51 // int16
	offBaseSequence    = 53 // int32
	offRecordCount     = 57 // int32

	// BatchHeaderBytes is the fixed part of a RecordBatch v2.
	BatchHeaderBytes = 61
	// batchLogOverheadBytes is what precedes batchLength's count.
	batchLogOverheadBytes = 12
	// BatchBytesMax bounds a single batch (Kafka's default message.max.bytes is ~1 MiB;
	// we accept producers' larger configured batches up to this).
	BatchBytesMax = 64 << 20
)

// Batch attribute bits.
const (
	AttrCompressionMask = 0x07
	AttrLogAppendTime   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

// Compression codecs in the attribute bits.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

// Sentinel errors for batch validation.
var (
	ErrCorruptBatch     = errors.New("segment: corrupt batch")
	ErrBatchTooLarge    = errors.New("segment: batch too large")
	ErrUnsupportedMagic = errors.New("segment: unsupported batch magic")
	ErrShortBatch       = errors.New("segment: short batch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded fixed part of a RecordBatch v2.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32 // bytes after the length field
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Size is the whole batch's length in bytes.
func (h *BatchHeader) Size() int { return int(h.Length) + batchLogOverheadBytes }

// LastOffset is the offset of the batch's last record.
func (h *BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression returns the codec bits.
func (h *BatchHeader) Compression() int { return int(h.Attributes & AttrCompressionMask) }

// ParseBatchHeader decodes the fixed header at the start of b without
// checking the CRC. It fails if b is too short to hold the header.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < BatchHeaderBytes {
		return h, ErrShortBatch
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[offBaseOffset:]))
	h.Length = int32(be.Uint32(b[offBatchLength:]))
	h.LeaderEpoch = int32(be.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = be.Uint32(b[offCRC:])
	h.Attributes = int16(be.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(be.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(be.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(be.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(be.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(be.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(be.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(be.Uint32(b[offRecordCount:]))
	return h, nil
}

// ValidateBatch checks the batch at the start of b: length within b and within
// BatchBytesMax, magic 2, a sane record count and offset delta, and the CRC-32C.
// It returns the header and the batch's size in bytes.
func ValidateBatch(b []byte) (BatchHeader, int, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, 0, err
	}
	size := h.Size()
	switch {
	case h.Length < BatchHeaderBytes-batchLogOverheadBytes:
		return h, 0, fmt.Errorf("%w: batch length %d below header size", ErrCorruptBatch, h.Length)
	case size > BatchBytesMax:
		return h, 0, fmt.Errorf("%w: %d bytes", ErrBatchTooLarge, size)
	case size > len(b):
		return h, 0, fmt.Errorf("%w: need %d bytes, have %d", ErrShortBatch, size, len(b))
	case h.Magic != 2:
		return h, 0, fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, h.Magic)
	case h.LastOffsetDelta < 0 || h.RecordCount < 0 || (h.RecordCount > 0 && int64(h.LastOffsetDelta) < int64(h.RecordCount)-1):
		return h, 0, fmt.Errorf("%w: %d records, last offset delta %d", ErrCorruptBatch, h.RecordCount, h.LastOffsetDelta)
	}
	if crc := crc32.Checksum(b[offAttributes:size], castagnoli); crc != h.CRC {
		return h, 0, fmt.Errorf("%w: crc %08x, want %08x", ErrCorruptBatch, crc, h.CRC)
	}
	return h, size, nil
}

// SetBaseOffset patches the batch's baseOffset (outside the CRC).
func SetBaseOffset(b []byte, base int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(base))
}

// SetLeaderEpoch patches the partition leader epoch (outside the CRC).
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch as LogAppendTime with maxTimestamp ts and
// recomputes the CRC: the one case where the broker must change CRC-covered
// bytes (Kafka does the same for topics with message.timestamp.type=LogAppendTime).
func SetLogAppendTime(b []byte, ts int64) {
	be := binary.BigEndian
	attrs := be.Uint16(b[offAttributes:]) | AttrLogAppendTime
	be.PutUint16(b[offAttributes:], attrs)
	be.PutUint64(b[offMaxTimestamp:], uint64(ts))
	size := int(int32(be.Uint32(b[offBatchLength:]))) + batchLogOverheadBytes
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:size], castagnoli))
}

// SplitBatches calls fn for each whole, valid batch in b, in order. It stops at
// the first invalid batch and returns its error; trailing bytes that do not form
// a batch are an error too.
func SplitBatches(b []byte, fn func(h *BatchHeader, batch []byte) error) error {
	for len(b) > 0 {
		h, size, err := ValidateBatch(b)
		if err != nil {
			return err
		}
		if err := fn(&h, b[:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	return nil
}
