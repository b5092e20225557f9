package mqtt

import "unicode/utf8"

// MQTT 5 property identifiers.
const (
	propPayloadFormat       = 0x01
	propMessageExpiry       = 0x02
	propContentType         = 0x03
	propResponseTopic       = 0x08
	propCorrelationData     = 0x09
	propSubscriptionID      = 0x0B
	propSessionExpiry       = 0x11
	propAssignedClientID    = 0x12
	propServerKeepAlive     = 0x13
	propAuthMethod          = 0x15
	propAuthData            = 0x16
	propRequestProblemInfo  = 0x17
	propWillDelay           = 0x18
	propRequestResponseInfo = 0x19
	propResponseInfo        = 0x1A
	propServerReference     = 0x1C
	propReasonString        = 0x1F
	propReceiveMaximum      = 0x21
	propTopicAliasMaximum   = 0x22
	propTopicAlias          = 0x23
	propMaximumQoS          = 0x24
	propRetainAvailable     = 0x25
	propUser                = 0x26
	propMaximumPacketSize   = 0x27
	propWildcardSubAvail    = 0x28
	propSubIDAvail          = 0x29
	propSharedSubAvail      = 0x2A
)

func bit(id byte) uint64 { return 1 << id }

// Which properties each packet may carry (MQTT 5 §2.2.2.2).
const (
	allowConnect = 1<<propSessionExpiry | 1<<propAuthMethod | 1<<propAuthData | 1<<propRequestProblemInfo |
		1<<propRequestResponseInfo | 1<<propReceiveMaximum | 1<<propTopicAliasMaximum | 1<<propUser |
		1<<propMaximumPacketSize
	allowWill = 1<<propPayloadFormat | 1<<propMessageExpiry | 1<<propContentType | 1<<propResponseTopic |
		1<<propCorrelationData | 1<<propWillDelay | 1<<propUser
	allowConnack = 1<<propSessionExpiry | 1<<propAssignedClientID | 1<<propServerKeepAlive | 1<<propAuthMethod |
		1<<propAuthData | 1<<propResponseInfo | 1<<propServerReference | 1<<propReasonString |
		1<<propReceiveMaximum | 1<<propTopicAliasMaximum | 1<<propMaximumQoS | 1<<propRetainAvailable |
		1<<propUser | 1<<propMaximumPacketSize | 1<<propWildcardSubAvail | 1<<propSubIDAvail | 1<<propSharedSubAvail
	allowPublish = 1<<propPayloadFormat | 1<<propMessageExpiry | 1<<propContentType | 1<<propResponseTopic |
		1<<propCorrelationData | 1<<propSubscriptionID | 1<<propTopicAlias | 1<<propUser
	allowAck         = 1<<propReasonString | 1<<propUser
	allowSubscribe   = 1<<propSubscriptionID | 1<<propUser
	allowUnsubscribe = 1 << propUser
	allowDisconnect  = 1<<propSessionExpiry | 1<<propServerReference | 1<<propReasonString | 1<<propUser
	allowAuth        = 1<<propAuthMethod | 1<<propAuthData | 1<<propReasonString | 1<<propUser
)

// UserProperty is one MQTT 5 user property; both fields alias the frame when decoded.
type UserProperty struct {
	Key, Value []byte
}

// Properties holds MQTT 5 properties. Byte slices alias the decoded frame.
// Has reports presence by property identifier.
type Properties struct {
	present uint64

	PayloadFormat       byte
	MessageExpiry       uint32
	ContentType         []byte
	ResponseTopic       []byte
	CorrelationData     []byte
	SubscriptionIDs     []uint32
	SessionExpiry       uint32
	AssignedClientID    []byte
	ServerKeepAlive     uint16
	AuthMethod          []byte
	AuthData            []byte
	RequestProblemInfo  byte
	WillDelay           uint32
	RequestResponseInfo byte
	ResponseInfo        []byte
	ServerReference     []byte
	ReasonString        []byte
	ReceiveMaximum      uint16
	TopicAliasMaximum   uint16
	TopicAlias          uint16
	MaximumQoS          byte
	RetainAvailable     byte
	User                []UserProperty
	MaximumPacketSize   uint32
	WildcardSubAvail    byte
	SubIDAvail          byte
	SharedSubAvail      byte
}

// Has reports whether property id was present (or has been Set).
func (p *Properties) Has(id byte) bool { return p.present&bit(id) != 0 }

// Set marks property id as present (its field must be filled by the caller).
func (p *Properties) Set(id byte) { p.present |= bit(id) }

// Reset clears p, keeping slice capacity.
func (p *Properties) Reset() {
	u, s := p.User[:0], p.SubscriptionIDs[:0]
	*p = Properties{User: u, SubscriptionIDs: s}
}

