package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The raw Kafka consumer (--consumer raw): as lean as the ceiling's
// producer side, so a consume run measures the broker's fetch path rather
// than a client's record decoding. Each consumer holds one connection to the
// target (Quartet is a single node, the leader of every partition) and keeps
// one Fetch v11 request in flight, as Kafka consumers do, for every
// partition of the topics; the request is encoded once and only the
// correlation id and the fetch offsets are patched. Of a response it reads
// the partition headers and the 61-byte RecordBatch headers (record count
// and last offset, to count records and advance the offset) and discards the
// record bytes unread. It records no produce→consume latency (it never looks
// inside a record); throughput and drops are counted as for franz-go.

const (
	rawFetchVersion     = 11
	rawFetchMaxBytes    = 50 << 20 // fetch.max.bytes, franz-go's and Kafka's default
	rawFetchPartBytes   = 1 << 20  // max.partition.fetch.bytes, the same
	rawFetchWaitMs      = 500
	rawBatchHeaderBytes = 61
	rawReadBufferBytes  = 1 << 20
)

// rawPartition is one partition a raw consumer reads.
type rawPartition struct {
	topic  int // index in rawFetch.topics
	part   int32
	offset int64
	at     int // position of the fetch offset in the request
}

// rawFetch is one consumer's pre-encoded Fetch request.
type rawFetch struct {
	req    []byte
	topics []string
	parts  []rawPartition
	corrAt int
	byKey  map[rawKey]int // (topic, partition) -> index in parts
}

type rawKey struct {
	topic int
	part  int32
}

// newRawFetch encodes a Fetch v11 request (non-flexible) for parts; offsets
// are patched per request by set.
func newRawFetch(topics []string, parts []rawPartition) *rawFetch {
	f := &rawFetch{topics: topics, parts: parts, byKey: map[rawKey]int{}}
	be := binary.BigEndian
	b := make([]byte, 4, 256+32*len(parts))
	b = be.AppendUint16(b, 1) // api key: Fetch
	b = be.AppendUint16(b, rawFetchVersion)
	f.corrAt = len(b)
	b = be.AppendUint32(b, 0) // correlation id
	b = appendRawString(b, "quartet-bench")
	b = be.AppendUint32(b, ^uint32(0)) // replica id -1
	b = be.AppendUint32(b, rawFetchWaitMs)
	b = be.AppendUint32(b, 1) // min bytes
	b = be.AppendUint32(b, rawFetchMaxBytes)
	b = append(b, 0)                   // isolation: read uncommitted
	b = be.AppendUint32(b, 0)          // session id
	b = be.AppendUint32(b, ^uint32(0)) // session epoch -1: no session
	b = be.AppendUint32(b, uint32(len(topics)))
	for ti, t := range topics {
		b = appendRawString(b, t)
		n := 0
		for _, p := range parts {
			if p.topic == ti {
				n++
			}
		}
		b = be.AppendUint32(b, uint32(n))
		for i := range f.parts {
			p := &f.parts[i]
			if p.topic != ti {
				continue
			}
			f.byKey[rawKey{ti, p.part}] = i
			b = be.AppendUint32(b, uint32(p.part))
			b = be.AppendUint32(b, ^uint32(0)) // current leader epoch -1
			p.at = len(b)
			b = be.AppendUint64(b, uint64(p.offset))
			b = be.AppendUint64(b, ^uint64(0)) // log start offset -1
			b = be.AppendUint32(b, rawFetchPartBytes)
		}
	}
	b = be.AppendUint32(b, 0)  // forgotten topics
	b = appendRawString(b, "") // rack id
	be.PutUint32(b, uint32(len(b)-4))
	f.req = b
	return f
}

func appendRawString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// request returns the request with corr and the current offsets.
func (f *rawFetch) request(corr int32) []byte {
	be := binary.BigEndian
	be.PutUint32(f.req[f.corrAt:], uint32(corr))
	for _, p := range f.parts {
		be.PutUint64(f.req[p.at:], uint64(p.offset))
	}
	return f.req
}

// errRawFetch reports a response that does not parse.
var errRawFetch = errors.New("bench: raw fetch: malformed response")

// rawReader reads a response frame field by field, bounded by its size.
type rawReader struct {
	r    *bufio.Reader
	left int64
	err  error
}

func (x *rawReader) next(n int) []byte {
	if x.err != nil {
		return nil
	}
	if int64(n) > x.left {
		x.err = fmt.Errorf("%w: field of %d bytes, %d left in the frame", errRawFetch, n, x.left)
		return nil
	}
	b, err := x.r.Peek(n)
	if err != nil {
		x.err = err
		return nil
	}
	x.r.Discard(n)
	x.left -= int64(n)
	return b
}

func (x *rawReader) skip(n int64) {
	if x.err != nil {
		return
	}
	if n > x.left || n < 0 {
		x.err = fmt.Errorf("%w: skip %d bytes, %d left in the frame", errRawFetch, n, x.left)
		return
	}
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := x.r.Discard(k)
		x.left -= int64(d)
		n -= int64(d)
		if err != nil {
			x.err = err
			return
		}
	}
}

