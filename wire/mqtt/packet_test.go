package mqtt

import (
	"bytes"
	"errors"
	"testing"

	"quartet/netpoll"
)

func TestFramer(t *testing.T) {
	cases := []struct {
		in   []byte
		n    int
		fail bool
	}{
		{[]byte{0xc0}, 0, false},
		{[]byte{0xc0, 0x00}, 2, false},
		{[]byte{0x30, 0x05, 1, 2, 3}, 0, false}, // incomplete
		{[]byte{0x30, 0x03, 1, 2, 3, 9}, 5, false},
		{[]byte{0x30, 0x80}, 0, false},
		{[]byte{0x30, 0x80, 0x01}, 0, false}, // 128 bytes announced
		{[]byte{0x30, 0xff, 0xff, 0xff, 0xff}, 0, true},
	}
	for _, c := range cases {
		n, err := Framer(c.in)
		if n != c.n || (err != nil) != c.fail {
			t.Errorf("Framer(%x) = %d, %v", c.in, n, err)
		}
	}
	f := framerMax(100)
	if _, err := f([]byte{0x30, 0x80, 0x01}); !errors.Is(err, netpoll.ErrFrameTooLarge) {
		t.Fatalf("framerMax: %v", err)
	}
}

func roundTrip(t *testing.T, pkt []byte) (Header, []byte) {
	t.Helper()
	n, err := Framer(pkt)
	if err != nil || n != len(pkt) {
		t.Fatalf("framer %d %v (len %d)", n, err, len(pkt))
	}
	h, body, err := SplitFrame(pkt)
	if err != nil {
		t.Fatal(err)
	}
	return h, body
}

func TestConnectRoundTrip(t *testing.T) {
	for _, v := range []byte{Version31, Version311, Version5} {
		in := Connect{Version: v, CleanStart: true, KeepAlive: 42, ClientID: []byte("cid"), WillFlag: true, WillQoS: 2,
			WillRetain: true, WillTopic: []byte("w/t"), WillPayload: []byte("bye"), UsernameFlag: true, Username: []byte("u"),
			PasswordFlag: true, Password: []byte("p")}
		if v == Version5 {
			in.Props.SessionExpiry = 99
			in.Props.Set(propSessionExpiry)
			in.Props.User = []UserProperty{{[]byte("a"), []byte("b")}}
			in.Props.Set(propUser)
			in.WillProps.WillDelay = 5
			in.WillProps.Set(propWillDelay)
		}
		h, body := roundTrip(t, AppendConnect(nil, &in))
		var out Connect
		if err := DecodeConnect(&out, h.Flags, body); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if out.Version != v || out.KeepAlive != 42 || string(out.ClientID) != "cid" || out.WillQoS != 2 || !out.WillRetain ||
			string(out.WillPayload) != "bye" || string(out.Password) != "p" || string(out.Username) != "u" {
			t.Fatalf("v%d: %+v", v, out)
		}
		if v == Version5 && (out.Props.SessionExpiry != 99 || out.WillProps.WillDelay != 5 || string(out.Props.User[0].Value) != "b") {
			t.Fatalf("props %+v", out.Props)
		}
	}
}

func TestPublishRoundTrip(t *testing.T) {
	for _, v := range []byte{Version311, Version5} {
		in := Publish{QoS: 1, Dup: true, Retain: true, Topic: []byte("a/b"), PacketID: 7, Payload: []byte("hello")}
		if v == Version5 {
			in.Props.MessageExpiry = 10
			in.Props.Set(propMessageExpiry)
			in.Props.ResponseTopic = []byte("r")
			in.Props.Set(propResponseTopic)
			in.Props.CorrelationData = []byte{0, 1}
			in.Props.Set(propCorrelationData)
		}
		h, body := roundTrip(t, AppendPublish(nil, v, &in))
		var out Publish
		if err := DecodePublish(&out, v, h.Flags, body); err != nil {
			t.Fatal(err)
		}
		if !out.Dup || !out.Retain || out.QoS != 1 || out.PacketID != 7 || string(out.Payload) != "hello" || string(out.Topic) != "a/b" {
			t.Fatalf("%+v", out)
		}
		if v == Version5 && (out.Props.MessageExpiry != 10 || string(out.Props.ResponseTopic) != "r" || !bytes.Equal(out.Props.CorrelationData, []byte{0, 1})) {
			t.Fatalf("%+v", out.Props)
		}
	}
}

