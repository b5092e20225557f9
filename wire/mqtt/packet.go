package mqtt

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Packet types (high nibble of the fixed header).
const (
	CONNECT     = 1
	CONNACK     = 2
	PUBLISH     = 3
	PUBACK      = 4
	PUBREC      = 5
	PUBREL      = 6
	PUBCOMP     = 7
	SUBSCRIBE   = 8
	SUBACK      = 9
	UNSUBSCRIBE = 10
	UNSUBACK    = 11
	PINGREQ     = 12
	PINGRESP    = 13
	DISCONNECT  = 14
	AUTH        = 15
)

// Protocol levels.
const (
	Version31  = 3
	Version311 = 4
	Version5   = 5
)

// MQTT 5 reason codes (and the 3.1.1 CONNACK return codes they map from).
const (
	RCSuccess                     = 0x00
	RCGrantedQoS1                 = 0x01
	RCGrantedQoS2                 = 0x02
	RCDisconnectWithWill          = 0x04
	RCNoMatchingSubscribers       = 0x10
	RCNoSubscriptionExisted       = 0x11
	RCUnspecifiedError            = 0x80
	RCMalformedPacket             = 0x81
	RCProtocolError               = 0x82
	RCImplementationSpecificError = 0x83
	RCUnsupportedProtocolVersion  = 0x84
	RCClientIDNotValid            = 0x85
	RCBadUsernameOrPassword       = 0x86
	RCNotAuthorized               = 0x87
	RCServerUnavailable           = 0x88
	RCServerBusy                  = 0x89
	RCBadAuthenticationMethod     = 0x8C
	RCKeepAliveTimeout            = 0x8D
	RCSessionTakenOver            = 0x8E
	RCTopicFilterInvalid          = 0x8F
	RCTopicNameInvalid            = 0x90
	RCPacketIDInUse               = 0x91
	RCPacketIDNotFound            = 0x92
	RCReceiveMaximumExceeded      = 0x93
	RCTopicAliasInvalid           = 0x94
	RCPacketTooLarge              = 0x95
	RCQuotaExceeded               = 0x97
	RCPayloadFormatInvalid        = 0x99
	RCRetainNotSupported          = 0x9A
	RCQoSNotSupported             = 0x9B
	RCSharedSubNotSupported       = 0x9E
	RCSubIDsNotSupported          = 0xA1
	RCWildcardSubsNotSupported    = 0xA2
)

// Sentinel errors of the codec.
var (
	ErrMalformed = errors.New("mqtt: malformed packet")
	ErrProtocol  = errors.New("mqtt: protocol error")
)

// reader decodes with a sticky error: after the first failure every read
// returns zero and r.err keeps the cause.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte() byte {
	if r.off >= len(r.b) {
		r.fail(ErrMalformed)
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if r.off+2 > len(r.b) {
		r.fail(ErrMalformed)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if r.off+4 > len(r.b) {
		r.fail(ErrMalformed)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) varint() uint32 {
	var v uint32
	for i := 0; i < 4; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(ErrMalformed)
	return 0
}

func (r *reader) bin() []byte {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if r.off+n > len(r.b) {
		r.fail(ErrMalformed)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// str reads a UTF-8 string and validates it.
func (r *reader) str() []byte {
	v := r.bin()
	if r.err == nil && !validUTF8(v) {
		r.fail(ErrMalformed)
	}
	return v
}

func appendU16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }
func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
func appendBin(dst, b []byte) []byte { return append(appendU16(dst, uint16(len(b))), b...) }
func appendStr(dst []byte, s string) []byte {
	return append(appendU16(dst, uint16(len(s))), s...)
}

func appendVarint(dst []byte, v int) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			dst = append(dst, c|0x80)
		} else {
			return append(dst, c)
		}
	}
}

func varintLen(v int) int {
	switch {
	case v < 128:
		return 1
	case v < 16384:
		return 2
	case v < 2097152:
		return 3
	default:
		return 4
	}
}

// propsBlockLen is the size of a property block including its length prefix.
func propsBlockLen(p *Properties) int {
	n := propsLen(p)
	return varintLen(n) + n
}

// Header is a decoded fixed header.
type Header struct {
	Type  byte
	Flags byte
}

