package mqtt

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
)

func TestQoSEndToEnd5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	sink := newSink5()
	sub, _ := connect5(t, b.addr, &paho.Connect{ClientID: "sub5", CleanStart: true}, sink)
	if _, err := sub.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "v5/#", QoS: 2}}}); err != nil {
		t.Fatal(err)
	}
	pub, _ := connect5(t, b.addr, &paho.Connect{ClientID: "pub5", CleanStart: true}, nil)
	for q := byte(0); q <= 2; q++ {
		pr, err := pub.Publish(ctx5(t), &paho.Publish{Topic: fmt.Sprintf("v5/%d", q), QoS: q, Payload: []byte{q},
			Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v"}}}})
		if err != nil {
			t.Fatalf("publish qos %d: %v %+v", q, err, pr)
		}
		m := sink.next(t)
		if m.QoS != q || m.Topic != fmt.Sprintf("v5/%d", q) || m.Properties.ContentType != "text/plain" || m.Properties.User.Get("k") != "v" {
			t.Fatalf("qos %d: %+v %+v", q, m, m.Properties)
		}
	}
	// PUBACK reason "no matching subscribers"
	pr, err := pub.Publish(ctx5(t), &paho.Publish{Topic: "nobody", QoS: 1, Payload: []byte("x")})
	if err != nil || pr.ReasonCode != RCNoMatchingSubscribers {
		t.Fatalf("no subscribers: %v %+v", err, pr)
	}
}

func TestServerAssignedClientID(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	_, ca := connect5(t, b.addr, &paho.Connect{CleanStart: true}, nil)
	if ca.Properties == nil || ca.Properties.AssignedClientID == "" {
		t.Fatalf("no assigned client id: %+v", ca.Properties)
	}
	// 3.1.1 with an empty id and clean session 0 is refused with 0x02
	r := dialRaw(t, b.addr, Version311)
	r.send(AppendConnect(nil, &Connect{Version: Version311, CleanStart: false}))
	_, body := r.expect(CONNACK)
	if body[1] != 0x02 {
		t.Fatalf("connack %x", body)
	}
}

func TestWillDelay5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	sink := newSink5()
	sub, _ := connect5(t, b.addr, &paho.Connect{ClientID: "wsub", CleanStart: true}, sink)
	sub.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "will/#", QoS: 1}}})
	// will delay 1 s, session expiry 10 s: reconnecting within the delay suppresses the will
	mk := func(id string) *raw {
		r := dialRaw(t, b.addr, Version5)
		p := &Connect{Version: Version5, CleanStart: false, KeepAlive: 30, ClientID: []byte(id), WillFlag: true, WillQoS: 1,
			WillTopic: []byte("will/" + id), WillPayload: []byte("bye")}
		p.Props.SessionExpiry = 10
		p.Props.Set(propSessionExpiry)
		p.WillProps.WillDelay = 1
		p.WillProps.Set(propWillDelay)
		r.send(AppendConnect(nil, p))
		r.expect(CONNACK)
		return r
	}
	r := mk("delayed")
	start := time.Now()
	r.c.Close()
	m := sink.next(t)
	if m.Topic != "will/delayed" || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("will %s after %v", m.Topic, time.Since(start))
	}
	r2 := mk("resumed")
	r2.c.Close()
	time.Sleep(200 * time.Millisecond)
	r3 := mk("resumed") // back before the delay expires
	_ = r3
	sink.none(t, 1500*time.Millisecond)
	// DISCONNECT with reason 0x04 publishes the will
	r4 := dialRaw(t, b.addr, Version5)
	r4.send(AppendConnect(nil, &Connect{Version: Version5, CleanStart: true, ClientID: []byte("w4"), WillFlag: true,
		WillTopic: []byte("will/w4"), WillPayload: []byte("x")}))
	r4.expect(CONNACK)
	r4.send(AppendDisconnect(nil, Version5, DISCONNECT, RCDisconnectWithWill, nil))
	if m := sink.next(t); m.Topic != "will/w4" {
		t.Fatal(m.Topic)
	}
}

