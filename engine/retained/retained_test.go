package retained

import (
	"slices"
	"sync"
	"testing"

	"quartet/engine/session"
	"quartet/engine/trie"
)

type memBackend struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (b *memBackend) Put(ns, key string, v []byte, done func(error)) {
	b.mu.Lock()
	b.m[ns+"\x00"+key] = append([]byte(nil), v...)
	b.mu.Unlock()
	if done != nil {
		done(nil)
	}
}
func (b *memBackend) Delete(ns, key string, done func(error)) {
	b.mu.Lock()
	delete(b.m, ns+"\x00"+key)
	b.mu.Unlock()
	if done != nil {
		done(nil)
	}
}
func (b *memBackend) Range(ns string, fn func(string, []byte) bool) {
	for k, v := range b.m {
		if len(k) > len(ns) && k[:len(ns)] == ns {
			if !fn(k[len(ns)+1:], v) {
				return
			}
		}
	}
}

func msg(topic, payload string) *session.Message {
	m := session.NewMessage([]byte(topic), []byte(payload), nil)
	m.Retain = true
	return m
}

func topics(ms []*session.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Topic))
		m.Release()
	}
	slices.Sort(out)
	return out
}

func TestSetMatchClearPersist(t *testing.T) {
	be := &memBackend{m: map[string][]byte{}}
	s := New(be)
	all := []string{"a", "a/b", "a/b/c", "a/x/c", "$SYS/up", "/lead"}
	for _, tp := range all {
		m := msg(tp, "v-"+tp)
		s.Set(m, nil)
		m.Release()
	}
	filters := []string{"#", "a/#", "a/+/c", "+", "+/+", "$SYS/#", "a", "+/lead", "a/b/#"}
	for _, f := range filters {
		var want []string
		for _, tp := range all {
			if trie.Matches(f, []byte(tp)) {
				want = append(want, tp)
			}
		}
		slices.Sort(want)
		if got := topics(s.Match(f, nil)); !slices.Equal(got, want) {
			t.Errorf("filter %q: got %v want %v", f, got, want)
		}
	}
	// replace and clear
	m := msg("a/b", "new")
	s.Set(m, nil)
	m.Release()
	got := s.Match("a/b", nil)
	if len(got) != 1 || string(got[0].Payload) != "new" {
		t.Fatal("replace failed")
	}
	got[0].Release()
	m = msg("a/b", "")
	s.Set(m, nil)
	m.Release()
	if len(s.Match("a/b", nil)) != 0 || s.Len() != len(all)-1 {
		t.Fatal("clear failed")
	}
	// reload from backend
	s2 := New(be)
	if err := s2.Load(); err != nil {
		t.Fatal(err)
	}
	if s2.Len() != len(all)-1 {
		t.Fatalf("reloaded %d", s2.Len())
	}
}
