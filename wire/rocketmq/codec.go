package rocketmq

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Remoting frame (big-endian):
//
//	+--------------+-----------------------------+------------+---------+
//	| length int32 | type<<24 | headerLen (int32) | header ... | body ...|
//	+--------------+-----------------------------+------------+---------+
//	 length counts everything after itself; type 0 = JSON, 1 = ROCKETMQ.
const (
	frameBytesMax       = 16 << 20 // whole frame including the length field
	frameHeaderBytesMin = 8

	serialJSON     = byte(0)
	serialRocketMQ = byte(1)

	flagResponse = 1 << 0
	flagOneway   = 1 << 1

	// versionBroker is the version we answer with (Java's V4_9_4 ordinal).
	versionBroker = 399
	extFieldsMax  = 1024 // fields in one header
)

// Sentinel errors of the package.
var (
	ErrMalformed     = errors.New("rocketmq: malformed frame")
	ErrFrameTooLarge = errors.New("rocketmq: frame too large")
	ErrClosed        = errors.New("rocketmq: server closed")
)

// Field is one extFields entry of an outgoing command.
type Field struct{ K, V string }

// Command is one decoded remoting command. Body aliases the frame it was
// decoded from.
type Command struct {
	Code     int16
	Language string
	Version  int16
	Opaque   int32
	Flag     int32
	Remark   string
	Ext      map[string]string
	Body     []byte
	Serial   byte
}

// IsResponse reports whether the command is a response.
func (c *Command) IsResponse() bool { return c.Flag&flagResponse != 0 }

// IsOneway reports whether the command was sent as oneway.
func (c *Command) IsOneway() bool { return c.Flag&flagOneway != 0 }

// Str returns ext field k.
func (c *Command) Str(k string) string { return c.Ext[k] }

