package rocketmq

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawCall sends one JSON-header request and returns the decoded response.
func rawCall(t *testing.T, addr string, code int16, ext []Field, body []byte) *Command {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := AppendCommand(nil, &Out{Code: code, Opaque: 7, Ext: ext, Body: body})
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	return rawRead(t, c)
}

func rawRead(t *testing.T, c net.Conn) *Command {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var lb [4]byte
	if _, err := io.ReadFull(c, lb[:]); err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(lb[:])
	buf := make([]byte, 4+n)
	copy(buf, lb[:])
	if _, err := io.ReadFull(c, buf[4:]); err != nil {
		t.Fatal(err)
	}
	cmd, err := DecodeCommand(buf)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestRawUnknownCode(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	r := rawCall(t, b.brAddr, 9999, nil, nil)
	if r.Code != respNotSupported || r.Opaque != 7 || !r.IsResponse() {
		t.Fatalf("%+v", r)
	}
	r = rawCall(t, b.brAddr, codeGetConsumerListByGroup, []Field{{"consumerGroup", "x"}}, nil)
	if r.Code != respSystemError {
		t.Fatalf("%+v", r)
	}
}

func TestRawBadInput(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	// A good connection stays usable while others misbehave.
	good, err := net.Dial("tcp", b.brAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad := [][]byte{
		{0, 0, 0, 6, 0, 0, 0, 2, '{', 'x'},   // bad header JSON
		{0, 0, 0, 4, 7, 0, 0, 0},             // unknown serialization
		{0, 0, 0, 4, 0, 0, 0, 9},             // header length past the frame
		{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0}, // impossible length (> 16 MiB)
		{0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0}, // negative length
	}
	for i, f := range bad {
		c, err := net.Dial("tcp", b.brAddr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(f)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var one [1]byte
		if _, err := c.Read(one[:]); err == nil {
			t.Fatalf("%d: connection still open after a malformed frame", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%d: connection not closed", i)
		}
		c.Close()
	}
	// ROCKETMQ binary header, answered in kind with the opaque echoed.
	frame := AppendCommand(nil, &Out{Code: codeGetMaxOffset, Opaque: 99, Ext: []Field{{"topic", "TBW102"}, {"queueId", "0"}}, Serial: serialRocketMQ})
	if _, err := good.Write(frame); err != nil {
		t.Fatal(err)
	}
	r := rawRead(t, good)
	if r.Code != respSuccess || r.Opaque != 99 || r.Serial != serialRocketMQ || r.Str("offset") != "0" {
		t.Fatalf("%+v", r)
	}
	// Unknown code on the name server port.
	r = rawCall(t, b.nsAddr, codeSendMessage, nil, nil)
	if r.Code != respNotSupported {
		t.Fatalf("%+v", r)
	}
	// Route of an unknown topic without auto-create; TBW102 always routes.
	cfg := DefaultConfig()
	cfg.AutoCreateTopics = false
	b2 := startBroker(t, t.TempDir(), cfg)
	r = rawCall(t, b2.nsAddr, codeGetRouteInfoByTopic, []Field{{"topic", "nope"}}, nil)
	if r.Code != respTopicNotExist {
		t.Fatalf("%+v", r)
	}
	r = rawCall(t, b2.nsAddr, codeGetRouteInfoByTopic, []Field{{"topic", "TBW102"}}, nil)
	if r.Code != respSuccess || !strings.Contains(string(r.Body), `"brokerAddrs":{"0":"`+b2.brAddr+`"}`) {
		t.Fatalf("%+v %s", r, r.Body)
	}
}
