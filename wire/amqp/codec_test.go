package amqp

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func TestTableRoundTrip(t *testing.T) {
	in := Table{
		"b": true, "i8": int8(-3), "u8": uint8(3), "i16": int16(-300), "u16": uint16(300),
		"i32": int32(-70000), "u32": uint32(70000), "i64": int64(-1 << 40), "f32": float32(1.5),
		"f64": 2.25, "dec": Decimal{Scale: 2, Value: 314}, "s": "hello", "x": []byte{1, 2},
		"a": []any{"x", int32(1), Table{"n": "m"}}, "t": time.Unix(1700000000, 0).UTC(),
		"tab": Table{"inner": int64(7)}, "v": nil,
	}
	b := AppendTable(nil, in)
	r := NewReader(b)
	out := r.Table()
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("got %#v\nwant %#v", out, in)
	}
}

func TestMethodRoundTrip(t *testing.T) {
	ms := []Method{
		&BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true},
		&BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1 << 40, Redelivered: true, Exchange: "e", RoutingKey: "k"},
		&QueueDeclare{Queue: "q", Durable: true, AutoDelete: true, NoWait: true, Arguments: Table{"x-max-length": int32(5)}},
		&BasicNack{DeliveryTag: 9, Multiple: true, Requeue: true},
		&ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
		&ConfirmSelect{Nowait: true},
	}
	for _, m := range ms {
		f := AppendMethodFrame(nil, 3, m)
		n, err := FrameLen(f)
		if err != nil || n != len(f) {
			t.Fatalf("%s: FrameLen %d %v, len %d", m.Name(), n, err, len(f))
		}
		fr, err := ParseFrame(f, 0)
		if err != nil || fr.Type != FrameMethod || fr.Channel != 3 {
			t.Fatalf("%s: %v %+v", m.Name(), err, fr)
		}
		got, err := DecodeMethod(fr.Payload)
		if err != nil {
			t.Fatalf("%s: %v", m.Name(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: got %#v want %#v", m.Name(), got, m)
		}
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	p := BasicProperties{
		Flags:       FlagContentType | FlagHeaders | FlagDeliveryMode | FlagPriority | FlagExpiration | FlagTimestamp,
		ContentType: "text/plain", Headers: Table{"a": "b"}, DeliveryMode: 2, Priority: 4,
		Expiration: "1000", Timestamp: 99,
	}
	b := p.Append(nil)
	r := NewReader(b)
	var q BasicProperties
	q.Decode(&r)
	if r.Err() != nil || !reflect.DeepEqual(p, q) {
		t.Fatalf("%v %#v", r.Err(), q)
	}
}

func TestParseFrameErrors(t *testing.T) {
	f := AppendMethodFrame(nil, 1, &BasicQos{PrefetchCount: 10})
	bad := bytes.Clone(f)
	bad[len(bad)-1] = 0
	if _, err := ParseFrame(bad, 0); err != ErrFrameEnd {
		t.Fatalf("frame end: %v", err)
	}
	if _, err := ParseFrame(f, len(f)-1); err != ErrFrameTooLarge {
		t.Fatalf("frame max: %v", err)
	}
	if n, _ := FrameLen(f[:len(f)-1]); n != 0 {
		t.Fatal("partial frame reported whole")
	}
	if _, err := DecodeMethod([]byte{0, 99, 0, 1}); err == nil {
		t.Fatal("unknown method decoded")
	}
}

func TestBodyFrames(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 10000)
	b := AppendBodyFrames(nil, 1, body, 4096)
	var got []byte
	for len(b) > 0 {
		n, _ := FrameLen(b)
		fr, err := ParseFrame(b[:n], 4096)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fr.Payload...)
		b = b[n:]
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body mismatch")
	}
}

func FuzzFrame(f *testing.F) {
	f.Add(AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "x", RoutingKey: "y"}))
	f.Add(AppendMethodFrame(nil, 0, &ConnectionStartOk{ClientProperties: Table{"a": []any{int32(1)}}, Mechanism: "PLAIN"}))
	f.Add(AppendHeaderFrame(nil, 1, ClassBasic, 5, (&BasicProperties{Flags: FlagHeaders, Headers: Table{"k": "v"}}).Append(nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := FrameLen(b)
		if err != nil || n == 0 {
			return
		}
		fr, err := ParseFrame(b[:n], 1<<20)
		if err != nil {
			return
		}
		switch fr.Type {
		case FrameMethod:
			m, err := DecodeMethod(fr.Payload)
			if err != nil {
				return
			}
			// Re-encoding and decoding again must give the same method.
			m2, err := DecodeMethod(m.Append(nil))
			if err != nil {
				t.Fatalf("re-decode %s: %v", m.Name(), err)
			}
			if m2.ID() != m.ID() {
				t.Fatal("id changed")
			}
		case FrameHeader:
			h, err := ParseContentHeader(fr.Payload)
			if err != nil {
				return
			}
			r := NewReader(h.Props)
			var p BasicProperties
			p.Decode(&r)
		}
	})
}

func FuzzTable(f *testing.F) {
	f.Add(AppendTable(nil, Table{"a": "b", "n": int32(1), "t": Table{"x": []any{nil, true}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		tab := r.Table()
		if r.Err() != nil {
			return
		}
		r2 := NewReader(AppendTable(nil, tab))
		r2.Table()
		if r2.Err() != nil {
			t.Fatalf("re-decode: %v", r2.Err())
		}
	})
}

func BenchmarkDecodePublish(b *testing.B) {
	f := (&BasicPublish{Exchange: "amq.direct", RoutingKey: "bench"}).Append(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	var r Reader
	for b.Loop() {
		r.Reset(f[4:])
		var m BasicPublish
		m.Decode(&r)
	}
}
