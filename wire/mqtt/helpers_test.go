package mqtt

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

type broker struct {
	t    *testing.T
	dir  string
	e    *engine.Engine
	srv  *Server
	ns   *netpoll.Server
	addr string
}

func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("MQTT_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// startBroker runs engine + MQTT server + netpoll on 127.0.0.1:0 over dir.
func startBroker(t *testing.T, dir string, cfg Config) *broker {
	t.Helper()
	lg := testLogger()
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOSync}, lg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	srv, err := New(e, cfg, lg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netpoll.NewServer(netpoll.Config{Loops: 2, Logger: lg}, []netpoll.Listener{{Addr: "127.0.0.1:0", Protocol: srv.Protocol()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, dir: dir, e: e, srv: srv, ns: ns, addr: ns.ListenerAddrs()[0].String()}
	t.Cleanup(b.stop)
	return b
}

func (b *broker) stop() {
	if b.ns == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.ns.Stop(ctx)
	_ = b.srv.Close()
	_ = b.e.Close()
	b.ns = nil
}

// ---------------------------------------------------------------- paho 3.1.1

type msg3 struct {
	topic    string
	payload  string
	qos      byte
	retained bool
	dup      bool
}

type sink3 struct {
	ch chan msg3
}

func newSink3() *sink3 { return &sink3{ch: make(chan msg3, 10000)} }

func (s *sink3) handler(_ paho3.Client, m paho3.Message) {
	s.ch <- msg3{m.Topic(), string(m.Payload()), m.Qos(), m.Retained(), m.Duplicate()}
}

func (s *sink3) next(t *testing.T) msg3 {
	t.Helper()
	select {
	case m := <-s.ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a message")
	}
	return msg3{}
}

func (s *sink3) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.ch:
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(d):
	}
}

func connect3(t *testing.T, addr, id string, clean bool, sink *sink3, opt func(o *paho3.ClientOptions)) paho3.Client {
	t.Helper()
	o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).SetKeepAlive(30 * time.Second)
	if sink != nil {
		o.SetDefaultPublishHandler(sink.handler)
	}
	if opt != nil {
		opt(o)
	}
	c := paho3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func wait(t *testing.T, tok paho3.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("token: %v", tok.Error())
	}
}

func sub3(t *testing.T, c paho3.Client, filter string, qos byte) {
	t.Helper()
	wait(t, c.Subscribe(filter, qos, nil))
}

// ---------------------------------------------------------------- paho.golang 5.0

type sink5 struct {
	ch chan *paho.Publish
}

func newSink5() *sink5 { return &sink5{ch: make(chan *paho.Publish, 10000)} }

func (s *sink5) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-s.ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a message")
	}
	return nil
}

func (s *sink5) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.ch:
		t.Fatalf("unexpected message %s %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

func connect5(t *testing.T, addr string, cp *paho.Connect, sink *sink5) (*paho.Client, *paho.Connack) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: nc, OnClientError: func(error) {}}
	if sink != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { sink.ch <- pr.Packet; return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		t.Fatalf("connect5: %v (%+v)", err, ca)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ca
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }

// ---------------------------------------------------------------- raw client

// raw is a bare MQTT client built on this package's codec, for behaviour the
// libraries hide (not acknowledging, reading DUP flags, malformed input).
type raw struct {
	t  *testing.T
	c  net.Conn
	r  *bufio.Reader
	v  byte
	mu sync.Mutex
}

func dialRaw(t *testing.T, addr string, v byte) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10), v: v}
}

func (r *raw) send(b []byte) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// read returns the next packet's header and body (nil, io.EOF on close).
func (r *raw) read(d time.Duration) (Header, []byte, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	var hdr [5]byte
	if _, err := io.ReadFull(r.r, hdr[:1]); err != nil {
		return Header{}, nil, err
	}
	n := 1
	for {
		b, err := r.r.ReadByte()
		if err != nil {
			return Header{}, nil, err
		}
		hdr[n] = b
		n++
		if b&0x80 == 0 || n == 5 {
			break
		}
	}
	fl, _ := Framer(hdr[:n])
	_ = fl
	rl := 0
	for i := 1; i < n; i++ {
		rl |= int(hdr[i]&0x7f) << (7 * (i - 1))
	}
	body := make([]byte, rl)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return Header{}, nil, err
	}
	return Header{Type: hdr[0] >> 4, Flags: hdr[0] & 15}, body, nil
}

func (r *raw) expect(typ byte) (Header, []byte) {
	r.t.Helper()
	for {
		h, b, err := r.read(5 * time.Second)
		if err != nil {
			r.t.Fatalf("raw read waiting for %s: %v", packetName(typ), err)
		}
		if h.Type == typ {
			return h, b
		}
		r.t.Fatalf("raw: got %s, want %s", packetName(h.Type), packetName(typ))
	}
}

func (r *raw) connect(id string, clean bool, props *Properties) *Connack {
	r.t.Helper()
	p := &Connect{Version: r.v, CleanStart: clean, KeepAlive: 60, ClientID: []byte(id)}
	if props != nil {
		p.Props = *props
	}
	r.send(AppendConnect(nil, p))
	_, body := r.expect(CONNACK)
	var ca Connack
	if err := DecodeConnack(&ca, r.v, body); err != nil {
		r.t.Fatal(err)
	}
	return &ca
}

func (r *raw) subscribe(id uint16, filter string, qos byte) {
	r.t.Helper()
	r.send(AppendSubscribe(nil, r.v, &Subscribe{PacketID: id, Subs: []Subscription{{Filter: []byte(filter), QoS: qos}}}))
	r.expect(SUBACK)
}

func (r *raw) publish(p *Publish) { r.send(AppendPublish(nil, r.v, p)) }

func (r *raw) readPublish() *Publish {
	r.t.Helper()
	h, body := r.expect(PUBLISH)
	p := &Publish{}
	if err := DecodePublish(p, r.v, h.Flags, body); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// closed reports whether the server closes the connection within d.
func (r *raw) closed(d time.Duration) (bool, []byte) {
	var last []byte
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		h, b, err := r.read(time.Until(deadline))
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return false, last
			}
			return true, last
		}
		if h.Type == DISCONNECT {
			last = b
		}
	}
	return false, last
}