func (x *rawReader) int16() int16 {
	if b := x.next(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (x *rawReader) int32() int32 {
	if b := x.next(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (x *rawReader) int64() int64 {
	if b := x.next(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// readFetchResponse reads one Fetch v11 response, advances the offsets of
// f's partitions past the whole batches it carries and returns the records
// it counted and the first partition error.
func (f *rawFetch) readFetchResponse(r *bufio.Reader, corr int32) (records int64, perr error, err error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return 0, nil, err
	}
	x := &rawReader{r: r, left: int64(binary.BigEndian.Uint32(sz[:]))}
	if c := x.int32(); x.err == nil && c != corr {
		return 0, nil, fmt.Errorf("%w: correlation id %d, want %d", errRawFetch, c, corr)
	}
	x.int32() // throttle
	if code := x.int16(); code != 0 && x.err == nil {
		return 0, nil, fmt.Errorf("%w: error code %d", errRawFetch, code)
	}
	x.int32() // session id
	nt := x.int32()
	for range max(nt, 0) {
		nameLen := x.int16()
		// A string now: a later Peek may move the reader's buffer.
		name := string(x.next(int(max(nameLen, 0))))
		ti := slices.Index(f.topics, name)
		np := x.int32()
		for range max(np, 0) {
			part := x.int32()
			code := x.int16()
			x.int64() // high watermark
			x.int64() // last stable offset
			x.int64() // log start offset
			if na := x.int32(); na > 0 {
				x.skip(16 * int64(na)) // aborted transactions
			}
			x.int32() // preferred read replica
			n := int64(x.int32())
			if x.err != nil {
				return records, perr, x.err
			}
			pi, ok := f.byKey[rawKey{ti, part}]
			if code != 0 && perr == nil {
				perr = fmt.Errorf("fetch %s/%d: error code %d", name, part, code)
			}
			if !ok || n <= 0 {
				x.skip(max(n, 0))
				continue
			}
			p := &f.parts[pi]
			for n >= rawBatchHeaderBytes {
				h := x.next(rawBatchHeaderBytes)
				if h == nil {
					return records, perr, x.err
				}
				be := binary.BigEndian
				base := int64(be.Uint64(h[0:]))
				size := int64(be.Uint32(h[8:])) + 12
				last := base + int64(be.Uint32(h[23:]))
				count := int64(be.Uint32(h[57:]))
				if size < rawBatchHeaderBytes || size > n {
					// A partial batch at the end (Kafka may send one).
					n -= rawBatchHeaderBytes
					break
				}
				x.skip(size - rawBatchHeaderBytes)
				n -= size
				if last >= p.offset {
					if base < p.offset {
						count -= p.offset - base // records before the fetch offset
					}
					records += max(count, 0)
					p.offset = last + 1
				}
			}
			x.skip(n)
		}
	}
	x.skip(x.left) // tagged fields of later versions, if any
	return records, perr, x.err
}

// rawPartitions lists the partitions of topics with their start offsets.
func rawPartitions(ctx context.Context, c *Config, topics []string) ([]rawPartition, error) {
	cl, err := kgo.NewClient(kafkaBase(c)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	var parts []rawPartition
	var ferr error
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && ferr == nil {
			ferr = fmt.Errorf("start offset %s/%d: %w", o.Topic, o.Partition, o.Err)
		}
		parts = append(parts, rawPartition{topic: slices.Index(topics, o.Topic), part: o.Partition, offset: o.Offset})
	})
	if ferr != nil {
		return nil, ferr
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("no partitions in %v", topics)
	}
	slices.SortFunc(parts, func(a, b rawPartition) int {
		if a.topic != b.topic {
			return a.topic - b.topic
		}
		return int(a.part - b.part)
	})
	return parts, nil
}

// subscribeRaw runs --consumers raw consumers, each reading every partition.
func subscribeRaw(ctx context.Context, c *Config, se *subEnv) error {
	if c.Group {
		return fmt.Errorf("%w: --consumer raw reads every partition; --group needs --consumer franz", ErrUsage)
	}
	topics := topicNames(c)
	type conn struct {
		nc net.Conn
		f  *rawFetch
	}
	conns := make([]conn, c.Consumers)
	// The partitions and start offsets are looked up before T0 (they are
	// not the fetch path); a cold read connects only at T0.
	parts, err := rawPartitions(ctx, c, topics)
	if err != nil {
		return err
	}
	if c.ConsumeOnly {
		se.ready()
		if err := se.waitStart(ctx); err != nil {
			return err
		}
	}
	for j := range conns {
		d := net.Dialer{Timeout: 10 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", c.Target)
		if err != nil {
			return fmt.Errorf("kafka raw consumer: dial %s: %w", c.Target, err)
		}
		defer nc.Close()
		conns[j] = conn{nc: nc, f: newRawFetch(topics, slices.Clone(parts))}
	}
	go func() {
		<-ctx.Done()
		for _, cn := range conns {
			cn.nc.Close()
		}
	}()
	errc := make(chan error, len(conns))
	for _, cn := range conns {
		cs := se.consumer()
		go func() {
			r := bufio.NewReaderSize(cn.nc, rawReadBufferBytes)
			for corr := int32(1); ; corr++ {
				if _, err := cn.nc.Write(cn.f.request(corr)); err != nil {
					errc <- err
					return
				}
				n, perr, err := cn.f.readFetchResponse(r, corr)
				if err != nil {
					errc <- err
					return
				}
				if n > 0 {
					cs.gotRecords(n)
				}
				if perr != nil {
					se.errs.add(perr)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	se.ready()
	var first error
	for range conns {
		if err := <-errc; first == nil && ctx.Err() == nil {
			first = err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return first
}

// gotRecords accounts n records delivered at once (no payload: no latency).
func (cs *consumerStat) gotRecords(n int64) {
	nowNs := time.Now().UnixNano()
	cs.recv.Add(n)
	if cs.first.Load() == 0 {
		cs.first.Store(nowNs)
	}
	cs.last.Store(nowNs)
	ck := cs.env.ck.Load()
	if ck == nil {
		return
	}
	if nowNs >= ck.t1.UnixNano() && nowNs < ck.t2.UnixNano() {
		cs.recvWindow.Add(n)
	}
}