// SplitFrame splits a whole frame (as delimited by Framer) into its fixed
// header and body.
func SplitFrame(frame []byte) (Header, []byte, error) {
	if len(frame) < 2 {
		return Header{}, nil, ErrMalformed
	}
	h := Header{Type: frame[0] >> 4, Flags: frame[0] & 0x0f}
	var rl, i int
	for i = 1; i < 5 && i < len(frame); i++ {
		rl |= int(frame[i]&0x7f) << (7 * (i - 1))
		if frame[i]&0x80 == 0 {
			break
		}
	}
	if i >= 5 || i >= len(frame) || frame[i]&0x80 != 0 {
		return h, nil, ErrMalformed
	}
	body := frame[i+1:]
	if len(body) != rl {
		return h, nil, ErrMalformed
	}
	return h, body, nil
}

// ---------------------------------------------------------------- CONNECT

// Connect is a CONNECT packet.
type Connect struct {
	ProtocolName []byte
	Version      byte
	CleanStart   bool
	KeepAlive    uint16
	Props        Properties
	ClientID     []byte

	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillProps   Properties
	WillTopic   []byte
	WillPayload []byte

	UsernameFlag bool
	Username     []byte
	PasswordFlag bool
	Password     []byte
}

// ErrUnsupportedVersion is returned by DecodeConnect for an unknown protocol
// name or level; the server answers with CONNACK 0x01 / 0x84.
var ErrUnsupportedVersion = errors.New("mqtt: unsupported protocol version")

// DecodeConnect decodes a CONNECT body.
func DecodeConnect(p *Connect, flags byte, body []byte) error {
	p.Props.Reset()
	p.WillProps.Reset()
	if flags != 0 {
		return ErrMalformed
	}
	r := reader{b: body}
	p.ProtocolName = r.bin()
	p.Version = r.byte()
	if r.err != nil {
		return r.err
	}
	switch {
	case string(p.ProtocolName) == "MQTT" && (p.Version == Version311 || p.Version == Version5):
	case string(p.ProtocolName) == "MQIsdp" && p.Version == Version31:
	default:
		return ErrUnsupportedVersion
	}
	cf := r.byte()
	if cf&0x01 != 0 {
		return ErrMalformed // reserved bit
	}
	p.CleanStart = cf&0x02 != 0
	p.WillFlag = cf&0x04 != 0
	p.WillQoS = (cf >> 3) & 3
	p.WillRetain = cf&0x20 != 0
	p.PasswordFlag = cf&0x40 != 0
	p.UsernameFlag = cf&0x80 != 0
	if !p.WillFlag && (p.WillQoS != 0 || p.WillRetain) || p.WillQoS == 3 {
		return ErrMalformed
	}
	if p.Version < Version5 && p.PasswordFlag && !p.UsernameFlag {
		return ErrMalformed
	}
	p.KeepAlive = r.u16()
	if p.Version == Version5 {
		r.props(&p.Props, allowConnect)
	}
	p.ClientID = r.str()
	p.WillTopic, p.WillPayload, p.Username, p.Password = nil, nil, nil, nil
	if p.WillFlag {
		if p.Version == Version5 {
			r.props(&p.WillProps, allowWill)
		}
		p.WillTopic = r.str()
		p.WillPayload = r.bin()
		if r.err == nil && !ValidTopicName(p.WillTopic) {
			return ErrMalformed
		}
	}
	if p.UsernameFlag {
		p.Username = r.str()
	}
	if p.PasswordFlag {
		p.Password = r.bin()
	}
	if r.err == nil && r.remaining() != 0 {
		return ErrMalformed
	}
	return r.err
}

// AppendConnect encodes a CONNECT packet.
func AppendConnect(dst []byte, p *Connect) []byte {
	name := "MQTT"
	if p.Version == Version31 {
		name = "MQIsdp"
	}
	var cf byte
	if p.CleanStart {
		cf |= 0x02
	}
	if p.WillFlag {
		cf |= 0x04 | p.WillQoS<<3
		if p.WillRetain {
			cf |= 0x20
		}
	}
	if p.PasswordFlag {
		cf |= 0x40
	}
	if p.UsernameFlag {
		cf |= 0x80
	}
	n := 2 + len(name) + 1 + 1 + 2 + 2 + len(p.ClientID)
	if p.Version == Version5 {
		n += propsBlockLen(&p.Props)
	}
	if p.WillFlag {
		if p.Version == Version5 {
			n += propsBlockLen(&p.WillProps)
		}
		n += 4 + len(p.WillTopic) + len(p.WillPayload)
	}
	if p.UsernameFlag {
		n += 2 + len(p.Username)
	}
	if p.PasswordFlag {
		n += 2 + len(p.Password)
	}
	dst = appendVarint(append(dst, CONNECT<<4), n)
	dst = appendStr(dst, name)
	dst = append(dst, p.Version, cf)
	dst = appendU16(dst, p.KeepAlive)
	if p.Version == Version5 {
		dst = appendProps(dst, &p.Props)
	}
	dst = appendBin(dst, p.ClientID)
	if p.WillFlag {
		if p.Version == Version5 {
			dst = appendProps(dst, &p.WillProps)
		}
		dst = appendBin(dst, p.WillTopic)
		dst = appendBin(dst, p.WillPayload)
	}
	if p.UsernameFlag {
		dst = appendBin(dst, p.Username)
	}
	if p.PasswordFlag {
		dst = appendBin(dst, p.Password)
	}
	return dst
}

