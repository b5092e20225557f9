package kafka

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"quartet/engine"
	"quartet/segment"
)

// benchBatch is an uncompressed batch of n records of size bytes.
func benchBatch(n, size int) []byte {
	var bb segment.BatchBuilder
	bb.Reset()
	v := make([]byte, size)
	for i := range v {
		v[i] = byte(i)
	}
	for range n {
		bb.Add(0, nil, v, nil)
	}
	return append([]byte(nil), bb.Bytes()...)
}

func benchBroker(b *testing.B, flush segment.FlushMode) *broker {
	br := &broker{t: b, dir: b.TempDir(), cfg: testConfig()}
	br.ecfg = engine.Config{DataDir: br.dir, Flush: flush}
	br.start("127.0.0.1:0")
	b.Cleanup(br.stop)
	if _, err := kadm.NewClient(br.client()).CreateTopic(ctxT(b, 10*time.Second), 1, 1, nil, "bench"); err != nil {
		b.Fatal(err)
	}
	return br
}

// readFrames reads n response frames from r into buf.
func readFrames(r *bufio.Reader, n int, buf []byte) (int64, error) {
	var total int64
	var sz [4]byte
	for range n {
		if _, err := io.ReadFull(r, sz[:]); err != nil {
			return total, err
		}
		l := int64(binary.BigEndian.Uint32(sz[:]))
		total += l
		for l > 0 {
			k := min(l, int64(len(buf)))
			if _, err := io.ReadFull(r, buf[:k]); err != nil {
				return total, err
			}
			l -= k
		}
	}
	return total, nil
}

// BenchmarkProduce measures the broker's produce path over loopback: one
// connection, requests of 16 records of 1 KiB (acks=-1) pipelined 8 deep.
// allocs/op is the whole process's allocations per request; the client side
// allocates nothing per request, so it is the broker's.
func BenchmarkProduce(b *testing.B) {
	for _, flush := range []segment.FlushMode{segment.FlushAsync, segment.FlushSync} {
		b.Run(string(flush), func(b *testing.B) {
			br := benchBroker(b, flush)
			req := kmsg.NewPtrProduceRequest()
			req.Version, req.Acks, req.TimeoutMillis = 9, -1, 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "bench"
			rp := kmsg.NewProduceRequestTopicPartition()
			recs := benchEnv("KAFKA_BENCH_RECORDS", 16)
			rp.Records = benchBatch(recs, 1024)
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			frame := frameOf(req, 1)
			conn, err := net.Dial("tcp", br.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			r := bufio.NewReaderSize(conn, 64<<10)
			buf := make([]byte, 64<<10)
			depth := benchDepth()
			// warm up
			for range depth {
				conn.Write(frame)
			}
			readFrames(r, depth, buf)
			b.SetBytes(int64(len(rp.Records)))
			b.ReportAllocs()
			b.ResetTimer()
			done := make(chan error, 1)
			inflight := make(chan struct{}, depth)
			go func() {
				for range b.N {
					if _, err := readFrames(r, 1, buf); err != nil {
						done <- err
						return
					}
					<-inflight
				}
				done <- nil
			}()
			for range b.N {
				inflight <- struct{}{}
				if _, err := conn.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*recs)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkFetch measures the fetch path: 1 MiB fetches of a 32 MiB
// partition (page-cache warm), record bytes by sendfile.
func BenchmarkFetch(b *testing.B) {
	br := benchBroker(b, segment.FlushAsync)
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "bench"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = benchBatch(64, 1024)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := frameOf(req, 1)
	conn, err := net.Dial("tcp", br.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 256<<10)
	buf := make([]byte, 256<<10)
	const batches = 512 // 32 MiB
	go func() {
		for range batches {
			conn.Write(frame)
		}
	}()
	if _, err := readFrames(r, batches, buf); err != nil {
		b.Fatal(err)
	}
	records := int64(batches * 64)
	mkFetch := func(offset int64) []byte {
		fr := kmsg.NewPtrFetchRequest()
		fr.Version, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 12, 500, 1, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "bench"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.FetchOffset, fp.PartitionMaxBytes = offset, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
		fr.Topics = append(fr.Topics, ft)
		return frameOf(fr, 2)
	}
	// One request per 1 MiB step through the partition, pre-encoded.
	var reqs [][]byte
	for off := int64(0); off < records; off += 1024 {
		reqs = append(reqs, mkFetch(off))
	}
	b.ReportAllocs()
	b.ResetTimer()
	var total int64
	for i := 0; i < b.N; i++ {
		if _, err := conn.Write(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		n, err := readFrames(r, 1, buf)
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	b.StopTimer()
	b.SetBytes(total / int64(b.N))
	if total/int64(b.N) < 1<<19 {
		b.Fatalf("fetches returned only %d bytes each", total/int64(b.N))
	}
}

// benchDepth is the produce pipeline depth (KAFKA_BENCH_DEPTH, default 8).
func benchDepth() int { return benchEnv("KAFKA_BENCH_DEPTH", 8) }

func benchEnv(name string, def int) int {
	var d int
	if _, err := fmt.Sscan(os.Getenv(name), &d); err != nil || d <= 0 {
		return def
	}
	return d
}
