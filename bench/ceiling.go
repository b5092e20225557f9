package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The machine's ceiling for Kafka and RocketMQ, whose brokers cannot be
// installed here: the same requests the clients send, pre-encoded, written as
// fast as possible into a sink that reads and discards them.

// runSink accepts connections on ln and discards everything read.
func runSink(ctx context.Context, ln net.Listener, total *atomic.Int64) error {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer conn.Close()
			buf := make([]byte, 256<<10)
			for {
				n, err := conn.Read(buf)
				total.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// kafkaRecordBatch encodes a RecordBatch v2 of n records of size bytes each,
// uncompressed, as franz-go produces it (no key, no headers).
func kafkaRecordBatch(n, size int) []byte {
	value := newPayload(size)
	now := time.Now().UnixMilli()
	var recs []byte
	for i := range n {
		var body []byte
		body = append(body, 0)                        // attributes
		body = binary.AppendVarint(body, 0)           // timestamp delta
		body = binary.AppendVarint(body, int64(i))    // offset delta
		body = binary.AppendVarint(body, -1)          // key: null
		body = binary.AppendVarint(body, int64(size)) // value length
		body = append(body, value...)
		body = binary.AppendVarint(body, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := make([]byte, 0, 61+len(recs))
	b = binary.BigEndian.AppendUint64(b, 0)           // base offset
	b = binary.BigEndian.AppendUint32(b, 0)           // length, patched
	b = binary.BigEndian.AppendUint32(b, 0)           // partition leader epoch
	b = append(b, 2)                                  // magic
	b = binary.BigEndian.AppendUint32(b, 0)           // crc, patched
	b = binary.BigEndian.AppendUint16(b, 0)           // attributes
	b = binary.BigEndian.AppendUint32(b, uint32(n-1)) // last offset delta
	b = binary.BigEndian.AppendUint64(b, uint64(now))
	b = binary.BigEndian.AppendUint64(b, uint64(now))
	b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // producer id -1
	b = binary.BigEndian.AppendUint16(b, 0xffff)     // producer epoch -1
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // base sequence -1
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[8:12], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:21], crc32.Checksum(b[21:], crc32c))
	return b
}

// kafkaProduceRequest frames a Produce v9 request carrying one batch.
func kafkaProduceRequest(topic string, batch []byte, acks int16, corr int32) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = acks
	req.TimeoutMillis = 30000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = topic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition = 0
	p.Records = batch
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("quartet-bench"))
	return f.AppendRequest(nil, req, corr)
}

// rocketSendFrame encodes a SEND_MESSAGE (code 10) remoting frame as
// rocketmq-client-go's SendSync writes it: JSON header, body = the message.
func rocketSendFrame(topic string, body []byte, opaque int32) []byte {
	hdr := map[string]any{
		"code": 10, "language": "GO", "version": 317, "opaque": opaque, "flag": 0, "remark": "",
		"extFields": map[string]string{
			"producerGroup": "qb-ceiling", "topic": topic, "queueId": "0", "sysFlag": "0",
			"bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "flag": "0",
			"reconsumeTimes": "0", "unitMode": "false", "maxReconsumeTimes": "0",
			"defaultTopic": "TBW102", "defaultTopicQueueNums": "4", "batch": "false",
			"properties": "UNIQ_KEY\x01" + "7F0000010000000000000000000000AA\x02WAIT\x01true\x02", "bname": "broker-a",
		},
	}
	h, _ := json.Marshal(hdr)
	b := make([]byte, 0, 8+len(h)+len(body))
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(h)+len(body)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(h))) // serialize type 0 (JSON) in the high byte
	b = append(b, h...)
	return append(b, body...)
}

// runCeiling writes pre-encoded requests from --producers connections into
// the sink at --target for warm-up + duration.
func runCeiling(ctx context.Context, c *Config, progress io.Writer) (*Result, error) {
	var unit []byte
	var perUnit int
	topic := "bench-ceiling"
	switch c.Proto {
	case "kafka":
		acks := int16(c.Acks)
		unit = kafkaProduceRequest(topic, kafkaRecordBatch(c.BatchRecords, c.Size), acks, 1)
		perUnit = c.BatchRecords
	case "rocketmq":
		// 64 frames per write so a write costs about what a batch does.
		f := rocketSendFrame(topic, newPayload(c.Size), 1)
		for range 64 {
			unit = append(unit, f...)
		}
		perUnit = 64
	default:
		return nil, fmt.Errorf("%w: --ceiling is for kafka and rocketmq", ErrUsage)
	}
	conns := make([]net.Conn, c.Producers)
	for i := range conns {
		conn, err := net.DialTimeout("tcp", c.Target, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("bench: ceiling: dial sink %s: %w", c.Target, err)
		}
		defer conn.Close()
		conns[i] = conn
	}
	t0 := time.Now().Add(50 * time.Millisecond)
	ck := clockAt(c, t0)
	res := &Result{Config: *c, Start: t0, Hardware: hardware()}
	gen := cpuProbe{pids: []int{0}}
	broker := cpuProbe{}
	if c.BrokerPID > 0 {
		broker.pids = []int{c.BrokerPID}
	}
	s := startSampler(c, ck, gen, broker, res)
	var units, unitsWindow, wire atomic.Int64
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(t0))
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(ck.t2) {
					return
				}
				if _, err := conn.Write(unit); err != nil {
					return
				}
				units.Add(1)
				wire.Add(int64(len(unit)))
				if !now.Before(ck.t1) {
					unitsWindow.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	s.stop()
	res.Sent = units.Load() * int64(perUnit)
	res.SentWindow = unitsWindow.Load() * int64(perUnit)
	secs := c.Duration.Seconds()
	res.SendRate = float64(res.SentWindow) / secs
	res.SendMBps = res.SendRate * float64(c.Size) / 1e6
	res.WireMBps = float64(unitsWindow.Load()) * float64(len(unit)) / secs / 1e6
	res.LoadAvg = loadAvg()
	res.BrokerCPUPct = 100 * res.BrokerCPU / secs
	res.GenCPUPct = 100 * res.GenCPU / secs
	if res.BrokerCPU > 0 {
		res.MsgsPerBrokerCPU = float64(res.SentWindow) / res.BrokerCPU
	}
	if progress != nil && !c.Quiet {
		fmt.Fprintf(progress, "[%s ceiling %s] %s records/s, %.0f MB/s payload, %.0f MB/s wire\n",
			c.Proto, c.Label, fmtRate(res.SendRate), res.SendMBps, res.WireMBps)
	}
	return res, nil
}
