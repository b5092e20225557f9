package rocketmq

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, serial := range []byte{serialJSON, serialRocketMQ} {
		o := &Out{Code: 10, Opaque: 42, Flag: flagOneway, Remark: "a \"remark\"\n\x01é",
			Ext: []Field{{"topic", "T"}, {"properties", "TAGS\x01A\x02"}}, Body: []byte("body"), Serial: serial}
		frame := AppendCommand(nil, o)
		c, err := DecodeCommand(frame)
		if err != nil {
			t.Fatalf("serial %d: %v", serial, err)
		}
		if c.Code != 10 || c.Opaque != 42 || !c.IsOneway() || c.IsResponse() || c.Remark != o.Remark ||
			c.Str("topic") != "T" || c.Str("properties") != "TAGS\x01A\x02" || string(c.Body) != "body" || c.Serial != serial {
			t.Fatalf("serial %d: %+v", serial, c)
		}
		if serial == serialJSON {
			hl := int(binary.BigEndian.Uint32(frame[4:]) & 0xFFFFFF)
			var m map[string]any
			if err := json.Unmarshal(frame[8:8+hl], &m); err != nil {
				t.Fatalf("header is not JSON: %v", err)
			}
		}
	}
}

func TestDecodeJavaHeader(t *testing.T) {
	hdr := []byte(`{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":3,"serializeTypeCurrentRPC":"JSON","version":401}`)
	frame := binary.BigEndian.AppendUint32(nil, uint32(4+len(hdr)))
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(hdr)))
	frame = append(frame, hdr...)
	c, err := DecodeCommand(frame)
	if err != nil {
		t.Fatal(err)
	}
	if c.Code != 105 || c.Language != "JAVA" || c.Version != 401 || c.Str("topic") != "TopicTest" || c.Opaque != 3 {
		t.Fatalf("%+v", c)
	}
}

func TestDecodeMalformed(t *testing.T) {
	bad := [][]byte{
		{0, 0, 0, 1, 0},                                // short
		{0, 0, 0, 4, 0, 0, 0, 9},                       // header past the end
		{0, 0, 0, 6, 2, 0, 0, 2, '{', '}'},             // unknown serialization
		{0, 0, 0, 7, 0, 0, 0, 3, '{', '"', 'x'},        // bad JSON
		{0, 0, 0, 8, 1, 0, 0, 4, 0, 1, 0, 0},           // short binary header
		append([]byte{0, 0, 0, 9}, make([]byte, 8)...), // length mismatch
	}
	for i, f := range bad {
		if _, err := DecodeCommand(f); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d: err %v", i, err)
		}
	}
}

func TestMessageExtLayout(t *testing.T) {
	st := stored{offset: 5, storeTS: 1000, bornTS: 900, bornHost: "10.0.0.1:5555", body: []byte("hello"),
		props: []byte("TAGS\x01A\x02UNIQ_KEY\x01U1\x02")}
	store := parseHostPort("127.0.0.1:10911")
	phys := int64(123456789)
	b := appendMessageExt(nil, "topic", 2, phys, store, &st)
	if int(binary.BigEndian.Uint32(b)) != len(b) || binary.BigEndian.Uint32(b[4:]) != magicV1 {
		t.Fatalf("size/magic")
	}
	id := offsetMsgID(store, phys)
	if p, ok := parseOffsetMsgID(id); !ok || p != phys || len(id) != 32 {
		t.Fatal(id)
	}
	if !bytes.HasPrefix([]byte(id), []byte("7F000001")) {
		t.Fatal(id)
	}
}

func TestSubscriptionMatch(t *testing.T) {
	sub := newSubscription("t", "A || B")
	if !sub.matches([]byte("A")) || !sub.matches([]byte("B")) || sub.matches([]byte("C")) || sub.matches(nil) {
		t.Fatal("tag filter")
	}
	if !newSubscription("t", "*").matches([]byte("C")) {
		t.Fatal("*")
	}
}

func TestPropsParse(t *testing.T) {
	ps := parseProps(nil, "TAGS\x01A\x02KEYS\x01k1 k2\x02bad\x02")
	if len(ps) != 2 || getProp(ps, "KEYS") != "k1 k2" {
		t.Fatal(ps)
	}
	if got := string(appendProps(nil, ps)); got != "TAGS\x01A\x02KEYS\x01k1 k2\x02" {
		t.Fatalf("%q", got)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(AppendCommand(nil, &Out{Code: 10, Opaque: 1, Ext: []Field{{"a", "b"}}, Body: []byte("x")}))
	f.Add(AppendCommand(nil, &Out{Code: 11, Opaque: 2, Ext: []Field{{"topic", "t"}}, Serial: serialRocketMQ}))
	f.Add([]byte{0, 0, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		c, err := DecodeCommand(frame)
		if err != nil {
			return
		}
		o := &Out{Code: c.Code, Opaque: c.Opaque, Flag: c.Flag, Remark: c.Remark, Body: c.Body, Serial: c.Serial}
		for k, v := range c.Ext {
			o.Set(k, v)
		}
		c2, err := DecodeCommand(AppendCommand(nil, o))
		if err != nil {
			if c.Serial == serialJSON {
				return // invalid UTF-8 in JSON strings is replaced, not an error to re-decode
			}
			t.Fatalf("re-decode: %v", err)
		}
		if c2.Code != c.Code || c2.Opaque != c.Opaque || c.Serial == serialRocketMQ && len(c2.Ext) != len(c.Ext) {
			t.Fatalf("round trip %+v vs %+v", c, c2)
		}
	})
}

func FuzzDecodeBatchBody(f *testing.F) {
	f.Add([]byte{0, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeBatchBody(b, nil)
		_ = parseProps(nil, string(b))
	})
}

func FuzzJSONHeader(f *testing.F) {
	f.Add([]byte(`{"code":10,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"a":"b\u0001\u00e9\ud83d\ude00"}}`))
	f.Add([]byte(`{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":3,"serializeTypeCurrentRPC":"JSON","version":401}`))
	f.Add([]byte(`{"remark":null,"extFields":null,"x":[1,{"y":2.5e3}],"code":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := fastJSONHeader(b)
		if !ok {
			return
		}
		var h jsonHeader
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("fast parser accepted what encoding/json rejects: %v", err)
		}
		if h.Code != fast.Code || h.Opaque != fast.Opaque || h.Flag != fast.Flag || h.Version != fast.Version || len(h.ExtFields) != len(fast.Ext) {
			t.Fatalf("fast %+v vs json %+v", fast, h)
		}
		for k, v := range h.ExtFields {
			if fast.Ext[k] != v {
				t.Fatalf("ext %q: %q vs %q", k, fast.Ext[k], v)
			}
		}
	})
}
