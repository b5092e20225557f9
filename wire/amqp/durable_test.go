package amqp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestDurableAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, Config{})
	c, ch := b.channel()
	must(t, ch.ExchangeDeclare("dx", "topic", true, false, false, false, nil))
	_, err := ch.QueueDeclare("dq", true, false, false, false, amqp091.Table{"x-max-priority": int32(3)})
	must(t, err)
	must(t, ch.QueueBind("dq", "a.#", "dx", false, nil))
	_, err = ch.QueueDeclare("tq", false, false, false, false, nil) // transient: gone after restart
	must(t, err)
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 10))
	for i := 0; i < 5; i++ {
		publish(t, ch, "dx", "a.b", amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte(fmt.Sprint(i))})
	}
	publish(t, ch, "dx", "a.b", amqp091.Publishing{DeliveryMode: amqp091.Transient, Body: []byte("transient")})
	for i := 0; i < 6; i++ {
		if c := <-confirms; !c.Ack {
			t.Fatal("nack")
		}
	}
	// Consume 3: ack 0 and 1, leave 2 unacked; 3 and 4 stay ready.
	must(t, ch.Qos(3, 0, false))
	ds, err := ch.Consume("dq", "", false, false, false, false, nil)
	must(t, err)
	d0, d1, d2 := recv(t, ds), recv(t, ds), recv(t, ds)
	if string(d0.Body) != "0" || string(d2.Body) != "2" {
		t.Fatalf("order %q %q", d0.Body, d2.Body)
	}
	must(t, d0.Ack(false))
	must(t, d1.Ack(false))
	time.Sleep(100 * time.Millisecond) // let the ack records be written
	c.Close()
	b.stop()

	b2 := startBroker(t, dir, Config{})
	_, ch2 := b2.channel()
	q, err := ch2.QueueDeclarePassive("dq", true, false, false, false, nil)
	must(t, err)
	if q.Messages != 3 {
		t.Fatalf("recovered %d messages, want 3", q.Messages)
	}
	if _, err := ch2.QueueDeclarePassive("tq", false, false, false, false, nil); err == nil {
		t.Fatal("transient queue survived restart")
	}
	_, ch3 := b2.channel()
	ds2, err := ch3.Consume("dq", "", false, false, false, false, nil)
	must(t, err)
	var got []string
	for i := 0; i < 3; i++ {
		d := recv(t, ds2)
		if !d.Redelivered {
			t.Errorf("%q not marked redelivered", d.Body)
		}
		got = append(got, string(d.Body))
		must(t, d.Ack(false))
	}
	if !eq(got, []string{"2", "3", "4"}) {
		t.Fatalf("got %v", got)
	}
	// The binding survived too.
	publish(t, ch3, "dx", "a.z", amqp091.Publishing{Body: []byte("new")})
	if d := recv(t, ds2); string(d.Body) != "new" {
		t.Fatal(string(d.Body))
	}
}