func TestAcksSubsDisconnectRoundTrip(t *testing.T) {
	var reason Properties
	reason.ReasonString = []byte("why")
	reason.Set(propReasonString)
	for _, typ := range []byte{PUBACK, PUBREC, PUBREL, PUBCOMP} {
		h, body := roundTrip(t, AppendAck(nil, Version5, typ, 9, RCQuotaExceeded, &reason))
		var a Ack
		if err := DecodeAck(&a, Version5, h.Type, h.Flags, body); err != nil || a.PacketID != 9 || a.Reason != RCQuotaExceeded || string(a.Props.ReasonString) != "why" {
			t.Fatalf("%s: %v %+v", packetName(typ), err, a)
		}
	}
	s := Subscribe{PacketID: 3, Subs: []Subscription{{Filter: []byte("a/#"), QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}
	s.Props.SubscriptionIDs = []uint32{268435455}
	s.Props.Set(propSubscriptionID)
	h, body := roundTrip(t, AppendSubscribe(nil, Version5, &s))
	var so Subscribe
	if err := DecodeSubscribe(&so, Version5, h.Flags, body); err != nil || string(so.Subs[0].Filter) != "a/#" || so.Subs[0].QoS != 2 || !so.Subs[0].NoLocal || !so.Subs[0].RetainAsPublished || so.Subs[0].RetainHandling != 2 || so.Props.SubscriptionIDs[0] != 268435455 {
		t.Fatalf("%v %+v", err, so)
	}
	u := Unsubscribe{PacketID: 4, Filters: [][]byte{[]byte("x"), []byte("y/+")}}
	h, body = roundTrip(t, AppendUnsubscribe(nil, Version311, &u))
	var uo Unsubscribe
	if err := DecodeUnsubscribe(&uo, Version311, h.Flags, body); err != nil || len(uo.Filters) != 2 {
		t.Fatal(err)
	}
	h, body = roundTrip(t, AppendSubAck(nil, Version5, &SubAck{Type: SUBACK, PacketID: 3, Reasons: []byte{0, 1, 0x8f}}))
	var sa SubAck
	if err := DecodeSubAck(&sa, Version5, h.Type, body); err != nil || !bytes.Equal(sa.Reasons, []byte{0, 1, 0x8f}) {
		t.Fatal(err)
	}
	h, body = roundTrip(t, AppendDisconnect(nil, Version5, DISCONNECT, RCServerBusy, &reason))
	var d Disconnect
	if err := DecodeDisconnect(&d, Version5, h.Type, h.Flags, body); err != nil || d.Reason != RCServerBusy {
		t.Fatal(err)
	}
	var ca Connack
	var cp Properties
	cp.AssignedClientID = []byte("auto")
	cp.Set(propAssignedClientID)
	h, body = roundTrip(t, AppendConnack(nil, Version5, &Connack{SessionPresent: true, Props: cp}))
	if err := DecodeConnack(&ca, Version5, body); err != nil || !ca.SessionPresent || string(ca.Props.AssignedClientID) != "auto" {
		t.Fatal(err)
	}
}

func TestDecodeRejects(t *testing.T) {
	var p Publish
	if err := DecodePublish(&p, Version311, 0x06, []byte{0, 1, 'a'}); err == nil {
		t.Error("QoS 3 accepted")
	}
	if err := DecodePublish(&p, Version311, 0x02, []byte{0, 1, 'a', 0, 0}); err == nil {
		t.Error("packet id 0 accepted")
	}
	// duplicated property
	if err := DecodePublish(&p, Version5, 0, []byte{0, 1, 'a', 4, 1, 0, 1, 0}); !errors.Is(err, ErrProtocol) {
		t.Errorf("duplicate property: %v", err)
	}
	// property not allowed in PUBLISH (session expiry)
	if err := DecodePublish(&p, Version5, 0, []byte{0, 1, 'a', 5, 0x11, 0, 0, 0, 1}); !errors.Is(err, ErrProtocol) {
		t.Errorf("foreign property: %v", err)
	}
	for _, f := range []string{"a/#/b", "a+", "#a", ""} {
		if ValidTopicFilter([]byte(f)) {
			t.Errorf("filter %q accepted", f)
		}
	}
	for _, f := range []string{"#", "+", "a/+/b", "+/#", "/"} {
		if !ValidTopicFilter([]byte(f)) {
			t.Errorf("filter %q refused", f)
		}
	}
}

// decodeAny decodes a frame as the server would, for fuzzing.
func decodeAny(v byte, frame []byte) {
	h, body, err := SplitFrame(frame)
	if err != nil {
		return
	}
	switch h.Type {
	case CONNECT:
		var p Connect
		if DecodeConnect(&p, h.Flags, body) == nil {
			again := AppendConnect(nil, &p)
			h2, b2, err := SplitFrame(again)
			var q Connect
			if err != nil || DecodeConnect(&q, h2.Flags, b2) != nil {
				panic("CONNECT re-encoding does not decode")
			}
		}
	case CONNACK:
		var p Connack
		_ = DecodeConnack(&p, v, body)
	case PUBLISH:
		var p Publish
		if DecodePublish(&p, v, h.Flags, body) == nil {
			again := AppendPublish(nil, v, &p)
			h2, b2, _ := SplitFrame(again)
			var q Publish
			if err := DecodePublish(&q, v, h2.Flags, b2); err != nil || !bytes.Equal(q.Payload, p.Payload) || !bytes.Equal(q.Topic, p.Topic) {
				panic("PUBLISH round trip")
			}
		}
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		var p Ack
		_ = DecodeAck(&p, v, h.Type, h.Flags, body)
	case SUBSCRIBE:
		var p Subscribe
		if DecodeSubscribe(&p, v, h.Flags, body) == nil {
			for _, s := range p.Subs {
				ValidTopicFilter(s.Filter)
			}
		}
	case SUBACK, UNSUBACK:
		var p SubAck
		_ = DecodeSubAck(&p, v, h.Type, body)
	case UNSUBSCRIBE:
		var p Unsubscribe
		_ = DecodeUnsubscribe(&p, v, h.Flags, body)
	case DISCONNECT, AUTH:
		var p Disconnect
		_ = DecodeDisconnect(&p, v, h.Type, h.Flags, body)
	}
}

// FuzzDecodePacket feeds arbitrary bytes through the Framer and every
// decoder, for MQTT 3.1.1 and 5.0.
func FuzzDecodePacket(f *testing.F) {
	seeds := [][]byte{
		AppendConnect(nil, &Connect{Version: Version5, CleanStart: true, ClientID: []byte("x"), WillFlag: true, WillTopic: []byte("w")}),
		AppendConnect(nil, &Connect{Version: Version311, ClientID: []byte("y"), UsernameFlag: true, Username: []byte("u")}),
		AppendPublish(nil, Version5, &Publish{QoS: 2, PacketID: 1, Topic: []byte("t"), Payload: []byte("p")}),
		AppendSubscribe(nil, Version5, &Subscribe{PacketID: 1, Subs: []Subscription{{Filter: []byte("a/#"), QoS: 1}}}),
		AppendUnsubscribe(nil, Version311, &Unsubscribe{PacketID: 1, Filters: [][]byte{[]byte("a")}}),
		AppendAck(nil, Version5, PUBREL, 1, RCPacketIDNotFound, nil),
		AppendDisconnect(nil, Version5, DISCONNECT, RCDisconnectWithWill, nil),
		{0xc0, 0},
	}
	for _, s := range seeds {
		f.Add(byte(0), s)
		f.Add(byte(1), s)
	}
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		v := byte(Version311)
		if which&1 == 1 {
			v = Version5
		}
		for len(data) > 0 {
			n, err := Framer(data)
			if err != nil || n == 0 {
				return
			}
			decodeAny(v, data[:n])
			data = data[n:]
		}
	})
}