// ---------------------------------------------------------------- CONNACK

// Connack is a CONNACK packet (Reason is the 3.1.1 return code below v5).
type Connack struct {
	SessionPresent bool
	Reason         byte
	Props          Properties
}

// AppendConnack encodes a CONNACK for protocol version v.
func AppendConnack(dst []byte, v byte, p *Connack) []byte {
	var sp byte
	if p.SessionPresent {
		sp = 1
	}
	if v < Version5 {
		return append(dst, CONNACK<<4, 2, sp, p.Reason)
	}
	n := 2 + propsBlockLen(&p.Props)
	dst = appendVarint(append(dst, CONNACK<<4), n)
	dst = append(dst, sp, p.Reason)
	return appendProps(dst, &p.Props)
}

// DecodeConnack decodes a CONNACK body.
func DecodeConnack(p *Connack, v byte, body []byte) error {
	p.Props.Reset()
	r := reader{b: body}
	sp := r.byte()
	if sp > 1 {
		return ErrMalformed
	}
	p.SessionPresent = sp == 1
	p.Reason = r.byte()
	if v == Version5 {
		r.props(&p.Props, allowConnack)
	}
	if r.err == nil && r.remaining() != 0 {
		return ErrMalformed
	}
	return r.err
}

// ---------------------------------------------------------------- PUBLISH

// Publish is a PUBLISH packet. Topic and Payload alias the frame.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    []byte
	PacketID uint16
	Props    Properties
	Payload  []byte
}

// DecodePublish decodes a PUBLISH body with fixed-header flags.
func DecodePublish(p *Publish, v byte, flags byte, body []byte) error {
	p.Dup = flags&0x08 != 0
	p.QoS = (flags >> 1) & 3
	p.Retain = flags&0x01 != 0
	if p.QoS == 3 || p.QoS == 0 && p.Dup {
		return ErrMalformed
	}
	r := reader{b: body}
	p.Topic = r.bin()
	if p.QoS > 0 {
		p.PacketID = r.u16()
		if p.PacketID == 0 && r.err == nil {
			return ErrMalformed
		}
	} else {
		p.PacketID = 0
	}
	if v == Version5 {
		p.Props.Reset()
		r.props(&p.Props, allowPublish)
	} else if p.Props.present != 0 {
		p.Props.Reset()
	}
	if r.err != nil {
		return r.err
	}
	p.Payload = body[r.off:len(body):len(body)]
	return nil
}

// AppendPublish encodes a PUBLISH packet.
func AppendPublish(dst []byte, v byte, p *Publish) []byte {
	flags := p.QoS << 1
	if p.Dup {
		flags |= 0x08
	}
	if p.Retain {
		flags |= 0x01
	}
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == Version5 {
		n += propsBlockLen(&p.Props)
	}
	dst = appendVarint(append(dst, PUBLISH<<4|flags), n)
	dst = appendBin(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendU16(dst, p.PacketID)
	}
	if v == Version5 {
		dst = appendProps(dst, &p.Props)
	}
	return append(dst, p.Payload...)
}

// ---------------------------------------------------------------- PUBACK/PUBREC/PUBREL/PUBCOMP

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP packet.
type Ack struct {
	Type     byte
	PacketID uint16
	Reason   byte
	Props    Properties
}

// DecodeAck decodes the body of one of the four publish acknowledgements.
func DecodeAck(p *Ack, v byte, typ, flags byte, body []byte) error {
	want := byte(0)
	if typ == PUBREL {
		want = 2
	}
	if flags != want {
		return ErrMalformed
	}
	p.Type = typ
	p.Props.Reset()
	r := reader{b: body}
	p.PacketID = r.u16()
	p.Reason = RCSuccess
	if v == Version5 && r.remaining() > 0 {
		p.Reason = r.byte()
		if r.remaining() > 0 {
			r.props(&p.Props, allowAck)
		}
	}
	if r.err == nil && r.remaining() != 0 {
		return ErrMalformed
	}
	if r.err == nil && p.PacketID == 0 {
		return ErrMalformed
	}
	return r.err
}

