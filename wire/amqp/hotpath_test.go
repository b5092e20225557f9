package amqp

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

// fakeConn is a netpoll.Conn for driving the handler without sockets.
type fakeConn struct {
	ctx     any
	out     int
	pending []func(netpoll.Conn)
}

func (f *fakeConn) Write(b []byte) { f.out += len(b) }
func (f *fakeConn) WriteFile(h []byte, _ *os.File, _, n int64, done func(error)) {
	f.out += len(h) + int(n)
}
func (f *fakeConn) Reserve() *netpoll.Slot { return nil }
func (f *fakeConn) Execute(fn func(netpoll.Conn)) error {
	f.pending = append(f.pending, fn)
	return nil
}
func (f *fakeConn) run() {
	for len(f.pending) > 0 {
		p := f.pending
		f.pending = nil
		for _, fn := range p {
			fn(f)
		}
	}
}
func (f *fakeConn) Close(error)         {}
func (f *fakeConn) PauseReads()         {}
func (f *fakeConn) ResumeReads()        {}
func (f *fakeConn) OutboundBytes() int  { return 0 }
func (f *fakeConn) Context() any        { return f.ctx }
func (f *fakeConn) SetContext(c any)    { f.ctx = c }
func (f *fakeConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5672} }
func (f *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (f *fakeConn) AfterFunc(d time.Duration, fn func(netpoll.Conn)) netpoll.Timer {
	return time.AfterFunc(time.Hour, func() {})
}

func openFake(tb testing.TB, s *Server) *fakeConn {
	f := &fakeConn{}
	f.ctx = s.OnOpen(f)
	frames := [][]byte{
		[]byte(protocolHeader),
		AppendMethodFrame(nil, 0, &ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"}),
		AppendMethodFrame(nil, 0, &ConnectionTuneOk{ChannelMax: 10, FrameMax: 131072}),
		AppendMethodFrame(nil, 0, &ConnectionOpen{VirtualHost: "/"}),
		AppendMethodFrame(nil, 1, &ChannelOpen{}),
	}
	for _, fr := range frames {
		if err := s.OnFrame(f, fr); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

func publishFrames(q string, body []byte, props BasicProperties) []byte {
	b := AppendMethodFrame(nil, 1, &BasicPublish{RoutingKey: q})
	b = AppendHeaderFrame(b, 1, ClassBasic, uint64(len(body)), props.Append(nil))
	return AppendBodyFrames(b, 1, body, 131072)
}

func feed(tb testing.TB, s *Server, f *fakeConn, b []byte) {
	for len(b) > 0 {
		n, _ := FrameLen(b)
		if err := s.OnFrame(f, b[:n]); err != nil {
			tb.Fatal(err)
		}
		b = b[n:]
	}
}

// BenchmarkHotPath is the broker's own cost per message: publish (3 frames)
// on one connection, deliver and multi-ack (every 100) on another, transient.
func BenchmarkHotPath(b *testing.B) {
	s, err := New(nil, Config{}, testLogger())
	if err != nil {
		b.Fatal(err)
	}
	pub := openFake(b, s)
	sub := openFake(b, s)
	feed(b, s, sub, AppendMethodFrame(nil, 1, &QueueDeclare{Queue: "hot"}))
	feed(b, s, sub, AppendMethodFrame(nil, 1, &BasicQos{PrefetchCount: 1000}))
	feed(b, s, sub, AppendMethodFrame(nil, 1, &BasicConsume{Queue: "hot", ConsumerTag: "c"}))
	sub.run()
	msg := publishFrames("hot", make([]byte, 16), BasicProperties{})
	b.ReportAllocs()
	b.SetBytes(16)
	ch := sub.ctx.(*connection).channels[1]
	for i := 0; b.Loop(); i++ {
		feed(b, s, pub, msg)
		sub.run()
		if i%100 == 99 {
			feed(b, s, sub, AppendMethodFrame(nil, 1, &BasicAck{DeliveryTag: ch.nextTag, Multiple: true}))
		}
	}
}

// FuzzServerFrames feeds arbitrary frames to an open connection: the server
// must answer with exceptions, never panic.
func FuzzServerFrames(f *testing.F) {
	f.Add(publishFrames("q", []byte("body"), BasicProperties{Flags: FlagHeaders | FlagExpiration, Headers: Table{"a": int32(1)}, Expiration: "10"}))
	f.Add(AppendMethodFrame(nil, 1, &QueueDeclare{Queue: "q", Arguments: Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}}))
	f.Add(AppendMethodFrame(nil, 1, &BasicConsume{Queue: "q", ConsumerTag: "c"}))
	f.Add(AppendMethodFrame(nil, 1, &ExchangeDeclare{Exchange: "x", Type: "topic"}))
	f.Add(AppendMethodFrame(nil, 1, &BasicAck{DeliveryTag: 1, Multiple: true}))
	f.Add(AppendMethodFrame(nil, 1, &TxSelect{}))
	s, err := New(nil, Config{}, testLogger())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fc := openFake(t, s)
		setup := AppendMethodFrame(nil, 1, &QueueDeclare{Queue: "q"})
		setup = append(setup, publishFrames("q", []byte("x"), BasicProperties{})...)
		feed(t, s, fc, setup)
		for len(b) > 0 {
			n, err := FrameLen(b)
			if err != nil || n == 0 || n > len(b) {
				break
			}
			if s.OnFrame(fc, b[:n]) != nil {
				break
			}
			b = b[n:]
		}
		fc.run()
		s.OnClose(fc, nil)
	})
}

// BenchmarkIdleQueues reports the heap cost of an empty declared queue
// (classic, transient, bound to amq.direct).
func BenchmarkIdleQueues(b *testing.B) {
	s, err := New(nil, Config{}, testLogger())
	if err != nil {
		b.Fatal(err)
	}
	fc := openFake(b, s)
	const n = 10000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("idle-%d", i)
		feed(b, s, fc, AppendMethodFrame(nil, 1, &QueueDeclare{Queue: name}))
		feed(b, s, fc, AppendMethodFrame(nil, 1, &QueueBind{Queue: name, Exchange: "amq.direct", RoutingKey: name}))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for b.Loop() {
	}
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/n, "B/queue")
	runtime.KeepAlive(s)
}