func TestMessageExpiry5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	s1, _ := connect5(t, b.addr, &paho.Connect{ClientID: "exp", CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}}, nil)
	s1.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "exp/#", QoS: 1}}})
	s1.Disconnect(&paho.Disconnect{})
	time.Sleep(50 * time.Millisecond)
	pub, _ := connect5(t, b.addr, &paho.Connect{ClientID: "exppub", CleanStart: true}, nil)
	pub.Publish(ctx5(t), &paho.Publish{Topic: "exp/short", QoS: 1, Payload: []byte("short"), Properties: &paho.PublishProperties{MessageExpiry: u32(1)}})
	pub.Publish(ctx5(t), &paho.Publish{Topic: "exp/long", QoS: 1, Payload: []byte("long"), Properties: &paho.PublishProperties{MessageExpiry: u32(100)}})
	time.Sleep(1200 * time.Millisecond)
	sink := newSink5()
	connect5(t, b.addr, &paho.Connect{ClientID: "exp", CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}}, sink)
	m := sink.next(t)
	if m.Topic != "exp/long" || m.Properties.MessageExpiry == nil || *m.Properties.MessageExpiry > 99 || *m.Properties.MessageExpiry < 90 {
		t.Fatalf("got %s expiry %v", m.Topic, m.Properties.MessageExpiry)
	}
	sink.none(t, 200*time.Millisecond)
}

func TestTopicAliases5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	// server -> client: the client allows 5 aliases
	r := dialRaw(t, b.addr, Version5)
	var cp Properties
	cp.TopicAliasMaximum = 5
	cp.Set(propTopicAliasMaximum)
	r.connect("aliasrx", true, &cp)
	r.subscribe(1, "al/#", 0)
	// client -> server: publish with an alias, then with the alias only
	p, _ := connect5(t, b.addr, &paho.Connect{ClientID: "aliastx", CleanStart: true}, nil)
	if _, err := p.Publish(ctx5(t), &paho.Publish{Topic: "al/one", Payload: []byte("1"), Properties: &paho.PublishProperties{TopicAlias: u16(3)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(ctx5(t), &paho.Publish{Topic: "", Payload: []byte("2"), Properties: &paho.PublishProperties{TopicAlias: u16(3)}}); err != nil {
		t.Fatal(err)
	}
	m1 := r.readPublish()
	m2 := r.readPublish()
	if string(m1.Topic) != "al/one" || !m1.Props.Has(propTopicAlias) {
		t.Fatalf("first: topic %q alias %v", m1.Topic, m1.Props.TopicAlias)
	}
	if len(m2.Topic) != 0 || m2.Props.TopicAlias != m1.Props.TopicAlias || string(m2.Payload) != "2" {
		t.Fatalf("second: topic %q alias %d", m2.Topic, m2.Props.TopicAlias)
	}
	// alias above the server's maximum: DISCONNECT 0x94
	r2 := dialRaw(t, b.addr, Version5)
	r2.connect("badalias", true, nil)
	var pp Properties
	pp.TopicAlias = 60000
	pp.Set(propTopicAlias)
	r2.publish(&Publish{Topic: []byte("x"), Props: pp})
	if closed, disc := r2.closed(2 * time.Second); !closed || len(disc) == 0 || disc[0] != RCTopicAliasInvalid {
		t.Fatalf("closed %v disc %x", closed, disc)
	}
}

func TestReceiveMaximum5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	r := dialRaw(t, b.addr, Version5)
	var cp Properties
	cp.ReceiveMaximum = 2
	cp.Set(propReceiveMaximum)
	r.connect("rm", true, &cp)
	r.subscribe(1, "rm", 1)
	pub, _ := connect5(t, b.addr, &paho.Connect{ClientID: "rmpub", CleanStart: true}, nil)
	for i := 0; i < 5; i++ {
		pub.Publish(ctx5(t), &paho.Publish{Topic: "rm", QoS: 1, Payload: []byte{byte(i)}})
	}
	a := r.readPublish()
	r.readPublish()
	if _, _, err := r.read(300 * time.Millisecond); err == nil {
		t.Fatal("third message sent beyond receive maximum 2")
	}
	r.send(AppendAck(nil, Version5, PUBACK, a.PacketID, 0, nil))
	if c := r.readPublish(); c.Payload[0] != 2 {
		t.Fatalf("next: %v", c.Payload)
	}
	if _, _, err := r.read(300 * time.Millisecond); err == nil {
		t.Fatal("window exceeded after one ack")
	}
}

func TestMaximumPacketSize5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{PacketBytesMax: 4096})
	sink := newSink5()
	sub, ca := connect5(t, b.addr, &paho.Connect{ClientID: "mps", CleanStart: true,
		Properties: &paho.ConnectProperties{MaximumPacketSize: u32(200)}}, sink)
	if ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 4096 {
		t.Fatalf("server maximum packet size not advertised: %+v", ca.Properties)
	}
	sub.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "mps", QoS: 1}}})
	pub, _ := connect5(t, b.addr, &paho.Connect{ClientID: "mpspub", CleanStart: true}, nil)
	pub.Publish(ctx5(t), &paho.Publish{Topic: "mps", QoS: 1, Payload: bytes.Repeat([]byte("x"), 500)})
	pub.Publish(ctx5(t), &paho.Publish{Topic: "mps", QoS: 1, Payload: []byte("small")})
	if m := sink.next(t); string(m.Payload) != "small" {
		t.Fatalf("got %d bytes", len(m.Payload))
	}
	// a packet above the server's maximum closes the connection
	r := dialRaw(t, b.addr, Version5)
	r.connect("big", true, nil)
	r.publish(&Publish{Topic: []byte("mps"), Payload: bytes.Repeat([]byte("y"), 5000)})
	if closed, _ := r.closed(2 * time.Second); !closed {
		t.Fatal("oversize packet accepted")
	}
}

