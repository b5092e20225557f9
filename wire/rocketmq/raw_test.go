package rocketmq

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
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

// rawOn sends one request on c and returns the next response read.
func rawOn(t *testing.T, c net.Conn, o *Out) *Command {
	t.Helper()
	if _, err := c.Write(AppendCommand(nil, o)); err != nil {
		t.Fatal(err)
	}
	return rawRead(t, c)
}

// UPDATE_CONSUMER_OFFSET (15) and END_TRANSACTION (37) are answered unless
// flagged oneway.
func TestRawUpdateOffsetAndEndTransactionAnswered(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	c, err := net.Dial("tcp", b.brAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	upd := []Field{{"consumerGroup", "g"}, {"topic", "TBW102"}, {"queueId", "1"}, {"commitOffset", "5"}}
	r := rawOn(t, c, &Out{Code: codeUpdateConsumerOffset, Opaque: 11, Ext: upd})
	if r.Code != respSuccess || r.Opaque != 11 || !r.IsResponse() {
		t.Fatalf("UPDATE_CONSUMER_OFFSET: %+v", r)
	}
	// Oneway: no answer, so the next answer read is the query's.
	upd[3].V = "6"
	if _, err := c.Write(AppendCommand(nil, &Out{Code: codeUpdateConsumerOffset, Opaque: 12, Flag: flagOneway, Ext: upd})); err != nil {
		t.Fatal(err)
	}
	r = rawOn(t, c, &Out{Code: codeQueryConsumerOffset, Opaque: 13, Ext: upd[:3]})
	if r.Opaque != 13 || r.Code != respSuccess || r.Str("offset") != "6" {
		t.Fatalf("QUERY_CONSUMER_OFFSET after a oneway update: %+v", r)
	}

	// END_TRANSACTION for no half message: an error answer.
	end := func(opaque int32, commitLog string, decision string) *Command {
		return rawOn(t, c, &Out{Code: codeEndTransaction, Opaque: opaque, Ext: []Field{
			{"producerGroup", "pg"}, {"tranStateTableOffset", "0"}, {"commitLogOffset", commitLog},
			{"commitOrRollback", decision}, {"fromTransactionCheck", "false"}, {"msgId", "x"}}})
	}
	r = end(14, "999999", "8")
	if r.Code != respSystemError || r.Opaque != 14 {
		t.Fatalf("END_TRANSACTION unknown: %+v", r)
	}
	// A prepared message, committed by END_TRANSACTION, becomes visible.
	send := rawOn(t, c, &Out{Code: codeSendMessage, Opaque: 15, Ext: []Field{
		{"producerGroup", "pg"}, {"topic", "txraw"}, {"queueId", "2"}, {"sysFlag", "4"},
		{"bornTimestamp", "1"}, {"flag", "0"}, {"properties", "TRAN_MSG\x01true\x02PGROUP\x01pg\x02UNIQ_KEY\x01u1\x02"}},
		Body: []byte("half")})
	if send.Code != respSuccess || send.Opaque != 15 {
		t.Fatalf("prepare: %+v", send)
	}
	phys, ok := parseOffsetMsgID(send.Str("msgId"))
	if !ok {
		t.Fatalf("msgId %q", send.Str("msgId"))
	}
	maxOff := func(opaque int32) string {
		r := rawOn(t, c, &Out{Code: codeGetMaxOffset, Opaque: opaque, Ext: []Field{{"topic", "txraw"}, {"queueId", "2"}}})
		return r.Str("offset")
	}
	if m := maxOff(16); m != "0" {
		t.Fatalf("half message visible: max offset %s", m)
	}
	r = end(17, strconv.FormatInt(phys, 10), strconv.Itoa(sysFlagTxnCommit))
	if r.Code != respSuccess || r.Opaque != 17 {
		t.Fatalf("END_TRANSACTION commit: %+v", r)
	}
	if m := maxOff(18); m != "1" {
		t.Fatalf("committed message not visible: max offset %s", m)
	}
	// MessageCounts: the prepared message was accepted once; a pull
	// delivers the committed one.
	if in, out := b.srv.MessageCounts(); in != 1 || out != 0 {
		t.Fatalf("MessageCounts before the pull: in %d out %d", in, out)
	}
	pull := rawOn(t, c, &Out{Code: codePullMessage, Opaque: 20, Ext: []Field{
		{"consumerGroup", "cg"}, {"topic", "txraw"}, {"queueId", "2"}, {"queueOffset", "0"},
		{"maxMsgNums", "32"}, {"sysFlag", "0"}, {"commitOffset", "0"}, {"suspendTimeoutMillis", "0"},
		{"subscription", "*"}, {"subVersion", "0"}, {"expressionType", "TAG"}}})
	if pull.Code != respSuccess || pull.Opaque != 20 || pull.Str("nextBeginOffset") != "1" || len(pull.Body) < 8 ||
		binary.BigEndian.Uint32(pull.Body[4:]) != magicV1 || !strings.Contains(string(pull.Body), "half") {
		t.Fatalf("pull: %+v", pull)
	}
	if in, out := b.srv.MessageCounts(); in != 1 || out != 1 {
		t.Fatalf("MessageCounts after the pull: in %d out %d", in, out)
	}
	// Committing twice: the half is no longer pending.
	r = end(19, strconv.FormatInt(phys, 10), strconv.Itoa(sysFlagTxnCommit))
	if r.Code != respSystemError || r.Opaque != 19 {
		t.Fatalf("second commit: %+v", r)
	}
}
