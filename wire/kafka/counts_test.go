package kafka

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"quartet/segment"
)

// bigBatch is a batch of n records of size bytes (no producer id).
func bigBatch(n, size int) []byte {
	var bb segment.BatchBuilder
	bb.Reset()
	v := bytes.Repeat([]byte{'x'}, size)
	for range n {
		bb.Add(0, nil, v, nil)
	}
	return append([]byte(nil), bb.Bytes()...)
}

// fetchRaw fetches topic/0 at offset with partMax bytes and returns the
// record bytes of the response.
func fetchRaw(t *testing.T, cl *kgo.Client, topic string, offset int64, partMax int32) []byte {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 0, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, offset, partMax
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxT(t, 10*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch %s@%d: error %d", topic, offset, p.ErrorCode)
	}
	return p.RecordBatches
}

// TestMessageCounts checks MessageCounts exactly after each step: what
// produce counts and refuses, and fetches served by copy, by sendfile with
// a batch after the range, by sendfile to the end of the segment, and from
// the middle of a batch.
func TestMessageCounts(t *testing.T) {
	b := startBroker(t, testConfig())
	cl := b.client()
	if _, err := kadm.NewClient(cl).CreateTopic(ctxT(t, 10*time.Second), 1, 1, nil, "counts"); err != nil {
		t.Fatal(err)
	}
	var wantIn, wantOut uint64
	check := func(step string) {
		t.Helper()
		in, out := b.k.MessageCounts()
		if in != wantIn || out != wantOut {
			t.Fatalf("%s: MessageCounts() = %d, %d; want %d, %d", step, in, out, wantIn, wantOut)
		}
	}
	check("start")

	// Offsets 0-2: one small batch.
	if r := produceRaw(t, cl, "counts", 0, idemBatch(-1, -1, -1, 3)); r.ErrorCode != 0 {
		t.Fatalf("produce: %+v", r)
	}
	wantIn += 3
	check("small batch")
	// Offsets 3-7: two batches in one partition's records.
	two := append(idemBatch(-1, -1, -1, 2), idemBatch(-1, -1, -1, 3)...)
	if r := produceRaw(t, cl, "counts", 0, two); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("two batches: %+v", r)
	}
	wantIn += 5
	check("two batches")
	// Refused: corrupt, unknown partition.
	corrupt := idemBatch(-1, -1, -1, 4)
	corrupt[len(corrupt)-1] ^= 0xff
	if r := produceRaw(t, cl, "counts", 0, corrupt); r.ErrorCode != 2 {
		t.Fatalf("corrupt: %+v", r)
	}
	if r := produceRaw(t, cl, "counts", 7, idemBatch(-1, -1, -1, 4)); r.ErrorCode != 3 {
		t.Fatalf("unknown partition: %+v", r)
	}
	check("refused")
	// Offsets 8-9 idempotent; its duplicate is answered but not counted.
	init, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctxT(t, 5*time.Second), cl)
	if err != nil || init.ErrorCode != 0 {
		t.Fatal(err, init)
	}
	idem := idemBatch(init.ProducerID, init.ProducerEpoch, 0, 2)
	for range 2 {
		if r := produceRaw(t, cl, "counts", 0, idem); r.ErrorCode != 0 || r.BaseOffset != 8 {
			t.Fatalf("idempotent: %+v", r)
		}
	}
	wantIn += 2
	check("idempotent and duplicate")
	// Offsets 10-129, 130-249, 250-369: three batches of ~84 KiB, above
	// netpoll's copy threshold (64 KiB), so sent by sendfile.
	for range 3 {
		if r := produceRaw(t, cl, "counts", 0, bigBatch(120, 700)); r.ErrorCode != 0 {
			t.Fatalf("big batch: %+v", r)
		}
	}
	wantIn += 360
	check("big batches")

	// Copied (small): everything from 0 up to the first big batch, which
	// goes too (a range is whole batches, at least one).
	if got := fetchRaw(t, cl, "counts", 0, 1000); len(got) == 0 {
		t.Fatal("empty fetch")
	}
	wantOut += 10
	check("copied fetch from 0")
	// Copied, from the middle of the two-batch record set: 5-9.
	fetchRaw(t, cl, "counts", 5, 1000)
	wantOut += 5
	check("copied fetch from the middle of a batch")
	// Sendfile, one big batch with more after it: 10-129.
	if got := fetchRaw(t, cl, "counts", 10, 50<<10); len(got) <= fetchCopyBytesMax {
		t.Fatalf("fetch of %d bytes is not on the sendfile path", len(got))
	}
	wantOut += 120
	check("sendfile fetch followed by a batch")
	if st := b.np.Stats()[0]; st.SendfileBytes == 0 {
		t.Fatalf("no byte went by sendfile (copied %d)", st.CopiedBytes)
	}
	// Sendfile, from the middle of a big batch to the end of the segment
	// file: 200-369.
	fetchRaw(t, cl, "counts", 200, 1<<20)
	wantOut += 170
	check("sendfile fetch to the end of the file")
	// At the high watermark: nothing.
	if got := fetchRaw(t, cl, "counts", 370, 1<<20); len(got) != 0 {
		t.Fatalf("fetch at the high watermark: %d bytes", len(got))
	}
	check("fetch at the high watermark")

	// franz-go consumers: two read everything, each copy counts.
	for i := range 2 {
		c := b.client(kgo.ConsumeTopics("counts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		ctx := ctxT(t, 10*time.Second)
		for n := 0; n < 370; {
			fs := c.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			n += fs.NumRecords()
		}
		c.Close()
		wantOut += 370
		check(fmt.Sprintf("franz-go consumer %d", i))
	}
}
