package rocketmq

import (
	"encoding/binary"
	"io"
	"net"
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
