package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The raw consumer's Fetch request is what kmsg decodes as Fetch v11 with
// the patched offsets, and its response reader counts records and advances
// offsets from batch headers: clipped at the fetch offset, a partial batch
// at the end ignored.
func TestRawFetchRoundTrip(t *testing.T) {
	f := newRawFetch([]string{"a", "b"}, []rawPartition{{topic: 0, part: 0, offset: 5}, {topic: 1, part: 3, offset: 0}})
	f.parts[1].offset = 64
	req := f.request(42)
	if n := int(binary.BigEndian.Uint32(req)); n != len(req)-4 {
		t.Fatalf("request size %d, want %d", n, len(req)-4)
	}
	// Header v1: key, version, correlation id, client id.
	if key, v, corr := binary.BigEndian.Uint16(req[4:]), binary.BigEndian.Uint16(req[6:]), binary.BigEndian.Uint32(req[8:]); key != 1 || v != rawFetchVersion || corr != 42 {
		t.Fatalf("header key %d version %d corr %d", key, v, corr)
	}
	body := req[12+2+len("quartet-bench"):]
	fr := kmsg.NewPtrFetchRequest()
	fr.Version = rawFetchVersion
	if err := fr.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if len(fr.Topics) != 2 || fr.Topics[0].Topic != "a" || fr.Topics[1].Topic != "b" ||
		fr.Topics[0].Partitions[0].FetchOffset != 5 || fr.Topics[1].Partitions[0].Partition != 3 ||
		fr.Topics[1].Partitions[0].FetchOffset != 64 || fr.Topics[1].Partitions[0].PartitionMaxBytes != rawFetchPartBytes ||
		fr.MaxBytes != rawFetchMaxBytes || fr.SessionEpoch != -1 {
		t.Fatalf("decoded request: %+v", fr)
	}

	// Partition a/0: batches at 0 (10 records) and 10 (4 records); fetch
	// offset 5 → 5 + 4 records, next offset 14. Partition b/3: a batch at
	// 64 (64 records) and a truncated batch → 64 records, next 128.
	withBase := func(base int64, n int) []byte {
		b := kafkaRecordBatch(n, 32)
		binary.BigEndian.PutUint64(b, uint64(base))
		return b
	}
	a := append(withBase(0, 10), withBase(10, 4)...)
	partial := withBase(128, 3)
	b := append(withBase(64, 64), partial[:len(partial)-7]...)
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = rawFetchVersion
	for i, recs := range [][]byte{a, b} {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = []string{"a", "b"}[i]
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = []int32{0, 3}[i]
		rp.HighWatermark = 200
		rp.RecordBatches = recs
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
	}
	frame := binary.BigEndian.AppendUint32(nil, 0)
	frame = binary.BigEndian.AppendUint32(frame, 42)
	frame = resp.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	trailer := []byte("next")
	r := bufio.NewReader(bytes.NewReader(append(frame, trailer...)))
	n, perr, err := f.readFetchResponse(r, 42)
	if err != nil || perr != nil {
		t.Fatal(err, perr)
	}
	if n != 5+4+64 || f.parts[0].offset != 14 || f.parts[1].offset != 128 {
		t.Fatalf("records %d, offsets %d %d; want 73, 14, 128", n, f.parts[0].offset, f.parts[1].offset)
	}
	if rest, _ := r.Peek(4); string(rest) != "next" {
		t.Fatalf("reader left at %q, want the next frame", rest)
	}
	// A wrong correlation id is an error.
	r = bufio.NewReader(bytes.NewReader(frame))
	if _, _, err := f.readFetchResponse(r, 43); err == nil {
		t.Fatal("correlation id mismatch not reported")
	}
}
