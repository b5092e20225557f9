package producer

import (
	"encoding/binary"
	"testing"

	"quartet/segment"
)

// fakeLog holds batches (headers only matter) for rebuild.
type fakeLog struct{ batches [][]byte }

func (f *fakeLog) ReadBytes(dst []byte, offset int64, _ int) ([]byte, error) {
	for _, b := range f.batches {
		h, _ := segment.ParseBatchHeader(b)
		if h.LastOffset() >= offset {
			dst = append(dst, b...)
		}
	}
	return dst, nil
}
func (f *fakeLog) HighWatermark() int64 {
	if len(f.batches) == 0 {
		return 0
	}
	h, _ := segment.ParseBatchHeader(f.batches[len(f.batches)-1])
	return h.LastOffset() + 1
}
func (f *fakeLog) StartOffset() int64 { return 0 }

func hdr(base int64, pid int64, epoch int16, seq int32, n int32) segment.BatchHeader {
	return segment.BatchHeader{BaseOffset: base, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq,
		LastOffsetDelta: n - 1, RecordCount: n, Length: segment.BatchHeaderBytes - 12, Magic: 2}
}

func raw(h segment.BatchHeader) []byte {
	b := make([]byte, segment.BatchHeaderBytes)
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(h.BaseOffset))
	be.PutUint32(b[8:], uint32(h.Length))
	b[16] = 2
	be.PutUint32(b[23:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[43:], uint64(h.ProducerID))
	be.PutUint16(b[51:], uint16(h.ProducerEpoch))
	be.PutUint32(b[53:], uint32(h.BaseSequence))
	be.PutUint32(b[57:], uint32(h.RecordCount))
	return b
}

func TestSequences(t *testing.T) {
	m := New(nil, nil)
	st := m.State("p", nil)
	st.Lock()
	defer st.Unlock()
	h0 := hdr(0, 7, 0, 0, 3)
	if c, dup, _ := st.Check(&h0); c != ErrNone || dup {
		t.Fatal(c, dup)
	}
	p0 := st.Record(&h0)
	// In-flight duplicate.
	if c, dup, _ := st.Check(&h0); c != ErrDuplicateSeq || !dup {
		t.Fatal("in-flight dup", c, dup)
	}
	st.Unlock()
	p0.Done(100, false)
	st.Lock()
	if c, dup, off := st.Check(&h0); c != ErrNone || !dup || off != 100 {
		t.Fatal("dup", c, dup, off)
	}
	gap := hdr(0, 7, 0, 5, 1)
	if c, _, _ := st.Check(&gap); c != ErrOutOfOrderSeq {
		t.Fatal("gap", c)
	}
	next := hdr(0, 7, 0, 3, 2)
	if c, dup, _ := st.Check(&next); c != ErrNone || dup {
		t.Fatal("next", c)
	}
	st.Record(&next)
	newEpoch := hdr(0, 7, 1, 0, 1)
	if c, _, _ := st.Check(&newEpoch); c != ErrNone {
		t.Fatal("new epoch", c)
	}
	st.Record(&newEpoch)
	old := hdr(0, 7, 0, 5, 1)
	if c, _, _ := st.Check(&old); c != ErrInvalidEpoch {
		t.Fatal("old epoch", c)
	}
	badStart := hdr(0, 7, 2, 4, 1)
	if c, _, _ := st.Check(&badStart); c != ErrOutOfOrderSeq {
		t.Fatal("new epoch must start at 0", c)
	}
}

func TestRebuild(t *testing.T) {
	l := &fakeLog{}
	off := int64(0)
	for seq := int32(0); seq < 40; seq += 4 {
		l.batches = append(l.batches, raw(hdr(off, 9, 3, seq, 4)))
		off += 4
	}
	l.batches = append(l.batches, raw(hdr(off, -1, -1, -1, 2))) // not idempotent
	m := New(nil, nil)
	st := m.State("p", l)
	st.Lock()
	defer st.Unlock()
	last := hdr(0, 9, 3, 36, 4)
	if c, dup, o := st.Check(&last); c != ErrNone || !dup || o != 36 {
		t.Fatalf("rebuilt dup: %d %v %d", c, dup, o)
	}
	next := hdr(0, 9, 3, 40, 1)
	if c, dup, _ := st.Check(&next); c != ErrNone || dup {
		t.Fatal("next after rebuild", c, dup)
	}
	gap := hdr(0, 9, 3, 41, 1)
	if c, _, _ := st.Check(&gap); c != ErrOutOfOrderSeq {
		t.Fatal("gap after rebuild", c)
	}
}