// Int returns ext field k as an int64 (0 when absent or malformed).
func (c *Command) Int(k string) int64 {
	v, err := strconv.ParseInt(c.Ext[k], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// IntOK returns ext field k and whether it parsed.
func (c *Command) IntOK(k string) (int64, bool) {
	v, err := strconv.ParseInt(c.Ext[k], 10, 64)
	return v, err == nil
}

// Bool returns ext field k as a bool.
func (c *Command) Bool(k string) bool {
	b, _ := strconv.ParseBool(c.Ext[k])
	return b
}

// reader decodes big-endian fields with a sticky error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (r *reader) u8() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("short u8")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail("short u16")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail("short u32")
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("length past the end")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// DecodeCommand decodes one whole frame (starting with its length field).
// Body aliases frame.
func DecodeCommand(frame []byte) (*Command, error) {
	if len(frame) < frameHeaderBytesMin {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(frame))
	}
	total := int(int32(binary.BigEndian.Uint32(frame)))
	if total != len(frame)-4 {
		return nil, fmt.Errorf("%w: length %d for %d bytes", ErrMalformed, total, len(frame)-4)
	}
	ht := binary.BigEndian.Uint32(frame[4:])
	serial := byte(ht >> 24)
	hlen := int(ht & 0xFFFFFF)
	rest := frame[8:]
	if hlen > len(rest) {
		return nil, fmt.Errorf("%w: header length %d past the end", ErrMalformed, hlen)
	}
	hdr := rest[:hlen]
	var c *Command
	var err error
	switch serial {
	case serialJSON:
		c, err = decodeJSONHeader(hdr)
	case serialRocketMQ:
		c, err = decodeBinaryHeader(hdr)
	default:
		return nil, fmt.Errorf("%w: serialization type %d", ErrMalformed, serial)
	}
	if err != nil {
		return nil, err
	}
	c.Serial = serial
	if body := rest[hlen:]; len(body) > 0 {
		c.Body = body
	}
	return c, nil
}

type jsonHeader struct {
	Code      int16             `json:"code"`
	Language  json.RawMessage   `json:"language"`
	Version   int16             `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int32             `json:"flag"`
	Remark    *string           `json:"remark"`
	ExtFields map[string]string `json:"extFields"`
}

func decodeJSONHeader(b []byte) (*Command, error) {
	if c, ok := fastJSONHeader(b); ok {
		return c, nil
	}
	var h jsonHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: header json: %v", ErrMalformed, err)
	}
	if len(h.ExtFields) > extFieldsMax {
		return nil, fmt.Errorf("%w: %d ext fields", ErrMalformed, len(h.ExtFields))
	}
	c := &Command{Code: h.Code, Version: h.Version, Opaque: h.Opaque, Flag: h.Flag, Ext: h.ExtFields}
	if h.Remark != nil {
		c.Remark = *h.Remark
	}
	if len(h.Language) > 0 {
		var s string
		if json.Unmarshal(h.Language, &s) == nil {
			c.Language = s
		}
	}
	if c.Ext == nil {
		c.Ext = map[string]string{}
	}
	return c, nil
}

var languages = map[byte]string{0: "JAVA", 1: "CPP", 2: "DOTNET", 3: "PYTHON", 4: "DELPHI", 5: "ERLANG", 6: "RUBY", 7: "OTHER", 8: "HTTP", 9: "GO", 10: "PHP", 11: "OMS", 12: "RUST"}

func decodeBinaryHeader(b []byte) (*Command, error) {
	r := reader{b: b}
	c := &Command{}
	c.Code = int16(r.u16())
	c.Language = languages[r.u8()]
	c.Version = int16(r.u16())
	c.Opaque = int32(r.u32())
	c.Flag = int32(r.u32())
	rl := int32(r.u32())
	c.Remark = string(r.bytes(int(rl)))
	el := int32(r.u32())
	ext := reader{b: r.bytes(int(el))}
	if r.err != nil {
		return nil, r.err
	}
	c.Ext = map[string]string{}
	for len(ext.b) > 0 && ext.err == nil {
		kl := int16(ext.u16())
		k := ext.bytes(int(kl))
		vl := int32(ext.u32())
		v := ext.bytes(int(vl))
		if ext.err != nil {
			break
		}
		if len(c.Ext) >= extFieldsMax {
			return nil, fmt.Errorf("%w: too many ext fields", ErrMalformed)
		}
		c.Ext[string(k)] = string(v)
	}
	if ext.err != nil {
		return nil, ext.err
	}
	return c, nil
}

// Out is an outgoing command (response or broker-initiated request).
type Out struct {
	Code   int16
	Opaque int32
	Flag   int32
	Remark string
	Ext    []Field
	Body   []byte
	Serial byte
}

// Set appends an ext field.
func (o *Out) Set(k, v string) { o.Ext = append(o.Ext, Field{k, v}) }

// SetInt appends an integer ext field.
func (o *Out) SetInt(k string, v int64) { o.Ext = append(o.Ext, Field{k, strconv.FormatInt(v, 10)}) }

// AppendCommand appends the whole frame of o to dst.
func AppendCommand(dst []byte, o *Out) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	hstart := len(dst)
	if o.Serial == serialRocketMQ {
		dst = appendBinaryHeader(dst, o)
	} else {
		dst = appendJSONHeader(dst, o)
	}
	hlen := len(dst) - hstart
	dst = append(dst, o.Body...)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(o.Serial)<<24|uint32(hlen)&0xFFFFFF)
	return dst
}

func appendBinaryHeader(dst []byte, o *Out) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(o.Code))
	dst = append(dst, 0) // JAVA
	dst = binary.BigEndian.AppendUint16(dst, versionBroker)
	dst = binary.BigEndian.AppendUint32(dst, uint32(o.Opaque))
	dst = binary.BigEndian.AppendUint32(dst, uint32(o.Flag))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(o.Remark)))
	dst = append(dst, o.Remark...)
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for _, f := range o.Ext {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.K)))
		dst = append(dst, f.K...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f.V)))
		dst = append(dst, f.V...)
	}
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	return dst
}

func appendJSONHeader(dst []byte, o *Out) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(o.Code), 10)
	dst = append(dst, `,"language":"JAVA","version":`...)
	dst = strconv.AppendInt(dst, versionBroker, 10)
	dst = append(dst, `,"opaque":`...)
	dst = strconv.AppendInt(dst, int64(o.Opaque), 10)
	dst = append(dst, `,"flag":`...)
	dst = strconv.AppendInt(dst, int64(o.Flag), 10)
	if o.Remark != "" {
		dst = append(dst, `,"remark":`...)
		dst = appendJSONString(dst, o.Remark)
	}
	if len(o.Ext) > 0 {
		dst = append(dst, `,"extFields":{`...)
		for i, f := range o.Ext {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, f.K)
			dst = append(dst, ':')
			dst = appendJSONString(dst, f.V)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"serializeTypeCurrentRPC":"JSON"}`...)
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
