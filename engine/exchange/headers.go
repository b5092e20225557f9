package exchange

import (
	"bytes"
	"math"
	"strings"
)

// headersMatch is a compiled headers-exchange binding.
type headersMatch struct {
	any      bool // x-match any (default all)
	withX    bool // any-with-x / all-with-x: x- headers take part
	keys     []string
	values   []any
	presence []bool // void value: presence only
}

func compileHeaders(args Table) headersMatch {
	var m headersMatch
	mode, _ := args["x-match"].(string)
	switch mode {
	case "any":
		m.any = true
	case "any-with-x":
		m.any, m.withX = true, true
	case "all-with-x":
		m.withX = true
	}
	for k, v := range args {
		if k == "x-match" || (!m.withX && strings.HasPrefix(k, "x-")) {
			continue
		}
		m.keys = append(m.keys, k)
		m.values = append(m.values, v)
		m.presence = append(m.presence, v == nil)
	}
	return m
}

func (m *headersMatch) matches(h Table) bool {
	if len(m.keys) == 0 {
		return !m.any || false
	}
	for i, k := range m.keys {
		v, ok := h[k]
		hit := ok && (m.presence[i] || equal(m.values[i], v))
		if m.any && hit {
			return true
		}
		if !m.any && !hit {
			return false
		}
	}
	return !m.any
}

// equal compares table values loosely: integers by value whatever their
// width, floats by value, strings with byte strings.
func equal(a, b any) bool {
	if ai, ok := AsInt64(a); ok {
		if bi, ok := AsInt64(b); ok {
			return ai == bi
		}
		if bf, ok := asFloat(b); ok {
			return float64(ai) == bf
		}
		return false
	}
	if af, ok := asFloat(a); ok {
		if bf, ok := asFloat(b); ok {
			return af == bf || (math.IsNaN(af) && math.IsNaN(bf))
		}
		if bi, ok := AsInt64(b); ok {
			return af == float64(bi)
		}
		return false
	}
	switch av := a.(type) {
	case string:
		switch bv := b.(type) {
		case string:
			return av == bv
		case []byte:
			return av == string(bv)
		}
	case []byte:
		switch bv := b.(type) {
		case string:
			return string(av) == bv
		case []byte:
			return bytes.Equal(av, bv)
		}
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	case nil:
		return b == nil
	}
	return false
}

// AsInt64 converts any integer type an AMQP field table can hold to int64.
func AsInt64(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		return int64(v), true
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}
