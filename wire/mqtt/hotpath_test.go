package mqtt

import (
	"net"
	"os"
	"testing"
	"time"

	"quartet/engine/session"
	"quartet/netpoll"
)

// fakeConn is a netpoll.Conn that discards output and runs Execute inline.
type fakeConn struct {
	out int
	ctx any
}

func (f *fakeConn) Write(b []byte)                                        { f.out += len(b) }
func (f *fakeConn) WriteFile([]byte, *os.File, int64, int64, func(error)) {}
func (f *fakeConn) Reserve() *netpoll.Slot                                { return nil }
func (f *fakeConn) Execute(fn func(c netpoll.Conn)) error                 { fn(f); return nil }
func (f *fakeConn) Close(error)                                           {}
func (f *fakeConn) PauseReads()                                           {}
func (f *fakeConn) ResumeReads()                                          {}
func (f *fakeConn) OutboundBytes() int                                    { return 0 }
func (f *fakeConn) Context() any                                          { return f.ctx }
func (f *fakeConn) SetContext(ctx any)                                    { f.ctx = ctx }
func (f *fakeConn) LocalAddr() net.Addr                                   { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr                                  { return &net.TCPAddr{} }
func (f *fakeConn) AfterFunc(time.Duration, func(netpoll.Conn)) netpoll.Timer {
	return nopTimer{}
}

type nopTimer struct{}

func (nopTimer) Stop() bool { return true }

// hotPath sets up a subscriber (filter bench/#, qos) and a publisher and
// returns a function handling one PUBLISH frame from the publisher.
func hotPath(t testing.TB, v byte, qos byte) (publish func(), sub *fakeConn) {
	srv, err := New(nil, Config{SysInterval: -1}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h := srv.Protocol().Handler
	open := func(id string) *fakeConn {
		fc := &fakeConn{}
		fc.ctx = h.OnOpen(fc)
		if err := h.OnFrame(fc, AppendConnect(nil, &Connect{Version: v, CleanStart: true, KeepAlive: 0, ClientID: []byte(id)})); err != nil {
			t.Fatal(err)
		}
		return fc
	}
	sub = open("sub")
	if err := h.OnFrame(sub, AppendSubscribe(nil, v, &Subscribe{PacketID: 1, Subs: []Subscription{{Filter: []byte("bench/#"), QoS: qos}}})); err != nil {
		t.Fatal(err)
	}
	pub := open("pub")
	frame := AppendPublish(nil, v, &Publish{QoS: qos, PacketID: 1, Topic: []byte("bench/1"), Payload: make([]byte, 100)})
	subc := sub.ctx.(*conn)
	ack := AppendAck(nil, v, PUBACK, 0, 0, nil)
	return func() {
		if err := h.OnFrame(pub, frame); err != nil {
			t.Fatal(err)
		}
		if qos == 1 { // the subscriber acknowledges what it was sent
			subc.sess.Lock()
			var id uint16
			subc.sess.EachInflight(func(f *session.Inflight) { id = f.PacketID })
			subc.sess.Unlock()
			ack[2], ack[3] = byte(id>>8), byte(id)
			if err := h.OnFrame(sub, ack); err != nil {
				t.Fatal(err)
			}
		}
	}, sub
}

func TestHotPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	for _, v := range []byte{Version311, Version5} {
		for _, qos := range []byte{0, 1} {
			publish, sub := hotPath(t, v, qos)
			for i := 0; i < 100; i++ {
				publish()
			}
			before := sub.out
			allocs := testing.AllocsPerRun(1000, publish)
			if sub.out == before {
				t.Fatal("nothing delivered")
			}
			// one Execute closure pair per drain batch lives in netpoll; the
			// MQTT path itself must not allocate per message
			if allocs > 0 {
				t.Errorf("v%d qos %d: %.1f allocs per publish", v, qos, allocs)
			}
		}
	}
}

func BenchmarkPublishFanIn(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run([]string{"qos0", "qos1"}[qos], func(b *testing.B) {
			publish, _ := hotPath(b, Version311, qos)
			b.ReportAllocs()
			b.SetBytes(100)
			for b.Loop() {
				publish()
			}
		})
	}
}