// AppendAck encodes a PUBACK/PUBREC/PUBREL/PUBCOMP; reason and properties
// are omitted when they are Success and empty (allowed by MQTT 5 §3.4.2.1).
func AppendAck(dst []byte, v byte, typ byte, id uint16, reason byte, props *Properties) []byte {
	h := typ << 4
	if typ == PUBREL {
		h |= 2
	}
	if v < Version5 || reason == RCSuccess && (props == nil || props.present == 0) {
		return append(dst, h, 2, byte(id>>8), byte(id))
	}
	if props == nil || props.present == 0 {
		return append(dst, h, 3, byte(id>>8), byte(id), reason)
	}
	n := 3 + propsBlockLen(props)
	dst = appendVarint(append(dst, h), n)
	dst = append(dst, byte(id>>8), byte(id), reason)
	return appendProps(dst, props)
}

// ---------------------------------------------------------------- SUBSCRIBE/SUBACK

// Subscription is one topic filter of a SUBSCRIBE.
type Subscription struct {
	Filter            []byte
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Subscribe is a SUBSCRIBE packet.
type Subscribe struct {
	PacketID uint16
	Props    Properties
	Subs     []Subscription
}

// DecodeSubscribe decodes a SUBSCRIBE body.
func DecodeSubscribe(p *Subscribe, v byte, flags byte, body []byte) error {
	if flags != 2 {
		return ErrMalformed
	}
	p.Props.Reset()
	p.Subs = p.Subs[:0]
	r := reader{b: body}
	p.PacketID = r.u16()
	if r.err == nil && p.PacketID == 0 {
		return ErrMalformed
	}
	if v == Version5 {
		r.props(&p.Props, allowSubscribe)
		if len(p.Props.SubscriptionIDs) > 1 {
			return ErrProtocol
		}
	}
	for r.err == nil && r.remaining() > 0 {
		f := r.str()
		o := r.byte()
		if r.err != nil {
			break
		}
		s := Subscription{Filter: f, QoS: o & 3}
		if v == Version5 {
			if o&0xc0 != 0 || s.QoS == 3 || (o>>4)&3 == 3 {
				return ErrMalformed
			}
			s.NoLocal = o&0x04 != 0
			s.RetainAsPublished = o&0x08 != 0
			s.RetainHandling = (o >> 4) & 3
		} else if o&0xfc != 0 || s.QoS == 3 {
			return ErrMalformed
		}
		p.Subs = append(p.Subs, s)
	}
	if r.err == nil && len(p.Subs) == 0 {
		return ErrProtocol
	}
	return r.err
}

// AppendSubscribe encodes a SUBSCRIBE packet.
func AppendSubscribe(dst []byte, v byte, p *Subscribe) []byte {
	n := 2
	if v == Version5 {
		n += propsBlockLen(&p.Props)
	}
	for _, s := range p.Subs {
		n += 3 + len(s.Filter)
	}
	dst = appendVarint(append(dst, SUBSCRIBE<<4|2), n)
	dst = appendU16(dst, p.PacketID)
	if v == Version5 {
		dst = appendProps(dst, &p.Props)
	}
	for _, s := range p.Subs {
		o := s.QoS
		if v == Version5 {
			if s.NoLocal {
				o |= 0x04
			}
			if s.RetainAsPublished {
				o |= 0x08
			}
			o |= s.RetainHandling << 4
		}
		dst = append(appendBin(dst, s.Filter), o)
	}
	return dst
}

// SubAck is a SUBACK or UNSUBACK packet.
type SubAck struct {
	Type     byte // SUBACK or UNSUBACK
	PacketID uint16
	Props    Properties
	Reasons  []byte
}

// AppendSubAck encodes a SUBACK or UNSUBACK (3.1.1 UNSUBACK has no payload).
func AppendSubAck(dst []byte, v byte, p *SubAck) []byte {
	n := 2
	if v == Version5 {
		n += propsBlockLen(&p.Props) + len(p.Reasons)
	} else if p.Type == SUBACK {
		n += len(p.Reasons)
	}
	dst = appendVarint(append(dst, p.Type<<4), n)
	dst = appendU16(dst, p.PacketID)
	if v == Version5 {
		dst = appendProps(dst, &p.Props)
		return append(dst, p.Reasons...)
	}
	if p.Type == SUBACK {
		dst = append(dst, p.Reasons...)
	}
	return dst
}

// DecodeSubAck decodes a SUBACK or UNSUBACK body.
func DecodeSubAck(p *SubAck, v byte, typ byte, body []byte) error {
	p.Type = typ
	p.Props.Reset()
	r := reader{b: body}
	p.PacketID = r.u16()
	if v == Version5 {
		r.props(&p.Props, allowAck)
	}
	if r.err != nil {
		return r.err
	}
	p.Reasons = body[r.off:]
	return nil
}

// ---------------------------------------------------------------- UNSUBSCRIBE

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Props    Properties
	Filters  [][]byte
}