func TestSharedSubscriptions5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	sinks := []*sink5{newSink5(), newSink5(), newSink5()}
	for i, s := range sinks {
		c, _ := connect5(t, b.addr, &paho.Connect{ClientID: fmt.Sprint("sh", i), CleanStart: true}, s)
		if _, err := c.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/jobs/+", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	pub, _ := connect5(t, b.addr, &paho.Connect{ClientID: "shpub", CleanStart: true}, nil)
	for i := 0; i < 30; i++ {
		pub.Publish(ctx5(t), &paho.Publish{Topic: "jobs/x", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	total := 0
	for i, s := range sinks {
		n := 0
	loop:
		for {
			select {
			case <-s.ch:
				n++
			case <-time.After(300 * time.Millisecond):
				break loop
			}
		}
		if n == 0 {
			t.Errorf("member %d got nothing", i)
		}
		total += n
	}
	if total != 30 {
		t.Fatalf("shared group got %d of 30", total)
	}
}

func TestRequestResponse5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	reqs := newSink5()
	server, _ := connect5(t, b.addr, &paho.Connect{ClientID: "responder", CleanStart: true}, reqs)
	server.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "svc/req", QoS: 1}}})
	resps := newSink5()
	client, _ := connect5(t, b.addr, &paho.Connect{ClientID: "requester", CleanStart: true}, resps)
	client.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "svc/resp/requester", QoS: 1}}})
	client.Publish(ctx5(t), &paho.Publish{Topic: "svc/req", QoS: 1, Payload: []byte("ping"),
		Properties: &paho.PublishProperties{ResponseTopic: "svc/resp/requester", CorrelationData: []byte("c-42")}})
	req := reqs.next(t)
	if req.Properties.ResponseTopic != "svc/resp/requester" || string(req.Properties.CorrelationData) != "c-42" {
		t.Fatalf("request props %+v", req.Properties)
	}
	server.Publish(ctx5(t), &paho.Publish{Topic: req.Properties.ResponseTopic, QoS: 1, Payload: []byte("pong"),
		Properties: &paho.PublishProperties{CorrelationData: req.Properties.CorrelationData}})
	resp := resps.next(t)
	if string(resp.Payload) != "pong" || string(resp.Properties.CorrelationData) != "c-42" {
		t.Fatalf("response %+v", resp)
	}
}

