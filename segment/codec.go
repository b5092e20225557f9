package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// decompressedBytesMax bounds what one batch may inflate to (a zip bomb must
// not exhaust memory).
const decompressedBytesMax = 256 << 20

// xerialMagic starts snappy data framed the way the Java client writes it.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var (
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(decompressedBytesMax))
	gzipReaders    sync.Pool
	lz4Readers     = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
)

// decompress appends the decompressed form of src (codec c) to dst.
func decompress(c int, dst, src []byte) ([]byte, error) {
	var err error
	switch c {
	case CompressionGzip:
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return dst, fmt.Errorf("%w: gzip: %v", ErrCorruptBatch, err)
		}
		dst, err = readAllBounded(dst, zr)
		gzipReaders.Put(zr)
	case CompressionSnappy:
		dst, err = snappyDecode(dst, src)
	case CompressionLZ4:
		zr := lz4Readers.Get().(*lz4.Reader)
		zr.Reset(bytes.NewReader(src))
		dst, err = readAllBounded(dst, zr)
		lz4Readers.Put(zr)
	case CompressionZstd:
		dst, err = zstdDecoder.DecodeAll(src, dst)
	default:
		return dst, fmt.Errorf("%w: unknown compression %d", ErrCorruptBatch, c)
	}
	if err != nil {
		return dst, fmt.Errorf("%w: decompress: %v", ErrCorruptBatch, err)
	}
	return dst, nil
}

func readAllBounded(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			if len(dst) >= decompressedBytesMax {
				return dst, fmt.Errorf("inflates past %d bytes", decompressedBytesMax)
			}
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// snappyDecode handles both raw snappy blocks and the xerial framing.
func snappyDecode(dst, src []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		n, err := s2.DecodedLen(src)
		if err != nil {
			return dst, err
		}
		if n > decompressedBytesMax {
			return dst, fmt.Errorf("inflates to %d bytes", n)
		}
		out, err := s2.Decode(dst[len(dst):cap(dst)], src)
		if err != nil {
			return dst, err
		}
		return append(dst, out...), nil
	}
	src = src[len(xerialMagic):]
	if len(src) < 8 {
		return dst, fmt.Errorf("short xerial header")
	}
	src = src[8:] // version, compatible version
	for len(src) > 0 {
		if len(src) < 4 {
			return dst, fmt.Errorf("short xerial chunk")
		}
		n := int(binary.BigEndian.Uint32(src))
		src = src[4:]
		if n < 0 || n > len(src) {
			return dst, fmt.Errorf("xerial chunk of %d bytes past the end", n)
		}
		var err error
		dst, err = snappyDecode(dst, src[:n])
		if err != nil {
			return dst, err
		}
		src = src[n:]
	}
	return dst, nil
}

// Buffer pool in power-of-two size classes, so steady-state appends and reads
// do not allocate.
const (
	poolClassMin = 10 // 1 KiB
	poolClassMax = 26 // 64 MiB
)

var bufPools [poolClassMax + 1]sync.Pool

func poolClass(n int) int {
	c := poolClassMin
	for (1<<c) < n && c < poolClassMax {
		c++
	}
	return c
}

// getBuf returns a pooled buffer of length n (capacity a power of two >= n).
func getBuf(n int) *[]byte {
	c := poolClass(n)
	if (1 << c) < n {
		b := make([]byte, n)
		return &b
	}
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// putBuf returns a buffer from getBuf to the pool.
func putBuf(p *[]byte) {
	c := cap(*p)
	if c < 1<<poolClassMin || c > 1<<poolClassMax || c&(c-1) != 0 {
		return
	}
	bufPools[poolClass(c)].Put(p)
}