// DecodeUnsubscribe decodes an UNSUBSCRIBE body.
func DecodeUnsubscribe(p *Unsubscribe, v byte, flags byte, body []byte) error {
	if flags != 2 {
		return ErrMalformed
	}
	p.Props.Reset()
	p.Filters = p.Filters[:0]
	r := reader{b: body}
	p.PacketID = r.u16()
	if r.err == nil && p.PacketID == 0 {
		return ErrMalformed
	}
	if v == Version5 {
		r.props(&p.Props, allowUnsubscribe)
	}
	for r.err == nil && r.remaining() > 0 {
		p.Filters = append(p.Filters, r.str())
	}
	if r.err == nil && len(p.Filters) == 0 {
		return ErrProtocol
	}
	return r.err
}

// AppendUnsubscribe encodes an UNSUBSCRIBE packet.
func AppendUnsubscribe(dst []byte, v byte, p *Unsubscribe) []byte {
	n := 2
	if v == Version5 {
		n += propsBlockLen(&p.Props)
	}
	for _, f := range p.Filters {
		n += 2 + len(f)
	}
	dst = appendVarint(append(dst, UNSUBSCRIBE<<4|2), n)
	dst = appendU16(dst, p.PacketID)
	if v == Version5 {
		dst = appendProps(dst, &p.Props)
	}
	for _, f := range p.Filters {
		dst = appendBin(dst, f)
	}
	return dst
}

// ---------------------------------------------------------------- DISCONNECT / AUTH

// Disconnect is a DISCONNECT (or, with Type AUTH, an AUTH) packet.
type Disconnect struct {
	Reason byte
	Props  Properties
}

// DecodeDisconnect decodes a DISCONNECT or AUTH body.
func DecodeDisconnect(p *Disconnect, v byte, typ, flags byte, body []byte) error {
	if flags != 0 {
		return ErrMalformed
	}
	p.Props.Reset()
	p.Reason = RCSuccess
	if v < Version5 {
		if len(body) != 0 || typ == AUTH {
			return ErrMalformed
		}
		return nil
	}
	r := reader{b: body}
	if r.remaining() > 0 {
		p.Reason = r.byte()
		if r.remaining() > 0 {
			allowed := uint64(allowDisconnect)
			if typ == AUTH {
				allowed = allowAuth
			}
			r.props(&p.Props, allowed)
		}
	}
	if r.err == nil && r.remaining() != 0 {
		return ErrMalformed
	}
	return r.err
}

// AppendDisconnect encodes a DISCONNECT (typ DISCONNECT) or AUTH packet.
func AppendDisconnect(dst []byte, v byte, typ byte, reason byte, props *Properties) []byte {
	if v < Version5 {
		return append(dst, typ<<4, 0)
	}
	if reason == RCSuccess && (props == nil || props.present == 0) {
		return append(dst, typ<<4, 0)
	}
	if props == nil || props.present == 0 {
		return append(dst, typ<<4, 1, reason)
	}
	n := 1 + propsBlockLen(props)
	dst = appendVarint(append(dst, typ<<4), n)
	dst = append(dst, reason)
	return appendProps(dst, props)
}

// ---------------------------------------------------------------- topics

// ValidTopicName reports whether t is a legal PUBLISH topic name: non-empty,
// no wildcards, valid UTF-8 without U+0000.
func ValidTopicName(t []byte) bool {
	if len(t) == 0 || len(t) > 65535 {
		return false
	}
	for _, c := range t {
		if c == '+' || c == '#' || c == 0 {
			return false
		}
	}
	return validUTF8(t)
}

// ValidTopicFilter reports whether f is a legal topic filter.
func ValidTopicFilter(f []byte) bool {
	if len(f) == 0 || !validUTF8(f) {
		return false
	}
	for i, c := range f {
		switch c {
		case '#':
			if i != len(f)-1 || i > 0 && f[i-1] != '/' {
				return false
			}
		case '+':
			if i > 0 && f[i-1] != '/' || i < len(f)-1 && f[i+1] != '/' {
				return false
			}
		}
	}
	return true
}

// packetName is used in logs.
func packetName(t byte) string {
	names := [...]string{"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
		"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("type%d", t)
}