func TestSubscriptionIDsNoLocalRetainOptions5(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	r := dialRaw(t, b.addr, Version5)
	r.connect("opts", true, nil)
	sub := func(id uint16, filter string, subID uint32, nl, rap bool, rh byte) {
		p := &Subscribe{PacketID: id, Subs: []Subscription{{Filter: []byte(filter), QoS: 1, NoLocal: nl, RetainAsPublished: rap, RetainHandling: rh}}}
		if subID > 0 {
			p.Props.SubscriptionIDs = []uint32{subID}
			p.Props.Set(propSubscriptionID)
		}
		r.send(AppendSubscribe(nil, Version5, p))
		r.expect(SUBACK)
	}
	sub(1, "o/a/#", 7, false, false, 0)
	sub(2, "o/+/x", 9, false, true, 0)
	r.publish(&Publish{Topic: []byte("o/a/x"), QoS: 0, Retain: true, Payload: []byte("both")})
	p := r.readPublish()
	ids := p.Props.SubscriptionIDs
	if len(ids) != 2 || !(ids[0] == 7 && ids[1] == 9 || ids[0] == 9 && ids[1] == 7) || !p.Retain {
		t.Fatalf("sub ids %v retain %v", ids, p.Retain)
	}
	// no local: own messages not delivered
	sub(3, "own", 0, true, false, 0)
	r.publish(&Publish{Topic: []byte("own"), Payload: []byte("me")})
	if _, _, err := r.read(300 * time.Millisecond); err == nil {
		t.Fatal("no-local message delivered")
	}
	// retain handling: 1 = only on a new subscription, 2 = never
	sub(4, "o/a/x", 0, false, false, 1)
	if p := r.readPublish(); !p.Retain || string(p.Payload) != "both" {
		t.Fatalf("retained on new sub: %+v", p)
	}
	sub(5, "o/a/x", 0, false, false, 1)
	if _, _, err := r.read(300 * time.Millisecond); err == nil {
		t.Fatal("retained resent on existing subscription with rh=1")
	}
	sub(6, "o/#", 0, false, false, 2)
	if _, _, err := r.read(300 * time.Millisecond); err == nil {
		t.Fatal("retained sent with rh=2")
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{})
	// a subscriber that never reads its socket
	slow := dialRaw(t, b.addr, Version311)
	slow.connect("slow", true, nil)
	slow.subscribe(1, "flood/#", 0)
	sink := newSink3()
	fast := connect3(t, b.addr, "fast", true, sink, nil)
	sub3(t, fast, "flood/#", 0)
	pub := connect3(t, b.addr, "pub", true, nil, nil)
	payload := bytes.Repeat([]byte("z"), 4096)
	const n = 3000 // 12 MiB: well beyond the slow socket and its high-water mark
	start := time.Now()
	got := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got < n {
			select {
			case <-sink.ch:
				got++
			case <-time.After(10 * time.Second):
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		tok := pub.Publish("flood/x", 0, false, payload)
		tok.Wait()
	}
	<-done
	t.Logf("stats: in %d out %d dropped %d", b.srv.Stats().MsgsIn.Load(), b.srv.Stats().MsgsOut.Load(), b.srv.Stats().Dropped.Load())
	if got < n/2 {
		t.Fatalf("fast subscriber got %d of %d in %v", got, n, time.Since(start))
	}
	if b.srv.Stats().Dropped.Load() == 0 {
		t.Fatal("no drops counted for the non-reading subscriber")
	}
	t.Logf("fast got %d/%d in %v; dropped for slow: %d", got, n, time.Since(start), b.srv.Stats().Dropped.Load())
}

func TestSlowQoS1SubscriberFlowControl(t *testing.T) {
	b := startBroker(t, t.TempDir(), Config{InflightMessagesMax: 16, QueueMessagesMax: 500, StallTimeout: 300 * time.Millisecond})
	// a QoS 1 subscriber that never reads nor acknowledges
	slow := dialRaw(t, b.addr, Version311)
	slow.connect("slow1", true, nil)
	slow.subscribe(1, "fc/#", 1)
	sink := newSink3()
	fast := connect3(t, b.addr, "fast1", true, sink, nil)
	sub3(t, fast, "fc/#", 1)
	pub := connect3(t, b.addr, "pub1", true, nil, nil)
	const n = 2000
	start := time.Now()
	toks := make([]paho3.Token, 0, n)
	for i := 0; i < n; i++ {
		toks = append(toks, pub.Publish("fc/x", 1, false, fmt.Sprint(i)))
	}
	for _, tok := range toks {
		wait(t, tok)
	}
	for i := 0; i < n; i++ {
		if m := sink.next(t); m.payload != fmt.Sprint(i) {
			t.Fatalf("fast subscriber: #%d got %q", i, m.payload)
		}
	}
	el := time.Since(start)
	if el > 15*time.Second {
		t.Fatalf("publisher held back by the stalled subscriber: %v", el)
	}
	st := b.srv.Stats()
	// the stalled session holds 16 inflight + 500 queued; the rest is dropped and counted
	if st.Dropped.Load() != n-16-500 {
		t.Fatalf("dropped %d, want %d", st.Dropped.Load(), n-16-500)
	}
	t.Logf("%d QoS 1 publishes in %v; dropped for the stalled subscriber: %d", n, el, st.Dropped.Load())
}
