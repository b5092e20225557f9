package rocketmq

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"

	"github.com/klauspost/crc32"
)

// MessageExt, as the broker sends it in PULL_MESSAGE bodies and check-back
// requests (V1 layout; the Go client cannot parse V2):
//
//	totalSize int32 | magic int32 (0xDAA320A7) | bodyCRC int32 | queueId int32 |
//	flag int32 | queueOffset int64 | physicalOffset int64 | sysFlag int32 |
//	bornTimestamp int64 | bornHost 4+4 | storeTimestamp int64 | storeHost 4+4 |
//	reconsumeTimes int32 | preparedTransactionOffset int64 |
//	bodyLen int32 | body | topicLen int8 | topic | propsLen int16 | props
const (
	magicV1 = 0xDAA320A7

	sysFlagCompressed = 0x1
	sysFlagMultiTags  = 0x2
	sysFlagTxnMask    = 0xC
	sysFlagTxnPrep    = 0x4
	sysFlagTxnCommit  = 0x8
	sysFlagTxnRoll    = 0xC
	sysFlagBornV6     = 0x10
	sysFlagStoreV6    = 0x20
)

// A message's physical offset is its commit-log offset (engine/commitlog):
// an offsetMsgId (store host + physical offset) leads back to the record.

// hostPort is an IPv4 address and port as MessageExt carries them.
type hostPort struct {
	ip   [4]byte
	port uint32
}

func parseHostPort(s string) hostPort {
	var hp hostPort
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return hp
	}
	if ip := net.ParseIP(h).To4(); ip != nil {
		copy(hp.ip[:], ip)
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	hp.port = uint32(n)
	return hp
}

func (hp hostPort) String() string {
	return fmt.Sprintf("%d.%d.%d.%d:%d", hp.ip[0], hp.ip[1], hp.ip[2], hp.ip[3], hp.port)
}

// offsetMsgID renders store host + physical offset as the 32 hex digits
// clients call offsetMsgId.
func offsetMsgID(store hostPort, phys int64) string {
	var b [16]byte
	copy(b[:4], store.ip[:])
	binary.BigEndian.PutUint32(b[4:], store.port)
	binary.BigEndian.PutUint64(b[8:], uint64(phys))
	var h [32]byte
	hex.Encode(h[:], b[:])
	for i, c := range h {
		if c >= 'a' {
			h[i] = c - 'a' + 'A'
		}
	}
	return string(h[:])
}

// parseOffsetMsgID returns the physical offset in an offsetMsgId.
func parseOffsetMsgID(id string) (int64, bool) {
	if len(id) != 32 {
		return 0, false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(id)); err != nil {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[8:])), true
}

var crcIEEE = crc32.MakeTable(crc32.IEEE)

// appendMessageExt appends one MessageExt (V1) to dst.
func appendMessageExt(dst []byte, topic string, queue int, phys int64, store hostPort, s *stored) []byte {
	born := parseHostPort(s.bornHost)
	if len(topic) > 127 {
		topic = topic[:127]
	}
	size := 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + len(s.body) + 1 + len(topic) + 2 + len(s.props)
	be := binary.BigEndian
	dst = be.AppendUint32(dst, uint32(size))
	dst = be.AppendUint32(dst, magicV1)
	dst = be.AppendUint32(dst, crc32.Checksum(s.body, crcIEEE))
	dst = be.AppendUint32(dst, uint32(queue))
	dst = be.AppendUint32(dst, uint32(s.flag))
	dst = be.AppendUint64(dst, uint64(s.offset))
	dst = be.AppendUint64(dst, uint64(phys))
	dst = be.AppendUint32(dst, uint32(s.sysFlag&^(sysFlagCompressed|sysFlagBornV6|sysFlagStoreV6)))
	dst = be.AppendUint64(dst, uint64(s.bornTS))
	dst = append(dst, born.ip[:]...)
	dst = be.AppendUint32(dst, born.port)
	dst = be.AppendUint64(dst, uint64(s.storeTS))
	dst = append(dst, store.ip[:]...)
	dst = be.AppendUint32(dst, store.port)
	dst = be.AppendUint32(dst, uint32(s.reconsume))
	dst = be.AppendUint64(dst, uint64(s.prepared))
	dst = be.AppendUint32(dst, uint32(len(s.body)))
	dst = append(dst, s.body...)
	dst = append(dst, byte(len(topic)))
	dst = append(dst, topic...)
	dst = be.AppendUint16(dst, uint16(len(s.props)))
	dst = append(dst, s.props...)
	return dst
}

// decodedMsg is one message of a SEND_BATCH_MESSAGE body.
type decodedMsg struct {
	flag  int32
	body  []byte
	props string
}

// decodeBatchBody splits a batch body: per message totalSize int32, magic
// int32, bodyCRC int32, flag int32, bodyLen int32, body, propsLen int16, props.
func decodeBatchBody(b []byte, dst []decodedMsg) ([]decodedMsg, error) {
	r := reader{b: b}
	for len(r.b) > 0 && r.err == nil {
		total := int32(r.u32())
		if total < 22 || int(total)-4 > len(r.b) {
			r.fail("batch message size")
			break
		}
		one := reader{b: r.bytes(int(total) - 4)}
		one.u32() // magic
		one.u32() // body crc
		flag := int32(one.u32())
		bl := int32(one.u32())
		body := one.bytes(int(bl))
		pl := int16(one.u16())
		props := one.bytes(int(pl))
		if one.err != nil {
			return dst, one.err
		}
		dst = append(dst, decodedMsg{flag: flag, body: body, props: string(props)})
	}
	return dst, r.err
}