func TestStreamQueueFromOffset(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	_, err := ch.QueueDeclare("events", true, false, false, false, amqp091.Table{"x-queue-type": "stream"})
	must(t, err)
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 10))
	for i := 0; i < 5; i++ {
		publish(t, ch, "", "events", amqp091.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	for i := 0; i < 5; i++ {
		<-confirms
	}
	for _, tc := range []struct {
		offset any
		first  string
	}{{"first", "0"}, {int64(3), "3"}, {"last", "4"}} {
		_, cch := b.channel()
		must(t, cch.Qos(10, 0, false))
		ds, err := cch.Consume("events", "", false, false, false, false, amqp091.Table{"x-stream-offset": tc.offset})
		must(t, err)
		d := recv(t, ds)
		if string(d.Body) != tc.first {
			t.Fatalf("offset %v: first %q", tc.offset, d.Body)
		}
		if off, _ := d.Headers["x-stream-offset"].(int64); fmt.Sprint(off) != tc.first {
			t.Fatalf("x-stream-offset header %v", d.Headers)
		}
		must(t, d.Ack(false))
	}
	// "next" sees only new messages.
	_, cch := b.channel()
	must(t, cch.Qos(10, 0, false))
	ds, err := cch.Consume("events", "", false, false, false, false, amqp091.Table{"x-stream-offset": "next"})
	must(t, err)
	none(t, ds, 100*time.Millisecond)
	publish(t, ch, "", "events", amqp091.Publishing{Body: []byte("5")})
	if d := recv(t, ds); string(d.Body) != "5" {
		t.Fatal(string(d.Body))
	}
}

// rawConn speaks AMQP by hand for the bad-input and heartbeat tests.
type rawConn struct {
	t *testing.T
	c net.Conn
}

func rawDial(t *testing.T, b *broker, heartbeat uint16) *rawConn {
	t.Helper()
	var addr string
	for _, a := range b.ns.Addrs() {
		addr = a.String()
	}
	c, err := net.Dial("tcp", addr)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	r := &rawConn{t: t, c: c}
	c.Write([]byte(protocolHeader))
	r.expect(IDConnectionStart)
	c.Write(AppendMethodFrame(nil, 0, &ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"}))
	r.expect(IDConnectionTune)
	c.Write(AppendMethodFrame(nil, 0, &ConnectionTuneOk{ChannelMax: 10, FrameMax: 4096, Heartbeat: heartbeat}))
	c.Write(AppendMethodFrame(nil, 0, &ConnectionOpen{VirtualHost: "/"}))
	r.expect(IDConnectionOpenOk)
	return r
}

func (r *rawConn) frame() (Frame, []byte) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 7)
	if _, err := io.ReadFull(r.c, hdr); err != nil {
		r.t.Fatalf("read: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[3:])
	rest := make([]byte, n+1)
	if _, err := io.ReadFull(r.c, rest); err != nil {
		r.t.Fatalf("read: %v", err)
	}
	b := append(hdr, rest...)
	f, err := ParseFrame(b, 0)
	must(r.t, err)
	return f, b
}

func (r *rawConn) expect(id uint32) Method {
	r.t.Helper()
	for {
		f, _ := r.frame()
		if f.Type == FrameHeartbeat {
			continue
		}
		m, err := DecodeMethod(f.Payload)
		must(r.t, err)
		if m.ID() != id {
			r.t.Fatalf("got %s %+v, want %d.%d", m.Name(), m, id>>16, id&0xffff)
		}
		return m
	}
}

func TestBadInput(t *testing.T) {
	b := startBroker(t, "", Config{})
	cases := []struct {
		name string
		send func(r *rawConn)
		code uint16
		conn bool
	}{
		{"frame-end", func(r *rawConn) {
			f := AppendMethodFrame(nil, 0, &ConnectionUpdateSecret{NewSecret: "x"})
			f[len(f)-1] = 0
			r.c.Write(f)
		}, FrameError, true},
		{"over-frame-max", func(r *rawConn) {
			r.c.Write(AppendMethodFrame(nil, 1, &ChannelOpen{}))
			r.expect(IDChannelOpenOk)
			r.c.Write(AppendMethodFrame(nil, 1, &QueueDeclare{Queue: "x", Arguments: Table{"pad": string(bytes.Repeat([]byte("p"), 5000))}}))
		}, FrameError, true},
		{"over-server-frame-max", func(r *rawConn) {
			f, _ := beginFrame(nil, FrameMethod, 0)
			binary.BigEndian.PutUint32(f[3:], 1<<24)
			r.c.Write(append(f, make([]byte, 100)...))
		}, FrameError, true},
		{"unknown-method", func(r *rawConn) {
			r.c.Write(AppendMethodFrame(nil, 1, &ChannelOpen{}))
			r.expect(IDChannelOpenOk)
			f, s := beginFrame(nil, FrameMethod, 1)
			f = appendLong(f, 60<<16|999)
			r.c.Write(endFrame(f, s))
		}, CommandInvalid, true},
		{"closed-channel", func(r *rawConn) {
			r.c.Write(AppendMethodFrame(nil, 5, &BasicQos{PrefetchCount: 1}))
		}, ChannelError, true},
		{"redeclare", func(r *rawConn) {
			r.c.Write(AppendMethodFrame(nil, 1, &ChannelOpen{}))
			r.expect(IDChannelOpenOk)
			r.c.Write(AppendMethodFrame(nil, 1, &QueueDeclare{Queue: "redecl", Durable: false}))
			r.expect(IDQueueDeclareOk)
			r.c.Write(AppendMethodFrame(nil, 1, &QueueDeclare{Queue: "redecl", Arguments: Table{"x-max-length": int32(1)}}))
		}, PreconditionFailed, false},
		{"publish-missing-exchange", func(r *rawConn) {
			r.c.Write(AppendMethodFrame(nil, 1, &ChannelOpen{}))
			r.expect(IDChannelOpenOk)
			r.c.Write(AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "nope"}))
			r.c.Write(AppendHeaderFrame(nil, 1, ClassBasic, 0, []byte{0, 0}))
		}, NotFound, false},
		{"body-without-publish", func(r *rawConn) {
			r.c.Write(AppendMethodFrame(nil, 1, &ChannelOpen{}))
			r.expect(IDChannelOpenOk)
			r.c.Write(AppendBodyFrames(nil, 1, []byte("x"), 4096))
		}, UnexpectedFrame, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawDial(t, b, 0)
			tc.send(r)
			if tc.conn {
				m := r.expect(IDConnectionClose).(*ConnectionClose)
				if m.ReplyCode != tc.code {
					t.Fatalf("code %d %q, want %d", m.ReplyCode, m.ReplyText, tc.code)
				}
			} else {
				m := r.expect(IDChannelClose).(*ChannelClose)
				if m.ReplyCode != tc.code {
					t.Fatalf("code %d %q, want %d", m.ReplyCode, m.ReplyText, tc.code)
				}
				// The connection stays usable.
				r.c.Write(AppendMethodFrame(nil, 1, &ChannelCloseOk{}))
				r.c.Write(AppendMethodFrame(nil, 2, &ChannelOpen{}))
				r.expect(IDChannelOpenOk)
			}
		})
	}
	// A bad protocol header gets ours back.
	var addr string
	for _, a := range b.ns.Addrs() {
		addr = a.String()
	}
	c, err := net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.Write([]byte("AMQP\x00\x00\x08\x00"))
	buf := make([]byte, 8)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != protocolHeader {
		t.Fatalf("header reply %q %v", buf, err)
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	b := startBroker(t, "", Config{Heartbeat: time.Second})
	r := rawDial(t, b, 1)
	start := time.Now()
	// Stay silent: expect heartbeats from the server, then the close.
	beats := 0
	r.c.SetReadDeadline(time.Now().Add(6 * time.Second))
	buf := make([]byte, 64)
	for {
		n, err := r.c.Read(buf)
		if err != nil {
			break
		}
		if n > 0 && buf[0] == FrameHeartbeat {
			beats++
		}
	}
	el := time.Since(start)
	if beats == 0 || el < 2*time.Second || el > 5*time.Second {
		t.Fatalf("closed after %v with %d heartbeats", el, beats)
	}
}

func TestAuth(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, err := amqp091.Dial(fmt.Sprintf("amqp://guest:wrong@%s/", b.url[len("amqp://guest:guest@"):len(b.url)-1]))
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	_, err = amqp091.Dial(b.url + "other-vhost")
	if err == nil {
		t.Fatal("unknown vhost accepted")
	}
}

func TestDurableTTLAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, Config{})
	_, ch := b.channel()
	must(t, ch.ExchangeDeclare("ttl-dlx", "fanout", true, false, false, false, nil))
	_, err := ch.QueueDeclare("ttl-dead", true, false, false, false, nil)
	must(t, err)
	must(t, ch.QueueBind("ttl-dead", "", "ttl-dlx", false, nil))
	_, err = ch.QueueDeclare("ttl-src", true, false, false, false, amqp091.Table{"x-message-ttl": int32(300), "x-dead-letter-exchange": "ttl-dlx"})
	must(t, err)
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	publish(t, ch, "", "ttl-src", amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte("old")})
	<-confirms
	b.stop()
	b2 := startBroker(t, dir, Config{})
	_, ch2 := b2.channel()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if d, ok, _ := ch2.Get("ttl-dead", true); ok {
			if string(d.Body) != "old" {
				t.Fatal(string(d.Body))
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("message did not expire after restart")
}
