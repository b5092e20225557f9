package segment

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/crc32"
	"github.com/pierrec/lz4/v4"
)

// compressBatchForTest rewrites an uncompressed batch with codec c, as a
// producer would send it.
func compressBatchForTest(t testing.TB, plain []byte, c int) []byte {
	t.Helper()
	body := plain[BatchHeaderBytes:]
	var out bytes.Buffer
	switch c {
	case CompressionGzip:
		zw := gzip.NewWriter(&out)
		zw.Write(body)
		zw.Close()
	case CompressionSnappy:
		out.Write(s2.EncodeSnappy(nil, body))
	case CompressionLZ4:
		zw := lz4.NewWriter(&out)
		zw.Write(body)
		zw.Close()
	case CompressionZstd:
		enc, _ := zstd.NewWriter(nil)
		out.Write(enc.EncodeAll(body, nil))
	}
	b := append(append([]byte(nil), plain[:BatchHeaderBytes]...), out.Bytes()...)
	be := binary.BigEndian
	be.PutUint32(b[offBatchLength:], uint32(len(b)-batchLogOverheadBytes))
	be.PutUint16(b[offAttributes:], uint16(c))
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

func FuzzValidateBatch(f *testing.F) {
	f.Add(testBatch(f, 3, 10, 1))
	plain := testBatch(f, 2, 30, 1)
	for _, c := range []int{CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd} {
		f.Add(compressBatchForTest(f, plain, c))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, size, err := ValidateBatch(b)
		if err != nil {
			return
		}
		if size != h.Size() || size > len(b) {
			t.Fatalf("size %d for %d bytes", size, len(b))
		}
		ForEachRecord(b[:size], func(r *Record) error { return nil })
	})
}

// FuzzRecovery writes arbitrary bytes after valid batches as the newest
// segment: opening must never fail or keep a partial batch, and the log must
// accept appends afterwards.
func FuzzRecovery(f *testing.F) {
	good := testBatch(f, 2, 20, 1)
	f.Add(good[:40])
	f.Add(good)
	f.Add([]byte("garbage"))
	w := newFaultWriter()
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		data := append(append(append([]byte(nil), good...), good...), tail...)
		SetBaseOffset(data[len(good):], 2)
		os.WriteFile(filepath.Join(dir, "00000000000000000000.log"), data, 0o644)
		l, err := Open(dir, Config{}, w, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, hw, _ := l.Offsets()
		if hw < 4 {
			t.Fatalf("lost whole batches: hw %d", hw)
		}
		got, err := l.ReadBytes(nil, 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if err := SplitBatches(got, func(*BatchHeader, []byte) error { return nil }); err != nil {
			t.Fatalf("recovered log holds a bad batch: %v", err)
		}
		if _, err := appendWait(t, l, good); err != nil {
			t.Fatal(err)
		}
	})
}
