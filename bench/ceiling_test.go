package bench

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
)

// The ceiling path: pre-encoded requests into the sink.
func TestSmokeCeiling(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var total atomic.Int64
	go runSink(ctx, ln, &total)
	for _, proto := range []string{"kafka", "rocketmq"} {
		cfg, err := ParseConfig(proto, []string{"--ceiling", "--target", ln.Addr().String(), "--duration", "300ms", "--warmup", "100ms", "--quiet", "--producers", "2"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.SendRate <= 0 || res.WireMBps <= 0 || res.SendMBps >= res.WireMBps {
			t.Fatalf("%s ceiling: %+v", proto, res)
		}
	}
	if total.Load() == 0 {
		t.Fatal("sink read nothing")
	}
}

// A RecordBatch the ceiling writes is what a Kafka broker would accept:
// length and CRC-32C consistent.
func TestKafkaRecordBatchFraming(t *testing.T) {
	b := kafkaRecordBatch(3, 100)
	if got := int(uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])); got != len(b)-12 {
		t.Fatalf("batch length %d, want %d", got, len(b)-12)
	}
	if b[16] != 2 {
		t.Fatalf("magic %d", b[16])
	}
	req := kafkaProduceRequest("t", b, -1, 7)
	if n := int(uint32(req[0])<<24 | uint32(req[1])<<16 | uint32(req[2])<<8 | uint32(req[3])); n != len(req)-4 {
		t.Fatalf("request size %d, want %d", n, len(req)-4)
	}
	f := rocketSendFrame("t", newPayload(64), 1)
	if n := int(uint32(f[0])<<24 | uint32(f[1])<<16 | uint32(f[2])<<8 | uint32(f[3])); n != len(f)-4 {
		t.Fatalf("rocketmq frame length %d, want %d", n, len(f)-4)
	}
}

// The raw MQTT publisher's template is a valid PUBLISH with the offsets it
// patches.
func TestMQTTPublishTemplate(t *testing.T) {
	payload := newPayload(200)
	for _, qos := range []byte{0, 1} {
		pkt, pidOff, plOff := mqttPublishTemplate("bench/3", qos, payload)
		if pkt[0] != 0x30|qos<<1 {
			t.Fatalf("qos %d: first byte %#x", qos, pkt[0])
		}
		// remaining length 2+7(+2)+200 > 127: two bytes.
		want := 2 + 7 + 200
		if qos == 1 {
			want += 2
		}
		if got := int(pkt[1]&0x7f) | int(pkt[2])<<7; got != want || len(pkt) != 3+want {
			t.Fatalf("qos %d: remaining length %d (packet %d bytes), want %d", qos, got, len(pkt), want)
		}
		if string(pkt[5:12]) != "bench/3" {
			t.Fatalf("topic %q", pkt[5:12])
		}
		if (qos == 0) != (pidOff < 0) || (qos == 1 && pidOff != 12) {
			t.Fatalf("qos %d: packet id offset %d", qos, pidOff)
		}
		if plOff != len(pkt)-200 {
			t.Fatalf("payload offset %d", plOff)
		}
	}
	if got := mqttRemLen(nil, 321); len(got) != 2 || got[0] != 0xc1 || got[1] != 0x02 {
		t.Fatalf("remaining length 321 = % x", got)
	}
}