// BenchmarkHotPathDurable: as BenchmarkHotPath with a durable queue,
// persistent messages and confirms (store appends on the engine's writer).
func BenchmarkHotPathDurable(b *testing.B) {
	e, err := engine.Open(engine.Config{DataDir: b.TempDir(), Flush: segment.FlushSync, IO: segment.IOAuto}, testLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	s, err := New(e, Config{}, testLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pub := openFake(b, s)
	sub := openFake(b, s)
	feed(b, s, pub, AppendMethodFrame(nil, 1, &ConfirmSelect{}))
	feed(b, s, sub, AppendMethodFrame(nil, 1, &QueueDeclare{Queue: "hotd", Durable: true, NoWait: true}))
	feed(b, s, sub, AppendMethodFrame(nil, 1, &BasicQos{PrefetchCount: 1000}))
	feed(b, s, sub, AppendMethodFrame(nil, 1, &BasicConsume{Queue: "hotd", ConsumerTag: "c"}))
	sub.run()
	msg := publishFrames("hotd", make([]byte, 16), BasicProperties{Flags: FlagDeliveryMode, DeliveryMode: 2})
	b.ReportAllocs()
	b.SetBytes(16)
	ch := sub.ctx.(*connection).channels[1]
	for i := 0; b.Loop(); i++ {
		feed(b, s, pub, msg)
		sub.run()
		if i%100 == 99 {
			feed(b, s, sub, AppendMethodFrame(nil, 1, &BasicAck{DeliveryTag: ch.nextTag, Multiple: true}))
			pub.run()
		}
	}
}
