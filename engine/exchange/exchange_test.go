package exchange

import (
	"slices"
	"sort"
	"testing"
)

type q string

func (d q) DestinationName() string { return string(d) }

func names(ds []Destination) []string {
	var s []string
	for _, d := range ds {
		s = append(s, d.DestinationName())
	}
	sort.Strings(s)
	return s
}

func TestTopic(t *testing.T) {
	r := NewRegistry()
	x, _ := r.Get("amq.topic")
	pats := map[string]string{"a": "a.b.c", "b": "a.*.c", "c": "a.#", "d": "#", "e": "*.b.#", "f": "#.c", "g": "a.#.c", "h": "*"}
	for d, p := range pats {
		r.Bind(x, q(d), p, nil)
	}
	cases := map[string][]string{
		"a.b.c":   {"a", "b", "c", "d", "e", "f", "g"},
		"a":       {"c", "d", "h"},
		"a.c":     {"c", "d", "f", "g"},
		"x.b":     {"d", "e"},
		"":        {"d", "h"},
		"a.x.y.c": {"c", "d", "f", "g"},
	}
	for key, want := range cases {
		got := names(r.Route(x, key, nil, nil))
		if !slices.Equal(got, want) {
			t.Errorf("%q: got %v want %v", key, got, want)
		}
	}
	r.Unbind(x, q("c"), "a.#", nil)
	if got := names(r.Route(x, "a", nil, nil)); !slices.Equal(got, []string{"d", "h"}) {
		t.Errorf("after unbind: %v", got)
	}
}

func TestDirectFanoutHeaders(t *testing.T) {
	r := NewRegistry()
	d, _ := r.Get("amq.direct")
	r.Bind(d, q("q1"), "k", nil)
	r.Bind(d, q("q2"), "k", nil)
	r.Bind(d, q("q3"), "other", nil)
	if got := names(r.Route(d, "k", nil, nil)); !slices.Equal(got, []string{"q1", "q2"}) {
		t.Fatal(got)
	}
	f, _ := r.Get("amq.fanout")
	r.Bind(f, q("q1"), "", nil)
	r.Bind(f, q("q3"), "ignored", nil)
	if got := names(r.Route(f, "zzz", nil, nil)); !slices.Equal(got, []string{"q1", "q3"}) {
		t.Fatal(got)
	}
	h, _ := r.Get("amq.headers")
	r.Bind(h, q("all"), "", Table{"x-match": "all", "a": int32(1), "b": "x"})
	r.Bind(h, q("any"), "", Table{"x-match": "any", "a": int32(1), "b": "x"})
	if got := names(r.Route(h, "", Table{"a": int64(1), "b": "x"}, nil)); !slices.Equal(got, []string{"all", "any"}) {
		t.Fatal(got)
	}
	if got := names(r.Route(h, "", Table{"a": int8(1)}, nil)); !slices.Equal(got, []string{"any"}) {
		t.Fatal(got)
	}
	if got := names(r.Route(h, "", Table{"c": 1}, nil)); len(got) != 0 {
		t.Fatal(got)
	}
}

func TestE2EAndAlternate(t *testing.T) {
	r := NewRegistry()
	ae, _, _ := r.Declare("ae", Fanout, false, false, false, nil)
	r.Bind(ae, q("unrouted"), "", nil)
	src, _, _ := r.Declare("src", Direct, false, false, false, Table{"alternate-exchange": "ae"})
	mid, _, _ := r.Declare("mid", Topic, false, true, false, nil)
	r.Bind(src, mid, "k", nil)
	r.Bind(mid, q("t"), "#", nil)
	r.Bind(mid, src, "#", nil) // loop
	if got := names(r.Route(src, "k", nil, nil)); !slices.Equal(got, []string{"t"}) {
		t.Fatal(got)
	}
	if got := names(r.Route(src, "nope", nil, nil)); !slices.Equal(got, []string{"unrouted"}) {
		t.Fatal(got)
	}
	if _, _, err := r.Declare("src", Fanout, false, false, false, nil); err == nil {
		t.Fatal("inequivalent redeclare accepted")
	}
	// auto-delete: mid goes when its last binding goes
	r.Unbind(mid, src, "#", nil)
	gone := r.UnbindAll(q("t"))
	if len(gone) != 1 || gone[0] != mid {
		t.Fatalf("auto-delete: %v", gone)
	}
	if _, ok := r.Get("mid"); ok {
		t.Fatal("mid still there")
	}
	if got := names(r.Route(src, "k", nil, nil)); !slices.Equal(got, []string{"unrouted"}) {
		t.Fatal(got)
	}
}

func BenchmarkRouteDirect(b *testing.B) {
	r := NewRegistry()
	d, _ := r.Get("amq.direct")
	r.Bind(d, q("q1"), "k", nil)
	out := make([]Destination, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		out = r.Route(d, "k", nil, out[:0])
	}
}