// decodeProps reads a property block (length varint then properties).
func (r *reader) props(p *Properties, allowed uint64) {
	n := int(r.varint())
	if r.err != nil {
		return
	}
	if n > len(r.b)-r.off {
		r.fail(ErrMalformed)
		return
	}
	end := r.off + n
	for r.off < end && r.err == nil {
		id := r.varint()
		if r.err != nil {
			return
		}
		if id >= 64 || allowed&(1<<id) == 0 {
			r.fail(ErrProtocol)
			return
		}
		b := byte(id)
		if p.present&bit(b) != 0 && b != propUser && b != propSubscriptionID {
			r.fail(ErrProtocol) // duplicated property
			return
		}
		p.present |= bit(b)
		switch b {
		case propPayloadFormat:
			p.PayloadFormat = r.byte()
			if p.PayloadFormat > 1 {
				r.fail(ErrProtocol)
			}
		case propMessageExpiry:
			p.MessageExpiry = r.u32()
		case propContentType:
			p.ContentType = r.str()
		case propResponseTopic:
			p.ResponseTopic = r.str()
		case propCorrelationData:
			p.CorrelationData = r.bin()
		case propSubscriptionID:
			v := r.varint()
			if v == 0 && r.err == nil {
				r.fail(ErrProtocol)
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		case propSessionExpiry:
			p.SessionExpiry = r.u32()
		case propAssignedClientID:
			p.AssignedClientID = r.str()
		case propServerKeepAlive:
			p.ServerKeepAlive = r.u16()
		case propAuthMethod:
			p.AuthMethod = r.str()
		case propAuthData:
			p.AuthData = r.bin()
		case propRequestProblemInfo:
			p.RequestProblemInfo = r.byte()
			if p.RequestProblemInfo > 1 {
				r.fail(ErrProtocol)
			}
		case propWillDelay:
			p.WillDelay = r.u32()
		case propRequestResponseInfo:
			p.RequestResponseInfo = r.byte()
			if p.RequestResponseInfo > 1 {
				r.fail(ErrProtocol)
			}
		case propResponseInfo:
			p.ResponseInfo = r.str()
		case propServerReference:
			p.ServerReference = r.str()
		case propReasonString:
			p.ReasonString = r.str()
		case propReceiveMaximum:
			p.ReceiveMaximum = r.u16()
			if p.ReceiveMaximum == 0 && r.err == nil {
				r.fail(ErrProtocol)
			}
		case propTopicAliasMaximum:
			p.TopicAliasMaximum = r.u16()
		case propTopicAlias:
			p.TopicAlias = r.u16()
			if p.TopicAlias == 0 && r.err == nil {
				r.fail(ErrProtocol)
			}
		case propMaximumQoS:
			p.MaximumQoS = r.byte()
		case propRetainAvailable:
			p.RetainAvailable = r.byte()
		case propUser:
			k := r.str()
			v := r.str()
			p.User = append(p.User, UserProperty{k, v})
		case propMaximumPacketSize:
			p.MaximumPacketSize = r.u32()
			if p.MaximumPacketSize == 0 && r.err == nil {
				r.fail(ErrProtocol)
			}
		case propWildcardSubAvail:
			p.WildcardSubAvail = r.byte()
		case propSubIDAvail:
			p.SubIDAvail = r.byte()
		case propSharedSubAvail:
			p.SharedSubAvail = r.byte()
		default:
			r.fail(ErrProtocol)
		}
	}
	if r.err == nil && r.off != end {
		r.fail(ErrMalformed)
	}
}

// propsLen is the encoded size of p's property list (without its length prefix).
func propsLen(p *Properties) int {
	if p == nil || p.present == 0 {
		return 0
	}
	n := 0
	has := p.present
	if has&bit(propPayloadFormat) != 0 {
		n += 2
	}
	if has&bit(propMessageExpiry) != 0 {
		n += 5
	}
	if has&bit(propContentType) != 0 {
		n += 3 + len(p.ContentType)
	}
	if has&bit(propResponseTopic) != 0 {
		n += 3 + len(p.ResponseTopic)
	}
	if has&bit(propCorrelationData) != 0 {
		n += 3 + len(p.CorrelationData)
	}
	for _, id := range p.SubscriptionIDs {
		n += 1 + varintLen(int(id))
	}
	if has&bit(propSessionExpiry) != 0 {
		n += 5
	}
	if has&bit(propAssignedClientID) != 0 {
		n += 3 + len(p.AssignedClientID)
	}
	if has&bit(propServerKeepAlive) != 0 {
		n += 3
	}
	if has&bit(propAuthMethod) != 0 {
		n += 3 + len(p.AuthMethod)
	}
	if has&bit(propAuthData) != 0 {
		n += 3 + len(p.AuthData)
	}
	if has&bit(propRequestProblemInfo) != 0 {
		n += 2
	}
	if has&bit(propWillDelay) != 0 {
		n += 5
	}
	if has&bit(propRequestResponseInfo) != 0 {
		n += 2
	}
	if has&bit(propResponseInfo) != 0 {
		n += 3 + len(p.ResponseInfo)
	}
	if has&bit(propServerReference) != 0 {
		n += 3 + len(p.ServerReference)
	}
	if has&bit(propReasonString) != 0 {
		n += 3 + len(p.ReasonString)
	}
	if has&bit(propReceiveMaximum) != 0 {
		n += 3
	}
	if has&bit(propTopicAliasMaximum) != 0 {
		n += 3
	}
	if has&bit(propTopicAlias) != 0 {
		n += 3
	}
	if has&bit(propMaximumQoS) != 0 {
		n += 2
	}
	if has&bit(propRetainAvailable) != 0 {
		n += 2
	}
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	if has&bit(propMaximumPacketSize) != 0 {
		n += 5
	}
	if has&bit(propWildcardSubAvail) != 0 {
		n += 2
	}
	if has&bit(propSubIDAvail) != 0 {
		n += 2
	}
	if has&bit(propSharedSubAvail) != 0 {
		n += 2
	}
	return n
}

// appendProps appends the property block (length prefix included).
func appendProps(dst []byte, p *Properties) []byte {
	n := propsLen(p)
	dst = appendVarint(dst, n)
	if n == 0 {
		return dst
	}
	has := p.present
	if has&bit(propPayloadFormat) != 0 {
		dst = append(dst, propPayloadFormat, p.PayloadFormat)
	}
	if has&bit(propMessageExpiry) != 0 {
		dst = appendU32(append(dst, propMessageExpiry), p.MessageExpiry)
	}
	if has&bit(propContentType) != 0 {
		dst = appendBin(append(dst, propContentType), p.ContentType)
	}
	if has&bit(propResponseTopic) != 0 {
		dst = appendBin(append(dst, propResponseTopic), p.ResponseTopic)
	}
	if has&bit(propCorrelationData) != 0 {
		dst = appendBin(append(dst, propCorrelationData), p.CorrelationData)
	}
	for _, id := range p.SubscriptionIDs {
		dst = appendVarint(append(dst, propSubscriptionID), int(id))
	}
	if has&bit(propSessionExpiry) != 0 {
		dst = appendU32(append(dst, propSessionExpiry), p.SessionExpiry)
	}
	if has&bit(propAssignedClientID) != 0 {
		dst = appendBin(append(dst, propAssignedClientID), p.AssignedClientID)
	}
	if has&bit(propServerKeepAlive) != 0 {
		dst = appendU16(append(dst, propServerKeepAlive), p.ServerKeepAlive)
	}
	if has&bit(propAuthMethod) != 0 {
		dst = appendBin(append(dst, propAuthMethod), p.AuthMethod)
	}
	if has&bit(propAuthData) != 0 {
		dst = appendBin(append(dst, propAuthData), p.AuthData)
	}
	if has&bit(propRequestProblemInfo) != 0 {
		dst = append(dst, propRequestProblemInfo, p.RequestProblemInfo)
	}
	if has&bit(propWillDelay) != 0 {
		dst = appendU32(append(dst, propWillDelay), p.WillDelay)
	}
	if has&bit(propRequestResponseInfo) != 0 {
		dst = append(dst, propRequestResponseInfo, p.RequestResponseInfo)
	}
	if has&bit(propResponseInfo) != 0 {
		dst = appendBin(append(dst, propResponseInfo), p.ResponseInfo)
	}
	if has&bit(propServerReference) != 0 {
		dst = appendBin(append(dst, propServerReference), p.ServerReference)
	}
	if has&bit(propReasonString) != 0 {
		dst = appendBin(append(dst, propReasonString), p.ReasonString)
	}
	if has&bit(propReceiveMaximum) != 0 {
		dst = appendU16(append(dst, propReceiveMaximum), p.ReceiveMaximum)
	}
	if has&bit(propTopicAliasMaximum) != 0 {
		dst = appendU16(append(dst, propTopicAliasMaximum), p.TopicAliasMaximum)
	}
	if has&bit(propTopicAlias) != 0 {
		dst = appendU16(append(dst, propTopicAlias), p.TopicAlias)
	}
	if has&bit(propMaximumQoS) != 0 {
		dst = append(dst, propMaximumQoS, p.MaximumQoS)
	}
	if has&bit(propRetainAvailable) != 0 {
		dst = append(dst, propRetainAvailable, p.RetainAvailable)
	}
	for _, u := range p.User {
		dst = appendBin(appendBin(append(dst, propUser), u.Key), u.Value)
	}
	if has&bit(propMaximumPacketSize) != 0 {
		dst = appendU32(append(dst, propMaximumPacketSize), p.MaximumPacketSize)
	}
	if has&bit(propWildcardSubAvail) != 0 {
		dst = append(dst, propWildcardSubAvail, p.WildcardSubAvail)
	}
	if has&bit(propSubIDAvail) != 0 {
		dst = append(dst, propSubIDAvail, p.SubIDAvail)
	}
	if has&bit(propSharedSubAvail) != 0 {
		dst = append(dst, propSharedSubAvail, p.SharedSubAvail)
	}
	return dst
}

// validUTF8 checks an MQTT UTF-8 string: well formed, no U+0000.
func validUTF8(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			return false
		}
		if c >= 0x80 {
			return utf8.Valid(b[i:]) && !containsNul(b[i:])
		}
	}
	return true
}

func containsNul(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}
