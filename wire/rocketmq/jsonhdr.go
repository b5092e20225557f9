package rocketmq

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// fastJSONHeader decodes the JSON header shape every client sends
// ({"code":..,"extFields":{"k":"v",..},"flag":..,...}) without reflection.
// It reports false on anything unexpected; the caller then falls back to
// encoding/json, which also produces the error.
func fastJSONHeader(b []byte) (*Command, bool) {
	p := jscan{b: b}
	c := &Command{}
	if !p.consume('{') {
		return nil, false
	}
	if p.peekIs('}') {
		p.i++
		c.Ext = map[string]string{}
		return c, p.end()
	}
	for {
		key, ok := p.str()
		if !ok || !p.consume(':') {
			return nil, false
		}
		switch key {
		case "code", "version", "opaque", "flag":
			n, ok := p.int()
			if !ok {
				return nil, false
			}
			switch key {
			case "code":
				if n < -1<<15 || n >= 1<<15 {
					return nil, false
				}
				c.Code = int16(n)
			case "version":
				if n < -1<<15 || n >= 1<<15 {
					return nil, false
				}
				c.Version = int16(n)
			case "opaque":
				c.Opaque = int32(n)
			case "flag":
				c.Flag = int32(n)
			}
		case "language", "remark":
			p.ws()
			if p.peekIs('n') { // null
				if !p.lit("null") {
					return nil, false
				}
				break
			}
			v, ok := p.str()
			if !ok {
				return nil, false
			}
			if key == "language" {
				c.Language = v
			} else {
				c.Remark = v
			}
		case "extFields":
			p.ws()
			if p.peekIs('n') {
				if !p.lit("null") {
					return nil, false
				}
				break
			}
			if !p.consume('{') {
				return nil, false
			}
			if c.Ext == nil {
				c.Ext = make(map[string]string, 16)
			}
			if p.peekIs('}') {
				p.i++
				break
			}
			for {
				k, ok := p.str()
				if !ok || !p.consume(':') {
					return nil, false
				}
				v, ok := p.str()
				if !ok {
					return nil, false
				}
				if len(c.Ext) >= extFieldsMax {
					return nil, false
				}
				c.Ext[k] = v
				if p.consume(',') {
					continue
				}
				if !p.consume('}') {
					return nil, false
				}
				break
			}
		default:
			if knownKeyFold(key) {
				return nil, false // encoding/json matches keys case-insensitively
			}
			if !p.skip(0) {
				return nil, false
			}
		}
		if p.consume(',') {
			continue
		}
		if !p.consume('}') {
			return nil, false
		}
		break
	}
	if c.Ext == nil {
		c.Ext = map[string]string{}
	}
	return c, p.end()
}

func knownKeyFold(k string) bool {
	for _, n := range [...]string{"code", "version", "opaque", "flag", "language", "remark", "extfields"} {
		if strings.EqualFold(k, n) {
			return true
		}
	}
	return false
}

type jscan struct {
	b []byte
	i int
}

func (p *jscan) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jscan) peekIs(c byte) bool {
	p.ws()
	return p.i < len(p.b) && p.b[p.i] == c
}

func (p *jscan) consume(c byte) bool {
	if p.peekIs(c) {
		p.i++
		return true
	}
	return false
}

func (p *jscan) end() bool {
	p.ws()
	return p.i == len(p.b)
}

func (p *jscan) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// number returns the end of the JSON number at i (i when there is none) and
// whether it is an integer.
func number(b []byte, i int) (int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return i, false
	}
	integer := true
	if j < len(b) && b[j] == '.' {
		integer = false
		j++
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return i, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		integer = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return i, false
		}
	}
	return j, integer
}

func (p *jscan) int() (int64, bool) {
	p.ws()
	j, integer := number(p.b, p.i)
	if j == p.i || !integer {
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return n, true
}

// str reads a JSON string.
func (p *jscan) str() (string, bool) {
	if !p.consume('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			if !utf8.ValidString(s) {
				return "", false
			}
			return s, true
		}
		if c == '\\' {
			return p.strSlow(start)
		}
		if c < 0x20 {
			return "", false
		}
		p.i++
	}
	return "", false
}

func (p *jscan) strSlow(start int) (string, bool) {
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					r2, ok := p.hex4()
					if !ok {
						return "", false
					}
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (p *jscan) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// skip skips one JSON value (bounded nesting).
func (p *jscan) skip(depth int) bool {
	if depth > 32 {
		return false
	}
	p.ws()
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, ok := p.str()
		return ok
	case c == '{' || c == '[':
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		p.i++
		if p.consume(close) {
			return true
		}
		for {
			if c == '{' {
				if _, ok := p.str(); !ok || !p.consume(':') {
					return false
				}
			}
			if !p.skip(depth + 1) {
				return false
			}
			if p.consume(',') {
				continue
			}
			return p.consume(close)
		}
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	default:
		j, _ := number(p.b, p.i)
		if j == p.i {
			return false
		}
		p.i = j
		return true
	}
}
